"""The mixture-of-Gaussians prior: density, moments, sampling and responsibilities against
independent references (a grid integral, NumPy moment formulas, SciPy densities)."""
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from vaelab.distributions.mixture import GaussianMixturePrior, MixtureOfGaussians


def make_mixture(K=3, D=2, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*batch, K, generator=g)
    loc = 2.0 * torch.randn(*batch, K, D, generator=g)
    logvar = 0.6 * torch.randn(*batch, K, D, generator=g) - 0.5
    return MixtureOfGaussians(torch.log_softmax(logits, -1), loc, logvar)


def numpy_moments(m: MixtureOfGaussians):
    pi = m.weights.double().numpy()
    mu = m.loc.double().numpy()
    var = m.logvar.exp().double().numpy()
    mean = (pi[:, None] * mu).sum(0)
    cov = sum(pi[k] * (np.diag(var[k]) + np.outer(mu[k] - mean, mu[k] - mean)) for k in range(len(pi)))
    return mean, cov


def scipy_log_joint(m: MixtureOfGaussians, z: np.ndarray) -> np.ndarray:
    pi = m.weights.double().numpy()
    mu = m.loc.double().numpy()
    var = m.logvar.exp().double().numpy()
    return np.stack([np.log(pi[k]) + multivariate_normal(mu[k], np.diag(var[k])).logpdf(z) for k in range(len(pi))], -1)


def test_log_prob_integrates_to_one_on_a_grid():
    m = make_mixture(K=3, D=2, seed=1)
    lo, hi, n = -12.0, 12.0, 801
    t = torch.linspace(lo, hi, n)
    zz = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1)  # (n, n, 2)
    dens = m.log_prob(zz).double().exp()
    h = (hi - lo) / (n - 1)
    total = torch.trapezoid(torch.trapezoid(dens, dx=h, dim=1), dx=h, dim=0)
    assert abs(float(total) - 1.0) < 1e-4


def test_log_prob_matches_scipy():
    m = make_mixture(K=4, D=3, seed=2)
    z = np.random.default_rng(0).normal(size=(50, 3)) * 3
    ref = np.logaddexp.reduce(scipy_log_joint(m, z), axis=-1)
    np.testing.assert_allclose(m.log_prob(torch.from_numpy(z).float()).numpy(), ref, rtol=1e-5, atol=1e-4)


def test_analytic_moments_match_numpy():
    m = make_mixture(K=3, D=2, seed=3)
    mean, cov = numpy_moments(m)
    np.testing.assert_allclose(m.mean.numpy(), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.covariance.numpy(), cov, rtol=1e-5, atol=1e-5)


def test_samples_match_mixture_mean_and_covariance():
    m = make_mixture(K=3, D=2, seed=4)
    mean, cov = numpy_moments(m)
    n = 200_000
    z, k = m.sample(n, generator=torch.Generator().manual_seed(0), return_components=True)
    assert z.shape == (n, 2) and k.shape == (n,)
    zs = z.double().numpy()
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(zs.mean(0) - mean) < 4 * se)
    # sample covariance: SE of each entry ≈ sqrt((Σ_ii Σ_jj + Σ_ij²)/n) for near-Gaussian data;
    # a mixture has heavier tails, so allow a generous 6 SE.
    emp = np.cov(zs, rowvar=False)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(emp - cov) < 6 * se_cov)
    # component frequencies match π
    freq = np.bincount(k.numpy(), minlength=3) / n
    pi = m.weights.double().numpy()
    assert np.all(np.abs(freq - pi) < 4 * np.sqrt(pi * (1 - pi) / n))


def test_responsibilities_sum_to_one_and_match_bayes_rule():
    m = make_mixture(K=4, D=3, seed=5)
    z = np.random.default_rng(1).normal(size=(100, 3)) * 2
    r = m.responsibilities(torch.from_numpy(z).float())
    assert r.shape == (100, 4)
    torch.testing.assert_close(r.sum(-1), torch.ones(100))
    lj = scipy_log_joint(m, z)
    bayes = np.exp(lj - np.logaddexp.reduce(lj, axis=-1, keepdims=True))
    np.testing.assert_allclose(r.numpy(), bayes, atol=1e-5)
    np.testing.assert_allclose(m.log_responsibilities(torch.from_numpy(z).float()).exp().numpy(), bayes, atol=1e-5)


