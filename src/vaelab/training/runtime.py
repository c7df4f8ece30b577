"""Where and how this process trains, resolved once: the device (this process's GPU under torchrun, see
:func:`vaelab.parallel.local_device`), the precision, the number of processes sharing each batch and
whether this process writes the run. :func:`vaelab.rundir.train` builds it after joining the process
group and hands it to the :class:`vaelab.training.trainer.Trainer`; a Trainer built without one (the
Python API) resolves it itself. The share of each batch follows from ``world`` per update
(:func:`vaelab.parallel.share_of`) and reaches the model as ``Variant.share``."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import parallel
from .config import TrainConfig, autocast, resolve_device


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # TrainConfig.PRECISIONS
    world: int  # processes sharing each batch (1: this one alone)
    main: bool  # this process writes files and reports (rank 0)

    @classmethod
    def resolve(cls, cfg: TrainConfig, device: torch.device | None = None) -> Runtime:
        """From the run's config (``device``: already resolved by the caller) and the process group as it stands."""
        dev = parallel.local_device(device if device is not None else resolve_device(cfg.device))
        return cls(device=dev, precision=cfg.precision, world=parallel.world_size(), main=parallel.is_main())

    def autocast(self):
        """The context the forward and backward passes run in (bf16 autocast, or nothing)."""
        return autocast(self.precision, self.device.type)
