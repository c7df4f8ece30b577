"""β-VAE (Higgins et al. 2017) and its capacity-annealed form (Burgess et al. 2018).

``mode="beta"`` (Higgins et al. 2017, eq. 4; the seed's eq. 19):
    L = E_q(z|x)[log p(x|z)] − β KL(q(z|x) ‖ p(z)).
β > 1 pressures the posterior towards the factorised prior (disentanglement, blurrier
reconstructions); β = 1 is exactly the plain VAE; β < 1 weakens the prior.

``mode="capacity"`` (Burgess et al. 2018, "Understanding disentangling in β-VAE", their modified objective):
    L = E_q(z|x)[log p(x|z)] − γ |KL(q(z|x) ‖ p(z)) − C|,
with the capacity C raised linearly from 0 to C_max nats over ``capacity_steps`` optimizer steps and
then held, so the encoder gains information gradually. γ is large (their dSprites runs: γ = 1000,
C_max = 25 nats over 100 000 steps); the KL in the absolute value is the batch mean. In training C
follows the trainer's ``step``; an evaluation (which the trainer runs at the step count, ``vaelab
evaluate`` at step 0) uses at least the capacity of the last update, step ``trained_steps`` − 1
(``Variant.trained_steps``, restored with the checkpoint).

Only the regulariser differs from the plain VAE, so the likelihood bounds (``log_weights``) are the
plain VAE's: the generative model is the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import VariantConfig, check_choice, check_int, check_range
from ..registry import register
from .vae import GaussianVAE

MODES = ("beta", "capacity")


@dataclass
class BetaVAEConfig(VariantConfig):
    mode: str = "beta"  # beta: β·KL (Higgins et al.) | capacity: γ·|KL − C(step)| (Burgess et al.)
    beta: float = 4.0  # KL weight in mode=beta; 4 is Higgins et al.'s dSprites value; 1 = plain VAE
    gamma: float = 1000.0  # mode=capacity: weight of |KL − C| (Burgess et al.'s dSprites value)
    capacity_max: float = 25.0  # mode=capacity: C_max in nats (Burgess et al.: 25)
    capacity_steps: int = 100000  # mode=capacity: steps over which C rises linearly from 0 to C_max

    def validate(self) -> None:
        super().validate()
        check_choice(self.mode, "mode", MODES)
        check_range(self.beta, "beta", lo=0)
        check_range(self.gamma, "gamma", lo=0)
        check_range(self.capacity_max, "capacity_max", lo=0, unit=" (nats)")
        check_int(self.capacity_steps, "capacity_steps", 1)


@register("beta-vae")
class BetaVAE(GaussianVAE):
    """β-VAE (Higgins et al. 2017): β-weighted KL; mode=capacity: γ|KL − C| with C annealed (Burgess et al. 2018)."""
    data_parallel = True

    loss_labels = {"train": "β-VAE objective: recon + weighted KL (nats/image)"}

    Config = BetaVAEConfig
    retired_progress = {"last_step": ("steps", 1)}  # its own buffer before Variant.progress: the last update's step

    def capacity(self, step: int) -> float:
        """C(step) = C_max · min(1, step / capacity_steps), in nats."""
        c = self.config
        return float(c.capacity_max) * min(1.0, max(int(step), 0) / c.capacity_steps)

    def regularizer(self, q, z, batch, step):
        c = self.config
        kl = q.kl(self.prior).mean()
        if c.mode == "beta":
            return c.beta * kl, {"kl": kl}
        if not self.training:  # at least the capacity training has reached: the last update's
            step = max(int(step), self.trained_steps - 1)
        cap = self.capacity(step)
        return c.gamma * (kl - cap).abs(), {"kl": kl, "capacity": torch.tensor(cap, device=kl.device)}
