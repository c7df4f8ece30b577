"""Plain VAE (Kingma & Welling 2014) and the Gaussian-latent base that its relatives extend.

ELBO(x) = E_q(z|x)[log p(x|z)] − KL(q(z|x) ‖ p(z)), q = N(μ, diag σ²), p = N(0, I), Bernoulli
decoder on logits, analytic KL (docs/equations.md, "Plain VAE"; Kingma & Welling 2014 eq. 10 and App. B).
Subclasses change only ``regularizer`` (β-VAE, InfoVAE, WAE, ...) or the prior.
"""
from __future__ import annotations

import torch

from ..distributions import DiagonalGaussian, StandardNormal
from ..losses.gradients import score_correction
from ..losses.likelihood import make_likelihood
from ..nn import GaussianHead, make_decoder, make_encoder
from ..registry import register
from .base import Batch, Variant


class GaussianVAE(Variant):
    """Encoder → (μ, log σ²) → z → decoder, with the standard normal prior by default."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        cond = c.n_classes if self.conditional else 0
        self.encoder = make_encoder(c.data_shape, c.backbone, cond_dim=cond)
        self.head = GaussianHead(self.encoder.out_features, c.latent_dim)  # → (μ, log σ²)
        self.decoder = make_decoder(c.data_shape, c.latent_dim, c.backbone, cond_dim=cond)
        self.prior = StandardNormal(c.latent_dim)
        self.log_lik = make_likelihood(c.likelihood, c.data_shape)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        return self.head(self.encoder(x, self.condition(y)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z, self.condition(y))

    def regularizer(self, q: DiagonalGaussian, z: torch.Tensor, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The term added to the reconstruction loss; the plain VAE's is KL(q(z|x) ‖ N(0, I))."""
        kl = q.kl(self.prior).mean()
        return kl, {"kl": kl}

    def draw(self, q) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z ~ q(z|x) (B, D) for the training loss, and the log density (B,) whose score corrects the
        pathwise gradient (None where that gradient is already unbiased, as for the Gaussian)."""
        return q.rsample(share=self.share), None

    def loss(self, batch: Batch, step: int):
        x, y = batch["x"], batch.get("y")
        q = self.encode(x, y)
        z, log_p = self.draw(q)
        log_px = self.log_lik(self.decode(z, y), x)  # (B,)
        recon = -log_px.mean()
        reg, terms = self.regularizer(q, z, batch, step)
        total = recon + reg
        if log_p is not None:  # value 0; adds the score-function part of ∇ E_q log p(x|z)
            total = total - score_correction(log_px, log_p)
        return total, {"loss": total.detach(), "recon": recon.detach(), **{k: v.detach() for k, v in terms.items()}}

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.prior.sample(n, generator=generator, device=self.device)
        return torch.sigmoid(self.decode(z, y).float())

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        q = self.encode(x, y)
        z = q.rsample((k,))  # (k, B, D)
        yk = None if y is None else y.repeat(k, *([1] * (y.dim() - 1)))  # (k·B, ...)
        logits = self.decode(z.reshape(-1, z.shape[-1]), yk).view(k, *x.shape)
        return self.log_lik(logits, x) + self.prior.log_prob(z) - q.log_prob(z)


@register("vae")
class VAE(GaussianVAE):
    """The plain VAE of Kingma & Welling (2014)."""
    data_parallel = True
