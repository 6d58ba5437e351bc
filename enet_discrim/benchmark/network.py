"""How close the ENet forward pass comes to the machine.

The network's FLOPs are counted by TensorFlow's profiler on the graph of the forward pass (every
convolution at 2 FLOPs per multiply-add, plus the element-wise ops it has a count for). The
machine's reference is the throughput of a 2048 x 2048 float32 matmul, the densest work a CPU
does, its FLOPs counted the same way. Both are timed in the same rounds, one call of each in turn,
so that slow drifts of other load on the machine reach them alike; each is reported at its median
and at its fastest round.

The forward pass is timed four ways:

- `plain`: `tf.function(model)`, what TensorFlow's graph executor (with oneDNN) makes of it;
- `folded`: the same with the batch norms folded into the convolutions (`model.fold`);
- `xla`: `jit_compile=True`, XLA fusing the element-wise ops around each convolution;
- `folded_xla`: both (`model.serving.inference_function`).

Every variant is credited with the plain model's FLOPs: the same work from the model's side.
"""

import time

import numpy as np
import tensorflow as tf

from enet_discrim.benchmark.timing import interleaved_seconds, median_seconds
from enet_discrim.model import ENet
from enet_discrim.model.serving import inference_function

MATMUL_SIZE = 2048
#: name -> (fold the batch norms, compile with XLA)
VARIANTS = {"plain": (False, False), "folded": (True, False), "xla": (False, True),
            "folded_xla": (True, True)}


def count_flops(function, *input_specs):
    """Floating-point operations of one call of `function` on inputs of `input_specs`.

    Args:
        function: a Python callable or `tf.function` of tensors.
        *input_specs: `tf.TensorSpec`s with fully known shapes, one per argument.

    Returns:
        int, the total of TensorFlow's profiler (`ProfileOptionBuilder.float_operation`): a
        convolution counts 2 * output elements * kernel height * kernel width * input channels, a
        matmul 2 * M * N * K, an element-wise op one per output element.
    """
    graph = tf.function(function).get_concrete_function(*input_specs).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


def throughput(flops, seconds, reference_flops, reference_seconds):
    """`(flop_per_s, fraction)`: the rate of `flops` done in `seconds`, and its fraction of the
    reference's rate (`reference_flops` in `reference_seconds`)."""
    rate = flops / seconds
    return rate, rate / (reference_flops / reference_seconds)


def _network_variants(model, height, width, batch_size, variants):
    """name -> blocking call, and name -> first-call seconds: each variant on one fixed batch."""
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch_size, height, width, 3)),
                         tf.float32)
    calls, first_call_s = {}, {}
    for name in variants:
        fold, jit_compile = VARIANTS[name]
        network = inference_function(model, height, width, jit_compile=jit_compile, fold=fold)
        start = time.perf_counter()
        network(images)["embeddings"].numpy()  # traces (and compiles) it
        first_call_s[name] = time.perf_counter() - start
        calls[name] = lambda network=network: network(images)["embeddings"].numpy()
    return calls, first_call_s


def run(height=256, width=512, batch_size=1, rounds=10, variants=tuple(VARIANTS), model=None,
        matmul_size=MATMUL_SIZE):
    """Times the forward pass's variants and the matmul in the same rounds.

    Args:
        height, width, batch_size: the forward pass's input.
        rounds: timed calls of each (after one untimed).
        variants: names from `VARIANTS` to time.
        model: a built ENet; default: `ENet(2, 4)` with fresh weights (speed does not depend on
            the weights).
        matmul_size: the reference matmul's size.

    Returns:
        dict: "gflop" (the forward pass), "matmul_gflop_per_s" and "matmul_best_gflop_per_s", and
        per variant in `variants` {"ms", "best_ms", "frames_per_s", "gflop_per_s",
        "matmul_fraction", "best_matmul_fraction", "first_call_s"}. Plain names are of the median
        round, "best" ones of the fastest: on a shared machine the fastest round is the least
        disturbed, and their ratio the steadier. The first call traces the function (and compiles
        it with XLA).
    """
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}: choose from {', '.join(VARIANTS)}")
    if model is None:
        model = ENet(num_classes=2, embedding_dim=4)
        model.build((None, height, width, 3))
    spec = tf.TensorSpec([batch_size, height, width, 3], tf.float32)
    flops = count_flops(lambda images: model(images, training=False), spec)
    matrix_spec = tf.TensorSpec([matmul_size, matmul_size], tf.float32)
    matmul_flops = count_flops(tf.matmul, matrix_spec, matrix_spec)
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.standard_normal((matmul_size, matmul_size)), tf.float32) for _ in range(2))
    matmul = tf.function(tf.matmul)
    calls, first_call_s = _network_variants(model, height, width, batch_size, variants)
    times = interleaved_seconds({"matmul": lambda: matmul(a, b).numpy(), **calls}, rounds)
    median = {name: float(np.median(values)) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    result = {"gflop": flops / 1e9, "matmul_gflop_per_s": matmul_flops / median["matmul"] / 1e9,
              "matmul_best_gflop_per_s": matmul_flops / best["matmul"] / 1e9}
    for name in variants:
        rate, fraction = throughput(flops, median[name], matmul_flops, median["matmul"])
        result[name] = {"ms": 1000 * median[name], "best_ms": 1000 * best[name],
                        "frames_per_s": batch_size / median[name], "gflop_per_s": rate / 1e9,
                        "matmul_fraction": fraction,
                        "best_matmul_fraction": throughput(flops, best[name], matmul_flops, best["matmul"])[1],
                        "first_call_s": first_call_s[name]}
    return result


def plain_forward_ms(model, height, width, rounds=30):
    """Median milliseconds of the `plain` forward pass (`tf.function(model)`, no XLA) of one
    frame: the yardstick of issue 17's folder-inference target."""
    calls, _ = _network_variants(model, height, width, 1, ("plain",))
    return 1000 * median_seconds(calls["plain"], rounds)
