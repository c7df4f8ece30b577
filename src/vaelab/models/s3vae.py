"""S3VAE (Zhu, Min, Kadav & Graf, CVPR 2020) and its baseline DSVAE (Li & Mandt, ICML 2018).

A sequence x_1:T is explained by one *static* latent z_f (what the sequence shows) and one *dynamic*
latent z_t per frame (how it moves):

  p(x_1:T, z_f, z_1:T) = p(z_f) Π_t p(z_t | z_<t) p(x_t | z_f, z_t),   p(z_f) = N(0, I),
  p(z_t | z_<t) = N(μ_t, σ_t²) from an LSTM cell over z_1..z_{t−1} (z_0 = 0),

with q(z_f | x_1:T) and q(z_t | ·) from :class:`vaelab.nn.sequence.SequencePosterior` (S3VAE: z_t
reads x_≤t; DSVAE: x_t alone, or x_1:T and z_f in its "full" form). The frame encoder and decoder are
the shared conv backbones applied to every frame; the decoder takes [z_f, z_t]. Loss per sequence
(nats), docs/equations.md "S3VAE and DSVAE":

  −Σ_t log p(x_t | z_f, z_t) + KL(q(z_f) ‖ p(z_f)) + Σ_t KL(q(z_t | ·) ‖ p(z_t | z_<t))
  + λ_scc · L_scc + λ_dfp · L_dfp + λ_mi · Σ_t I(z_f; z_t)

* L_scc (static consistency): a triplet loss on z_f — the sequence (anchor), the same frames in a
  shuffled order (positive) and another sequence of the batch (negative). The shuffled frames keep
  the set of places the digit visits, so z_f can tell sequences apart by where they go as well as by
  what they show; ``scc_positive="shuffle-shift"`` (vaelab's, not the paper's) also moves every frame
  of the positive by its own random offset that keeps the ink inside (:func:`translate_frames`), so
  only what the frames show is shared.
* L_dfp (dynamic factor prediction): per frame, a classifier reads z_t and predicts where the digit
  is — the cell of a grid over the frame holding the centre of its ink, measured from the frames
  (:func:`vaelab.nn.sequence.frame_cells`), never from the generator's labels.
* Σ_t I(z_f; z_t): the mutual information of the aggregate posterior between z_f and each z_t, by
  default from a critic trained alongside by the density-ratio trick
  (:mod:`vaelab.losses.density_ratio`); ``mss`` / ``mws`` give the minibatch estimators of the
  reimplementations instead, which tend to log N once a batch's posteriors stop overlapping.

``dsvae`` is the same model with the three weights at zero and DSVAE's own posterior; setting any
one weight to 0 in ``s3vae`` gives the ablations.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VariantConfig, check, check_choice, check_int, check_range
from ..distributions import DiagonalGaussian, StandardNormal
from ..losses import density_ratio as dr
from ..losses.divergences import grouped_total_correlation
from ..losses.likelihood import make_likelihood
from ..nn import make_decoder, make_encoder
from ..nn.sequence import DYNAMIC_POSTERIORS, DynamicPrior, SequencePosterior, frame_cells, translate_frames
from ..optim import linear_warmup, update
from ..registry import register
from .base import Batch, Variant

MI_ESTIMATORS = ("critic", "mss", "mws")
SCC_POSITIVES = ("shuffle", "shuffle-shift")


@dataclass
class Config(VariantConfig):
    latent_dim: int = 256  # z_f, the static latent (the papers' size)
    dynamic_dim: int = 32  # z_t, one per frame (the papers' size)
    hidden: int = 256  # LSTM width
    backbone: str = "dcgan"  # frames of 64×64: see vaelab.nn.backbones (dcgan-bn: the papers' frame networks)
    data_shape: tuple[int, ...] = (8, 1, 64, 64)  # (T, C, H, W)
    dynamic_posterior: str = "causal"  # q(z_t | x_≤t); frame | full: DSVAE's (vaelab.nn.sequence)
    scc_weight: float = 1.0  # λ_scc, static consistency (triplet); 0 = off
    dfp_weight: float = 1.0  # λ_dfp, dynamic factor prediction; 0 = off
    mi_weight: float = 1.0  # λ_mi, mutual information penalty Σ_t I(z_f; z_t); 0 = off
    triplet_margin: float = 1.0
    scc_positive: str = "shuffle"  # the triplet's positive: the frames shuffled (the paper) | shuffle-shift: each also moved (vaelab's)
    dfp_grid: int = 3  # the location classes of the dynamic factor prediction: a dfp_grid × dfp_grid grid
    kl_warmup_steps: int = 0  # both KL terms weighted linearly from 1/n to 1 over the first n updates (0 = off)
    static_kl_warmup_steps: int = 0  # the same for KL(q(z_f) ‖ p(z_f)) alone, on top of kl_warmup_steps (0 = off)
    mi_estimator: str = "critic"  # critic (density ratio) | mss | mws (minibatch estimators, biased towards log N)
    critic_hidden: int = 256  # the MI critic's width
    dynamic_skip: bool = True  # causal q(z_t)'s head also reads frame t's own features (a skip past the LSTM)

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
        check_int(self.static_kl_warmup_steps, "static_kl_warmup_steps", 0)
        check_int(self.dfp_grid, "dfp_grid", 2)
        check_int(self.critic_hidden, "critic_hidden", 1)
        check_choice(self.mi_estimator, "mi_estimator", MI_ESTIMATORS)
        check_choice(self.scc_positive, "scc_positive", SCC_POSITIVES)
        check_choice(self.dynamic_posterior, "dynamic_posterior", DYNAMIC_POSTERIORS)
        check(isinstance(self.dynamic_skip, bool), "dynamic_skip", f"must be true or false, got {self.dynamic_skip!r}")


@register("s3vae")
class S3VAE(Variant):
    """Static z_f and dynamic z_1:T with the three self-supervised regularisers (see the module doc)."""
    data_parallel = "its triplet negatives and mutual-information estimate compare the sequences of a batch with each other"

    Config = Config
    data_kind = "sequence"
    loss_labels = {"train": "−ELBO + regularisers (nats/sequence)"}

    def __init__(self, config: Config):
        super().__init__(config)
        c = config
        frame = tuple(c.data_shape[1:])
        self.encoder = make_encoder(frame, c.backbone)
        self.posterior = SequencePosterior(self.encoder.out_features, c.hidden, c.latent_dim, c.dynamic_dim,
                                           c.dynamic_skip, c.dynamic_posterior)
        self.dynamic_prior = DynamicPrior(c.dynamic_dim, c.hidden)
        self.decoder = make_decoder(frame, c.latent_dim + c.dynamic_dim, c.backbone)
        self.prior = StandardNormal(c.latent_dim)
        self.log_lik = make_likelihood(c.likelihood, frame)
        # the location classifier of the dynamic factor prediction and the MI critic exist only when their term is on
        self.location = (nn.Sequential(nn.Linear(c.dynamic_dim, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.dfp_grid ** 2))
                         if c.dfp_weight > 0 else None)
        self.critic = (dr.DependenceCritic(c.latent_dim, c.dynamic_dim, c.critic_hidden, contexts=self.frames)
                       if c.mi_weight > 0 and c.mi_estimator == "critic" else None)

    # ----- the model -------------------------------------------------------------------------
    @property
    def frames(self) -> int:
        return int(self.config.data_shape[0])

    def encode_sequence(self, x: torch.Tensor, sample: bool = False) -> tuple[DiagonalGaussian, DiagonalGaussian, torch.Tensor]:
        """x (B, T, C, H, W) → (q(z_f | x_1:T) batch (B,), q(z_t | ·) batch (B, T), z_f): z_f a draw of q(z_f)
        (``sample``) or its mean, the one the full posterior of z_t was given."""
        b, t = x.shape[:2]
        h = self.encoder(x.reshape(b * t, *x.shape[2:])).view(b, t, -1)
        q_f = self.posterior.static(h)
        z_f = q_f.rsample() if sample else q_f.mean
        return q_f, self.posterior.dynamic(h, z_f), z_f

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        """The static posterior q(z_f | x_1:T): the sequence's content code."""
        b, t = x.shape[:2]
        return self.posterior.static(self.encoder(x.reshape(b * t, *x.shape[2:])).view(b, t, -1))

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
    def _objectives(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
        """(the model's loss, its terms, the MI critic's loss or None)."""
        c = self.config
        x = batch["x"]
        b, t = x.shape[:2]
        q_f, q_t, z_f = self.encode_sequence(x, sample=True)
        z_t = q_t.rsample()  # (B, Df), (B, T, Dt)
        recon = -self._seq_log_lik(self.decode_sequence(z_f, z_t), x).mean()
        kl_f = q_f.kl(self.prior).mean()
        kl_t = q_t.kl(self.dynamic_prior.conditional(z_t)).sum(-1).mean()
        if self.training:
            total = recon + linear_warmup(step, c.kl_warmup_steps) * (linear_warmup(step, c.static_kl_warmup_steps) * kl_f + kl_t)
        else:
            total = recon + kl_f + kl_t
        terms: dict[str, torch.Tensor] = {"recon": recon, "kl_f": kl_f, "kl_t": kl_t}
        critic_loss = None
        if c.scc_weight > 0:
            if b < 2:
                raise ValueError("s3vae: the static consistency term needs a batch of at least 2 sequences")
            shuffled = x[:, torch.randperm(t, device=x.device)]
            if c.scc_positive == "shuffle-shift":  # the same frames at other places: only what they show is shared
                shuffled = translate_frames(shuffled)
            anchor, positive = q_f.mean, self.encode(shuffled).mean  # posterior means
            terms["scc"] = F.triplet_margin_loss(anchor, positive, anchor.roll(1, dims=0), margin=c.triplet_margin)
            total = total + c.scc_weight * terms["scc"]
        if c.dfp_weight > 0:
            labels, valid = frame_cells(x, c.dfp_grid)
            ce = F.cross_entropy(self.location(z_t).float().flatten(0, 1), labels.flatten(), reduction="none")
            terms["dfp"] = (ce * valid.flatten()).sum() / valid.sum().clamp_min(1)
            total = total + c.dfp_weight * terms["dfp"]
        if c.mi_weight > 0:
            if b < 2:
                raise ValueError("s3vae: the mutual-information term needs a batch of at least 2 sequences")
            if self.critic is not None:  # one critic for every frame, the frame index its context: T · mean = Σ_t
                frame = torch.arange(t, device=x.device).repeat(b)
                zf, zt = z_f.repeat_interleave(t, 0), z_t.flatten(0, 1)
                mi = t * dr.mutual_information(self.critic, zf, zt, frame)
                apart = dr.product_pairs(z_t).flatten(0, 1)
                critic_loss = dr.critic_loss(self.critic, zf, zt, apart, frame)
                terms["critic"] = critic_loss
            else:
                n = max(int(batch.get("dataset_size", b)), b)
                mi = sum(grouped_total_correlation(torch.cat([z_f, z_t[:, i]], -1), torch.cat([q_f.mean, q_t.mean[:, i]], -1),
                                                   torch.cat([q_f.logvar, q_t.logvar[:, i]], -1), (c.latent_dim, c.dynamic_dim),
                                                   n, c.mi_estimator) for i in range(t))
            terms["mi"] = mi
            total = total + c.mi_weight * mi
        return total, {"loss": total.detach(), **{k: v.detach() for k, v in terms.items()}}, critic_loss

    def loss(self, batch: Batch, step: int):
        total, terms, _ = self._objectives(batch, step)
        return total, terms

    def configure_optimizers(self, phase: str, make) -> dict[str, torch.optim.Optimizer]:
        if self.critic is None:
            return super().configure_optimizers(phase, make)
        return {"model": make(self._model_parameters()), "critic": make(list(self.critic.parameters()))}

    def _model_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the MI critic's."""
        critic = {id(p) for p in self.critic.parameters()} if self.critic is not None else set()
        return [p for p in self.parameters() if id(p) not in critic]

    def train_step(self, batch: Batch, step: int, optimizers: dict[str, torch.optim.Optimizer], phase: str) -> dict[str, torch.Tensor]:
        """The model's update; with the MI critic, then the critic's own (from the same forward pass, on
        detached codes, so neither objective's gradient reaches the other's parameters)."""
        total, terms, critic_loss = self._objectives(batch, step)
        if critic_loss is None:
            update(total, optimizers["model"])
            return terms
        update(total, optimizers["model"], params=self._model_parameters())
        update(critic_loss, optimizers["critic"], params=list(self.critic.parameters()))
        return terms

    # ----- capabilities ----------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        q_f, q_t, _ = self.encode_sequence(x)
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
    def fix_static(self, x: torch.Tensor, generator: torch.Generator | None = None, mean_dynamics: bool = False) -> torch.Tensor:
        """x's content (posterior mean z_f) with new dynamics z_1:T drawn from the prior (``mean_dynamics``:
        the prior's mean path instead of a draw)."""
        z_t = self.dynamic_prior.sample(x.shape[0], self.frames, generator=generator, mean=mean_dynamics)
        return self.log_lik.image(self.decode_sequence(self.encode(x).mean, z_t))

    @torch.no_grad()
    def fix_dynamic(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x's dynamics (posterior means z_1:T) with a new content z_f drawn from the prior."""
        z_f = self.prior.sample(x.shape[0], generator=generator, device=x.device)
        return self.log_lik.image(self.decode_sequence(z_f, self.encode_sequence(x)[1].mean))

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """(k, B) log p(x, z_f, z_1:T) − log q(z_f, z_1:T | x) for k posterior draws."""
        b, t = x.shape[:2]
        h = self.encoder(x.reshape(b * t, *x.shape[2:])).view(b, t, -1)
        q_f = self.posterior.static(h)
        z_f = q_f.rsample((k,))  # (k, B, Df)
        if self.config.dynamic_posterior == "full":  # q(z_t) depends on the drawn z_f
            q_t = self.posterior.dynamic(h.repeat(k, 1, 1), z_f.flatten(0, 1))
            z_t = q_t.rsample().view(k, b, t, -1)
            log_qt = q_t.log_prob(z_t.flatten(0, 1)).sum(-1).view(k, b)
        else:
            q_t = self.posterior.dynamic(h)
            z_t = q_t.rsample((k,))  # (k, B, T, Dt)
            log_qt = q_t.log_prob(z_t).sum(-1)
        log_pt = self.dynamic_prior.conditional(z_t.flatten(0, 1)).log_prob(z_t.flatten(0, 1)).sum(-1).view(k, -1)
        log_px = self._seq_log_lik(self.decode_sequence(z_f, z_t), x)
        return log_px + self.prior.log_prob(z_f) + log_pt - q_f.log_prob(z_f) - log_qt

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x).mean


@dataclass
class DSVAEConfig(Config):
    dynamic_posterior: str = "frame"  # DSVAE's factorised q(z_t | x_t); full: q(z_1:T | x_1:T, z_f)
    scc_weight: float = 0.0
    dfp_weight: float = 0.0
    mi_weight: float = 0.0


@register("dsvae")
class DSVAE(S3VAE):
    """Li & Mandt's disentangled sequential VAE: S3VAE's networks and ELBO without its regularisers."""

    Config = DSVAEConfig

    def extra_repr(self) -> str:
        return "S3VAE's networks with DSVAE's posterior of z_t and without the three regularisers"

