"""von Mises–Fisher distribution: Bessel functions, sampler moments, densities, KL and gradients."""
import math

import numpy as np
import pytest
import scipy.special as sp
import torch

from vaelab.distributions.vmf import HypersphericalUniform, VonMisesFisher, bessel_ratio, log_bessel_iv, log_sphere_area

D = torch.float64
ORDERS = [0.0, 0.5, 1.0, 1.5, 4.0, 9.5, 31.0, 49.5, 50.0, 63.0, 127.0, 127.5, 400.0]


def vmf(m, kappa, n=1, seed=0, dtype=D):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, m, generator=g, dtype=dtype)
    mu = mu / mu.norm(dim=-1, keepdim=True)
    return VonMisesFisher(mu, torch.full((n,), float(kappa), dtype=dtype))


# ----- Bessel functions -------------------------------------------------------------------------
@pytest.mark.parametrize("v", ORDERS)
def test_log_bessel_and_ratio_match_scipy(v):
    x = np.logspace(-3, 5, 41)
    ive_v, ive_v1 = sp.ive(v, x), sp.ive(v + 1, x)
    ok = (ive_v > 1e-280) & (ive_v1 > 1e-280)  # where scipy has not underflowed
    assert ok.sum() >= 10
    xt = torch.tensor(x[ok], dtype=D)
    ref_log = np.log(ive_v[ok]) + x[ok]
    ours = log_bessel_iv(v, xt).numpy()
    assert np.allclose(ours, ref_log, rtol=1e-10, atol=1e-10), np.abs(ours - ref_log).max()
    ref_ratio = ive_v1[ok] / ive_v[ok]
    assert np.allclose(bessel_ratio(v, xt).numpy(), ref_ratio, rtol=1e-9, atol=0)


@pytest.mark.parametrize("v,x", [(127.0, 1e-3), (127.0, 0.1), (255.0, 1.0), (1000.0, 5.0)])
def test_log_bessel_where_scipy_underflows(v, x):
    """scipy's ive underflows to 0 here (the S-VAE NaN of some libraries); ours matches the power series
    I_v(x) = Σ_k (x/2)^{2k+v} / (k! Γ(k+v+1)) summed in log space."""
    assert sp.ive(v, x) == 0.0
    k = np.arange(40)
    terms = (2 * k + v) * math.log(x / 2) - sp.gammaln(k + 1) - sp.gammaln(k + v + 1)
    ref = sp.logsumexp(terms)
    ours = float(log_bessel_iv(v, torch.tensor([x], dtype=D)))
    assert math.isfinite(ours) and abs(ours - ref) < 1e-10 * abs(ref)
    ref_ratio = math.exp(sp.logsumexp((2 * k + v + 1) * math.log(x / 2) - sp.gammaln(k + 1) - sp.gammaln(k + v + 2)) - ref)
    assert abs(float(bessel_ratio(v, torch.tensor([x], dtype=D))) / ref_ratio - 1) < 1e-9


