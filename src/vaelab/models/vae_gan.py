"""VAE-GAN (Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a learned
similarity metric"; the seed's Section III.G, eqs. 28–33; docs/equations.md, "VAE-GAN").

Three networks, three optimizers, one batch → three updates (``train_step``):

* L_prior = KL(q(z|x) ‖ N(0, I))                                                    (eq. 29)
* L_llike = −E_q(z|x) log N(Dis_l(x); Dis_l(Dec(z)), σ²I) = ½ ‖Dis_l(x) − Dis_l(x̃)‖² / σ² + const
  (eqs. 30–31; the constant is dropped, so identical inputs score exactly 0). The paper has σ² = 1 on
  batch-normalised features. Our discriminator (the shared ConvTrunk) has no batch norm and its
  features are small at initialisation, so with σ² = 1 the whole reconstruction term is worth only a
  few nats and the encoder gives up on z (the KL collapses in smoke runs; figures in
  docs/results/variant-notes.md, "VAE-GAN"). ``feature_norm=True``
  (default; a departure) sets σ² to the mean per-unit variance of the real images' features in the
  batch (a scalar, no gradient), which restores the scale batch norm gives; ``feature_norm=False`` is σ² = 1.
* L_GAN = log Dis(x) + log(1 − Dis(Dec(z_p))) + log(1 − Dis(Dec(Enc(x)))),  z_p ~ N(0, I)   (eq. 33;
  the discriminator weighs real and fake equally: the two fake terms get ½ each, see ``_objectives``)

Updates (paper §2 and Algorithm 1, with the signs of the authors' code — the printed Algorithm 1
has Dec and Dis both descend on ∇(… − L_GAN) / ∇L_GAN, which would make them cooperate):

* encoder       ← ∇(L_prior + L_llike)             — never sees the GAN loss (paper §2, "limiting error signals");
* decoder       ← ∇(γ L_llike + L_GAN^gen)         — γ weighs content against fooling Dis;
* discriminator ← ∇(−L_GAN)                        — it maximises L_GAN; not trained on L_llike.

L_GAN^gen is log(1 − Dis(x̃)) summed over both fakes (``generator_loss="saturating"``: the minimax
form the authors' code uses) or −log Dis(x̃) (``"non_saturating"``, Goodfellow et al. 2014 §3: the
same fixed point, but a useful gradient while Dis still wins easily). The default is the non-saturating
form — a documented departure, chosen because the run-away discriminator is this model's known failure.

Stabilisers against that collapse (the discriminator winning early):

* ``balance`` — the authors' equilibrium rule (``margin_train`` in github.com/andersbll/
  autoencoding_beyond_pixels, vaegan.py): with real_cost = mean −log Dis(x) and fake_cost = mean
  −log(1 − Dis(x̃)) over both fakes, skip the discriminator update when either cost is below
  equilibrium − margin (it is winning), skip the decoder's when either is above equilibrium + margin
  (it is winning), and update both if that would skip both. Defaults are the authors' (0.68, 0.25).
  The encoder is always updated.
* ``label_smoothing`` — one-sided label smoothing (Salimans et al. 2016 §3.4): real targets 1 − s.
* ``generator_loss="non_saturating"`` (above).

Smoke evidence (docs/results/variant-notes.md, "VAE-GAN"): with ``balance`` the discriminator stayed undecided
and ``collapse_report`` found no collapse; with ``balance=false`` it won from the first epoch and every
sample became the same blob — the known collapse.

Collapse is visible in the terms (``d_acc``: the share of real and fake images the discriminator
classifies right; ``d_real``/``d_fake``: its mean probabilities; ``d_update``/``g_update``: the share of
steps each was updated) and is judged after training by ``collapse_report`` (discriminator accuracy
on held-out images vs prior samples, and sample diversity).

The decoder outputs logits; images are their sigmoid, which is what the discriminator sees. It is
not a pixel-space likelihood model, so ``log_weights`` raises NotAvailable. ``pixel_weight`` > 0 adds a
Bernoulli pixel reconstruction term to the encoder's and decoder's objectives — a departure from the
paper (off by default).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import VariantConfig, check, check_choice, check_range
from ..nn.backbones import is_mlp
from ..nn.discriminators import FEATURE_LAYERS, Discriminator
from ..nn.utils import evaluating
from ..optim import update
from ..registry import register
from .base import Batch, NotAvailable
from .vae import GaussianVAE

GENERATOR_LOSSES = ("non_saturating", "saturating")


@dataclass
class Config(VariantConfig):
    gamma: float = 1e-2  # decoder: γ·L_llike + L_GAN^gen (paper §2, "weighting VAE vs. GAN"); the authors' code used 1e-4 .. 2.5e-2
    #                      on summed errors. L_llike is large here (feature_norm), and 1e-2 brings γ·L_llike within an
    #                      order of magnitude of L_GAN^gen (measured scales: docs/results/variant-notes.md, "VAE-GAN").
    feature_layer: str = "trunk"  # Dis_l: "trunk" (last conv layer, as the paper) or "fc" (last hidden layer)
    feature_norm: bool = True  # σ² of the feature Gaussian = the batch's real feature variance (departure; see above)
    generator_loss: str = "non_saturating"  # or "saturating" (the authors' code)
    balance: bool = True  # the authors' equilibrium rule (skip the stronger player's update)
    equilibrium: float = 0.68  # ≈ the cost of an undecided discriminator (ln 2 = 0.693); the authors' value
    margin: float = 0.25  # the authors' value in vaegan.py (0.4 in aegan.py)
    label_smoothing: float = 0.0  # one-sided: real targets 1 − s (Salimans et al. 2016); 0 = off
    pixel_weight: float = 0.0  # departure: + w·(−log p(x|z)) in pixel space for encoder and decoder; 0 = off

    def validate(self) -> None:
        super().validate()
        check_range(self.gamma, "gamma", lo=0)
        check_choice(self.feature_layer, "feature_layer", FEATURE_LAYERS)
        check(not (is_mlp(self.backbone) and self.feature_layer == "trunk"), "feature_layer",
              f"'trunk' is the raw input for the {self.backbone} backbone (a pixel-space loss); use feature_layer=fc")
        check_choice(self.generator_loss, "generator_loss", GENERATOR_LOSSES)
        check_range(self.equilibrium, "equilibrium", lo=0, lo_open=True)
        check_range(self.margin, "margin", lo=0, lo_open=True)
        check_range(self.label_smoothing, "label_smoothing", lo=0, hi=0.5, hi_open=True)
        check_range(self.pixel_weight, "pixel_weight", lo=0)


def balance_updates(real_cost: float, fake_cost: float, equilibrium: float, margin: float) -> tuple[bool, bool]:
    """Larsen et al.'s equilibrium rule → (update_decoder, update_discriminator).

    real_cost = mean −log Dis(x), fake_cost = mean −log(1 − Dis(x̃)); both are ln 2 when Dis is undecided."""
    update_dis = not (real_cost < equilibrium - margin or fake_cost < equilibrium - margin)
    update_dec = not (real_cost > equilibrium + margin or fake_cost > equilibrium + margin)
    if not (update_dec or update_dis):
        return True, True
    return update_dec, update_dis


def feature_nll(f_real: torch.Tensor, f_fake: torch.Tensor, variance: torch.Tensor | float = 1.0) -> torch.Tensor:
    """−log N(f_real; f_fake, σ²I) without its constant ½·F·log 2πσ²: ½ Σ_j (f_real − f_fake)² / σ², shape (B,)
    (Larsen et al. 2016 and the seed's eqs. 30–31 have σ² = 1). In fp32."""
    return 0.5 * (f_real.float() - f_fake.float()).pow(2).flatten(1).sum(-1) / variance


def feature_variance(f_real: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """σ² for ``feature_nll``: the mean over units of the per-unit variance of the real images' features
    in the batch (a scalar, no gradient) — it makes L_llike blind to the scale of the discriminator's
    features, as the batch normalisation in Larsen et al.'s discriminator does."""
    f = f_real.detach().float().flatten(1)
    return f.var(0, unbiased=False).mean() + eps if f.shape[0] > 1 else torch.ones((), device=f.device)


@register("vae-gan")
class VAEGAN(GaussianVAE):
    """VAE whose reconstruction error lives in a discriminator's features, trained with a GAN."""
    data_parallel = True

    loss_labels = {"train": "encoder loss: KL + feature-space recon (not nats)"}

    Config = Config

    def __init__(self, config: Config):
        super().__init__(config)
        self.discriminator = Discriminator(config.data_shape, config.backbone, config.feature_layer)

    # ----- parameter groups ------------------------------------------------------------------
    def encoder_parameters(self) -> list[torch.nn.Parameter]:
        return [*self.encoder.parameters(), *self.head.parameters()]

    def decoder_parameters(self) -> list[torch.nn.Parameter]:
        """The decoder's, and the likelihood's learned scale when the pixel term uses it."""
        return list(self.decoder.parameters()) + (list(self.log_lik.parameters()) if self.config.pixel_weight > 0 else [])

    def discriminator_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.discriminator.parameters())

    # ----- the objective ---------------------------------------------------------------------
    def _objectives(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Every term of one batch, with graphs: the three players' objectives and diagnostics."""
        c = self.config
        x, y = batch["x"], batch.get("y")
        b = x.shape[0]
        q = self.encode(x, y)
        z = q.rsample(share=self.share)  # (B, D)
        logits_rec = self.decode(z, y)  # (B, C, H, W)
        z_p = self.prior.sample(b, device=x.device, share=self.share)
        x_rec = torch.sigmoid(logits_rec)
        x_p = torch.sigmoid(self.decode(z_p, y))
        d_logits, feats = self.discriminator(torch.cat([x.to(x_rec.dtype), x_rec, x_p]))  # (3B,), (3B, F)
        d_logits = d_logits.float()
        real = d_logits[:b]  # then the reconstructions d_logits[b:2B] and the prior samples d_logits[2B:]
        fake = d_logits[b:]  # (2B,) both kinds of fake

        kl = q.kl(self.prior).mean()
        var = feature_variance(self.share.gather(feats[:b].detach())) if c.feature_norm else 1.0  # (data-parallel: the global batch's)
        llike = feature_nll(feats[:b], feats[b:2 * b], var).mean()
        # −L_GAN (eq. 33), real and fake weighted equally (the two fakes ½ each, as the authors' aegan.py,
        # real_vs_gen_weight = 0.5): −log Dis(x) − ½ log(1 − Dis(Dec(z_p))) − ½ log(1 − Dis(Dec(Enc(x)))).
        # With eq. 33's 1:1:1 an undecided discriminator would sit at Dis = 1/3, not at the ln 2 costs the
        # balance rule's equilibrium assumes. Optional one-sided smoothing of the real targets.
        real_target = torch.full_like(real, 1.0 - c.label_smoothing)
        d_loss = (F.binary_cross_entropy_with_logits(real, real_target)
                  + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        if c.generator_loss == "saturating":  # minimise log(1 − Dis(x̃)) = −BCE(x̃, 0)
            g_loss = -2 * F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        else:  # minimise −log Dis(x̃)
            g_loss = 2 * F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        out = {"kl": kl, "llike": llike, "d_loss": d_loss, "g_loss": g_loss}
        if c.pixel_weight > 0:
            out["pixel"] = -self.log_lik(logits_rec, x).mean()
        with torch.no_grad():
            out["real_cost"] = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            out["fake_cost"] = F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            out["d_real"] = torch.sigmoid(real).mean()
            out["d_fake"] = torch.sigmoid(fake).mean()
            out["d_acc"] = torch.cat([(real > 0), (fake < 0)]).float().mean()
        return out

    def _encoder_objective(self, o: dict[str, torch.Tensor]) -> torch.Tensor:
        total = o["kl"] + o["llike"]
        return total + self.config.pixel_weight * o["pixel"] if "pixel" in o else total

    def _decoder_objective(self, o: dict[str, torch.Tensor]) -> torch.Tensor:
        total = self.config.gamma * o["llike"] + o["g_loss"]
        return total + self.config.pixel_weight * o["pixel"] if "pixel" in o else total

    def loss(self, batch: Batch, step: int):
        """The VAE part L_prior + L_llike (what the encoder minimises) as ``loss``; GAN terms beside it."""
        o = self._objectives(batch)
        total = self._encoder_objective(o)
        terms = {"loss": total.detach(), **{k: v.detach() for k, v in o.items() if k not in ("real_cost", "fake_cost")}}
        return total, terms

    # ----- the training plan -----------------------------------------------------------------
    def configure_optimizers(self, phase: str, make) -> dict[str, torch.optim.Optimizer]:
        return {"encoder": make(self.encoder_parameters()),
                "decoder": make(self.decoder_parameters()),
                "discriminator": make(self.discriminator_parameters())}

    def train_step(self, batch: Batch, step: int, optimizers: dict[str, torch.optim.Optimizer], phase: str) -> dict[str, torch.Tensor]:
        """One forward pass; each player's gradient taken from its own objective only (so the GAN loss
        never reaches the encoder and L_llike never reaches the discriminator); the balance rule may
        skip the decoder's or the discriminator's step."""
        c = self.config
        o = self._objectives(batch)
        groups = {
            "encoder": (self._encoder_objective(o), self.encoder_parameters()),
            "decoder": (self._decoder_objective(o), self.decoder_parameters()),
            "discriminator": (o["d_loss"], self.discriminator_parameters()),
        }
        take = {"encoder": True, "decoder": True, "discriminator": True}
        if c.balance:
            take["decoder"], take["discriminator"] = balance_updates(
                self.share.mean(o["real_cost"]), self.share.mean(o["fake_cost"]), c.equilibrium, c.margin)  # (the global batch's)
        names = list(groups)
        for i, name in enumerate(names):
            objective, params = groups[name]
            update(objective, optimizers[name], params=params, retain_graph=i < len(names) - 1, step=take[name], share=self.share)
        loss = groups["encoder"][0].detach()
        terms = {"loss": loss, **{k: v.detach() for k, v in o.items() if k not in ("real_cost", "fake_cost")},
                 "g_update": torch.tensor(float(take["decoder"]), device=loss.device),
                 "d_update": torch.tensor(float(take["discriminator"]), device=loss.device)}
        return terms

    # ----- capabilities ----------------------------------------------------------------------
    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotAvailable(f"{self.name}: the decoder is trained through discriminator features, not a pixel-space "
                           "likelihood, so there is no ELBO/IWAE bound on log p(x)")

    def task_metrics(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
        """``collapse_report`` on the first 1000 test images, for ``vaelab evaluate``: ``gan_collapsed``
        (1.0 or 0.0, so its mean over seeds in ``vaelab compare`` is the share of collapsed runs),
        ``gan_d_acc`` and ``gan_diversity``."""
        rep = self.collapse_report(x[:1000], generator=generator)
        return {"gan_collapsed": float(rep["collapsed"]), "gan_d_acc": rep["d_acc"], "gan_diversity": rep["diversity"]}

    @torch.no_grad()
    def collapse_report(self, x: torch.Tensor, generator: torch.Generator | None = None, max_pairs: int = 500,
                        acc_threshold: float = 0.99, diversity_threshold: float = 0.5) -> dict[str, float | bool | str]:
        """Has training collapsed? Judged on held-out images ``x`` (N, C, H, W) and N prior samples.

        * ``d_acc``: the discriminator's accuracy on x vs samples; ≥ ``acc_threshold`` means it wins
          outright (the samples are trivially fake — the early-win collapse);
        * ``diversity``: mean pairwise L2 distance between samples over that between real images
          (first ``max_pairs`` of each); < ``diversity_threshold`` means mode collapse.
        """
        n = x.shape[0]
        with evaluating(self):
            samples = self.sample(n, generator=generator)
            real_logits, _ = self.discriminator(x.to(samples.dtype))
            fake_logits, _ = self.discriminator(samples)
        d_acc = float(torch.cat([real_logits > 0, fake_logits < 0]).float().mean())

        def spread(t: torch.Tensor) -> float:
            t = t[:max_pairs].flatten(1).double()
            d = torch.cdist(t, t)
            m = t.shape[0]
            return float(d.sum() / max(m * (m - 1), 1))

        diversity = spread(samples) / max(spread(x), 1e-12)
        reasons = []
        if d_acc >= acc_threshold:
            reasons.append(f"discriminator wins (accuracy {d_acc:.3f} >= {acc_threshold})")
        if diversity < diversity_threshold:
            reasons.append(f"mode collapse (sample diversity {diversity:.3f} < {diversity_threshold} of the data's)")
        return {"d_acc": d_acc, "d_real": float(torch.sigmoid(real_logits).mean()),
                "d_fake": float(torch.sigmoid(fake_logits).mean()), "diversity": diversity,
                "collapsed": bool(reasons), "reason": "; ".join(reasons) or "none"}
