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
accepted Beta proposal ε held fixed. The score-function correction g_cor is omitted, as in the
authors' reference code (they report it small); the sampler itself is exact.

Numerics. log I_v(κ) and the ratio I_{v+1}/I_v are computed in float64 for any v ≥ 0 and κ > 0
without overflow or underflow (scipy's ``ive`` underflows to 0 for large orders at small κ, which is
why some S-VAE implementations return NaN at m = 128): the uniform asymptotic (Debye) expansion
(DLMF 10.41.3, terms U₁…U₄ of 10.41.10) is used at an order ν₀ ≥ 50 where its truncation error is
below ~1e-12, and the stable backward recurrence R_{ν−1} = 1 / (2ν/κ + R_ν) (the continued fraction
of Gauss/Perron, started from the accurate ratio at ν₀) carries both down to v. Gradients in κ are
analytic (custom autograd functions): d/dκ log I_v = R_v + v/κ, dR_v/dκ = 1 − R_v² − (2v+1) R_v / κ.
Every computation here runs in float64 with autocast disabled; results come back in the input's
float dtype (float32 for bf16 inputs).
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

#: The smallest order at which the uniform asymptotic expansion (four terms) is used directly.
_UAE_MIN_ORDER = 50
#: Beta proposals drawn per element and round of the rejection sampler (acceptance is ≥ ~0.5 for
#: all (m, κ), so most rounds accept every element).
_PROPOSALS_PER_ROUND = 4


# ---------------------------------------------------------------------------------------------
# Bessel functions
def _uae_series(p: torch.Tensor, nu: float) -> torch.Tensor:
    """1 + Σ_{k=1}^{4} U_k(p) / ν^k, the Debye polynomials of DLMF 10.41.10."""
    p2 = p * p
    u1 = p * (3.0 - 5.0 * p2) / 24.0
    u2 = p2 * (81.0 + p2 * (-462.0 + p2 * 385.0)) / 1152.0
    u3 = p * p2 * (30375.0 + p2 * (-369603.0 + p2 * (765765.0 - p2 * 425425.0))) / 414720.0
    u4 = p2 * p2 * (4465125.0 + p2 * (-94121676.0 + p2 * (349922430.0 + p2 * (-446185740.0 + p2 * 185910725.0))))
    u4 = u4 / 39813120.0
    return 1.0 + (u1 + (u2 + (u3 + u4 / nu) / nu) / nu) / nu


def _log_iv_uae(nu: float, x: torch.Tensor) -> torch.Tensor:
    """log I_ν(x) by the uniform asymptotic expansion in ν (DLMF 10.41.3); accurate for large ν, any x > 0."""
    z = x / nu
    s = torch.sqrt(1.0 + z * z)
    eta = s + torch.log(z / (1.0 + s))
    return nu * eta - 0.5 * math.log(2.0 * math.pi * nu) - 0.5 * torch.log(s) + torch.log(_uae_series(1.0 / s, nu))


