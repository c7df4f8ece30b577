"""Optimizer helpers shared by the trainer and the variants.

* :func:`make_optimizer_factory` — the run's optimizer type (Adam or RMSprop with the Keras
  defaults the seed used) as ``make(params, lr=None, **kw)``, handed to ``configure_optimizers``;
* :func:`update` — "this objective updates these optimizers": the one place a gradient is taken and
  applied, used by ``Variant.train_step`` and by variants with several players (VAE-GAN, WAE-GAN) or
  phases. Data-parallel training averages gradients across processes here (the ``share`` the model
  passes), between the gradient and the step;
* :func:`apply_lr_scale` — sets every param group's lr to its initial lr times a factor, for the
  learning-rate schedules variants declare (``Variant.lr_schedule``) and the run's own
  (``TrainConfig.lr_schedule``, :func:`run_lr_factor`), which multiply;
* :func:`iwae_lr_factor` — the IWAE paper's staged decay (Burda et al. 2016, §5): 3^i epochs at
  10^(−i/7) for i = 0..7, 3,280 epochs in all, then the last rate.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch

from .share import WHOLE, BatchShare

OPTIMIZERS = ("adam", "rmsprop")
RUN_LR_SCHEDULES = ("constant", "iwae")  # TrainConfig.lr_schedule
IWAE_STAGES = 8  # stage i: 3^i epochs at lr × 10^(−i/7)
IWAE_EPOCHS = (3 ** IWAE_STAGES - 1) // 2  # 3,280: the whole schedule
MakeOptimizer = Callable[..., torch.optim.Optimizer]  # make(params, lr=None, adam_betas=None, **kw) → the run's optimizer type


def make_optimizer_factory(cfg) -> MakeOptimizer:
    """``make(params, lr=None, **kw)`` for a run config ``cfg`` (its ``optimizer``, ``lr``, ``fused``,
    ``adam_eps``): Adam (the fused kernel when ``fused``; ε = ``adam_eps``, torch's 1e-8 by default)
    or RMSprop with alpha 0.9, eps 1e-7; ``lr`` defaults to the run's."""
    def make(params, lr: float | None = None, adam_betas: tuple[float, float] | None = None, **kw) -> torch.optim.Optimizer:
        lr = cfg.lr if lr is None else lr
        if cfg.optimizer == "adam":
            if adam_betas is not None:  # e.g. (0.5, 0.999) for adversarial players; ignored by RMSprop
                kw["betas"] = adam_betas
            kw.setdefault("eps", cfg.adam_eps)
            if cfg.fused:
                kw.setdefault("fused", True)
            return torch.optim.Adam(params, lr=lr, **kw)
        kw.setdefault("alpha", 0.9)
        kw.setdefault("eps", 1e-7)
        return torch.optim.RMSprop(params, lr=lr, **kw)

    return make


def update(objective: torch.Tensor, optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
           params: Sequence[torch.nn.Parameter] | None = None, retain_graph: bool = False, step: bool = True,
           share: BatchShare = WHOLE) -> None:
    """Minimise ``objective`` by one step of ``optimizers``.

    ``params=None``: back-propagate into every parameter (``.grad`` is cleared first on the optimizers'
    parameters) and step each optimizer. With ``params``: the gradient of ``objective`` with respect
    to those parameters only (other parameters' ``.grad`` stay untouched, so one forward pass can
    feed several players their own objectives), set as their ``.grad`` and stepped; ``step=False``
    takes the gradient (keeping the graph's use in order) but skips the update. ``share``: the part of the
    batch the objective was computed on (``Variant.share``); data-parallel training averages the gradients
    over the processes (:meth:`vaelab.parallel.Share.average_gradients`) before the step.
    """
    opts = [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else list(optimizers)
    if params is None:
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        objective.backward(retain_graph=retain_graph)
    else:
        params = list(params)
        grads = torch.autograd.grad(objective, params, retain_graph=retain_graph)
        if not step:
            return
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
    if step:
        share.average_gradients(p for opt in opts for group in opt.param_groups for p in group["params"])  # several processes
        for opt in opts:
            opt.step()


def apply_lr_scale(optimizers: Iterable[torch.optim.Optimizer], factor: float) -> None:
    """lr of every param group = its initial lr (``base_lr``, recorded on first use and kept in the
    optimizer's checkpointed state) × ``factor``."""
    for opt in optimizers:
        for group in opt.param_groups:
            group.setdefault("base_lr", group["lr"])
            group["lr"] = group["base_lr"] * factor


def iwae_lr_factor(epoch: int) -> float:
    """The IWAE paper's learning-rate multiplier at ``epoch`` (0-based): 10^(−i/7) in stage i, which
    lasts 3^i epochs (stage 0: epoch 0; stage 1: epochs 1–3; ...; stage 7: epochs 1093–3279); epochs
    past the schedule's 3,280 keep the last factor, 10^(−1)."""
    stage, end = 0, 1
    while epoch >= end and stage < IWAE_STAGES - 1:
        stage += 1
        end += 3 ** stage
    return 10.0 ** (-stage / 7)


def run_lr_factor(schedule: str, epoch: int) -> float:
    """The multiplier of a run-level schedule (``TrainConfig.lr_schedule``) at ``epoch`` of a phase."""
    return iwae_lr_factor(epoch) if schedule == "iwae" else 1.0


def linear_warmup(step: int, steps: int) -> float:
    """A weight that rises linearly to 1 over the first ``steps`` training updates: (step + 1) / steps
    at update ``step`` (0-based), then 1; always 1 when ``steps`` is 0 (e.g. KL annealing, Bowman et
    al. 2016)."""
    return 1.0 if steps <= 0 else min(1.0, (step + 1) / steps)
