"""CVAE for structured output prediction: MNIST quadrant completion (Sohn, Lee & Yan 2015, §5.1).

x = the given quadrants (1, 2 or 3; ``vaelab.tasks.quadrants``), y = the missing ones. Three networks
as in the paper and Pyro's reproduction (pyro examples/cvae):

* recognition q(z|x, y) — sees the whole image (x and y together);
* prior       p(z|x)    — sees x, its missing pixels filled with the baseline's guess ŷ (the paper's
                          "recurrent connection": the CVAE is built on top of a deterministic NN);
* generation  p(y|x, z) — Bernoulli logits over the image, scored on the missing pixels only
                          (``generation_sees_x=False`` gives Pyro's p(y|z)).

Objective (Sohn et al. eq. 4; docs/equations.md, "CVAE"), per example:
    ELBO = E_q(z|x,y) log p(y|x,z) − KL(q(z|x,y) ‖ p(z|x))     (analytic KL between diagonal Gaussians)
Conditional log-likelihood estimate (Sohn et al. §4.1, eq. 7-style importance sampling):
    log p(y|x) ≈ log (1/S) Σ_s p(y|x,z_s) p(z_s|x) / q(z_s|x,y),   z_s ~ q(z|x,y),
a lower bound that rises with S (S = 1 is the ELBO, with the KL estimated by sampling).

Training plan: phase "baseline" fits the deterministic NN ŷ = NN(x) by masked cross-entropy (Pyro's
BaselineNet; its NLL is the "NN (baseline)" row of their table), then phase "train" fits the CVAE with
the NN frozen. ``baseline_epochs = 0`` drops the NN (the prior net then sees x with -1 in the gaps).
``loss`` measures the phase the trainer has recorded (``Variant.phase``, restored with the checkpoint):
the NN's in the baseline phase, the CVAE's otherwise (also before any phase began).

Defaults follow Pyro's tutorial: a two-layer MLP (512 units here, 500 there) and a 200-d latent;
grey-level images with the Bernoulli cross-entropy (train with ``--binarize none``, as Pyro does).
Pyro reports −ELBO estimated with 10 particles ("CVAE (Monte Carlo)": 71.8 / 51.0 / 24.2 nats for
1 / 2 / 3 quadrants); ``conditional_nll(x, S=1)`` is that estimate, larger S gives Sohn et al.'s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import VariantConfig, check, check_choice, check_int
from ..distributions import DiagonalGaussian
from ..nn import GaussianHead, make_decoder, make_encoder
from ..registry import register
from ..tasks.quadrants import GIVEN_CHOICES, masked_bernoulli_log_prob, split
from ..nn.utils import batched, evaluating
from .base import Batch, NotAvailable, Phase, Variant


@dataclass
class Config(VariantConfig):
    latent_dim: int = 200  # Pyro's tutorial
    backbone: str = "mlp"  # 784-512-512, close to Pyro's 784-500-500 MLPs
    given_quadrants: int = 1  # 1: bottom-left; 2: left half; 3: all but bottom-right
    baseline_epochs: int = 10  # epochs of the deterministic NN before the CVAE; 0 = no NN
    generation_sees_x: bool = True  # p(y|x,z) as Sohn et al.; False = Pyro's p(y|z)

    def validate(self) -> None:
        super().validate()
        check_choice(self.given_quadrants, "given_quadrants", GIVEN_CHOICES)
        check(len(self.data_shape) == 3 and self.data_shape[1] >= 2 and self.data_shape[2] >= 2, "data_shape",
              f"quadrant completion needs images (C, H, W), got {self.data_shape!r}")
        check_int(self.baseline_epochs, "baseline_epochs", 0)
        check(self.likelihood == "bernoulli", "likelihood", "quadrant completion is scored with a Bernoulli likelihood; "
              f"{self.likelihood!r} is not implemented for it")
        check(isinstance(self.generation_sees_x, bool), "generation_sees_x", "must be true or false")


@register("cvae-quadrant")
class CVAEQuadrant(Variant):
    """Recognition q(z|x,y), prior p(z|x), generation p(y|x,z), on top of a baseline NN ŷ(x)."""
    data_parallel = True

    likelihoods = ("bernoulli",)
    loss_labels = {"baseline": "baseline NN −log p(missing | given) (nats/image)", "train": "−ELBO of log p(missing | given) (nats/image)"}

    Config = Config

    def __init__(self, config: Config):
        super().__init__(config)
        c = config
        shape, n_pix = tuple(c.data_shape), math.prod(c.data_shape)
        self.has_baseline = c.baseline_epochs > 0
        if self.has_baseline:
            self.baseline = make_encoder(shape, c.backbone)
            self.baseline_out = nn.Linear(self.baseline.out_features, n_pix)
        self.recognition = make_encoder(shape, c.backbone)
        self.recognition_head = GaussianHead(self.recognition.out_features, c.latent_dim)
        self.prior_net = make_encoder(shape, c.backbone)
        self.prior_head = GaussianHead(self.prior_net.out_features, c.latent_dim)
        self.generation = make_decoder(shape, c.latent_dim, c.backbone, cond_dim=n_pix if c.generation_sees_x else 0)

    # ----- the networks ----------------------------------------------------------------------
    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images → (x: given quadrants with -1 in the gaps, missing-pixel mask)."""
        return split(x, self.config.given_quadrants)

    def baseline_logits(self, x_in: torch.Tensor) -> torch.Tensor:
        """The deterministic NN's guess of the whole image, as logits (B, C, H, W)."""
        return self.baseline_out(self.baseline(x_in)).view(-1, *self.config.data_shape)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        """Recognition q(z|x, y): ``x`` is the whole image (given and missing quadrants together)."""
        return self.recognition_head(self.recognition(x))

    def prior(self, x_in: torch.Tensor, missing: torch.Tensor) -> DiagonalGaussian:
        """Prior p(z|x) from the given quadrants, gaps filled with the (frozen) baseline's guess."""
        h = x_in
        if self.has_baseline:
            with torch.no_grad():
                guess = torch.sigmoid(self.baseline_logits(x_in).float())
            h = torch.where(missing.bool(), guess.to(x_in.dtype), x_in)
        return self.prior_head(self.prior_net(h))

    def generate(self, z: torch.Tensor, x_in: torch.Tensor) -> torch.Tensor:
        """p(y|x, z) logits (N, C, H, W) for z (N, D); x_in (B, ...) is repeated when N = S·B."""
        cond = None
        if self.config.generation_sees_x:
            cond = x_in.flatten(1)
            if z.shape[0] != cond.shape[0]:
                cond = cond.repeat(z.shape[0] // cond.shape[0], 1)
        return self.generation(z, cond)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotAvailable(f"{self.name}: the generator needs the given quadrants; use complete(x)")

    # ----- objectives ------------------------------------------------------------------------
    def baseline_nll(self, x_in: torch.Tensor, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        """The NN's −log p(y|x) on the missing pixels, per example (B,)."""
        return -masked_bernoulli_log_prob(self.baseline_logits(x_in), x, missing)

    def loss(self, batch: Batch, step: int):
        """−ELBO of the missing quadrants (nats); ``nn_nll`` reports the baseline NN beside it. In the
        baseline phase: the baseline NN's −log p(missing | given)."""
        x = batch["x"]
        x_in, missing = self.split(x)
        if self.phase == "baseline":
            nll = self.baseline_nll(x_in, x, missing).mean()
            return nll, {"loss": nll.detach(), "nn_nll": nll.detach()}
        q = self.encode(x)
        p = self.prior(x_in, missing)
        z = q.rsample(share=self.share)  # (B, D)
        recon = -masked_bernoulli_log_prob(self.generate(z, x_in), x, missing).mean()
        kl = q.kl(p).mean()
        total = recon + kl
        terms = {"loss": total.detach(), "recon": recon.detach(), "kl": kl.detach()}
        if self.has_baseline:
            with torch.no_grad():
                terms["nn_nll"] = self.baseline_nll(x_in, x, missing).mean()
        return total, terms

    def conditional_log_weights(self, x: torch.Tensor, S: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(S, B) log p(y|x,z_s) + log p(z_s|x) − log q(z_s|x,y), z_s ~ q(z|x,y); x the whole images."""
        x_in, missing = self.split(x)
        q = self.encode(x)
        p = self.prior(x_in, missing)
        z = q.rsample((S,), generator=generator)  # (S, B, D)
        logits = self.generate(z.reshape(-1, z.shape[-1]), x_in).view(S, *x.shape)
        return masked_bernoulli_log_prob(logits, x, missing) + p.log_prob(z) - q.log_prob(z)

    @torch.no_grad()
    def conditional_nll(self, x: torch.Tensor, S: int = 100, batch_size: int = 100,
                        generator: torch.Generator | None = None) -> float:
        """Mean over images of −log (1/S) Σ_s p(y|x,z_s) p(z_s|x)/q(z_s|x,y), in nats (an upper bound on
        the negative conditional log-likelihood; S = 1 is −ELBO, Pyro's figure)."""
        def batch_sum(i: int, j: int) -> torch.Tensor:
            lw = self.conditional_log_weights(x[i:j], S, generator).double()
            return (-(torch.logsumexp(lw, 0) - math.log(S))).sum().reshape(1)

        with evaluating(self):
            return _mean_of_sums(batched(batch_sum, x.shape[0], batch_size), x.shape[0])

    @torch.no_grad()
    def baseline_conditional_nll(self, x: torch.Tensor, batch_size: int = 500) -> float:
        """The baseline NN's mean −log p(y|x) on images ``x`` (Pyro's "NN (baseline)" row)."""
        if not self.has_baseline:
            raise NotAvailable(f"{self.name}: built without a baseline NN (baseline_epochs=0)")
        def batch_sum(i: int, j: int) -> torch.Tensor:
            x_in, missing = self.split(x[i:j])
            return self.baseline_nll(x_in, x[i:j], missing).double().sum().reshape(1)

        with evaluating(self):
            return _mean_of_sums(batched(batch_sum, x.shape[0], batch_size), x.shape[0])

    def task_metrics(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
        """The missing quadrants' negative conditional log-likelihood on ``x`` (nats per image):
        ``cond_neg_elbo`` (S = 1, the figure of Pyro's table), ``cond_nll`` (importance-sampled with
        S = 100, Sohn et al.'s estimate; tighter) and ``cond_nll_baseline`` (the deterministic NN)."""
        out = {"cond_neg_elbo": self.conditional_nll(x, S=1, generator=generator),
               "cond_nll": self.conditional_nll(x, S=100, generator=generator)}
        if self.has_baseline:
            out["cond_nll_baseline"] = self.baseline_conditional_nll(x)
        return out

    # ----- outputs ---------------------------------------------------------------------------
    @torch.no_grad()
    def complete(self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """(S, B, C, H, W) completions: z ~ p(z|x), missing pixels = p(y|x,z) probabilities, given ones kept."""
        x_in, missing = self.split(x)
        z = self.prior(x_in, missing).rsample((n_samples,), generator=generator)
        probs = torch.sigmoid(self.generate(z.reshape(-1, z.shape[-1]), x_in).float()).view(n_samples, *x.shape)
        return torch.where(missing.bool(), probs, x.float())

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The completion from the given quadrants at the prior mean (the task's point prediction)."""
        x_in, missing = self.split(x)
        probs = torch.sigmoid(self.generate(self.prior(x_in, missing).mean, x_in).float())
        return torch.where(missing.bool(), probs, x.float())

    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotAvailable(f"{self.name}: models p(missing quadrants | given ones), not p(x); use complete(x)")

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotAvailable(f"{self.name}: bounds the conditional log p(missing | given), not log p(x); "
                           "use conditional_nll(x, S)")

    # ----- the training plan -----------------------------------------------------------------
    def phases(self) -> list[Phase]:
        if self.has_baseline:
            return [Phase("baseline", epochs=self.config.baseline_epochs), Phase("train")]
        return [Phase("train")]

    def _cvae_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("baseline")]

    def configure_optimizers(self, phase: str, make) -> dict[str, torch.optim.Optimizer]:
        if phase == "baseline":
            return {"model": make([*self.baseline.parameters(), *self.baseline_out.parameters()])}
        return {"model": make(self._cvae_parameters())}


def _mean_of_sums(sums: torch.Tensor, n: int) -> float:
    """Per-batch sums added in order in Python floats, over n."""
    total = 0.0
    for t in sums.tolist():
        total += t
    return total / n
