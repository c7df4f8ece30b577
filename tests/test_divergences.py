"""Divergences (vaelab.losses.divergences): closed forms vs Monte-Carlo, gradients vs finite
differences, MMD properties, total correlation vs the Gaussian closed form."""
import math

import pytest
import torch

from vaelab.distributions import DiagonalGaussian, StandardNormal
from vaelab.losses.divergences import (
    gaussian_log_density_matrix,
    imq_kernel,
    kl_decomposition,
    kl_monte_carlo,
    kl_normal_normal,
    kl_normal_std,
    mmd,
    rbf_kernel,
    squared_distances,
    total_correlation,
)

F64 = torch.float64


def gauss(b, d, seed, dtype=F64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, d, generator=g, dtype=dtype) * scale,
            torch.randn(b, d, generator=g, dtype=dtype) * scale)


# ----- KL --------------------------------------------------------------------------------------------
def test_kl_of_a_distribution_with_itself_is_zero():
    mu, lv = gauss(16, 5, 0)
    assert torch.equal(kl_normal_normal(mu, lv, mu, lv), torch.zeros(16, dtype=F64))
    assert torch.equal(kl_normal_std(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))
    q = DiagonalGaussian(mu, lv)
    assert torch.equal(kl_monte_carlo(q, q, n_samples=10), torch.zeros(16, dtype=F64))


@pytest.mark.parametrize("against", ["std", "gaussian"])
def test_analytic_kl_matches_monte_carlo_within_3_standard_errors(against):
    mu, lv = gauss(6, 4, 1, scale=0.7)
    q = DiagonalGaussian(mu, lv)
    if against == "std":
        p, exact = StandardNormal(4), kl_normal_std(mu, lv)
    else:
        mu2, lv2 = gauss(6, 4, 2, scale=0.7)
        p, exact = DiagonalGaussian(mu2, lv2), kl_normal_normal(mu, lv, mu2, lv2)
    n = 20000
    samples = kl_monte_carlo(q, p, n_samples=n, generator=torch.Generator().manual_seed(3), reduce=False)  # (n, B)
    est, se = samples.mean(0), samples.std(0) / math.sqrt(n)
    assert samples.shape == (n, 6)
    assert torch.all((est - exact).abs() < 3 * se), (est, exact, se)
    # and the reduced form is the mean of the per-sample values
    again = kl_monte_carlo(q, p, n_samples=n, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(again, est)


def test_monte_carlo_kl_takes_any_distribution_objects():
    from torch.distributions import Independent, Laplace, Normal

    mu, lv = gauss(3, 2, 15, scale=0.5)
    q = Independent(Normal(mu, (0.5 * lv).exp()), 1)  # torch.distributions: rsample(sample_shape), no generator
    torch.manual_seed(0)
    est = kl_monte_carlo(q, StandardNormal(2), n_samples=40000, reduce=False)
    se = est.std(0) / math.sqrt(est.shape[0])
    assert torch.all((est.mean(0) - kl_normal_std(mu, lv)).abs() < 3 * se)
    # a pair without a closed form here (Gaussian ‖ Laplace) is still positive and finite
    kl = kl_monte_carlo(q, Independent(Laplace(torch.zeros(3, 2, dtype=F64), torch.ones(3, 2, dtype=F64)), 1), n_samples=1000)
    assert torch.isfinite(kl).all() and (kl > 0).all()


def test_kl_is_nonnegative_on_random_inputs():
    g = torch.Generator().manual_seed(4)
    mu1, lv1, mu2, lv2 = (torch.randn(5000, 3, generator=g) * 3 for _ in range(4))
    assert (kl_normal_normal(mu1, lv1, mu2, lv2) >= 0).all()
    assert (kl_normal_std(mu1, lv1) >= 0).all()


def test_analytic_kl_gradients_match_finite_differences():
    mu, lv = gauss(3, 4, 5)
    mu2, lv2 = gauss(3, 4, 6)
    args = [t.clone().requires_grad_() for t in (mu, lv, mu2, lv2)]
    assert torch.autograd.gradcheck(kl_normal_normal, args)
    assert torch.autograd.gradcheck(kl_normal_std, args[:2])


def test_kl_is_fp32_for_low_precision_inputs_and_keeps_float64():
    mu, lv = gauss(4, 3, 7, dtype=torch.float32)
    assert kl_normal_std(mu.bfloat16(), lv.bfloat16()).dtype == torch.float32
    assert kl_normal_std(mu.double(), lv.double()).dtype == torch.float64


# ----- MMD -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_unbiased_mmd_of_samples_from_one_distribution_has_mean_zero(kernel):
    g = torch.Generator().manual_seed(8)
    vals = torch.stack([mmd(torch.randn(50, 4, generator=g, dtype=F64), torch.randn(50, 4, generator=g, dtype=F64), kernel=kernel)
                        for _ in range(300)])
    se = vals.std() / math.sqrt(len(vals))
    assert vals.mean().abs() < 3 * se, (vals.mean(), se)
    assert (vals < 0).any()  # a genuine U-statistic, not a clamped one
    # the biased V-statistic is positive, and exactly zero for identical sets
    x = torch.randn(50, 4, generator=g, dtype=F64)
    assert mmd(x, torch.randn(50, 4, generator=g, dtype=F64), kernel=kernel, unbiased=False) > 0
    assert mmd(x, x, kernel=kernel, unbiased=False).abs() < 1e-12


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd_grows_monotonically_with_a_mean_shift(kernel, unbiased):
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    e = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    vals = [float(mmd(x, x + s * e, kernel=kernel, unbiased=unbiased)) for s in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(vals, vals[1:])), vals
    assert abs(vals[0]) < 0.02 * vals[-1]  # no shift: ≈ 0 (exactly 0 for the biased form)


@pytest.mark.parametrize("kernel", [rbf_kernel, imq_kernel, lambda a, b: rbf_kernel(a, b, bandwidth=(0.5, 2.0))])
def test_kernel_matrices_are_symmetric_positive_semidefinite(kernel):
    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(10), dtype=F64)
    k = kernel(x, x)
    assert k.shape == (60, 60)
    assert torch.equal(k, k.T)
    eig = torch.linalg.eigvalsh(k)
    assert eig.min() > -1e-10 * eig.max(), eig.min()


