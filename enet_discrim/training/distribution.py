"""Distribution strategies, and which worker of a multi-worker run this process is."""

import json
import os
import socket
import time

import tensorflow as tf
from absl import logging

STRATEGIES = ("auto", "mirrored", "multi_worker")
#: How long a multi-worker task waits for the cluster's other tasks to start (--peer_timeout).
PEER_TIMEOUT_S = 600.0


class PeerTimeoutError(RuntimeError):
    """The cluster's other tasks did not all start within the timeout."""


def make_strategy(name, peer_timeout=PEER_TIMEOUT_S):
    """The `tf.distribute.Strategy` called `name`.

    `auto`: MirroredStrategy when there are several GPUs, else the default strategy;
    `mirrored`: MirroredStrategy over all local GPUs (or the CPU); `multi_worker`:
    MultiWorkerMirroredStrategy configured by the TF_CONFIG environment variable, waiting at
    most `peer_timeout` seconds for the other tasks (`_wait_for_cluster`).
    """
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multi_worker needs the TF_CONFIG environment variable "
                             "(see README)")
        check_tf_config(os.environ["TF_CONFIG"])
        return _wait_for_cluster(tf.distribute.MultiWorkerMirroredStrategy,
                                 json.loads(os.environ["TF_CONFIG"]), peer_timeout)
    if name == "mirrored" or len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def check_tf_config(text):
    """Raises ValueError naming TF_CONFIG unless `text` describes a cluster and this task in it:
    `{"cluster": {"worker": ["host:port", ...], ...}, "task": {"type": "worker", "index": i}}`
    (TensorFlow trains a malformed one as a single local worker, without a word)."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error.msg} at column "
                         f"{error.colno})") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with \"cluster\" and \"task\", got "
                         f"{type(config).__name__}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster or not all(
            isinstance(hosts, list) and hosts and all(isinstance(h, str) and ":" in h for h in hosts)
            for hosts in cluster.values()):
        raise ValueError('TF_CONFIG "cluster" must map each task type to a list of "host:port"')
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(f'TF_CONFIG "task" must name a "type" of its cluster '
                         f'({", ".join(cluster)}), got {json.dumps(task)}')
    index = task.get("index")
    if not (isinstance(index, int) and not isinstance(index, bool)
            and 0 <= index < len(cluster[task["type"]])):
        raise ValueError(f'TF_CONFIG "task" "index" must be 0..{len(cluster[task["type"]]) - 1} '
                         f'for its {len(cluster[task["type"]])} {task["type"]}(s), got '
                         f'{json.dumps(index)}')


def is_chief(strategy):
    """Whether this process writes the shared outputs: the chief, or worker 0 where no chief is
    named, or the only process of a single-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def task_id(strategy):
    """This worker's index in its cluster (0 without one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return 0 if resolver is None else resolver.task_id


def _peers(tf_config):
    """The other tasks of a checked TF_CONFIG: a list of ("type index", "host:port")."""
    task = tf_config["task"]
    return [(f"{kind} {index}", address) for kind, addresses in tf_config["cluster"].items()
            for index, address in enumerate(addresses)
            if (kind, index) != (task["type"], task["index"])]


def _reachable(address, timeout=1.0):
    """Whether something accepts TCP connections at "host:port"."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _leader(tf_config):
    """("type index", "host:port") of the task that hosts the cluster's coordination service:
    the chief, or worker 0 where there is none (as MultiWorkerMirroredStrategy chooses it)."""
    kind = "chief" if "chief" in tf_config["cluster"] else "worker"
    return f"{kind} 0", tf_config["cluster"][kind][0]


def _wait_for_cluster(create, tf_config, timeout):
    """`create()` (a MultiWorkerMirroredStrategy) once the cluster's tasks have started, or
    PeerTimeoutError after `timeout` seconds.

    TensorFlow's constructor blocks until every task has registered with the coordination
    service, without a word and without a timeout, holding the interpreter (Ctrl-C is not
    handled meanwhile). So the wait is announced once, and a task other than the service's host
    first waits here, interruptibly, until that host answers. The host itself (the chief, or
    worker 0) still waits inside TensorFlow once it has started its server.

    Raises:
        PeerTimeoutError: naming the tasks that do not answer.
    """
    peers = _peers(tf_config)
    leader_name, leader_address = _leader(tf_config)
    task = tf_config["task"]
    is_leader = f"{task['type']} {task['index']}" == leader_name
    logging.info("Waiting up to %g s for the cluster's other tasks: %s", timeout,
                 ", ".join(f"{name} at {address}" for name, address in peers))
    deadline = time.monotonic() + timeout

    def timed_out():
        silent = [f"{name} at {address}" for name, address in peers if not _reachable(address)]
        what = (f"{', '.join(silent)} does not answer" if silent
                else "every task answers, but they did not all join")
        return PeerTimeoutError(f"the cluster did not start within --peer_timeout {timeout:g} s: "
                                f"{what} (TF_CONFIG)")

    if not is_leader:
        while not _reachable(leader_address):
            if time.monotonic() > deadline:
                raise timed_out()
            time.sleep(0.5)
    try:
        return create()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError):
        raise timed_out() from None


def num_workers(strategy):
    """Processes that share the training: the workers (and chief) of the cluster, else 1."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def shard_across_workers(dataset, strategy, num_files):
    """`dataset` with the auto-shard policy its workers can use: each worker reads its own files
    when there are enough of them, else every worker reads all files and keeps its share of the
    elements (tf.data's FILE policy fails with fewer files than workers)."""
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = (
        policy.FILE if num_files >= num_workers(strategy) else policy.DATA)
    return dataset.with_options(options)


def every_worker_reads_all(dataset):
    """`dataset` read whole by every worker. For a finite set such as validation: sharded, the
    workers could get unequal numbers of batches, and one would wait for the others' all-reduce
    forever."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def barrier(strategy):
    """Returns once every worker has called it (at once where there is a single worker).

    The chief hosts the cluster's coordination service: a worker still saving when the chief has
    exited waits for it forever, so all of them meet here before leaving.
    """
    if num_workers(strategy) > 1:
        tf.function(lambda: strategy.reduce(
            tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None))()
