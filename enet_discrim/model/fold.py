"""Batch norm folded into the convolution before it, for inference.

At inference a batch norm is a fixed per-channel affine map, `y = scale * z + shift` with
`scale = gamma / sqrt(moving_variance + epsilon)` and `shift = beta - moving_mean * scale`. When `z`
is a convolution's output the map can go into the convolution itself: its kernel is multiplied by
`scale` along the output channels and its bias becomes `scale * bias + shift`. The folded network
computes the same function without the two passes (multiply, add) that TensorFlow's graph makes
over every batch-normalised tensor (ENet has 124 of them in its bottlenecks). The initial block's
batch norm follows a concatenation of a convolution and a max-pool, so it stays.

TensorFlow 2.21's graph optimiser logs `remapper failed: ... unary_ops_composition` once when it
first runs the folded network without XLA: its remapper trips over one bias-add-PReLU chain and
leaves that graph's convolutions unfused. The outputs are right, and the folded graph is still the
faster one without XLA.

The folded copy is for inference only (`training=True` no longer normalises with batch statistics)
and lives in memory: its config is still that of an unfolded ENet, so save the original model and
fold it after loading (about as long as building the model: a few seconds on 2 CPU cores).
"""

import keras
import numpy as np

from enet_discrim.model.layers import Bottleneck

# (convolution, batch norm) attribute pairs of a bottleneck; the main branch's batch norm follows
# its last convolution (the 1 x 5 one of an asymmetric bottleneck).
_FOLDED_PAIRS = (("project", "project_bn"), ("main_convs", "main_bn"), ("expand", "expand_bn"),
                 ("shortcut_conv", "shortcut_bn"))


def _pairs(bottleneck):
    """`(conv_attribute, index_or_None, norm_attribute)` of every foldable pair of `bottleneck`."""
    for conv_name, norm_name in _FOLDED_PAIRS:
        if hasattr(bottleneck, norm_name):
            index = len(bottleneck.main_convs) - 1 if conv_name == "main_convs" else None
            yield conv_name, index, norm_name


def _get(layer, name, index):
    return getattr(layer, name)[index] if index is not None else getattr(layer, name)


def _affine(norm):
    """`(scale, shift)` float64 [C] of an inference-mode batch norm."""
    gamma = np.asarray(norm.gamma.numpy() if norm.scale else 1.0, np.float64)
    beta = np.asarray(norm.beta.numpy() if norm.center else 0.0, np.float64)
    scale = gamma / np.sqrt(norm.moving_variance.numpy().astype(np.float64) + norm.epsilon)
    return scale, beta - norm.moving_mean.numpy().astype(np.float64) * scale


def _folded_weights(conv, norm):
    """Kernel and bias of `conv` followed by `norm`, as one convolution with a bias."""
    scale, shift = _affine(norm)
    kernel = conv.kernel.numpy().astype(np.float64)
    # Conv2D kernels are [kh, kw, in, out]; Conv2DTranspose kernels [kh, kw, out, in].
    out_axis = 2 if isinstance(conv, keras.layers.Conv2DTranspose) else 3
    shape = [1, 1, 1, 1]
    shape[out_axis] = -1
    bias = conv.bias.numpy().astype(np.float64) if conv.use_bias else 0.0
    dtype = conv.kernel.dtype
    return (kernel * scale.reshape(shape)).astype(dtype), (bias * scale + shift).astype(dtype)


def _bottlenecks(model):
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, Bottleneck)]


def fold_batch_norm(model):
    """A copy of a built ENet whose bottlenecks' batch norms are folded into their convolutions.

    Args:
        model: a built `enet_discrim.model.ENet` (its weights are read, not changed).

    Returns:
        A built ENet of the same class and config computing the same inference outputs (float32
        rounding apart). Every folded batch norm is a `keras.layers.Identity` and the convolution
        before it has a bias. In memory only: see the module docstring.

    Raises:
        ValueError: the model is not built.

    Example:
    >>> folded = fold_batch_norm(model)
    >>> folded(images, training=False)  # model(images, training=False), with 124 fewer passes
    """
    if not model.built:
        raise ValueError("fold_batch_norm needs a built model (call model.build(input_shape) first)")
    folded = model.__class__.from_config(model.get_config())
    # Layers are swapped before the copy is built (Keras locks a built layer's sublayers); every
    # replacement keeps its name, so its variables get the original's paths.
    for block in _bottlenecks(folded):
        for conv_name, index, norm_name in _pairs(block):
            conv = _get(block, conv_name, index)
            conv.use_bias = True
            old_norm = getattr(block, norm_name)
            setattr(block, norm_name, keras.layers.Identity(name=old_norm.name))
            block._layers.remove(old_norm)  # untracked: no unbuilt orphan is left in the model
    folded.build((None, None, None, 3))
    pairs = list(zip(_bottlenecks(model), _bottlenecks(folded), strict=True))
    new_biases = {_get(copy, conv_name, index).bias.path
                  for _, copy in pairs for conv_name, index, _ in _pairs(copy)}
    source = {variable.path: variable for variable in model.weights}
    for variable in folded.weights:
        if variable.path in source:
            variable.assign(source[variable.path])
        elif variable.path not in new_biases:
            raise ValueError(f"fold_batch_norm: the model has no weight {variable.path!r} (not an ENet "
                             "built by enet_discrim.model?)")
    for original, copy in pairs:
        for conv_name, index, norm_name in _pairs(original):
            kernel, bias = _folded_weights(_get(original, conv_name, index), getattr(original, norm_name))
            target = _get(copy, conv_name, index)
            target.kernel.assign(kernel)
            target.bias.assign(bias)
    return folded
