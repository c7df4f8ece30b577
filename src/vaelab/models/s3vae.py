"""S3VAE (Zhu, Min, Kadav & Graf, CVPR 2020) and its ablation DSVAE (Li & Mandt, ICML 2018).

A sequence x_1:T is explained by one *static* latent z_f (what the sequence shows) and one *dynamic*
latent z_t per frame (how it moves):

  p(x_1:T, z_f, z_1:T) = p(z_f) Π_t p(z_t | z_<t) p(x_t | z_f, z_t),   p(z_f) = N(0, I),
  p(z_t | z_<t) = N(μ_t, σ_t²) from an LSTM cell over z_1..z_{t−1} (z_0 = 0),
  q(z_f | x_1:T) from a bidirectional LSTM over per-frame features (its last forward and first
  backward states), q(z_t | x_≤t) from a forward LSTM over the same features (its head reads the
  LSTM's state at t beside frame t's own features).

Networks: the frame encoder and decoder are the shared conv backbones (``backbone``) applied to every
frame; the decoder takes [z_f, z_t]. Loss per sequence (nats), docs/equations.md "S3VAE":

  −Σ_t log p(x_t | z_f, z_t) + KL(q(z_f) ‖ p(z_f)) + Σ_t KL(q(z_t | x_≤t) ‖ p(z_t | z_<t))
  + λ_scc · L_scc + λ_dfp · L_dfp + λ_mi · I(z_f; z_1:T)

* L_scc (static consistency): a triplet loss on the posterior means of z_f — the sequence (anchor),
  the same frames in a shuffled order (positive) and another sequence of the batch (negative).
* L_dfp (dynamic factor prediction): a small classifier reads (z_t, z_t+1) and predicts the direction
  of the move between frames t and t+1, one of 8 (the signs of the horizontal and vertical
  displacement), measured *from the frames* as the move of the centre of mass of the ink — never from
  the generator's labels.
* I(z_f; z_1:T): the mutual information of the aggregate posterior between the two groups, estimated
  on the minibatch (:func:`vaelab.losses.divergences.grouped_total_correlation`).

``dsvae`` is the same model with the three weights at zero (the S3VAE paper's baseline); setting any
one of them to 0 in ``s3vae`` gives the ablations.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VariantConfig, check, check_choice, check_int, check_range
from ..data.moving_mnist import N_MOTIONS, SIGN_CLASS
from ..distributions import DiagonalGaussian, StandardNormal
from ..losses.divergences import grouped_total_correlation
from ..losses.likelihood import make_likelihood
from ..nn import GaussianHead, make_decoder, make_encoder
from ..nn.utils import ink_centres
from ..optim import linear_warmup
from ..registry import register
from .base import Batch, Variant

N_DIRECTIONS = N_MOTIONS


@dataclass
class Config(VariantConfig):
    latent_dim: int = 64  # z_f, the static latent
    dynamic_dim: int = 3  # z_t, one per frame; small, so the content goes to z_f (docs/equations.md, "S3VAE")
    hidden: int = 256  # LSTM width
    backbone: str = "dcgan"  # frames of 64×64: see vaelab.nn.backbones
    data_shape: tuple[int, ...] = (8, 1, 64, 64)  # (T, C, H, W)
    scc_weight: float = 1.0  # λ_scc, static consistency (triplet); 0 = off
    dfp_weight: float = 1.0  # λ_dfp, dynamic factor prediction; 0 = off
    mi_weight: float = 1.0  # λ_mi, mutual information penalty; 0 = off
    triplet_margin: float = 1.0
    kl_warmup_steps: int = 0  # both KL terms weighted linearly from 1/n to 1 over the first n updates (0 = off)
    mi_estimator: str = "mss"  # minibatch stratified (consistent) or weighted sampling
    dynamic_skip: bool = True  # q(z_t)'s head also reads frame t's own features (a skip past the causal LSTM)

    def validate(self) -> None:
        super().validate()
        check(len(self.data_shape) == 4 and self.data_shape[0] >= 2, "data_shape",
              f"S3VAE models sequences (T, C, H, W) with T >= 2, got {self.data_shape!r}")
        check_int(self.dynamic_dim, "dynamic_dim", 1)
        check_int(self.hidden, "hidden", 1)
        for k in ("scc_weight", "dfp_weight", "mi_weight"):
            check_range(getattr(self, k), k, lo=0)
        check_range(self.triplet_margin, "triplet_margin", lo=0)
        check_int(self.kl_warmup_steps, "kl_warmup_steps", 0)
        check_choice(self.mi_estimator, "mi_estimator", ("mss", "mws"))
        check(isinstance(self.dynamic_skip, bool), "dynamic_skip", f"must be true or false, got {self.dynamic_skip!r}")


def frame_directions(x: torch.Tensor, dead_zone: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The direction class (0..7, k·45° counter-clockwise from "right" as displayed, the generator's
    convention in :data:`vaelab.data.moving_mnist.DIRECTIONS`) of the move of the ink's centre of mass
    between consecutive frames of x (B, T, C, H, W), from the signs of its horizontal and vertical
    displacement (a component under ``dead_zone`` pixels counts as none): (labels (B, T−1) int64,
    valid (B, T−1) bool — False where a frame has no ink or the centre did not move)."""
    cy, cx, mass = ink_centres(x)  # (B, T) each
    dx, dy = cx[:, 1:] - cx[:, :-1], -(cy[:, 1:] - cy[:, :-1])  # up on screen is positive
    sx = torch.where(dx.abs() > dead_zone, dx.sign(), torch.zeros_like(dx)).long()
    sy = torch.where(dy.abs() > dead_zone, dy.sign(), torch.zeros_like(dy)).long()
    labels = _SIGN_CLASS.to(x.device)[sx + 1, sy + 1]
    valid = (mass[:, 1:] > 0) & (mass[:, :-1] > 0) & (labels >= 0)
    return labels.clamp_min(0), valid