def test_batched_mixture_matches_one_mixture_per_row():
    """Batch shape (B,) — one mixture per example, as GMVAE's p(z|w) — equals B separate mixtures."""
    mb = make_mixture(K=3, D=2, seed=6, batch=(5,))
    z = torch.randn(7, 5, 2, generator=torch.Generator().manual_seed(2))  # (samples, B, D)
    lp = mb.log_prob(z)
    r = mb.responsibilities(z)
    assert lp.shape == (7, 5) and r.shape == (7, 5, 3)
    for b in range(5):
        m = MixtureOfGaussians(mb.log_weights[b], mb.loc[b], mb.logvar[b])
        torch.testing.assert_close(lp[:, b], m.log_prob(z[:, b]))
        torch.testing.assert_close(r[:, b], m.responsibilities(z[:, b]))


def test_sample_given_draws_from_the_named_component():
    mb = make_mixture(K=3, D=2, seed=7, batch=(4,))
    n = 40_000
    k = torch.tensor([0, 2, 1, 2]).expand(n, 4)
    z = mb.sample_given(k, generator=torch.Generator().manual_seed(3))  # (n, 4, 2)
    for b, kb in enumerate([0, 2, 1, 2]):
        loc, var = mb.loc[b, kb], mb.logvar[b, kb].exp()
        assert torch.all((z[:, b].mean(0) - loc).abs() < 4 * (var / n).sqrt())
        assert torch.all((z[:, b].var(0) / var - 1).abs() < 0.05)


def test_component_kl_matches_monte_carlo():
    m = make_mixture(K=3, D=2, seed=8)
    q_loc, q_logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[-1.0, 0.3]])
    kl = m.component_kl(q_loc, q_logvar)[0]  # (K,)
    g = torch.Generator().manual_seed(4)
    z = q_loc + (0.5 * q_logvar).exp() * torch.randn(200_000, 2, generator=g)
    log_q = multivariate_normal(q_loc[0].numpy(), np.diag(q_logvar[0].exp().numpy())).logpdf(z.numpy())
    for k in range(3):
        log_p = multivariate_normal(m.loc[k].numpy(), np.diag(m.logvar[k].exp().numpy())).logpdf(z.numpy())
        d = log_q - log_p
        assert abs(d.mean() - float(kl[k])) < 3 * d.std() / np.sqrt(len(d))


def test_prior_module_parameterisation_and_set_parameters():
    torch.manual_seed(0)
    p = GaussianMixturePrior(4, 3)
    with torch.no_grad():
        p.logits.copy_(torch.tensor([5.0, -3.0, 0.0, 100.0]))
        p.logvar.fill_(-50.0)
    d = p.distribution()
    assert torch.all(d.weights >= 0) and abs(float(d.weights.detach().sum()) - 1) < 1e-6  # simplex whatever the logits
    assert torch.all(d.logvar.exp() > 0)
    w = torch.tensor([0.1, 0.2, 0.3, 0.4])
    mu = torch.arange(12.0).view(4, 3)
    var = torch.full((4, 3), 0.5)
    p.set_parameters(w, mu, var)
    d = p.distribution()
    torch.testing.assert_close(d.weights, w)
    torch.testing.assert_close(d.loc, mu)
    torch.testing.assert_close(d.logvar.exp(), var)
    z = p.sample(6, generator=torch.Generator().manual_seed(0))
    assert z.shape == (6, 3)
    zk = p.sample_component(2, 1000, generator=torch.Generator().manual_seed(0))
    assert torch.all((zk.mean(0) - mu[2]).abs() < 0.1)
    # gradients reach every parameter through log_prob
    p.log_prob(torch.randn(10, 3)).sum().backward()
    assert all(q.grad is not None and torch.isfinite(q.grad).all() for q in p.parameters())


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        MixtureOfGaussians(torch.zeros(3), torch.zeros(3, 2), torch.zeros(2, 2))
