"""The training objective and the distributed train / evaluation steps.

The steps take their dependencies (model, optimizer, strategy, loss settings) as arguments and
return dicts of losses, as in tensorflow/models' official vision tasks.
"""

import dataclasses

import keras
import tensorflow as tf

from enet_discrim.losses import class_balanced_cross_entropy, discriminative, discriminative_loss

LOSS_NAMES = ("total", "semantic", "discriminative", "variance", "distance", "regularization")


@dataclasses.dataclass(frozen=True)
class LossSettings:
    """Margins and weights of the objective.

    `per_class`: the discriminative loss compares only instances of the same semantic class
    (Cityscapes); off for TuSimple, where every instance is a lane. `class_weights` are the fixed
    semantic class weights (`class_weights_from_counts`), None = from each batch.
    """

    delta_v: float = discriminative.DELTA_V
    delta_d: float = discriminative.DELTA_D
    var_weight: float = discriminative.VAR_WEIGHT
    dist_weight: float = discriminative.DIST_WEIGHT
    reg_weight: float = discriminative.REG_WEIGHT
    per_class: bool = False
    class_weights: tuple | None = None
    ignore_label: int = 255


def compute_losses(outputs, labels, settings):
    """The objective: class-balanced cross-entropy + the discriminative loss.

    Args:
        outputs: the ENet dict, "semantic_logits" [B,H,W,C] and "embeddings" [B,H,W,D].
        labels: dict, "semantic" int [B,H,W] and "instance" int [B,H,W].
        settings: `LossSettings`.

    Returns:
        dict of float32 scalars keyed by `LOSS_NAMES`; "total" is the objective.
    """
    semantic = class_balanced_cross_entropy(
        outputs["semantic_logits"],
        labels["semantic"],
        class_weights=settings.class_weights,
        ignore_label=settings.ignore_label,
    )
    discriminative, variance, distance, regularization = discriminative_loss(
        outputs["embeddings"],
        labels["instance"],
        semantic_labels=labels["semantic"] if settings.per_class else None,
        delta_v=settings.delta_v,
        delta_d=settings.delta_d,
        var_weight=settings.var_weight,
        dist_weight=settings.dist_weight,
        reg_weight=settings.reg_weight,
    )
    return {
        "total": semantic + discriminative,
        "semantic": semantic,
        "discriminative": discriminative,
        "variance": variance,
        "distance": distance,
        "regularization": regularization,
    }


def make_train_step(model, optimizer, strategy, settings):
    """Builds `train_step(iterator) -> dict of losses`, a `tf.function` over the strategy.

    Each call runs one optimizer step on the next batch of `iterator` and returns its losses,
    averaged over replicas. Every replica's loss is divided by the number
    of replicas, so that the summed gradients are those of the global batch; a
    `keras.optimizers.LossScaleOptimizer` (mixed float16) scales the loss and unscales the gradients.
    """

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            losses = compute_losses(outputs, labels, settings)
            scaled = losses["total"] / strategy.num_replicas_in_sync
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                scaled = optimizer.scale_loss(scaled)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return losses

    @tf.function
    def train_step(iterator):
        return _mean_over_replicas(strategy, strategy.run(replica_step, args=next(iterator)))

    return train_step


def make_eval_step(model, strategy, settings):
    """Builds `eval_step(batch) -> dict of losses` for one distributed batch, the model in
    inference mode, losses averaged over replicas."""

    def replica_step(images, labels):
        outputs = model(images, training=False)
        return compute_losses(outputs, labels, settings)

    @tf.function
    def eval_step(batch):
        return _mean_over_replicas(strategy, strategy.run(replica_step, args=batch))

    return eval_step


def _mean_over_replicas(strategy, per_replica):
    return {
        name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
        for name, value in per_replica.items()
    }
