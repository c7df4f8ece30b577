"""The disentangling variants beta-tcvae, factor-vae and dip-vae (issue 42, item 3): what is special
about each, checked against float64 references; the shared battery covers the rest, here also for the
modes the registry's defaults do not reach."""
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

import vaelab
from battery import tiny_batch
from vaelab.distributions import DiagonalGaussian, StandardNormal
from vaelab.errors import ConfigError
from vaelab.losses.density_ratio import permute_dims
from vaelab.losses.divergences import aggregate_log_densities
from vaelab.models.dip_vae import aggregate_covariance, dip_penalty
from vaelab.optim import make_optimizer_factory
from vaelab.training.config import TrainConfig
from variant_configs import config_for

F64 = torch.float64
TINY = {"backbone": "small", "latent_dim": 4}


def build(name, seed=0, **cfg):
    torch.manual_seed(seed)
    return vaelab.build(name, **{**TINY, **config_for(name), **cfg})


def loss_at(v, batch, seed=1, step=0):
    torch.manual_seed(seed)
    return v.loss(batch, step)


def posteriors(n, d, seed=0, cov=None, s=None):
    """n Gaussian posteriors (float64): μ ~ N(0, cov) (identity by default), log σ² random or log s²."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, d, generator=g, dtype=F64)
    if cov is not None:
        mu = mu @ torch.linalg.cholesky(cov).T
    lv = torch.full_like(mu, 2 * math.log(s)) if s is not None else 0.5 * torch.randn(n, d, generator=g, dtype=F64) - 1.0
    return mu, lv




@pytest.mark.parametrize("name", ["beta-tcvae", "factor-vae", "dip-vae"])
def test_likelihood_bounds_are_the_plain_vaes(name):
    """Same generative model and encoder: with the VAE's weights, the same importance weights."""
    vae, v = build("vae"), build(name)
    missing, unexpected = v.load_state_dict(vae.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("discriminator.") for k in missing)
    x = tiny_batch()["x"]
    torch.manual_seed(0)
    a = vae.log_weights(x, 3)
    torch.manual_seed(0)
    assert torch.equal(a, v.log_weights(x, 3))


