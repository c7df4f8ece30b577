"""The von Mises–Fisher distribution on the sphere S^{m−1} ⊂ R^m, and the uniform distribution on it.

vMF(z; μ, κ) = C_m(κ) exp(κ μᵀz),  C_m(κ) = κ^{m/2−1} / ((2π)^{m/2} I_{m/2−1}(κ))
(Davidson et al. 2018, eq. 1; the seed's eq. 42 writes (2π)² for (2π)^{m/2}). Mean resultant length
E[μᵀz] = A_m(κ) = I_{m/2}(κ) / I_{m/2−1}(κ).

KL(vMF(μ, κ) ‖ U(S^{m−1})) = κ A_m(κ) + log C_m(κ) + log(2π^{m/2} / Γ(m/2))
(Davidson et al. 2018, eq. 12 with Appendix B; the seed's eq. 48 flips the sign of the last term).

Sampling (``rsample``): Wood's (1994) rejection sampler for the component ω = μᵀz (the form of
Davidson et al. 2018, Algorithm 1/2, restated in EQUATIONS.md), a uniform tangent direction
v ~ U(S^{m−2}) and a Householder reflection taking e₁ to μ. The gradient is the reparameterised part
g_rep of Davidson et al. (2018, eq. 8; Naesseth et al. 2017): ω is differentiated in κ with the
accepted Beta proposal ε held fixed. That alone is biased (measured with f(z) = z₁², m = 3, κ = 0.5:
0.058 against the true dE f/dκ = 0.042; m = 11, κ = 50: 1.8% low); the authors' reference code uses
it alone. :meth:`VonMisesFisher.rsample_with_eps_log_prob` also returns the log density of the accepted
proposal, log π(ε | κ) = log g(h(ε, κ) | κ) + log |∂h/∂ε|, as a function of κ at the same fixed ε
(g(ω | κ) = |S^{m−2}| C_m(κ) e^{κω} (1 − ω²)^{(m−3)/2} is the density of ω = μᵀz,
h(ε, κ) = (1 − (1+b)ε) / (1 − (1−b)ε), ∂h/∂ε = −2b / (1 − (1−b)ε)²; it equals log(q/r) of Naesseth
et al. up to the κ-free log of the Beta density). Then ∇_κ E f(z) = E ∇_κ f(z) + E f(z) ∇_κ log π
(g_rep + g_cor: Naesseth et al. 2017, eqs. 6–8; Davidson et al. 2018, eq. 8), and E ∇_κ log π = 0,
so f may have any baseline that does not depend on that draw subtracted. The sampler itself is exact.

Numerics. One core (:func:`_bessel`, float64) returns log(I_v(κ) e^{−κ}), log ₀F₁(; v+1; κ²/4)
(= log I_v − v log(κ/2) + log Γ(v+1)), R = I_{v+1}/I_v and 1 − R, for any order v ≥ 0 and κ > 0,
without overflow or underflow (scipy's ``ive`` underflows to 0 for large orders at small κ, which is
why some S-VAE implementations return NaN at m = 128). It evaluates the uniform asymptotic (Debye)
expansion (DLMF 10.41.3, terms U₁…U₄ of 10.41.10) at an order v + n ≥ 50, where its truncation error is
~1e-12 or less, and carries the values down to v with the stable backward recurrence
R_{ν−1} = 1 / (2ν/κ + R_ν) (Perron's continued fraction started from an accurate tail); for small κ the
logs come from the power series of ₀F₁. Relative accuracy against 30-digit references is ≲ 1e-11 for
the logs and the ratio over κ ∈ [1e-3, 1e5], m ≤ 800 (tests/test_vmf.py).

The KL, entropy and log-density are written in two algebraically equal forms and switch at κ = m/2:
one without the log κ / ₀F₁ cancellation as κ → 0 (KL = κA − log ₀F₁, which → 0 correctly) and one
without O(κ) terms as κ → ∞ (using log I_v − κ and 1 − A). Gradients in κ are analytic (one custom
autograd function): d log I_v/dκ = R + v/κ, d log ₀F₁/dκ = R, dR/dκ = (1 − R)(1 + R) − (2v+1) R/κ, so
dKL/dκ = κ A′(κ) to ≲ 1e-10 relative (~1e-6 at κ = 1e5, where A′ ~ 1/κ² is a second-order difference).
Every computation runs in float64 with autocast disabled; results come back in the input's float
dtype (float32 for bf16 inputs).
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

#: The smallest order at which the uniform asymptotic expansion (four terms) is used directly.
_UAE_MIN_ORDER = 50
#: Beta proposals drawn per element and round of the rejection sampler (measured acceptance ≥ 0.65
#: over m ≤ 1000, κ ∈ [1e-3, 1e5], so one round leaves ≲ 2% of the elements for the next).
_PROPOSALS_PER_ROUND = 4


# ---------------------------------------------------------------------------------------------
# Bessel functions
def _uae_series(p: torch.Tensor, nu: float) -> torch.Tensor:
    """Σ_{k=1}^{4} U_k(p) / ν^k (the sum minus its leading 1), U_k the Debye polynomials of DLMF 10.41.10."""
    p2 = p * p
    u1 = p * (3.0 - 5.0 * p2) / 24.0
    u2 = p2 * (81.0 + p2 * (-462.0 + p2 * 385.0)) / 1152.0
    u3 = p * p2 * (30375.0 + p2 * (-369603.0 + p2 * (765765.0 - p2 * 425425.0))) / 414720.0
    u4 = p2 * p2 * (4465125.0 + p2 * (-94121676.0 + p2 * (349922430.0 + p2 * (-446185740.0 + p2 * 185910725.0))))
    u4 = u4 / 39813120.0
    return (u1 + (u2 + (u3 + u4 / nu) / nu) / nu) / nu


def _log_ive_uae(nu: float, x: torch.Tensor) -> torch.Tensor:
    """log(I_ν(x) e^{−x}) by the uniform asymptotic expansion in ν (DLMF 10.41.3); accurate for large ν
    and any x > 0. With s = √(ν² + x²): νη(x/ν) − x = ν²/(s + x) + ν log(x/(ν + s)), no cancellation."""
    s = torch.sqrt(nu * nu + x * x)
    return (nu * nu / (s + x) + nu * torch.log(x / (nu + s)) - 0.5 * math.log(2.0 * math.pi) - 0.5 * torch.log(s)
            + torch.log1p(_uae_series(nu / s, nu)))


def _log_ratio_uae(nu: float, x: torch.Tensor) -> torch.Tensor:
    """log(I_{ν+1}(x) / I_ν(x)) from the expansion, with the differences of large terms taken analytically
    (so that 1 − ratio keeps full relative precision when x ≫ ν)."""
    n1 = nu + 1.0
    s0 = torch.sqrt(nu * nu + x * x)
    s1 = torch.sqrt(n1 * n1 + x * x)
    d_s = (2.0 * nu + 1.0) / (s1 + s0)  # s1 − s0
    log_x_term = -torch.log1p((n1 + n1 * n1 / (s1 + x)) / x)  # log(x / (ν + 1 + s1))
    log_growth = torch.log1p((1.0 + d_s) / (nu + s0))  # log((ν + 1 + s1) / (ν + s0))
    log_s = 0.5 * torch.log1p((2.0 * nu + 1.0) / (s0 * s0))  # log(s1 / s0)
    return (d_s + log_x_term - nu * log_growth - 0.5 * log_s
            + torch.log1p(_uae_series(n1 / s1, n1)) - torch.log1p(_uae_series(nu / s0, nu)))


def _hyp0f1_series(v: float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(where the series is used, log ₀F₁(; v+1; x²/4) by its power series there). The series is used
    where x²/4 ≤ (v+1)/4: its term ratio is then ≤ 1/(4k), so 30 terms reach float64 precision."""
    y = x * x / 4.0
    small = y <= (v + 1.0) / 4.0
    ys = torch.where(small, y, torch.zeros_like(y))
    term, total = torch.ones_like(x), torch.zeros_like(x)
    for k in range(1, 30):
        term = term * ys / (k * (v + k))
        total = total + term
    return small, torch.log1p(total)


