"""Training: settings, the objective and distributed steps, the loop with resume and TensorBoard."""

from enet_discrim.training.config import TrainConfig
from enet_discrim.training.step import LossSettings, compute_losses, make_eval_step, make_train_step
from enet_discrim.training.trainer import TrainingDivergedError, prepare_records, save_model, train

__all__ = [
    "LossSettings",
    "TrainConfig",
    "TrainingDivergedError",
    "compute_losses",
    "make_eval_step",
    "make_train_step",
    "prepare_records",
    "save_model",
    "train",
]