_SIGN_CLASS = torch.as_tensor(SIGN_CLASS)


class SequencePosterior(nn.Module):
    """Frame features (B, T, F) → q(z_f | x_1:T) and q(z_t | x_≤t) (batch shape (B, T))."""

    def __init__(self, features: int, hidden: int, static_dim: int, dynamic_dim: int, skip: bool = True):
        super().__init__()
        self.skip = skip
        self.bilstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.static_head = GaussianHead(2 * hidden, static_dim)
        self.causal = nn.LSTM(features, hidden, batch_first=True)
        self.dynamic_head = GaussianHead(hidden + (features if skip else 0), dynamic_dim)

    def forward(self, h: torch.Tensor) -> tuple[DiagonalGaussian, DiagonalGaussian]:
        out, _ = self.bilstm(h)  # (B, T, 2H): forward states, then backward states
        half = out.shape[-1] // 2
        summary = torch.cat([out[:, -1, :half], out[:, 0, half:]], dim=-1)  # both directions have read all T frames
        causal, _ = self.causal(h)  # (B, T, H): state t has read frames 1..t
        # the head also reads frame t's own features (a skip past the LSTM): still a function of x_≤t, and
        # without it the posterior of z_t stayed collapsed for hundreds of updates (docs/equations.md, "S3VAE")
        return self.static_head(summary), self.dynamic_head(torch.cat([causal, h], dim=-1) if self.skip else causal)


