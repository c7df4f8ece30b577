"""VQ-VAE (van den Oord et al. 2017) with a PixelCNN prior over its code grid, trained in two phases.

Phase "train" (``--epochs``): encoder → z_e, a grid of D-vectors (D = ``latent_dim``; 7 × 7 on MNIST);
nearest-code quantisation with straight-through gradients (:mod:`vaelab.nn.quantizer`); decoder on z_q.
Loss (eq. 3; docs/equations.md, "VQ-VAE"):

    L = −log p(x|z_q) + P · ( ‖sg[z_e] − z_q‖²_mean + β ‖z_e − sg[z_q]‖²_mean ),  β = 0.25,

−log p(x|z_q) in nats summed over the P = C·H·W pixels (as for every vaelab variant), the two VQ terms
as means over the code-grid elements (the reduction of the authors' Sonnet code and of pythae's current
code). The factor P keeps the reference balance: there the reconstruction is also a per-pixel mean,
so P · (per-pixel recon + VQ means) is the reference objective in our per-image units, independent of
batch and grid size. (A plain sum of a per-image likelihood and element-mean VQ terms — pythae's mix —
would weaken the commitment by a factor P.) With ``ema=true`` (default; the paper's Appendix A.1,
more stable) the codebook follows an EMA of its assigned encoder outputs and the codebook term drops.
Codes unused for ``restart_after`` steps are restarted at random encoder outputs of the batch; codes
start "dead", so the first step also initialises the unused ones from data.

Phase "prior" (``prior_epochs``): the VQ-VAE is frozen; a gated PixelCNN (:mod:`vaelab.nn.pixelcnn`)
learns p(k) over the code grids of the training images by maximum likelihood. ``sample`` draws codes
from it in raster order and decodes them.

Likelihood bound: q(k|x) is a point mass, so log p(x) ≥ log p(x|z_q(x)) + log p_prior(k(x)) (the KL
is −log p_prior(k)), and every importance weight is equal: the IWAE bound equals this ELBO for all K.
It is a valid bound for the model with the current prior (loose before the prior phase has run).

``loss`` serves the phase the trainer has recorded (``Variant.phase``, restored with the checkpoint):
the PixelCNN's in the prior phase, the VQ-VAE's otherwise; ``sample`` needs the prior phase to have begun.

Reported terms: recon (nats), recon_acc (share of pixels whose 0.5-thresholded reconstruction matches
the 0.5-thresholded input), codebook, commit, perplexity and usage (share of codes used) of the
batch's codes; in the prior phase prior_nll (nats per image).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import VariantConfig, check, check_int, check_range
from ..losses.likelihood import make_likelihood
from ..nn.backbones import _CONV, ConvTrunk, DeconvHead
from ..nn.pixelcnn import PixelCNN
from ..nn.quantizer import CodeGrid, VectorQuantizer
from ..optim import update
from ..registry import register
from .base import Batch, NotAvailable, Phase, Variant


@dataclass
class Config(VariantConfig):
    num_codes: int = 64  # K; MNIST's 7×7 grid needs few codes, and a small K keeps the prior easy
    beta: float = 0.25  # commitment weight (the paper's value; results are robust over 0.1–2)
    ema: bool = True  # EMA codebook updates (Appendix A.1) instead of the codebook loss
    ema_decay: float = 0.99  # γ
    ema_eps: float = 1e-5  # Laplace smoothing of the EMA counts
    restart_after: int = 25  # restart a code unused for this many steps (0 = never); 25 batches of 100 on a 7×7 grid ≈ 120k encoder outputs
    prior_epochs: int = 10  # epochs of the PixelCNN prior phase
    prior_channels: int = 32  # 64 costs several times the time on a CPU for little gain on MNIST (docs/results/variant-notes.md)
    prior_layers: int = 6  # gated layers (first 5×5 type A, then 3×3 type B): the receptive field covers a 7×7 grid

    def validate(self) -> None:
        super().validate()
        check(self.backbone in _CONV, "backbone", f"vq-vae needs a convolutional backbone ({', '.join(_CONV)}), got {self.backbone!r}")
        check(len(self.data_shape) == 3 and self.data_shape[1] % 4 == 0 and self.data_shape[2] % 4 == 0, "data_shape",
              f"vq-vae needs (C, H, W) images with H, W divisible by 4, got {self.data_shape!r}")
        check_int(self.num_codes, "num_codes", 2)
        check_range(self.beta, "beta", lo=0)
        check(isinstance(self.ema, bool), "ema", f"must be true or false, got {self.ema!r}")
        check_range(self.ema_decay, "ema_decay", lo=0, hi=1, lo_open=True, hi_open=True)
        check_range(self.ema_eps, "ema_eps", lo=0, lo_open=True)
        check_int(self.restart_after, "restart_after", 0)
        check_int(self.prior_epochs, "prior_epochs", 0)
        check_int(self.prior_channels, "prior_channels", 1)
        check_int(self.prior_layers, "prior_layers", 1)


@register("vq-vae")
class VQVAE(Variant):
    """VQ-VAE with an EMA (or loss-trained) codebook and a gated PixelCNN prior."""
    data_parallel = True

    loss_labels = {"train": "VQ-VAE loss: recon (nats/image) + codebook + commitment", "prior": "PixelCNN −log p(codes) (nats/image)"}

    Config = Config
    latent_kind = "discrete"
    retired_progress = {"phase_index": ("phase", 0)}  # its own phase buffer (0 train, 1 prior) before Variant.progress

    def __init__(self, config: Config):
        super().__init__(config)
        c = config
        ch, hh, ww = c.data_shape
        c1, c2, _ = _CONV[c.backbone]
        self.grid = (hh // 4, ww // 4)
        self.encoder = nn.Sequential(ConvTrunk(ch, c1, c2), nn.Conv2d(c2, c.latent_dim, 1))  # → z_e (B, D, H/4, W/4)
        self.quantizer = VectorQuantizer(c.num_codes, c.latent_dim, c.ema, c.ema_decay, c.ema_eps, c.restart_after)
        self.decoder = nn.Sequential(nn.Conv2d(c.latent_dim, c2, 3, padding=1), nn.ReLU(), DeconvHead(c2, c1, out_ch=ch))
        self.prior = PixelCNN(c.num_codes, c.prior_channels, c.prior_layers)
        self.log_lik = make_likelihood(c.likelihood, c.data_shape)

    # ----- the model -----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> CodeGrid:
        q = self.quantizer(self.encoder(x))
        return CodeGrid(q.indices, q.codes.detach())

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from code vectors, (B, D, h, w) or flattened (B, D·h·w)."""
        if z.dim() == 2:
            z = z.view(z.shape[0], self.config.latent_dim, *self.grid)
        return self.decoder(z)

    def _vq_loss(self, batch: Batch, update: bool):
        x = batch["x"]
        q = self.quantizer(self.encoder(x), update=update, share=self.share)
        logits = self.decode(q.z_q)
        recon = -self.log_lik(logits, x).mean()
        pixels = math.prod(x.shape[1:])
        vq = pixels * (q.codebook_loss + self.config.beta * q.commitment_loss)
        total = recon + vq
        with torch.no_grad():
            acc = ((logits.float() > 0) == (x > 0.5)).float().mean()
        terms = {"loss": total, "recon": recon, "recon_acc": acc, "codebook": q.codebook_loss,
                 "commit": q.commitment_loss, "perplexity": q.perplexity, "usage": q.usage}
        return total, {k: v.detach() for k, v in terms.items()}

    def _prior_loss(self, batch: Batch):
        with torch.no_grad():
            idx = self.quantizer(self.encoder(batch["x"])).indices  # frozen VQ-VAE, no EMA/restart
        nll = -self.prior.log_prob(idx).mean()
        return nll, {"loss": nll.detach(), "prior_nll": nll.detach()}

    def loss(self, batch: Batch, step: int):
        """The current phase's objective (``Variant.phase``; the VQ-VAE's before any phase began)."""
        if self.phase == "prior":
            return self._prior_loss(batch)
        return self._vq_loss(batch, update=self.training)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes from the PixelCNN prior (raster order), decoded: probabilities (n, C, H, W). Not
        available before the prior phase has begun: an untrained PixelCNN's codes are noise."""
        if self.phase != "prior":
            raise NotAvailable(f"{self.name}: the PixelCNN prior has not been trained yet (it is the run's second phase; "
                               "prior_epochs=0 skips it)")
        idx = self.prior.sample(n, self.grid, generator=generator, device=self.device)
        return torch.sigmoid(self.decode(self.quantizer.lookup(idx)).float())

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """(k, B) copies of log p(x|z_q(x)) + log p_prior(k(x)): with a point-mass posterior every
        importance weight is this ELBO (see the module docstring)."""
        q = self.quantizer(self.encoder(x))
        lw = self.log_lik(self.decode(q.codes), x) + self.prior.log_prob(q.indices)
        return lw.unsqueeze(0).expand(k, -1)

    # ----- the training plan -------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("train"), Phase("prior", epochs=self.config.prior_epochs)]

    def configure_optimizers(self, phase: str, make):
        if phase == "prior":
            return {"prior": make(self.prior.parameters())}
        return {"model": make(p for n, p in self.named_parameters() if not n.startswith("prior."))}

    def train_step(self, batch: Batch, step: int, optimizers, phase: str):
        if phase == "prior":
            total, terms = self._prior_loss(batch)
            opt = optimizers["prior"]
        else:
            total, terms = self._vq_loss(batch, update=True)
            opt = optimizers["model"]
        update(total, opt, share=self.share)
        return terms