def test_kernel_values_match_their_formulas():
    x, y = torch.tensor([[0.0, 0.0]], dtype=F64), torch.tensor([[3.0, 4.0]], dtype=F64)  # ‖x − y‖² = 25
    assert squared_distances(x, y).item() == 25.0
    assert rbf_kernel(x, y, bandwidth=5.0).item() == pytest.approx(math.exp(-0.5))
    assert rbf_kernel(x, y).item() == pytest.approx(math.exp(-25 / 4))  # default s² = D = 2
    c = 2 * 2 * 1.0  # C = 2 D σ²
    assert imq_kernel(x, y, scales=(1.0,)).item() == pytest.approx(c / (c + 25))
    assert imq_kernel(x, y).item() == pytest.approx(sum(c * s / (c * s + 25) for s in (0.1, 0.2, 0.5, 1, 2, 5, 10)))


def test_mmd_runs_in_fp32_under_bf16_autocast_and_has_gradients():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(32, 8, generator=g).requires_grad_()
    y = torch.randn(32, 8, generator=g) + 0.5
    ref = mmd(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        val = mmd(x, y)
    assert val.dtype == torch.float32 and torch.allclose(val, ref)
    val.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_mmd_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(12)
    x = torch.randn(6, 2, generator=g, dtype=F64).requires_grad_()
    y = torch.randn(7, 2, generator=g, dtype=F64)
    assert torch.autograd.gradcheck(lambda a: mmd(a, y, kernel="imq"), (x,))
    assert torch.autograd.gradcheck(lambda a: mmd(a, y, kernel="rbf", unbiased=False), (x,))


# ----- Total correlation -----------------------------------------------------------------------------
def aggregate_posterior_batch(cov, n, s=0.3, seed=13):
    """A 'dataset' of n posteriors q(z|n) = N(μ_n, s² I), μ_n ~ N(0, cov): the aggregate posterior is
    ≈ N(0, cov + s² I). Returns z (one draw per posterior), μ, log σ², and the closed-form TC
    −½ log det corr(cov + s² I)."""
    g = torch.Generator().manual_seed(seed)
    d = cov.shape[0]
    mu = torch.randn(n, d, generator=g, dtype=F64) @ torch.linalg.cholesky(cov).T
    lv = torch.full_like(mu, 2 * math.log(s))
    z = mu + s * torch.randn(n, d, generator=g, dtype=F64)
    c = cov + s * s * torch.eye(d, dtype=F64)
    sd = c.diagonal().sqrt()
    return z, mu, lv, float(-0.5 * torch.logdet(c / sd[:, None] / sd[None, :]))


def test_total_correlation_of_independent_gaussian_latents_is_near_zero():
    z, mu, lv, exact = aggregate_posterior_batch(torch.eye(2, dtype=F64), 1000)
    assert exact == pytest.approx(0.0, abs=1e-12)
    assert abs(float(total_correlation(z, mu, lv, dataset_size=1000))) < 0.05
    # with more latents the kernel-density bias grows (positive, shrinking with N) but stays small
    z, mu, lv, _ = aggregate_posterior_batch(torch.eye(3, dtype=F64), 1000)
    assert 0 < float(total_correlation(z, mu, lv, dataset_size=1000)) < 0.12


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_total_correlation_matches_the_gaussian_closed_form(rho):
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=F64)
    z, mu, lv, exact = aggregate_posterior_batch(cov, 1000)
    tc = float(total_correlation(z, mu, lv, dataset_size=1000))
    assert tc == pytest.approx(exact, abs=0.05), (tc, exact)
    # minibatch weighted sampling carries the documented (D − 1)·log N offset and otherwise agrees
    mws = float(total_correlation(z, mu, lv, dataset_size=1000, estimator="mws"))
    assert mws - (2 - 1) * math.log(1000) == pytest.approx(exact, abs=0.05)