class DynamicPrior(nn.Module):
    """p(z_t | z_<t) = N(μ_t, σ_t²) from an LSTM cell fed z_{t−1} (z_0 = 0)."""

    def __init__(self, dynamic_dim: int, hidden: int):
        super().__init__()
        self.cell = nn.LSTMCell(dynamic_dim, hidden)
        self.head = GaussianHead(hidden, dynamic_dim)

    def conditional(self, z: torch.Tensor) -> DiagonalGaussian:
        """The prior of every z_t given the given z_<t: z (B, T, D) → batch shape (B, T)."""
        b, t, d = z.shape
        inputs = torch.cat([z.new_zeros(b, 1, d), z[:, :-1]], dim=1)
        state, outs = None, []
        for i in range(t):
            state = self.cell(inputs[:, i], state)
            outs.append(state[0])
        return self.head(torch.stack(outs, 1))

    @torch.no_grad()
    def sample(self, n: int, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral draws z_1:T (n, steps, D)."""
        d = self.head.latent_dim
        z_prev, state, zs = self.head.weight.new_zeros(n, d), None, []
        for _ in range(steps):
            state = self.cell(z_prev, state)
            z_prev = self.head(state[0]).rsample(generator=generator)
            zs.append(z_prev)
        return torch.stack(zs, 1)


@register("s3vae")
class S3VAE(Variant):
    """Static z_f and dynamic z_1:T with the three self-supervised regularisers (see the module doc)."""
    data_parallel = "its triplet negatives and mutual-information estimate compare the sequences of a batch with each other"

    Config = Config
    data_kind = "sequence"
    likelihoods = ("bernoulli", "logistic")
    loss_labels = {"train": "−ELBO + regularisers (nats/sequence)"}
    TEST_CONFIG = {"hidden": 32, "dynamic_dim": 2, "data_shape": (4, 1, 28, 28)}

    def __init__(self, config: Config):
        super().__init__(config)
        c = config
        frame = tuple(c.data_shape[1:])
        self.encoder = make_encoder(frame, c.backbone)
        self.posterior = SequencePosterior(self.encoder.out_features, c.hidden, c.latent_dim, c.dynamic_dim, c.dynamic_skip)
        self.dynamic_prior = DynamicPrior(c.dynamic_dim, c.hidden)
        self.decoder = make_decoder(frame, c.latent_dim + c.dynamic_dim, c.backbone)
        self.prior = StandardNormal(c.latent_dim)
        self.log_lik = make_likelihood(c.likelihood, frame)
        # the motion classifier of the dynamic factor prediction exists only when that term is on
        self.direction = (nn.Sequential(nn.Linear(2 * c.dynamic_dim, c.hidden), nn.ReLU(), nn.Linear(c.hidden, N_DIRECTIONS))
                          if c.dfp_weight > 0 else None)

    # ----- the model -------------------------------------------------------------------------
    @property
    def frames(self) -> int:
        return int(self.config.data_shape[0])

    def encode_sequence(self, x: torch.Tensor) -> tuple[DiagonalGaussian, DiagonalGaussian]:
        """x (B, T, C, H, W) → (q(z_f | x_1:T) batch (B,), q(z_t | x_≤t) batch (B, T))."""
        b, t = x.shape[:2]
        h = self.encoder(x.reshape(b * t, *x.shape[2:])).view(b, t, -1)
        return self.posterior(h)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        """The static posterior q(z_f | x_1:T): the sequence's content code."""
        return self.encode_sequence(x)[0]

    def decode_sequence(self, z_f: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        """z_f (..., B, Df), z_t (..., B, T, Dt) → frame logits (..., B, T, C, H, W)."""
        lead, t = z_t.shape[:-2], z_t.shape[-2]
        zf = z_f.unsqueeze(-2).expand(*lead, t, z_f.shape[-1])
        z = torch.cat([zf, z_t], dim=-1).reshape(-1, z_f.shape[-1] + z_t.shape[-1])
        return self.decoder(z).view(*lead, t, *self.config.data_shape[1:])

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z = [z_f, z_1:T flattened] (B, Df + T·Dt) → frame logits (B, T, C, H, W)."""
        c = self.config
        return self.decode_sequence(z[:, :c.latent_dim], z[:, c.latent_dim:].reshape(z.shape[0], self.frames, c.dynamic_dim))

    def _seq_log_lik(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Σ_t log p(x_t | ·): logits (..., B, T, C, H, W), x (B, T, C, H, W) → (..., B)."""
        return self.log_lik(logits.flatten(-5, -4), x.flatten(0, 1)).unflatten(-1, x.shape[:2]).sum(-1)

    # ----- the objective ---------------------------------------------------------------------
    def loss(self, batch: Batch, step: int):
        c = self.config
        x = batch["x"]
        b, t = x.shape[:2]
        q_f, q_t = self.encode_sequence(x)
        z_f, z_t = q_f.rsample(), q_t.rsample()  # (B, Df), (B, T, Dt)
        recon = -self._seq_log_lik(self.decode_sequence(z_f, z_t), x).mean()
        kl_f = q_f.kl(self.prior).mean()
        p_t = self.dynamic_prior.conditional(z_t)
        kl_t = q_t.kl(p_t).sum(-1).mean()
        total = recon + (linear_warmup(step, c.kl_warmup_steps) if self.training else 1.0) * (kl_f + kl_t)
        terms: dict[str, torch.Tensor] = {"recon": recon, "kl_f": kl_f, "kl_t": kl_t}
        if c.scc_weight > 0:
            if b < 2:
                raise ValueError("s3vae: the static consistency term needs a batch of at least 2 sequences")
            shuffled = x[:, torch.randperm(t, device=x.device)]
            anchor, positive = q_f.mean, self.encode(shuffled).mean
            negative = anchor.roll(1, dims=0)
            scc = F.triplet_margin_loss(anchor, positive, negative, margin=c.triplet_margin)
            total = total + c.scc_weight * scc
            terms["scc"] = scc
        if c.dfp_weight > 0:
            labels, valid = frame_directions(x)
            logits = self.direction(torch.cat([z_t[:, :-1], z_t[:, 1:]], dim=-1)).float()  # (B, T−1, 8)
            ce = F.cross_entropy(logits.reshape(-1, N_DIRECTIONS), labels.reshape(-1), reduction="none")
            dfp = (ce * valid.reshape(-1)).sum() / valid.sum().clamp_min(1)
            total = total + c.dfp_weight * dfp
            terms["dfp"] = dfp
        if c.mi_weight > 0:
            z = torch.cat([z_f, z_t.reshape(b, -1)], -1)
            mu = torch.cat([q_f.mean, q_t.mean.reshape(b, -1)], -1)
            logvar = torch.cat([q_f.logvar, q_t.logvar.reshape(b, -1)], -1)
            mi = grouped_total_correlation(z, mu, logvar, (c.latent_dim, t * c.dynamic_dim),
                                           max(int(batch.get("dataset_size", b)), b), c.mi_estimator)
            total = total + c.mi_weight * mi
            terms["mi"] = mi
        return total, {"loss": total.detach(), **{k: v.detach() for k, v in terms.items()}}

    # ----- capabilities ----------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        q_f, q_t = self.encode_sequence(x)
        return self.log_lik.image(self.decode_sequence(q_f.mean, q_t.mean))

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        z_f = self.prior.sample(n, generator=generator, device=self.device)
        z_t = self.dynamic_prior.sample(n, self.frames, generator=generator)
        return self.log_lik.image(self.decode_sequence(z_f, z_t))

    @torch.no_grad()
    def swap(self, content: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """The z_f of ``content`` decoded with the z_1:T of ``motion`` (both (B, T, C, H, W)), posterior means."""
        return self.log_lik.image(self.decode_sequence(self.encode(content).mean, self.encode_sequence(motion)[1].mean))

    @torch.no_grad()
    def fix_static(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x's content (posterior mean z_f) with new dynamics z_1:T drawn from the prior."""
        z_t = self.dynamic_prior.sample(x.shape[0], self.frames, generator=generator)
        return self.log_lik.image(self.decode_sequence(self.encode(x).mean, z_t))

    @torch.no_grad()
    def fix_dynamic(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x's dynamics (posterior means z_1:T) with a new content z_f drawn from the prior."""
        z_f = self.prior.sample(x.shape[0], generator=generator, device=x.device)
        return self.log_lik.image(self.decode_sequence(z_f, self.encode_sequence(x)[1].mean))

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """(k, B) log p(x, z_f, z_1:T) − log q(z_f, z_1:T | x) for k posterior draws."""
        q_f, q_t = self.encode_sequence(x)
        z_f, z_t = q_f.rsample((k,)), q_t.rsample((k,))  # (k, B, Df), (k, B, T, Dt)
        p_t = self.dynamic_prior.conditional(z_t.flatten(0, 1))
        log_pt = p_t.log_prob(z_t.flatten(0, 1)).sum(-1).view(k, -1)
        log_px = self._seq_log_lik(self.decode_sequence(z_f, z_t), x)
        return log_px + self.prior.log_prob(z_f) + log_pt - q_f.log_prob(z_f) - q_t.log_prob(z_t).sum(-1)

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x).mean


@dataclass
class DSVAEConfig(Config):
    scc_weight: float = 0.0
    dfp_weight: float = 0.0
    mi_weight: float = 0.0


@register("dsvae")
class DSVAE(S3VAE):
    """Li & Mandt's disentangled sequential VAE: S3VAE's networks and ELBO without its regularisers."""

    Config = DSVAEConfig

    def extra_repr(self) -> str:
        return "the S3VAE networks without the three regularisers"