@pytest.mark.parametrize("name, cfg, key", [
    ("beta-tcvae", {"estimator": "mc"}, "estimator"), ("beta-tcvae", {"beta": -1.0}, "beta"),
    ("beta-tcvae", {"alpha": float("nan")}, "alpha"), ("factor-vae", {"gamma": -1.0}, "gamma"),
    ("factor-vae", {"disc_betas": (0.5, 1.0)}, "disc_betas"), ("factor-vae", {"disc_layers": 0}, "disc_layers"),
    ("factor-vae", {"disc_lr": 0.0}, "disc_lr"), ("dip-vae", {"mode": "iii"}, "mode"),
    ("dip-vae", {"lambda_od": -1.0}, "lambda_od"), ("dip-vae", {"lambda_d": -2.0}, "lambda_d"),
])
def test_invalid_configs(name, cfg, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        vaelab.build(name, **cfg)


# ----- β-TCVAE ---------------------------------------------------------------------------------------
def test_beta_tcvae_defaults():
    c = vaelab.build("beta-tcvae").config
    assert (c.alpha, c.beta, c.gamma, c.estimator) == (1.0, 6.0, 1.0, "mss")


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_unit_weights_give_the_batch_estimate_of_the_kl(estimator):
    """α = β = γ = 1: MI + TC + dim-KL = E[log q(z|x) − log p(z)] over the batch (the terms telescope)."""
    v = build("beta-tcvae", alpha=1.0, beta=1.0, gamma=1.0, estimator=estimator)
    mu, lv = posteriors(16, 4, seed=1)
    q = DiagonalGaussian(mu, lv)
    z = q.rsample(generator=torch.Generator().manual_seed(2))
    reg, terms = v.regularizer(q, z, {"dataset_size": 500}, 0)
    sampled_kl = (q.log_prob(z) - StandardNormal(4).log_prob(z)).mean()
    assert reg.dtype == F64
    assert float(reg) == pytest.approx(float(sampled_kl), rel=1e-12, abs=1e-12)
    assert float(terms["mi"] + terms["tc"] + terms["dwkl"]) == pytest.approx(float(sampled_kl), rel=1e-12, abs=1e-12)
    assert torch.allclose(terms["kl"], q.kl(StandardNormal(4)).mean())  # the analytic KL, reported alongside


def test_each_weight_multiplies_its_term():
    batch = tiny_batch()
    base_total, terms = loss_at(build("beta-tcvae"), batch)
    for key, term in (("alpha", "mi"), ("beta", "tc"), ("gamma", "dwkl")):
        v = build("beta-tcvae", **{key: getattr(build("beta-tcvae").config, key) + 2.0})
        total, _ = loss_at(v, batch)
        assert float((total - base_total).detach()) == pytest.approx(2.0 * float(terms[term]), rel=1e-4, abs=1e-4), key
    assert {"loss", "recon", "kl", "mi", "tc", "dwkl"} == set(terms)


def _exact_log_densities(zq, mu, lv):
    """Brute force in float64: log q(z) and log q(z_j) of the mixture (1/N) Σ_n q(z|n) at one point zq (D,)."""
    per_dim = -0.5 * (math.log(2 * math.pi) + lv + (zq - mu) ** 2 / lv.exp())  # (N, D)
    n = mu.shape[0]
    return torch.logsumexp(per_dim.sum(-1), 0) - math.log(n), torch.logsumexp(per_dim, 0) - math.log(n)


def _batch_average(mu, lv, zq, star, m, estimator):
    """The estimators' density at the point zq drawn from q(z|n_star), averaged over every ordered batch
    of m distinct data points that contains n_star (uniform random batches in random order): (q(z), q(z_j))."""
    n = mu.shape[0]
    joint, dims, count = 0.0, 0.0, 0
    for order in itertools.permutations(range(n), m):
        if star not in order:
            continue
        i = order.index(star)
        idx = torch.tensor(order)
        z = mu[idx].clone()  # the other members' draws do not enter the estimate at row i
        z[i] = zq
        log_qz, log_qz_dims = aggregate_log_densities(z, mu[idx], lv[idx], n, estimator)
        joint, dims, count = joint + log_qz[i].exp(), dims + log_qz_dims[i].exp(), count + 1
    return joint / count, dims / count


@pytest.mark.parametrize("m", [5, 3, 2])
def test_stratified_estimator_is_unbiased_for_the_exact_mixture(m):
    """Over random batches (every ordered batch of m out of N = 5, enumerated), the MSS estimate of the
    density q(z) and of each marginal q(z_j) averages to the brute-force mixture exactly; m = N is the
    batch that is the whole dataset (its own estimate depends on which member carries the stratum weight:
    exact on average over the orders)."""
    mu, lv = posteriors(5, 3, seed=4)
    zq = mu[2] + (0.5 * lv[2]).exp() * torch.randn(3, generator=torch.Generator().manual_seed(5), dtype=F64)
    exact_joint, exact_dims = _exact_log_densities(zq, mu, lv)
    joint, dims = _batch_average(mu, lv, zq, 2, m, "mss")
    assert float(joint.log()) == pytest.approx(float(exact_joint), abs=1e-12)
    assert torch.allclose(dims.log(), exact_dims, atol=1e-12, rtol=0)


def test_weighted_estimator_is_the_papers_formula():
    """MWS is Chen et al.'s log Σ_j q(z_i|n_j) − log(NM): with the whole dataset as the batch it is the
    exact log q(z) − log N in every order; over sub-batches its density averages to
    (1/N)[(1/M) q(z|n*) + ((M − 1)/M) · mean of the other points' q(z|n)], not q(z) (their weights sum to 1/N)."""
    n, d = 5, 3
    mu, lv = posteriors(n, d, seed=6)
    zq = mu[1] + 0.2
    exact_joint, exact_dims = _exact_log_densities(zq, mu, lv)
    for order in ((0, 1, 2, 3, 4), (4, 1, 3, 0, 2)):
        idx = torch.tensor(order)
        z = mu[idx].clone()
        z[order.index(1)] = zq
        log_qz, log_qz_dims = aggregate_log_densities(z, mu[idx], lv[idx], n, "mws")
        assert float(log_qz[order.index(1)]) == pytest.approx(float(exact_joint) - math.log(n), abs=1e-12)
        assert torch.allclose(log_qz_dims[order.index(1)], exact_dims - math.log(n), atol=1e-12, rtol=0)
    m = 3
    joint, _ = _batch_average(mu, lv, zq, 1, m, "mws")
    own = DiagonalGaussian(mu, lv).log_prob(zq).exp()  # q(zq | n) for every n
    expected = (own[1] / m + (m - 1) / m * (own.sum() - own[1]) / (n - 1)) / n
    assert float(joint) == pytest.approx(float(expected), rel=1e-12)


def test_sub_batch_averages_approach_the_exact_log_density():
    """A larger dataset (N = 400) and random batches of 64: the MSS estimate of the density q(z_i),
    divided by the brute-force value, averages to 1 (unbiased); its log is a little low on average
    (Jensen's gap, under a tenth of a nat here)."""
    n, d, m = 400, 2, 64
    mu, lv = posteriors(n, d, seed=7, s=0.5)
    g = torch.Generator().manual_seed(8)
    zall = mu + (0.5 * lv).exp() * torch.randn(n, d, generator=g, dtype=F64)
    exact = torch.stack([_exact_log_densities(zall[i], mu, lv)[0] for i in range(n)])
    errs = []
    for _ in range(200):
        idx = torch.randperm(n, generator=g)[:m]
        log_qz, _ = aggregate_log_densities(zall[idx], mu[idx], lv[idx], n, "mss")
        errs.append(log_qz - exact[idx])
    errs = torch.cat(errs)
    assert abs(float(errs.exp().mean()) - 1.0) < 0.02, float(errs.exp().mean())
    assert -0.1 < float(errs.mean()) < 0.0, float(errs.mean())


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_total_correlation_is_near_zero_only_for_a_factorised_aggregate_posterior(estimator):
    v = build("beta-tcvae", estimator=estimator)
    n = 1000
    offset = (2 - 1) * math.log(n) if estimator == "mws" else 0.0  # MWS's documented constant
    tcs = {}
    for rho in (0.0, 0.9):
        cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=F64)
        mu, lv = posteriors(n, 2, seed=9, cov=cov, s=0.3)
        q = DiagonalGaussian(mu, lv)
        z = q.rsample(generator=torch.Generator().manual_seed(10))
        tcs[rho] = float(v.decomposition(q, z, n)["tc"]) - offset
    r = 0.9 / 1.09  # the aggregate posterior ≈ N(0, cov + 0.09 I): TC = −½ log(1 − r²)
    assert abs(tcs[0.0]) < 0.05, tcs
    assert tcs[0.9] > 0.4 and tcs[0.9] == pytest.approx(-0.5 * math.log(1 - r * r), abs=0.1), tcs


