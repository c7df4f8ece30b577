"""One trainer for every variant, its config, and safetensors checkpoints."""
from .checkpoint import load_checkpoint, save_checkpoint
from .trainer import TrainConfig, Trainer, train

__all__ = ["TrainConfig", "Trainer", "train", "save_checkpoint", "load_checkpoint"]
