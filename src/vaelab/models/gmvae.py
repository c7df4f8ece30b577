"""GMVAE — Gaussian Mixture VAE (Dilokthanakul et al. 2016, arXiv:1611.02648; seed eqs. 25–27).

Generative model: w ~ N(0, I), c ~ Cat(1/K), z | w, c ~ N(μ_c(w), diag σ_c²(w)) (one prior network
w → tanh hidden → K heads of means and log-variances), x | z ~ Bernoulli(decoder(z)).
Inference: q(z|x) and q(w|x) diagonal Gaussians from one encoder (two heads), and the cluster
posterior p(c|z, w) = p(c) N(z; μ_c(w), σ_c²(w)) / Σ_c' p(c') N(z; μ_c'(w), σ_c'²(w)) in closed form
(Bayes' rule on the mixture; :class:`~vaelab.distributions.mixture.MixtureOfGaussians`).

Loss per example (paper eq. 7–8 with one sample of z and w; seed eq. 27; docs/equations.md, "GMVAE"),
names in our notation (the paper calls the data y, our z "x" and our c "z"):

    recon  = −log p(x|z),                                   z ~ q(z|x)
    kl_w   = KL(q(w|x) ‖ N(0, I))                           (w-prior term, analytic)
    kl_z   = Σ_c p(c|z,w) KL(q(z|x) ‖ N(μ_c(w), σ_c²(w)))   (conditional prior term, analytic per c)
    kl_c   = KL(p(c|z,w) ‖ Cat(1/K))                        (the paper's "z-prior" term)
    loss   = recon + kl_w + kl_z + max(λ, mean_batch kl_c)

The information constraint (paper Section 3.2, "over-regularisation"; the authors' code compares
the batch mean of this term with λ = 0.5 nats) sits on the c-prior term: the KL that pulls every
example's cluster posterior towards the uniform prior is only penalised above λ nats, so the model
is not pushed to make all clusters equal (cluster degeneracy). ``info_lambda = 0`` gives the plain
ELBO. The reported ``kl_c`` is the term's value; the total uses the clamped one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import VariantConfig, check_int, check_range
from ..distributions.gaussian import DiagonalGaussian, StandardNormal
from ..distributions.mixture import MixtureOfGaussians
from ..losses.likelihood import make_likelihood
from ..nn import make_decoder, make_encoder
from ..registry import register
from .base import Batch, Variant


@dataclass
class Config(VariantConfig):
    w_dim: int = 16  # size of the continuous latent w that drives the prior network (paper: 150 on MNIST)
    n_clusters: int | None = None  # K; None = the dataset's number of classes (the paper also tries K = 16)
    prior_hidden: int = 256  # hidden units of the prior network p(z|w, c) (paper: 500)
    info_lambda: float = 0.5  # information-constraint threshold on the c-prior term, nats (authors' default)

    def validate(self) -> None:
        super().validate()
        check_int(self.w_dim, "w_dim", 1)
        check_int(self.n_clusters, "n_clusters", 1, optional=True)
        check_int(self.prior_hidden, "prior_hidden", 1)
        check_range(self.info_lambda, "info_lambda", lo=0)


@register("gmvae")
class GMVAE(Variant):
    """GMVAE (Dilokthanakul et al. 2016): latents w, z and c with the conditional mixture prior p(z|w, c)."""
    data_parallel = True

    loss_labels = {"train": "GMVAE loss: −ELBO with the KL(c) floor λ (nats/image)"}

    Config = Config
    clusters = True

    def __init__(self, config: Config):
        super().__init__(config)
        c = config
        D, K = c.latent_dim, self.n_clusters
        self.encoder = make_encoder(c.data_shape, c.backbone)
        self.head = nn.Linear(self.encoder.out_features, 2 * D + 2 * c.w_dim)  # (μ_z, log σ²_z, μ_w, log σ²_w)
        self.decoder = make_decoder(c.data_shape, D, c.backbone)
        self.prior_net = nn.Sequential(nn.Linear(c.w_dim, c.prior_hidden), nn.Tanh(), nn.Linear(c.prior_hidden, 2 * K * D))
        self.w_prior = StandardNormal(c.w_dim)
        self.log_lik = make_likelihood(c.likelihood, c.data_shape)

    @property
    def n_clusters(self) -> int:
        return self.config.n_clusters or self.config.n_classes

    # ----- the model ---------------------------------------------------------------------------
    def encode_all(self, x: torch.Tensor) -> tuple[DiagonalGaussian, DiagonalGaussian]:
        """(q(z|x), q(w|x))."""
        D, Dw = self.config.latent_dim, self.config.w_dim
        mu_z, lv_z, mu_w, lv_w = self.head(self.encoder(x)).float().split([D, D, Dw, Dw], dim=-1)
        return DiagonalGaussian(mu_z, lv_z), DiagonalGaussian(mu_w, lv_w)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        return self.encode_all(x)[0]

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)

    def conditional_prior(self, w: torch.Tensor) -> MixtureOfGaussians:
        """p(z|w) = Σ_c (1/K) N(μ_c(w), σ_c²(w)) with batch shape w.shape[:-1]."""
        K, D = self.n_clusters, self.config.latent_dim
        loc, logvar = self.prior_net(w).float().view(*w.shape[:-1], K, 2 * D).chunk(2, dim=-1)
        log_w = torch.full((*w.shape[:-1], K), -math.log(K), dtype=loc.dtype, device=loc.device)
        return MixtureOfGaussians(log_w, loc, logvar)

    # ----- the objective -----------------------------------------------------------------------
    def loss(self, batch: Batch, step: int):
        x = batch["x"]
        qz, qw = self.encode_all(x)
        z, w = qz.rsample(share=self.share), qw.rsample(share=self.share)  # (B, D), (B, Dw)
        recon = -self.log_lik(self.decode(z), x).mean()
        kl_w = qw.kl(self.w_prior).mean()  # KL(q(w|x) ‖ N(0, I)), analytic
        pz = self.conditional_prior(w)
        log_pc = pz.log_responsibilities(z)  # log p(c|z, w), (B, K)
        pc = log_pc.exp()
        kl_z = (pc * pz.component_kl(qz.loc, qz.logvar)).sum(-1).mean()
        kl_c = (pc * (log_pc - pz.log_weights)).sum(-1).mean()
        c_term = torch.clamp(kl_c, min=float(self.config.info_lambda))  # max(λ, ·): no gradient below λ
        total = recon + kl_w + kl_z + c_term
        return total, {"loss": total.detach(), "recon": recon.detach(), "kl_w": kl_w.detach(),
                       "kl_z": kl_z.detach(), "kl_c": kl_c.detach()}

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """(k, B) log p(x|z) + log p(z|w) + log p(w) − log q(z|x) − log q(w|x), (z, w) ~ q.

        p(z|w) = Σ_c p(c) N(z; μ_c(w), σ_c²(w)) marginalises c exactly, so these are importance
        weights of p(x) = ∫∫ p(x|z) p(z|w) p(w) dz dw and their logmeanexp is an IWAE bound."""
        qz, qw = self.encode_all(x)
        z, w = qz.rsample((k,)), qw.rsample((k,))  # (k, B, D), (k, B, Dw)
        logits = self.decode(z.reshape(-1, z.shape[-1])).view(k, *x.shape)
        log_pz = self.conditional_prior(w).log_prob(z)
        return (self.log_lik(logits, x) + log_pz + self.w_prior.log_prob(w)
                - qz.log_prob(z) - qw.log_prob(w))

    # ----- clusters and samples ----------------------------------------------------------------
    @torch.no_grad()
    def cluster_probs(self, x: torch.Tensor) -> torch.Tensor:
        """p(c | z = μ_z(x), w = μ_w(x)), shape (B, K)."""
        qz, qw = self.encode_all(x)
        return self.conditional_prior(qw.mean).responsibilities(qz.mean)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster of each x: argmax_c p(c | z = μ_z(x), w = μ_w(x)), shape (B,) int64."""
        return self.cluster_probs(x).argmax(-1)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x|z), z ~ p(z|w, c), c ~ Cat(1/K), w ~ N(0, I): (n, *data_shape) probabilities."""
        w = self.w_prior.sample(n, generator=generator, device=self.device)
        z = self.conditional_prior(w).sample(1, generator=generator)[0]  # (n, D)
        return torch.sigmoid(self.decode(z).float())

    @torch.no_grad()
    def sample_per_cluster(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws for each cluster c in turn (w ~ N(0, I), z ~ p(z|w, c)): (K·n, *data_shape) probabilities."""
        w = self.w_prior.sample(n, generator=generator, device=self.device)
        pz = self.conditional_prior(w)  # batch (n,)
        z = torch.cat([pz.sample_given(torch.full((1, n), c, dtype=torch.long, device=w.device), generator=generator)[0]
                       for c in range(self.n_clusters)])
        return torch.sigmoid(self.decode(z).float())