def test_dataset_size_comes_from_the_batch():
    v = build("beta-tcvae")
    batch = tiny_batch()
    _, big = loss_at(v, batch)
    _, small = loss_at(v, {**batch, "dataset_size": 16})
    assert float(big["tc"]) != float(small["tc"])
    _, missing = loss_at(v, {k: t for k, t in batch.items() if k != "dataset_size"})
    _, whole = loss_at(v, {**batch, "dataset_size": batch["x"].shape[0]})
    assert missing == whole  # a batch without the size is taken for the whole dataset


# ----- FactorVAE -------------------------------------------------------------------------------------
def test_factor_vae_defaults():
    v = vaelab.build("factor-vae", backbone="small")
    c = v.config
    assert (c.gamma, c.disc_hidden, c.disc_layers, c.disc_lr, tuple(c.disc_betas)) == (35.0, 1000, 6, 1e-4, (0.5, 0.9))
    linears = [m for m in v.discriminator if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 1000)] + [(1000, 1000)] * 5 + [(1000, 2)]
    assert all(m.negative_slope == 0.2 for m in v.discriminator if isinstance(m, nn.LeakyReLU))
    opts = v.configure_optimizers("train", make_optimizer_factory(TrainConfig(lr=1e-3)))
    assert opts["disc"].defaults["lr"] == 1e-4 and opts["disc"].defaults["betas"] == (0.5, 0.9)
    assert opts["model"].defaults["lr"] == 1e-3 and opts["model"].defaults["betas"] == (0.9, 0.999)


def test_permute_dims_keeps_each_marginal_and_destroys_correlation():
    g = torch.Generator().manual_seed(11)
    z = torch.randn(4000, 1, generator=g, dtype=F64)
    z = torch.cat([z, 0.99 * z + 0.1 * torch.randn(4000, 1, generator=g, dtype=F64), torch.randn(4000, 1, generator=g, dtype=F64)], 1)
    p = permute_dims(z, torch.Generator().manual_seed(12))
    assert p.shape == z.shape
    for j in range(3):
        assert torch.equal(p[:, j].sort().values, z[:, j].sort().values)  # the same multiset per column
        assert not torch.equal(p[:, j], z[:, j])
    assert float(torch.corrcoef(z.T)[0, 1]) > 0.99
    assert abs(float(torch.corrcoef(p.T)[0, 1])) < 0.05
    again = permute_dims(z, torch.Generator().manual_seed(12))
    assert torch.equal(p, again)  # seeded: deterministic
    zz = z[:5].clone().requires_grad_()
    permute_dims(zz).sum().backward()
    assert torch.equal(zz.grad, torch.ones_like(zz))  # each entry used once: gradients pass through
    with pytest.raises(ValueError, match="permute_dims"):
        permute_dims(torch.zeros(3))