def _bessel(v: float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For float64 x > 0 and an order v ≥ 0: (log I_v(x) − x, log ₀F₁(; v+1; x²/4), R, 1 − R) with
    R = I_{v+1}(x) / I_v(x) and log ₀F₁(; v+1; x²/4) = log I_v(x) − v log(x/2) + log Γ(v+1).

    The expansion at order v + n ≥ 50, then the backward recurrence R_{ν−1} = 1 / (2ν/x + R_ν),
    1 − R_{ν−1} = (2ν/x − (1 − R_ν)) R_{ν−1}, both without cancellation. For small x (x² ≤ v + 1) the
    logs come from the power series instead, which keeps their relative precision as x → 0."""
    n = max(0, math.ceil(_UAE_MIN_ORDER - v))
    top = v + n
    log_ive = _log_ive_uae(top, x)
    log_r = _log_ratio_uae(top, x)
    r, d = torch.exp(log_r), -torch.expm1(log_r)
    log_prod = torch.zeros_like(x)
    for j in range(n, 0, -1):
        t = 2.0 * (v + j) / x
        r_new = 1.0 / (t + r)
        d = (t - d) * r_new
        r = r_new
        log_prod = log_prod + torch.log(r)
    log_ive = log_ive - log_prod  # log I_v = log I_top − Σ_{j<n} log R_{v+j}; the e^{−x} scale is shared
    small, log_hyp_series = _hyp0f1_series(v, x)
    log_scale = v * torch.log(x / 2.0) - math.lgamma(v + 1.0)  # log of the leading term (x/2)^v / Γ(v+1)
    log_hyp = torch.where(small, log_hyp_series, log_ive + x - log_scale)
    log_ive = torch.where(small, log_hyp_series + log_scale - x, log_ive)
    return log_ive, log_hyp, r, d


def _prepare(x: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    out_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return x.double().clamp_min(1e-300), out_dtype  # > 0; v/x stays finite in the gradients


class _Bessel(Function):
    """(log I_v − x, log ₀F₁, R, 1 − R) of x with analytic derivatives:
    d log I_v/dx = R + v/x, d log ₀F₁/dx = R, dR/dx = (1 − R)(1 + R) − (2v+1) R / x."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, v: float):
        out = _bessel(v, x)
        ctx.save_for_backward(x, out[2], out[3])
        ctx.v = v
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_log_ive, g_hyp, g_r, g_d):
        x, r, d = ctx.saved_tensors
        v = ctx.v
        dr = d * (1.0 + r) - (2.0 * v + 1.0) * r / x
        grad = torch.zeros_like(x)
        if g_log_ive is not None:
            grad = grad + g_log_ive * (v / x - d)
        if g_hyp is not None:
            grad = grad + g_hyp * r
        if g_r is not None:
            grad = grad + g_r * dr
        if g_d is not None:
            grad = grad - g_d * dr
        return grad, None