def test_total_correlation_grows_with_correlation():
    vals = []
    for rho in (0.0, 0.3, 0.6, 0.9):
        z, mu, lv, _ = aggregate_posterior_batch(torch.tensor([[1.0, rho], [rho, 1.0]], dtype=F64), 400)
        vals.append(float(total_correlation(z, mu, lv, dataset_size=400)))
    assert all(a < b for a, b in zip(vals, vals[1:])), vals


def test_kl_decomposition_terms_sum_to_the_kl_and_are_sensible():
    cov = torch.tensor([[1.0, 0.7], [0.7, 1.0]], dtype=F64)
    z, mu, lv, exact_tc = aggregate_posterior_batch(cov, 800)
    parts = kl_decomposition(z, mu, lv, dataset_size=800)
    total = parts["mi"] + parts["tc"] + parts["dwkl"]
    # the terms telescope to the Monte-Carlo KL E[log q(z|n) − log p(z)]: compare with the analytic mean KL
    per = DiagonalGaussian(mu, lv).log_prob(z) - StandardNormal(2).log_prob(z)
    assert torch.allclose(total, per.mean())
    assert abs(float(total - kl_normal_std(mu, lv).mean())) < 3 * float(per.std()) / math.sqrt(800)
    assert float(parts["tc"]) == pytest.approx(exact_tc, abs=0.06)
    assert float(parts["mi"]) > 0 and float(parts["dwkl"]) > 0


def test_stratified_weights_are_a_distribution_per_row():
    from vaelab.losses.divergences import _log_weights

    for m, n in ((2, 2), (5, 5), (8, 100), (64, 60000)):
        w = _log_weights(m, n, "mss", torch.zeros((), dtype=F64)).exp()
        assert torch.allclose(w.sum(1), torch.ones(m, dtype=F64))
        assert torch.allclose(w.diagonal(), torch.full((m,), 1.0 / n, dtype=F64))


def test_log_density_matrix_and_argument_errors():
    mu, lv = gauss(4, 3, 14)
    z = torch.randn(4, 3, dtype=F64)
    mat = gaussian_log_density_matrix(z, mu, lv)
    assert mat.shape == (4, 4, 3)
    assert torch.allclose(mat[2, 1].sum(), DiagonalGaussian(mu[1], lv[1]).log_prob(z[2]))
    with pytest.raises(ValueError, match="dataset_size"):
        total_correlation(z, mu, lv, dataset_size=2)
    with pytest.raises(ValueError, match="estimator"):
        total_correlation(z, mu, lv, dataset_size=10, estimator="nope")
    with pytest.raises(ValueError, match="at least 2"):
        mmd(z[:1], z)