class GaussianRatio(nn.Module):
    """A fixed "perfect" discriminator for codes of N(0, Σ): logits (log q(z), Σ_j log q(z_j))."""

    def __init__(self, cov):
        super().__init__()
        self.joint = torch.distributions.MultivariateNormal(torch.zeros(cov.shape[0], dtype=F64), cov)
        self.sd = cov.diagonal().sqrt()

    def forward(self, z):
        marg = torch.distributions.Normal(torch.zeros_like(self.sd), self.sd).log_prob(z).sum(-1)
        return torch.stack([self.joint.log_prob(z), marg], -1)


def test_tc_estimate_is_the_density_ratio_identity():
    """With the Bayes-optimal discriminator of a known Gaussian q(z), E[logit_real − logit_perm] over
    codes of q(z) is the closed-form total correlation −½ log det corr(Σ)."""
    v = build("factor-vae")
    rho = 0.8
    cov = torch.tensor([[1.0, rho, 0.0], [rho, 1.0, 0.0], [0.0, 0.0, 2.0]], dtype=F64)
    v.discriminator = GaussianRatio(cov)
    z = torch.randn(40000, 3, generator=torch.Generator().manual_seed(13), dtype=F64) @ torch.linalg.cholesky(cov).T
    logits = v.discriminator(z)
    tc = v.tc_estimate(z)
    assert torch.equal(tc, (logits[:, 0] - logits[:, 1]).mean())
    assert float(tc) == pytest.approx(-0.5 * math.log(1 - rho * rho), abs=0.01)
    # codes of the product of marginals (permuted) give ≈ −TC: log q̄/q on average is −KL(q̄ ‖ q) < 0
    assert float(v.tc_estimate(permute_dims(z, torch.Generator().manual_seed(14)))) < -0.3


def test_gamma_enters_the_vae_loss():
    batch = tiny_batch()
    t1, terms = loss_at(build("factor-vae", gamma=35.0), batch)
    t2, _ = loss_at(build("factor-vae", gamma=45.0), batch)
    assert float((t2 - t1).detach()) == pytest.approx(10.0 * float(terms["tc"]), rel=1e-4, abs=1e-5)
    assert float(terms["loss"]) == pytest.approx(float(terms["recon"] + terms["kl"] + 35.0 * terms["tc"]), rel=1e-6)
    assert {"loss", "recon", "kl", "tc", "disc"} == set(terms)


class Recorder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, 2)
        self.seen = []

    def forward(self, z):
        self.seen.append(z.detach().clone())
        return self.lin(z)


def test_discriminator_sees_the_first_half_and_the_permuted_second_half():
    v = build("factor-vae")
    v.discriminator = Recorder(4)
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(15))
    v.discriminator_loss(z.requires_grad_())
    real, fake = v.discriminator.seen
    assert torch.equal(real, z[:4].detach())
    for j in range(4):
        assert torch.equal(fake[:, j].sort().values, z[4:, j].detach().sort().values)