def _fp64():
    """No autocast: the Bessel/vMF arithmetic must not drop to bf16."""
    return torch.autocast("cpu", enabled=False)


def _check_order(v: float) -> float:
    v = float(v)
    if not v >= 0.0 or not math.isfinite(v):
        raise ValueError(f"Bessel order must be finite and >= 0, got {v}")
    return v


def _bessel_parts(v: float, x: torch.Tensor):
    return _Bessel.apply(x, v)


def log_bessel_iv(v: float, x: torch.Tensor) -> torch.Tensor:
    """log I_v(x), elementwise, for an order v ≥ 0 and x > 0 (x = 0 is treated as the smallest float)."""
    v = _check_order(v)
    with _fp64():
        xd, dt = _prepare(x)
        return (_bessel_parts(v, xd)[0] + xd).to(dt)


def log_bessel_ive(v: float, x: torch.Tensor) -> torch.Tensor:
    """log(I_v(x) e^{−x}): the log of scipy's exponentially scaled ``ive``, without its underflow."""
    v = _check_order(v)
    with _fp64():
        xd, dt = _prepare(x)
        return _bessel_parts(v, xd)[0].to(dt)


def bessel_ratio(v: float, x: torch.Tensor) -> torch.Tensor:
    """I_{v+1}(x) / I_v(x), elementwise, for v ≥ 0 and x > 0; in (0, 1)."""
    v = _check_order(v)
    with _fp64():
        xd, dt = _prepare(x)
        return _bessel_parts(v, xd)[2].to(dt)


