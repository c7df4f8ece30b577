"""VaDE — Variational Deep Embedding (Jiang et al. 2017, IJCAI): a VAE whose prior is a learnable
Gaussian mixture, so it clusters as it generates.

Generative model (paper eqs. 1–3; seed eq. 22): c ~ Cat(π), z | c ~ N(μ_c, diag σ_c²), x | z ~
Bernoulli(decoder(z)). Inference: q(z, c|x) = q(z|x) q(c|x), q(z|x) = N(μ̃, diag σ̃²), and
q(c|x) = γ_c = p(c|z) evaluated at the sampled z (paper eq. 16). ELBO (paper eq. 17 with L = 1;
docs/equations.md, "VaDE"):

    ELBO = log p(x|z) − Σ_c γ_c KL(q(z|x) ‖ N(μ_c, σ_c²)) − KL(γ ‖ π)

which is eq. 17 regrouped: −½ Σ_c γ_c Σ_j [log σ²_cj + σ̃²_j/σ²_cj + (μ̃_j − μ_cj)²/σ²_cj]
+ ½ Σ_j (1 + log σ̃²_j) = −Σ_c γ_c KL(N(μ̃, σ̃²) ‖ N(μ_c, σ_c²)) because Σ_c γ_c = 1, and
Σ_c γ_c log(π_c/γ_c) = −KL(γ ‖ π). Gradients flow through γ, as in the authors' code.

Training plan (one ``vaelab train vade`` run, two phases):

1. ``pretrain`` (``pretrain_epochs``): a deterministic autoencoder x → μ̃(x) → decoder, trained on
   the Bernoulli reconstruction loss (the authors pretrain a stacked autoencoder; everything else
   rests on this embedding).
2. ``train``: at its start (``begin_phase``) the encoder means of the whole training set are
   clustered by scikit-learn's ``GaussianMixture`` (diagonal covariances, ``gmm_restarts`` k-means
   initialisations, the best likelihood kept, seeded by the run's seed) and π, μ_c, σ_c² are
   loaded from it; then the ELBO above is maximised. The mixture parameters may get their own
   learning rate (``gmm_lr_scale`` × the run's lr).

Robustness choices (PyTorch reimplementations average 71.6 ± 4.4% on MNIST against the paper's
94.46%, the gap being the pretraining and the GMM initialisation): the pretraining is part of
the run and its length is a config value; the GMM takes the best of several restarts; and two
guards keep the ELBO phase from undoing a good initialisation. On tests/test_vade.py's synthetic
data a perfect GMM fit could still lose two clusters, merged in the first few ELBO updates, unless
both guards were on (the per-seed record is in docs/results/clustering.md). The guards: the
posterior log-variance head restarts at a small fraction (``init_logvar_scale``) of the mixture's
mean variance instead of σ̃² ≈ 1, so the first samples do not blur the embedding with noise on its own scale; and the lr warms up linearly
over ``warmup_epochs``, because Adam's first updates move every weight by about ±lr whatever the
gradient, which shifts a pretrained embedding by more than the clusters' spread.

Two options of the authors' recipe, off by default: ``lr_decay`` (their MNIST code multiplies
the lr by 0.9 every 10 epochs down to a floor of a tenth) and ``pretrain_noise``, masking noise
in the pretraining (DEC's stacked autoencoder, whose weights the authors start from, is a
denoising one). A third, off by default, is not theirs: ``pretrain_shift`` / ``pretrain_rotation``
train the autoencoder on randomly moved images (Guo et al. 2018, DEC-DA; the pretraining phase
declares the moves, ``Phase.affine``, and the trainer applies them to each batch, input and target
alike, before the update), an embedding the GMM clusters better on full MNIST (figures, with VaDE's final accuracy after it:
docs/results/clustering.md). ``benchmarks/clustering.py`` states the budget that uses them.

``loss`` follows the phase the trainer has recorded (``Variant.phase``, restored with the checkpoint),
so a run resumed or loaded inside either phase computes the right loss; before the ELBO phase has
begun it is the autoencoder's. The lr warm-up and decay are the ELBO phase's ``lr_schedule``, which
the trainer applies.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..config import VariantConfig, check, check_int, check_range
from ..distributions.gaussian import DiagonalGaussian
from ..distributions.mixture import GaussianMixturePrior
from ..nn.utils import batched
from ..registry import register
from .base import Batch, MakeOptimizer, Phase, PhaseContext
from .vae import GaussianVAE

log = logging.getLogger("vaelab.train")


@dataclass
class Config(VariantConfig):
    latent_dim: int = 10  # the paper's MNIST latent size
    n_clusters: int | None = None  # K; None = the dataset's number of classes
    pretrain_epochs: int = 10  # autoencoder pretraining before the GMM fit (0 = fit on the random encoder)
    gmm_restarts: int = 5  # scikit-learn GaussianMixture n_init: the best likelihood of this many k-means starts
    gmm_lr_scale: float = 1.0  # lr of π, μ_c, σ_c² relative to the network's (the paper uses the same lr)
    init_logvar_scale: float = 0.1  # σ̃² starts at this × the mixture's mean variance after the GMM fit (0 = leave the head)
    warmup_epochs: float = 1.0  # linear lr warm-up over the first epochs of the ELBO phase (0 = none)
    lr_decay: float = 1.0  # the ELBO phase's lr is multiplied by this every lr_decay_epochs epochs (1 = constant)
    lr_decay_epochs: int = 10  # the authors' MNIST schedule: × 0.9 every 10 epochs ...
    lr_decay_min: float = 0.1  # ... down to this fraction of the base lr (their floor 2e-4 = 0.1 × 2e-3)
    pretrain_noise: float = 0.0  # masking noise of the pretraining: each input pixel zeroed with this probability
    pretrain_shift: float = 0.0  # pretraining images moved by up to this fraction of their width/height (images only)
    pretrain_rotation: float = 0.0  # ... and rotated by up to this many degrees (DEC-DA: 0.1 and 10)

    def validate(self) -> None:
        super().validate()
        check_int(self.n_clusters, "n_clusters", 1, optional=True)
        check_int(self.pretrain_epochs, "pretrain_epochs", 0)
        check_int(self.gmm_restarts, "gmm_restarts", 1)
        check_range(self.gmm_lr_scale, "gmm_lr_scale", lo=0, lo_open=True)
        check_range(self.init_logvar_scale, "init_logvar_scale", lo=0)
        check_range(self.warmup_epochs, "warmup_epochs", lo=0)
        check_range(self.lr_decay, "lr_decay", lo=0, hi=1, lo_open=True)
        check_int(self.lr_decay_epochs, "lr_decay_epochs", 1)
        check_range(self.lr_decay_min, "lr_decay_min", lo=0, hi=1)
        check_range(self.pretrain_noise, "pretrain_noise", lo=0, hi=1, hi_open=True)
        check_range(self.pretrain_shift, "pretrain_shift", lo=0, hi=0.5)
        check_range(self.pretrain_rotation, "pretrain_rotation", lo=0, hi=180, unit=" degrees")
        check(len(self.data_shape) == 3 or (self.pretrain_shift == 0 and self.pretrain_rotation == 0),
              "pretrain_shift", f"augmentation needs image data (C, H, W), got data_shape {tuple(self.data_shape)}")


def vade_kl(q: DiagonalGaussian, gamma: torch.Tensor, prior) -> tuple[torch.Tensor, torch.Tensor]:
    """VaDE's regulariser per example (Jiang et al. 2017, eq. 17), split in its two parts.

    Returns (Σ_c γ_c KL(q(z|x) ‖ N(μ_c, σ_c²)), KL(γ ‖ π)), each shape (B,), for responsibilities
    ``gamma`` (B, K) and a :class:`MixtureOfGaussians` ``prior``. Their sum is
    E_q(z,c|x)[log q(z, c|x) − log p(z, c)] with q(c|x) = γ.
    """
    gamma = gamma.float()
    kl_z = (gamma * prior.component_kl(q.loc, q.logvar)).sum(-1)
    kl_c = (gamma * (torch.log(gamma.clamp_min(1e-30)) - prior.log_weights)).sum(-1)
    return kl_z, kl_c


@register("vade")
class VaDE(GaussianVAE):
    """VaDE (Jiang et al. 2017): AE pretraining, GMM initialisation, then the mixture-prior ELBO."""
    data_parallel = "its pretraining's input noise and augmentation are drawn per batch, not per process's share of it"

    loss_labels = {"pretrain": "autoencoder −log p(x|z) (nats/image)"}

    Config = Config
    clusters = True
    retired_state = ("elbo_images",)  # the warm-up position, kept by the trainer since the lr_schedule hook
    retired_progress = {"phase_id": ("phase", 0)}  # its own phase buffer (0 pretrain, 1 train) before Variant.progress

    def __init__(self, config: Config):
        super().__init__(config)
        self.prior = GaussianMixturePrior(self.n_clusters, config.latent_dim)

    @property
    def n_clusters(self) -> int:
        return self.config.n_clusters or self.config.n_classes

    # ----- the training plan -----------------------------------------------------------------
    def phases(self) -> list[Phase]:
        c = self.config  # the pretraining images moved at random (DEC-DA), by the trainer before each update
        return [Phase("pretrain", epochs=c.pretrain_epochs, affine=(c.pretrain_shift, c.pretrain_rotation)), Phase("train")]

    def begin_phase(self, phase: str, ctx: PhaseContext) -> None:
        if phase == "train":
            pred = self.init_mixture(ctx.images, seed=ctx.seed, batch_size=max(ctx.batch_size, 500))
            if ctx.labels is not None and len(ctx.labels) == len(pred):
                from ..metrics.clustering import clustering_scores

                sc = clustering_scores(pred, ctx.labels)
                log.info("GMM on the pretrained embedding: train cluster accuracy %.4f, NMI %.4f, ARI %.4f",
                         sc["accuracy"], sc["nmi"], sc["ari"])

    @torch.no_grad()
    def init_mixture(self, images: torch.Tensor, seed: int = 0, batch_size: int = 500) -> None:
        """Fit a diagonal GMM to the encoder means of ``images`` and load it into the prior; returns the
        GMM's cluster of each image (the initial clustering, before any ELBO update)."""
        from sklearn.mixture import GaussianMixture

        mu = batched(lambda i, j: self.encode(images[i:j]).mean.float(), images.shape[0], batch_size)
        gmm = GaussianMixture(n_components=self.n_clusters, covariance_type="diag", n_init=self.config.gmm_restarts,
                              random_state=seed, reg_covar=1e-6, max_iter=200)
        gmm.fit(mu.double().cpu().numpy())
        self.prior.set_parameters(torch.from_numpy(gmm.weights_), torch.from_numpy(gmm.means_),
                                  torch.from_numpy(np.asarray(gmm.covariances_)))
        if self.config.init_logvar_scale > 0:
            D = self.config.latent_dim
            target = float(np.log(self.config.init_logvar_scale * np.mean(gmm.covariances_)))
            self.head.weight[D:].mul_(0.0)
            self.head.bias[D:].fill_(target)
        return torch.from_numpy(gmm.predict(mu.double().cpu().numpy()))

    def configure_optimizers(self, phase: str, make: MakeOptimizer) -> dict[str, torch.optim.Optimizer]:
        if phase == "pretrain":  # the mixture takes no part in the autoencoder
            return {"model": make([p for n, p in self.named_parameters() if not n.startswith("prior.")])}
        net = [p for n, p in self.named_parameters() if not n.startswith("prior.")]
        opt = make([{"params": net}, {"params": list(self.prior.parameters())}])
        opt.param_groups[1]["lr"] *= self.config.gmm_lr_scale
        return {"model": opt}

    def lr_factor(self, seen: int, dataset_size: int) -> float:
        """The ELBO phase's lr multiplier after ``seen`` examples: the linear warm-up times the step
        decay lr_decay^⌊epoch / lr_decay_epochs⌋, floored at lr_decay_min (Jiang et al.'s code)."""
        c = self.config
        warm = min(1.0, seen / (c.warmup_epochs * dataset_size)) if c.warmup_epochs > 0 else 1.0
        decay = max(c.lr_decay ** ((seen // dataset_size) // c.lr_decay_epochs), c.lr_decay_min) if c.lr_decay < 1 else 1.0
        return warm * decay

    def lr_schedule(self, phase: str):
        """In the ELBO phase the lr first rises linearly over ``warmup_epochs`` epochs (then the optional
        step decay): Adam's first steps move every weight by about ±lr whatever the gradient's size,
        which on a pretrained encoder shifts the embedding by more than the fitted clusters' spread
        and can merge clusters in the first few updates; the warm-up keeps the GMM initialisation intact."""
        return self.lr_factor if phase == "train" else None

    # ----- the objective -----------------------------------------------------------------------
    def loss(self, batch: Batch, step: int):
        if self.phase != "train":  # pretraining, or no phase begun yet
            x = batch["x"]  # in training, moved by the trainer (the phase's ``affine``): input and target alike
            x_in = x
            if self.training and self.config.pretrain_noise > 0:  # denoising AE (Vincent et al. 2010), as DEC's
                x_in = x * (torch.rand_like(x) >= self.config.pretrain_noise)
            recon = -self.log_lik(self.decode(self.encode(x_in).mean), x).mean()
            return recon, {"loss": recon.detach(), "recon": recon.detach()}
        return super().loss(batch, step)

    def regularizer(self, q: DiagonalGaussian, z: torch.Tensor, batch: Batch, step: int):
        """Σ_c γ_c KL(q(z|x) ‖ p(z|c)) + KL(γ ‖ π), γ = p(c|z) at the sampled z (paper eqs. 16–17)."""
        prior = self.prior.distribution()
        gamma = prior.responsibilities(z)  # (B, K)
        kl_z, kl_c = vade_kl(q, gamma, prior)
        kl_z, kl_c = kl_z.mean(), kl_c.mean()
        return kl_z + kl_c, {"kl_z": kl_z, "kl_c": kl_c}

    # ----- clusters and samples ----------------------------------------------------------------
    @torch.no_grad()
    def cluster_probs(self, x: torch.Tensor) -> torch.Tensor:
        """q(c|x) = p(c | z = μ̃(x)), shape (B, K)."""
        return self.prior.responsibilities(self.encode(x).mean)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster of each x: argmax_c p(c | z = μ̃(x)), shape (B,) int64."""
        return self.cluster_probs(x).argmax(-1)

    @torch.no_grad()
    def sample_per_cluster(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws x ~ p(x|z), z ~ N(μ_c, σ_c²) for each cluster c in turn: (K·n, *data_shape) probabilities."""
        z = torch.cat([self.prior.sample_component(k, n, generator=generator) for k in range(self.n_clusters)])
        return torch.sigmoid(self.decode(z).float())

    # ``sample`` (z from the mixture, then the decoder) and ``log_weights`` (log p(x|z) + log p_mix(z)
    # − log q(z|x)) are GaussianVAE's, with the mixture as ``self.prior``.