def test_train_step_updates_the_vae_without_moving_the_discriminator_and_then_the_discriminator():
    v = build("factor-vae")
    opts = v.configure_optimizers("train", make_optimizer_factory(TrainConfig(lr=1e-3)))
    disc0 = [p.detach().clone() for p in v.discriminator.parameters()]
    enc0 = [p.detach().clone() for p in v.encoder.parameters()]
    opts["disc"].step = lambda *a, **k: None  # the discriminator's own update skipped
    torch.manual_seed(1)
    terms = v.train_step(tiny_batch(), 0, opts, "train")
    assert all(torch.equal(a, b) for a, b in zip(disc0, v.discriminator.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(enc0, v.encoder.parameters()))
    assert all(p.grad is not None for p in v.discriminator.parameters())  # its gradient was taken
    assert {"loss", "recon", "kl", "tc", "disc"} == set(terms)


# ----- DIP-VAE ---------------------------------------------------------------------------------------
def test_dip_vae_defaults():
    assert build("dip-vae").lambda_d() == 100.0 and build("dip-vae").config.lambda_od == 10.0
    assert build("dip-vae", mode="ii").lambda_d() == 10.0
    assert build("dip-vae", mode="ii", lambda_d=3.0).lambda_d() == 3.0


def _numpy_penalty(c, lod, ld):
    return lod * float(((c - np.diag(np.diag(c))) ** 2).sum()) + ld * float(((np.diag(c) - 1) ** 2).sum())


@pytest.mark.parametrize("mode", ["i", "ii"])
def test_covariance_penalty_matches_numpy(mode):
    mu, lv = posteriors(32, 4, seed=16)
    v = build("dip-vae", mode=mode, lambda_od=3.0, lambda_d=7.0)
    c = np.cov(mu.numpy(), rowvar=False, bias=True)
    if mode == "ii":
        c = c + np.diag(np.exp(lv.numpy()).mean(0))
    got = v.covariance(DiagonalGaussian(mu, lv))
    assert got.dtype == F64 and np.allclose(got.numpy(), c, rtol=1e-12, atol=1e-14)
    q = DiagonalGaussian(mu, lv)
    reg, terms = v.regularizer(q, mu, {}, 0)
    assert float(terms["dip"]) == pytest.approx(_numpy_penalty(c, 3.0, 7.0), rel=1e-12)
    assert float(reg) == pytest.approx(float(terms["kl"] + terms["dip"]), rel=1e-12)
    assert float(terms["kl"]) == pytest.approx(float(q.kl(StandardNormal(4)).mean()), rel=1e-12)


def test_penalty_is_zero_at_identity_covariance():
    mu, _ = posteriors(40, 4, seed=17)
    mu = mu - mu.mean(0)
    mu = mu @ torch.linalg.inv(torch.linalg.cholesky(mu.T @ mu / 40)).T  # Cov[μ] = I exactly (1/M form)
    v1 = build("dip-vae", mode="i")
    assert float(v1.regularizer(DiagonalGaussian(mu, torch.zeros_like(mu)), mu, {}, 0)[1]["dip"]) < 1e-24
    # mode ii: Cov[μ] = diag(1 − s²) and posterior variances s², so the aggregate covariance is I
    s2 = torch.tensor([0.1, 0.3, 0.5, 0.7], dtype=F64)
    mu2 = mu * (1 - s2).sqrt()
    v2 = build("dip-vae", mode="ii")
    dip = v2.regularizer(DiagonalGaussian(mu2, s2.log().expand_as(mu2)), mu2, {}, 0)[1]["dip"]
    assert float(dip) < 1e-24
    # mode i on the same batch is not zero: it penalises Cov[μ] = diag(1 − s²)
    assert float(v1.regularizer(DiagonalGaussian(mu2, s2.log().expand_as(mu2)), mu2, {}, 0)[1]["dip"]) > 1.0


@pytest.mark.parametrize("mode", ["i", "ii"])
def test_covariance_penalty_gradient_matches_finite_differences(mode):
    mu, lv = posteriors(6, 3, seed=18)
    mu, lv = mu.requires_grad_(), lv.requires_grad_()
    fn = lambda m, l: dip_penalty(aggregate_covariance(m, l if mode == "ii" else None), 2.0, 5.0)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (mu, lv))


def test_the_weights_enter_the_loss():
    """λ_d on the loss of a fresh model (its Cov[μ] is near 0, so Σ (C_ii − 1)² ≈ D); λ_od, whose
    off-diagonal entries are ~1e-8 there, on a float64 batch of correlated posteriors."""
    batch = tiny_batch()
    t1, terms = loss_at(build("dip-vae", lambda_d=5.0), batch)
    t2, _ = loss_at(build("dip-vae", lambda_d=7.0), batch)
    v = build("dip-vae")
    c = aggregate_covariance(v.encode(batch["x"]).loc.detach())
    assert float((t2 - t1).detach()) == pytest.approx(2.0 * float((c.diagonal() - 1).pow(2).sum()), rel=1e-4)
    assert {"loss", "recon", "kl", "dip"} == set(terms)
    cov = torch.full((4, 4), 0.5, dtype=F64) + 0.5 * torch.eye(4, dtype=F64)
    mu, lv = posteriors(64, 4, seed=19, cov=cov)
    q = DiagonalGaussian(mu, lv)
    r1, _ = build("dip-vae", lambda_od=10.0, lambda_d=1.0).regularizer(q, mu, {}, 0)
    r2, _ = build("dip-vae", lambda_od=12.0, lambda_d=1.0).regularizer(q, mu, {}, 0)
    c = aggregate_covariance(mu)
    assert float(r2 - r1) == pytest.approx(2.0 * float((c - torch.diag_embed(c.diagonal())).pow(2).sum()), rel=1e-12)