def _log_iv_and_ratio(v: float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log I_v(x), I_{v+1}(x) / I_v(x)) for a float64 tensor x > 0 and a scalar order v ≥ 0."""
    n = max(0, math.ceil(_UAE_MIN_ORDER - v))
    top = v + n
    log_top = _log_iv_uae(top, x)
    r = torch.exp(_log_iv_uae(top + 1.0, x) - log_top)  # R_top
    log_prod = torch.zeros_like(x)
    for j in range(n, 0, -1):  # R_{v+j−1} = 1 / (2(v+j)/x + R_{v+j})
        r = 1.0 / (2.0 * (v + j) / x + r)
        log_prod = log_prod + torch.log(r)
    return log_top - log_prod, r  # log I_v = log I_top − Σ_{j<n} log R_{v+j}


def _prepare(x: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    out_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return x.double().clamp_min(torch.finfo(torch.float64).tiny), out_dtype


class _LogBesselI(Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, v: float) -> torch.Tensor:
        log_iv, r = _log_iv_and_ratio(v, x)
        ctx.save_for_backward(x, r)
        ctx.v = v
        return log_iv

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, r = ctx.saved_tensors
        return grad * (r + ctx.v / x), None  # d/dx log I_v(x) = I_{v+1}/I_v + v/x


class _BesselRatio(Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, v: float) -> torch.Tensor:
        _, r = _log_iv_and_ratio(v, x)
        ctx.save_for_backward(x, r)
        ctx.v = v
        return r

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, r = ctx.saved_tensors
        return grad * (1.0 - r * r - (2.0 * ctx.v + 1.0) * r / x), None


def _fp64():
    """No autocast: the Bessel/vMF arithmetic must not drop to bf16."""
    return torch.autocast("cpu", enabled=False) if torch.is_autocast_enabled("cpu") else contextlib.nullcontext()


def _check_order(v: float) -> float:
    v = float(v)
    if not v >= 0.0 or not math.isfinite(v):
        raise ValueError(f"Bessel order must be finite and >= 0, got {v}")
    return v


def log_bessel_iv(v: float, x: torch.Tensor) -> torch.Tensor:
    """log I_v(x), elementwise, for an order v ≥ 0 and x > 0 (x = 0 is treated as the smallest float)."""
    v = _check_order(v)
    with _fp64():
        xd, dt = _prepare(x)
        return _LogBesselI.apply(xd, v).to(dt)


def bessel_ratio(v: float, x: torch.Tensor) -> torch.Tensor:
    """I_{v+1}(x) / I_v(x), elementwise, for v ≥ 0 and x > 0; in (0, 1)."""
    v = _check_order(v)
    with _fp64():
        xd, dt = _prepare(x)
        return _BesselRatio.apply(xd, v).to(dt)


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
        g = torch._standard_gamma(conc)
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
        return bessel_ratio(self.dim / 2 - 1, self.scale).to(self.dtype)

    @property
    def mean(self) -> torch.Tensor:
        return self.mean_resultant_length.unsqueeze(-1) * self.loc.to(self.dtype)

    def _log_normalizer64(self) -> torch.Tensor:
        m = self.dim
        k = self.scale.double()
        return (m / 2 - 1) * torch.log(k) - (m / 2) * math.log(2 * math.pi) - log_bessel_iv(m / 2 - 1, k)

    def log_normalizer(self) -> torch.Tensor:
        """log C_m(κ), shape (*B,)."""
        with _fp64():
            return self._log_normalizer64().to(self.dtype)

    # ----- densities -------------------------------------------------------------------------------
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log C_m(κ) + κ μᵀz, summed over the event dim; leading sample dims of z broadcast."""
        with _fp64():
            dot = (self.loc.double() * z.double()).sum(-1)
            return (self._log_normalizer64() + self.scale.double() * dot).to(self.dtype)

    def entropy(self) -> torch.Tensor:
        """H = −κ A_m(κ) − log C_m(κ), shape (*B,)."""
        with _fp64():
            k = self.scale.double()
            return (-k * bessel_ratio(self.dim / 2 - 1, k) - self._log_normalizer64()).to(self.dtype)

    def kl(self, other: HypersphericalUniform) -> torch.Tensor:
        """KL(vMF(μ, κ) ‖ U(S^{m−1})) = κ A_m(κ) + log C_m(κ) + log |S^{m−1}|, shape (*B,)
        (Davidson et al. 2018, eq. 12 / Appendix B). Depends on κ only."""
        if not isinstance(other, HypersphericalUniform) or other.dim != self.dim:
            raise NotImplementedError(f"KL(vMF ‖ {type(other).__name__}) has no closed form here")
        with _fp64():
            k = self.scale.double()
            kl = k * bessel_ratio(self.dim / 2 - 1, k) + self._log_normalizer64() + log_sphere_area(self.dim)
            return kl.to(self.dtype)

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
            return self._rsample64(tuple(sample_shape), generator).to(self.dtype)

    def _rsample64(self, sample_shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
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
        return z0 - 2 * u * (u * z0).sum(-1, keepdim=True) / uu

    def sample(self, sample_shape: tuple[int, ...] | torch.Size = (), generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator)
