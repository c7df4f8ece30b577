"""The one trainer for every variant, its config, and safetensors checkpoints. Training a run
directory (config.json, logging, resume) is :func:`vaelab.rundir.train`."""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "save_checkpoint", "load_checkpoint"]