def log_sphere_area(m: int) -> float:
    """log of the surface area of S^{m−1} ⊂ R^m: log(2 π^{m/2} / Γ(m/2))."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


# ---------------------------------------------------------------------------------------------
# Random numbers
@contextlib.contextmanager
def _rng_from(generator: torch.Generator | None):
    """Run a block on the global CPU RNG, or on a stream seeded from ``generator`` (for samplers such
    as torch's Gamma that take no generator), leaving the global RNG untouched in the latter case."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _beta_symmetric(alpha: float, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    """Beta(α, α) draws in float64 on the CPU, as G₁ / (G₁ + G₂) with G_i ~ Gamma(α)."""
    conc = torch.full((2, *shape), alpha, dtype=torch.float64)
    with _rng_from(generator):
        g = torch.distributions.Gamma(conc, torch.ones_like(conc), validate_args=False).sample()
    return g[0] / (g[0] + g[1]).clamp_min(torch.finfo(torch.float64).tiny)


# ---------------------------------------------------------------------------------------------
class HypersphericalUniform:
    """The uniform distribution on S^{m−1} ⊂ R^m (``dim`` = m, the ambient dimension)."""

    def __init__(self, dim: int):
        if dim < 2:
            raise ValueError(f"the sphere needs an ambient dimension >= 2, got {dim}")
        self.dim = dim

    def sample(self, n: int | tuple[int, ...], generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Normalised standard normal draws, shape (n, m) (or n + (m,) for a shape)."""
        shape = (n,) if isinstance(n, int) else tuple(n)
        x = torch.randn(*shape, self.dim, generator=generator)
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        return x if device is None else x.to(device)

    rsample = sample

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """−log |S^{m−1}| for every point (shape z.shape[:-1]), in float32 (or z's float64)."""
        dt = z.dtype if z.dtype == torch.float64 else torch.float32
        return torch.full(z.shape[:-1], -log_sphere_area(self.dim), dtype=dt, device=z.device)

    def entropy(self) -> torch.Tensor:
        return torch.tensor(log_sphere_area(self.dim))


class VonMisesFisher:
    """vMF(μ, κ) on S^{m−1}: ``loc`` μ (*B, m) unit vectors, ``scale`` κ (*B,) > 0.

    ``mean`` is the true expectation A_m(κ) μ (inside the ball); ``mode`` / ``loc`` is μ.
    Outputs are float32 unless the inputs are float64; internal arithmetic is float64.
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        if loc.dim() < 1 or loc.shape[-1] < 2:
            raise ValueError(f"loc must have a last (event) dim >= 2, got shape {tuple(loc.shape)}")
        if tuple(scale.shape) != tuple(loc.shape[:-1]):
            raise ValueError(f"scale must have the batch shape {tuple(loc.shape[:-1])} of loc, got {tuple(scale.shape)}")
        self.loc = loc
        self.scale = scale
        self.dim = loc.shape[-1]
        self.dtype = torch.float64 if loc.dtype == torch.float64 else torch.float32

    # ----- moments and constants ----------------------------------------------------------------
    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.loc.shape[:-1])

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def mean_resultant_length(self) -> torch.Tensor:
        """A_m(κ) = I_{m/2}(κ) / I_{m/2−1}(κ) = E[μᵀz], shape (*B,)."""
        with _fp64():
            return self._parts()[2].to(self.dtype)

    @property
    def mean(self) -> torch.Tensor:
        return self.mean_resultant_length.unsqueeze(-1) * self.loc.to(self.dtype)

    def _parts(self):
        """(log I_v(κ) − κ, log ₀F₁(; v+1; κ²/4), A, 1 − A) in float64, v = m/2 − 1."""
        return _bessel_parts(self.dim / 2 - 1, _prepare(self.scale)[0])

    def _branches(self) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """(κ, κ < v + 1, parts): each closed form below has a small-κ and a large-κ expression, each free
        of cancellation on its side (both are evaluated; ``torch.where`` picks)."""
        k = _prepare(self.scale)[0]
        return k, k < self.dim / 2, self._parts()

    def _log_norm_forms(self, k, parts) -> tuple[torch.Tensor, torch.Tensor]:
        """log C_m(κ) as (small-κ form, large-κ form + κ):
        small: v log 2 − (m/2) log 2π + log Γ(v+1) − log ₀F₁(; v+1; κ²/4)   (no log κ);
        large: log C_m(κ) + κ = v log κ − (m/2) log 2π − (log I_v(κ) − κ)      (no O(κ) terms)."""
        m, v = self.dim, self.dim / 2 - 1
        log_ive, log_hyp = parts[0], parts[1]
        small = v * math.log(2) - (m / 2) * math.log(2 * math.pi) + math.lgamma(v + 1) - log_hyp
        large = v * torch.log(k) - (m / 2) * math.log(2 * math.pi) - log_ive
        return small, large

    def _kl64(self) -> torch.Tensor:
        """KL to the uniform in float64:
        κ < v + 1:  κ A − log ₀F₁(; v+1; κ²/4)            (both terms → 0 with κ);
        otherwise:  −κ (1 − A) − (log I_v(κ) − κ) + v log(κ/2) − log Γ(v+1)  (no O(κ) terms)."""
        v = self.dim / 2 - 1
        k, is_small, (log_ive, log_hyp, a, d) = self._branches()
        small = k * a - log_hyp
        large = -k * d - log_ive + v * torch.log(k / 2) - math.lgamma(v + 1)
        return torch.where(is_small, small, large)

    def log_normalizer(self) -> torch.Tensor:
        """log C_m(κ), shape (*B,)."""
        with _fp64():
            k, is_small, parts = self._branches()
            small, large = self._log_norm_forms(k, parts)
            return torch.where(is_small, small, large - k).to(self.dtype)

    # ----- densities -------------------------------------------------------------------------------
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log C_m(κ) + κ μᵀz (for large κ as (log C_m(κ) + κ) + κ (μᵀz − 1)), summed over the event dim;
        leading sample dims of z broadcast."""
        with _fp64():
            dot = (self.loc.double() * z.double()).sum(-1)
            k, is_small, parts = self._branches()
            small, large = self._log_norm_forms(k, parts)
            return torch.where(is_small, small + k * dot, large + k * (dot - 1)).to(self.dtype)

    def entropy(self) -> torch.Tensor:
        """H = −κ A_m(κ) − log C_m(κ) = log |S^{m−1}| − KL(q ‖ U), shape (*B,)."""
        with _fp64():
            return (log_sphere_area(self.dim) - self._kl64()).to(self.dtype)

    def kl(self, other: HypersphericalUniform) -> torch.Tensor:
        """KL(vMF(μ, κ) ‖ U(S^{m−1})) = κ A_m(κ) + log C_m(κ) + log |S^{m−1}|, shape (*B,)
        (Davidson et al. 2018, eq. 12 / Appendix B). Depends on κ only."""
        if not isinstance(other, HypersphericalUniform) or other.dim != self.dim:
            raise NotImplementedError(f"KL(vMF ‖ {type(other).__name__}) has no closed form here")
        with _fp64():
            return self._kl64().to(self.dtype)

    # ----- sampling --------------------------------------------------------------------------------
    def _accepted_eps(self, shape: tuple[int, ...], b: torch.Tensor, a: torch.Tensor, d: torch.Tensor,
                      generator: torch.Generator | None) -> torch.Tensor:
        """Wood's (1994) rejection step, vectorised: the first accepted Beta proposal ε per element.

        Every round draws proposals for all elements (accepted or not), so each element's stream of
        proposals does not depend on the others, and the result is a deterministic function of the
        RNG state and (b, a, d)."""
        m1 = self.dim - 1
        eps = torch.full(shape, 0.5, dtype=torch.float64)
        done = torch.zeros(shape, dtype=torch.bool)
        n_prop = _PROPOSALS_PER_ROUND
        while not bool(done.all()):
            e = _beta_symmetric(m1 / 2, (n_prop, *shape), generator)  # (P, *shape)
            u = torch.rand((n_prop, *shape), dtype=torch.float64, generator=generator)
            t = 2 * a * b / (1 - (1 - b) * e)
            ok = m1 * torch.log(t) - t + d >= torch.log(u)
            first = ok.to(torch.uint8).argmax(0, keepdim=True)  # the first accepted proposal
            take = ok.any(0) & ~done
            eps = torch.where(take, e.gather(0, first).squeeze(0), eps)
            done = done | take
        return eps

    def rsample(self, sample_shape: tuple[int, ...] | torch.Size = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draws, shape sample_shape + (*B, m), on the unit sphere.

        Gradients reach μ (through the Householder reflection) and κ (through ω(ε, κ) with the accepted
        ε fixed: g_rep of Davidson et al. 2018)."""
        with _fp64():
            return self._rsample64(tuple(sample_shape), generator)[0].to(self.dtype)

    def rsample_with_eps_log_prob(self, sample_shape: tuple[int, ...] | torch.Size = (),
                                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log π(ε | κ)): the draws of :meth:`rsample` (the same ones for the same RNG state) and the
        log density of each accepted proposal ε, shape sample_shape + (*B,), differentiable in κ with ε
        fixed. f(z).detach() · ∇_κ log π(ε | κ) is the correction g_cor that makes the pathwise
        gradient of E f(z) unbiased (module docstring)."""
        with _fp64():
            z, (k, b, eps) = self._rsample64(tuple(sample_shape), generator)
            return z.to(self.dtype), self._log_eps_density64(k, b, eps).to(self.dtype)

    def log_eps_density(self, eps: torch.Tensor) -> torch.Tensor:
        """log π(ε | κ) for ε ∈ (0, 1) (broadcast against the batch shape): the density of the proposal
        that Wood's sampler accepts, π(ε | κ) = g(h(ε, κ) | κ) |∂h/∂ε|, g the density of ω = μᵀz."""
        with _fp64():
            k = self.scale.double()
            m1 = self.dim - 1
            return self._log_eps_density64(k, m1 / (2 * k + torch.sqrt(4 * k * k + m1 * m1)), eps.double()).to(self.dtype)

    def _log_eps_density64(self, k_draw: torch.Tensor, b: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """log g(ω | κ) + log |∂h/∂ε| with ω = h(ε, κ), g(ω | κ) = |S^{m−2}| C_m(κ) e^{κω} (1 − ω²)^{(m−3)/2}."""
        m = self.dim
        tiny = torch.finfo(torch.float64).tiny
        den = 1 - (1 - b) * eps
        one_minus_w = 2 * b * eps / den
        k, is_small, parts = self._branches()  # (*B,): the Bessel parts once per batch element
        small, large = self._log_norm_forms(k, parts)
        # log C_m(κ) + κω, the large-κ side as (log C_m(κ) + κ) − κ(1 − ω) (no O(κ) terms)
        log_g = torch.where(is_small, small + k_draw * (1 - one_minus_w), large - k_draw * one_minus_w)
        log_g = log_g + (m - 3) / 2 * torch.log((one_minus_w * (2 - one_minus_w)).clamp_min(tiny)) + log_sphere_area(m - 1)
        return log_g + torch.log(2 * b) - 2 * torch.log(den)  # + log |∂h/∂ε|, ∂h/∂ε = −2b / (1 − (1−b)ε)²

    def _rsample64(self, sample_shape: tuple[int, ...], generator: torch.Generator | None):
        """(z, (κ, b, ε)) in float64, each of shape sample_shape + (*B,) (z with (m,) more); ε is detached."""
        m, m1 = self.dim, self.dim - 1
        dev = self.loc.device
        shape = sample_shape + self.batch_shape
        mu = self.loc.double()
        k = self.scale.double().expand(shape)
        root = torch.sqrt(4 * k * k + m1 * m1)
        b = m1 / (2 * k + root)  # the rationalised form of (−2κ + √(4κ² + (m−1)²)) / (m−1)
        with torch.no_grad():
            a = (m1 + 2 * k + root) / 4
            d = 4 * a * b / (1 + b) - m1 * math.log(m1)
            eps = self._accepted_eps(shape, b.cpu(), a.cpu(), d.cpu(), generator).to(dev)
        den = 1 - (1 - b) * eps
        one_minus_w = 2 * b * eps / den  # 1 − ω, without cancellation when ω ≈ 1
        w = 1 - one_minus_w
        sin = torch.sqrt((one_minus_w * (2 - one_minus_w)).clamp_min(torch.finfo(torch.float64).tiny))  # √(1 − ω²)
        v = torch.randn(*shape, m1, dtype=torch.float64, generator=generator).to(dev)
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        z0 = torch.cat([w.unsqueeze(-1), sin.unsqueeze(-1) * v], -1)  # a draw around e₁
        # Householder reflection H = I − 2uuᵀ/uᵀu, u = e₁ − μ, maps e₁ to μ. When μ = e₁ (u = 0) any
        # orthogonal map fixing e₁ gives the same law (v is isotropic); reflect along e₂ then.
        e1 = torch.zeros(m, dtype=torch.float64, device=dev)
        e1[0] = 1.0
        u = e1 - mu
        uu = (u * u).sum(-1, keepdim=True)
        fallback = torch.zeros_like(u)
        fallback[..., 1] = 1.0
        degenerate = uu < 1e-20
        u = torch.where(degenerate, fallback, u)
        uu = torch.where(degenerate, torch.ones_like(uu), uu)
        return z0 - 2 * u * (u * z0).sum(-1, keepdim=True) / uu, (k, b, eps)

    def sample(self, sample_shape: tuple[int, ...] | torch.Size = (), generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator)
