"""Distribution strategies, and which worker of a multi-worker run this process is."""

import os

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multi_worker")


def make_strategy(name):
    """The `tf.distribute.Strategy` called `name`.

    `auto`: MirroredStrategy when there are several GPUs, else the default strategy;
    `mirrored`: MirroredStrategy over all local GPUs (or the CPU); `multi_worker`:
    MultiWorkerMirroredStrategy configured by the TF_CONFIG environment variable.
    """
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multi_worker needs the TF_CONFIG environment variable "
                             "(see README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored" or len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


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
