"""The network as a compiled function for inference.

On a CPU, TensorFlow's graph executor runs ENet op by op: each batch norm, PReLU and addition is a
separate pass over a tensor in memory, and at batch 1 those passes cost about as much as the
convolutions. XLA (`jit_compile=True`) fuses them into loops around the convolutions. On the 2-core
development machine it halves the forward pass at 128 x 256 and at 256 x 512, where it takes it
from about 0.23 to about 0.45 of the throughput of a float32 matmul (`python -m
enet_discrim.benchmark`). Folding the batch norms into the convolutions (`enet_discrim.model.fold`)
gains 15-30 % without XLA and little with it, XLA having fused them already (5 % faster on a
quiet machine, 5-10 % slower in runs beside heavy load): off by default. Channels-last, ENet's layout, is also what TensorFlow's oneDNN
convolutions run fastest on this CPU (NCHW was 5-40 % slower per convolution), and turning
oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`) changed nothing measurable.

XLA compiles on the first call for each input shape, in seconds (3-5 s for ENet on 2 cores, up to
12 s beside other load, for any image size), so it pays when more than a few hundred frames are
run.
"""

import tensorflow as tf

from enet_discrim.model.fold import fold_batch_norm


def inference_function(model, height=None, width=None, jit_compile=True, fold=False):
    """`images -> model(images, training=False)` as a `tf.function`, compiled with XLA by default.

    Args:
        model: a built `enet_discrim.model.ENet`.
        height, width: int or None, default None. The input size the function accepts; None
            accepts any size (each new shape is traced, and compiled with XLA, once).
        jit_compile: bool, default True. Compile with XLA.
        fold: bool, default False. Run a copy of the model with its batch norms folded into the
            convolutions (`fold_batch_norm`); the model itself is left as it is.

    Returns:
        A `tf.function` taking float32 [B, height, width, 3] images (any batch size) and returning
        the model's output dict.

    Example:
    >>> network = inference_function(model, 256, 512)
    >>> network(tf.zeros([1, 256, 512, 3]))["embeddings"].shape
    TensorShape([1, 256, 512, 4])
    """
    network = fold_batch_norm(model) if fold else model
    return tf.function(
        lambda images: network(images, training=False),
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)],
        jit_compile=jit_compile,
    )


def frame_function(model, height, width, jit_compile=True):
    """One frame through the network, for serving: float32 [1, height, width, 3] ->
    (class probabilities [1, height, width, C], embeddings [1, height, width, D]), float32.

    The softmax runs inside the compiled function, and the function is returned concrete (traced
    once, now): a `tf.function`'s call dispatch (matching the arguments against its signature)
    and eager ops after it cost milliseconds a frame, a large share of a small model's compiled
    forward pass (docs/EXPERIMENTS.md, issue 17).

    Args:
        model: a built `enet_discrim.model.ENet`.
        height, width: the input size.
        jit_compile: bool, default True. Compile with XLA (on the first call).

    Returns:
        A `ConcreteFunction` taking a float32 [1, height, width, 3] tensor or array.
    """

    def frame(images):
        outputs = model(images, training=False)
        return (tf.nn.softmax(tf.cast(outputs["semantic_logits"], tf.float32)),
                tf.cast(outputs["embeddings"], tf.float32))

    return tf.function(frame, jit_compile=jit_compile).get_concrete_function(
        tf.TensorSpec([1, height, width, 3], tf.float32))