def _mp_ratio_derivative(v, x):
    """d/dx I_{v+1}(x)/I_v(x) to ~40 digits (mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(40):
        return float(mpmath.diff(lambda t: mpmath.besseli(v + 1, t) / mpmath.besseli(v, t), mpmath.mpf(x)))


@pytest.mark.parametrize("v", [0.0, 0.5, 4.0, 63.0, 127.0])
def test_bessel_gradients(v):
    """d/dx log I_v against central differences; d/dx I_{v+1}/I_v against a 40-digit mpmath derivative
    (central differences of a ratio within 1e-5 of 1 cannot resolve it at large x)."""
    xs = [1e-2, 0.7, 3.0, 40.0, 800.0, 5e4]
    x = torch.tensor(xs, dtype=D, requires_grad=True)
    h = 1e-6 * x.detach()  # relative steps: log I_v(5e4) ≈ 5e4 defeats a fixed step
    (g,) = torch.autograd.grad(log_bessel_iv(v, x).sum(), x)
    fd = (log_bessel_iv(v, x.detach() + h) - log_bessel_iv(v, x.detach() - h)) / (2 * h)
    assert torch.allclose(g, fd, rtol=1e-7, atol=0), (g, fd)
    (g,) = torch.autograd.grad(bessel_ratio(v, x).sum(), x)
    ref = torch.tensor([_mp_ratio_derivative(v, xx) for xx in xs], dtype=D)
    assert torch.allclose(g, ref, rtol=1e-6, atol=0), (g, ref)


def test_bessel_float32_and_bf16_inputs():
    x = torch.tensor([0.5, 20.0, 3e4])
    assert log_bessel_iv(3.0, x).dtype == torch.float32
    assert bessel_ratio(3.0, x.bfloat16()).dtype == torch.float32
    ref = log_bessel_iv(3.0, x.double()).float()
    assert torch.allclose(log_bessel_iv(3.0, x), ref)
    with pytest.raises(ValueError):
        log_bessel_iv(-1.0, x)


# ----- sampler ----------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [2, 3, 10, 256])
@pytest.mark.parametrize("kappa", [1e-3, 1.0, 30.0, 1e3, 1e5])
def test_samples_unit_norm_and_moments(m, kappa):
    """E[μᵀz] = A_m(κ), E[(μᵀz)²] = 1 − (m−1) A_m(κ)/κ, E[z] = A_m(κ) μ (checks the reflection too)."""
    q = vmf(m, kappa, n=1, seed=m)
    n = 4000 if m < 256 else 1500
    z = q.rsample((n,), generator=torch.Generator().manual_seed(1))  # (n, 1, m)
    assert z.shape == (n, 1, m) and z.dtype == D
    assert torch.allclose(z.norm(dim=-1), torch.ones((), dtype=D), atol=1e-12)
    w = (z * q.loc).sum(-1).flatten()
    a = float(bessel_ratio(m / 2 - 1, torch.tensor(kappa, dtype=D)))
    se = float(w.std()) / math.sqrt(n)
    assert abs(float(w.mean()) - a) < 5 * se + 1e-12, (float(w.mean()), a, se)
    w2 = w**2
    assert abs(float(w2.mean()) - (1 - (m - 1) * a / kappa)) < 5 * float(w2.std()) / math.sqrt(n) + 1e-12
    zbar = z.mean(0).squeeze(0)
    tangent = zbar - (zbar @ q.loc[0]) * q.loc[0]
    sd = math.sqrt(max(1 - float(w2.mean()), 1e-30) / (m - 1) / n)  # per-coordinate s.e. of the tangent mean
    assert float(tangent.abs().max()) < 6 * sd + 1e-12


def test_sampler_deterministic_and_leaves_global_rng_alone():
    q = vmf(7, 3.0, n=5)
    state = torch.get_rng_state()
    a = q.rsample((3,), generator=torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state), "a generator-driven draw must not move the global RNG"
    b = q.rsample((3,), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    torch.manual_seed(9)
    c = q.rsample((3,))
    torch.manual_seed(9)
    assert torch.equal(c, q.rsample((3,)))
    assert not torch.equal(a, c)


def test_sample_at_mean_e1_and_float32():
    mu = torch.zeros(2, 5)
    mu[:, 0] = 1.0  # the Householder reflection's degenerate case
    q = VonMisesFisher(mu, torch.tensor([2.0, 50.0]))
    z = q.rsample((1000,), generator=torch.Generator().manual_seed(0))
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    a = bessel_ratio(1.5, torch.tensor([2.0, 50.0]))
    assert torch.allclose(z[..., 0].mean(0), a, atol=0.03)


# ----- densities and divergences ----------------------------------------------------------------
@pytest.mark.parametrize("kappa", [0.01, 0.5, 5.0, 60.0])
def test_log_prob_integrates_to_one_on_circle(kappa):
    q = vmf(2, kappa, seed=3)
    theta = torch.linspace(0, 2 * math.pi, 20001, dtype=D)[:-1]
    z = torch.stack([theta.cos(), theta.sin()], -1).unsqueeze(1)  # (T, 1, 2)
    total = q.log_prob(z).exp().sum() * (2 * math.pi / theta.numel())
    assert abs(float(total) - 1) < 1e-9


@pytest.mark.parametrize("kappa", [0.01, 0.5, 5.0, 60.0])
def test_log_prob_integrates_to_one_on_sphere(kappa):
    q = vmf(3, kappa, seed=4)
    n_t, n_p = 800, 400
    th = (torch.arange(n_t, dtype=D) + 0.5) * math.pi / n_t  # polar, midpoint rule
    ph = torch.arange(n_p, dtype=D) * 2 * math.pi / n_p
    T, P = torch.meshgrid(th, ph, indexing="ij")
    z = torch.stack([T.sin() * P.cos(), T.sin() * P.sin(), T.cos()], -1).reshape(-1, 1, 3)
    dens = q.log_prob(z).exp().reshape(n_t, n_p)
    total = (dens * T.sin()).sum() * (math.pi / n_t) * (2 * math.pi / n_p)
    assert abs(float(total) - 1) < 1e-4


def test_uniform_on_sphere():
    for m, area in [(2, 2 * math.pi), (3, 4 * math.pi), (4, 2 * math.pi**2)]:
        assert math.isclose(math.exp(log_sphere_area(m)), area, rel_tol=1e-12)
        u = HypersphericalUniform(m)
        z = u.sample(2000, generator=torch.Generator().manual_seed(0))
        assert z.shape == (2000, m) and torch.allclose(z.norm(dim=-1), torch.ones(()), atol=1e-6)
        assert z.mean(0).abs().max() < 5 / math.sqrt(2000)
        assert torch.allclose(u.log_prob(z), torch.full((2000,), -math.log(area)))
        # the uniform is the κ → 0 limit of the vMF
        assert torch.allclose(vmf(m, 1e-9).log_prob(z[:, None].double()), torch.full((2000, 1), -math.log(area), dtype=D))
    with pytest.raises(ValueError):
        HypersphericalUniform(1)


@pytest.mark.parametrize("m", [3, 10, 256])
@pytest.mark.parametrize("kappa", [0.5, 20.0, 1e3])
def test_kl_to_uniform_matches_monte_carlo(m, kappa):
    q = vmf(m, kappa, seed=5)
    u = HypersphericalUniform(m)
    z = q.rsample((4000,), generator=torch.Generator().manual_seed(2))
    lr = q.log_prob(z) - u.log_prob(z)  # (n, 1)
    kl = float(q.kl(u))
    assert abs(float(lr.mean()) - kl) < 5 * float(lr.std()) / math.sqrt(4000) + 1e-10
    assert torch.allclose(q.entropy(), u.entropy().double() - q.kl(u), atol=1e-9)  # H(q) = log|S| − KL


def test_kl_is_zero_at_kappa_zero_and_nonnegative():
    for m in [2, 3, 64, 256]:
        k = torch.logspace(-6, 5, 45, dtype=D)
        q = VonMisesFisher(torch.nn.functional.normalize(torch.ones(45, m, dtype=D), dim=-1), k)
        kl = q.kl(HypersphericalUniform(m))
        assert (kl >= -1e-12).all() and float(kl[0]) < 1e-9
        assert (kl.diff() > 0).all(), "KL to the uniform grows with κ"
        # small-κ expansion: KL ≈ κ² / (2m)
        assert abs(float(kl[0]) - 1e-12 / (2 * m)) < 1e-3 * 1e-12 / (2 * m) + 1e-13


@pytest.mark.parametrize("m", [2, 3, 10, 256])
def test_kl_gradient_matches_finite_differences(m):
    k = torch.tensor([1e-3, 0.5, 5.0, 300.0, 1e5], dtype=D, requires_grad=True)
    mu = torch.nn.functional.normalize(torch.ones(5, m, dtype=D), dim=-1)
    u = HypersphericalUniform(m)
    kl = VonMisesFisher(mu, k).kl(u)
    (g,) = torch.autograd.grad(kl.sum(), k)
    h = 1e-5 * k.detach()
    fd = (VonMisesFisher(mu, k.detach() + h).kl(u) - VonMisesFisher(mu, k.detach() - h).kl(u)) / (2 * h)
    assert torch.allclose(g, fd, rtol=1e-5, atol=1e-9), (g, fd)
    assert (g > 0).all()
    # dKL/dκ = κ A'(κ), against a 40-digit reference
    ref = torch.tensor([kk * _mp_ratio_derivative(m / 2 - 1, kk) for kk in k.tolist()], dtype=D)
    assert torch.allclose(g, ref, rtol=1e-6, atol=0), (g, ref)


@pytest.mark.parametrize("m,kappa", [(2, 0.7), (3, 4.0), (10, 30.0), (256, 50.0), (256, 2e4)])
def test_sample_gradient_matches_finite_differences(m, kappa):
    """With the random numbers fixed (same generator seed), the pathwise derivative of a sample-based
    objective in κ and in the unnormalised mean direction matches central differences."""
    c = torch.randn(4, m, generator=torch.Generator().manual_seed(1), dtype=D)
    raw = torch.randn(4, m, generator=torch.Generator().manual_seed(2), dtype=D)
    k0 = torch.full((4,), kappa, dtype=D)

    def objective(raw_mu, k):
        q = VonMisesFisher(torch.nn.functional.normalize(raw_mu, dim=-1), k)
        z = q.rsample((8,), generator=torch.Generator().manual_seed(3))
        return (torch.tanh(z) * c).sum()

    k = k0.clone().requires_grad_(True)
    r = raw.clone().requires_grad_(True)
    gk, gr = torch.autograd.grad(objective(r, k), (k, r))
    h = 1e-6 * kappa
    fd_k = torch.stack([(objective(raw, k0 + h * e) - objective(raw, k0 - h * e)) / (2 * h) for e in torch.eye(4, dtype=D)])
    assert torch.allclose(gk, fd_k, rtol=1e-4, atol=1e-8), (gk, fd_k)
    assert gk.abs().max() > 0
    i, j = 1, m - 1  # one coordinate of the direction is enough for a check
    e = torch.zeros_like(raw)
    e[i, j] = 1e-6
    fd_r = (objective(raw + e, k0) - objective(raw - e, k0)) / 2e-6
    assert abs(float(gr[i, j]) - float(fd_r)) < 1e-4 * max(1.0, abs(float(fd_r)))


def _mean_w2_derivative(m, kappa):
    """d/dκ E[ω²] for ω = μᵀz, from the density of ω on a fine grid (central difference)."""
    w = torch.linspace(-1, 1, 400001, dtype=D)[1:-1]

    def mean_w2(k):
        log_g = k * w + (m - 3) / 2 * torch.log1p(-w * w)
        p = torch.exp(log_g - log_g.max())
        return float((p * w * w).sum() / p.sum())
    h = 1e-4 * kappa
    return (mean_w2(kappa + h) - mean_w2(kappa - h)) / (2 * h)


@pytest.mark.parametrize("m,kappa", [(3, 0.5), (6, 1.0), (11, 50.0)])
def test_g_cor_makes_the_kappa_gradient_unbiased(m, kappa):
    """E[∇κ f(z)] alone (g_rep) is biased for a rejection sampler; adding f(z) ∇κ log π(ε | κ) (g_cor)
    gives the true dE f/dκ, and the score itself has mean 0 (so a baseline keeps it unbiased)."""
    n = 100_000
    q = vmf(m, kappa, n=1)
    k = torch.full((n,), kappa, dtype=D, requires_grad=True)
    q = VonMisesFisher(q.loc.expand(n, m), k)
    z, log_pi = q.rsample_with_eps_log_prob(generator=torch.Generator().manual_seed(1))
    f = ((z * q.loc).sum(-1)) ** 2
    g_rep, = torch.autograd.grad(f.sum(), k, retain_graph=True)
    score, = torch.autograd.grad(log_pi.sum(), k)
    full = g_rep + f.detach() * score
    true = _mean_w2_derivative(m, kappa)

    def se(t):
        return float(t.std()) / math.sqrt(n)
    assert abs(float(full.mean()) - true) < 4 * se(full), (float(full.mean()), true)
    assert abs(float(score.mean())) < 4 * se(score)
    assert abs(float(g_rep.mean()) - true) > 10 * se(g_rep), "g_rep alone is biased here (else the test proves nothing)"


def test_rsample_with_eps_log_prob_returns_the_same_draws():
    q = vmf(5, 3.0, n=6)
    z, log_pi = q.rsample_with_eps_log_prob((4,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(z, q.rsample((4,), generator=torch.Generator().manual_seed(7)))
    assert log_pi.shape == (4, 6) and torch.isfinite(log_pi).all()
    q32 = vmf(5, 3.0, n=6, dtype=torch.float32)
    assert q32.rsample_with_eps_log_prob()[1].dtype == torch.float32


@pytest.mark.parametrize("m,kappa", [(3, 0.5), (11, 5.49), (11, 5.51), (11, 500.0), (256, 50.0), (256, 2e4)])
def test_eps_density_integrates_to_one(m, kappa):
    """π(ε | κ) = g(h(ε, κ) | κ) |∂h/∂ε| is the density of the accepted proposal on (0, 1), on both sides
    of the κ = m/2 switch between the small- and large-κ forms."""
    q = vmf(m, kappa)
    n = 1_000_000
    eps = ((torch.arange(n, dtype=D) + 0.5) / n).unsqueeze(-1)
    assert float(torch.exp(q.log_eps_density(eps)).mean()) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("m", [2, 3, 5, 64, 128, 256])
def test_no_nan_or_inf_up_to_256_dims(m):
    k = torch.logspace(-3, 5, 9).requires_grad_(True)  # float32, as in training
    raw = torch.randn(9, m, requires_grad=True)
    q = VonMisesFisher(torch.nn.functional.normalize(raw, dim=-1), k)
    u = HypersphericalUniform(m)
    z = q.rsample((3,))
    vals = [q.kl(u), q.entropy(), q.log_prob(z), q.mean, z, q.log_normalizer()]
    for t in vals:
        assert t.dtype == torch.float32 and torch.isfinite(t).all()
    (q.kl(u).sum() + (z * torch.randn_like(z)).sum() + q.log_prob(z.detach()).sum()).backward()
    assert torch.isfinite(k.grad).all() and torch.isfinite(raw.grad).all()


def test_under_bf16_autocast_values_are_full_precision():
    q = vmf(16, 7.0, n=3, dtype=torch.float32)
    ref = q.kl(HypersphericalUniform(16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = q.kl(HypersphericalUniform(16))
    assert inside.dtype == torch.float32 and torch.equal(inside, ref)


def test_shape_errors():
    with pytest.raises(ValueError):
        VonMisesFisher(torch.ones(3, 4), torch.ones(3, 1))
    with pytest.raises(ValueError):
        VonMisesFisher(torch.ones(3, 1), torch.ones(3))
    with pytest.raises(NotImplementedError):
        vmf(3, 1.0).kl(HypersphericalUniform(4))
