"""The von Mises–Fisher distribution on the sphere S^{m−1} ⊂ R^m, and the uniform distribution on it.

vMF(z; μ, κ) = C_m(κ) exp(κ μᵀz),  C_m(κ) = κ^{m/2−1} / ((2π)^{m/2} I_{m/2−1}(κ))
(Davidson et al. 2018, eq. 1; the seed's eq. 42 writes (2π)² for (2π)^{m/2}). Mean resultant length
E[μᵀz] = A_m(κ) = I_{m/2}(κ) / I_{m/2−1}(κ).

KL(vMF(μ, κ) ‖ U(S^{m−1})) = κ A_m(κ) + log C_m(κ) + log(2π^{m/2} / Γ(m/2))
(Davidson et al. 2018, eq. 12 with Appendix B; the seed's eq. 48 flips the sign of the last term).

Sampling (``rsample``): Wood's (1994) rejection sampler for the component ω = μᵀz (the form of
Davidson et al. 2018, Algorithm 1/2, restated in docs/equations.md, "Hyperspherical VAE"), a uniform tangent direction
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

Numerics. The Bessel functions (log I_v(κ) − κ, log ₀F₁(; v+1; κ²/4), A = I_{v+1}/I_v and 1 − A,
for any order and κ > 0, without overflow or underflow, with analytic gradients) come from
:mod:`vaelab.distributions.bessel`; its names are re-exported here.

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

from .. import rng
from .base import Centred, KLNotImplementedError, Located, SampleShape, as_sample_shape, register_kl
from .bessel import (  # noqa: F401 - re-exported: tests and callers import them from here
    _bessel_parts,
    _fp64,
    _prepare,
    bessel_ratio,
    log_bessel_iv,
    log_bessel_ive,
    log_sphere_area,
)

#: Beta proposals drawn per element and round of the rejection sampler (measured acceptance ≥ 0.65
#: over m ≤ 1000, κ ∈ [1e-3, 1e5], so one round leaves ≲ 2% of the elements for the next).
_PROPOSALS_PER_ROUND = 4


# ---------------------------------------------------------------------------------------------
# Random numbers
@contextlib.contextmanager
def _rng_from(generator: torch.Generator | None):
    """Run a block on the global CPU RNG, or on a stream seeded from ``generator`` (for samplers such
    as torch's Gamma that take no generator), leaving the global RNG untouched in the latter case."""
    if generator is None:
        yield
        return
    seed = int(rng.randint(0, 2**62, (), generator))
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
class HypersphericalUniform(Centred):
    """The uniform distribution on S^{m−1} ⊂ R^m (``dim`` = m, the ambient dimension); batch shape
    ``batch_shape`` (default empty: one shared prior)."""

    def __init__(self, dim: int, batch_shape: tuple[int, ...] | torch.Size = ()):
        if dim < 2:
            raise ValueError(f"the sphere needs an ambient dimension >= 2, got {dim}")
        super().__init__(dim, batch_shape)

    def rsample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Normalised standard normal draws, shape sample_shape + batch_shape + (m,); an int n means (n,)."""
        shape = as_sample_shape(sample_shape) + tuple(self._batch_shape)
        x = rng.randn((*shape, self.dim), generator, device)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-30)

    def sample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return self.rsample(sample_shape, generator=generator, device=device)  # no parameters: nothing to detach

    def expand(self, batch_shape: tuple[int, ...] | torch.Size) -> "HypersphericalUniform":
        return HypersphericalUniform(self.dim, batch_shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """−log |S^{m−1}| for every point (shape z.shape[:-1]), in float32 (or z's float64)."""
        dt = z.dtype if z.dtype == torch.float64 else torch.float32
        return torch.full(z.shape[:-1], -log_sphere_area(self.dim), dtype=dt, device=z.device)

    def entropy(self) -> torch.Tensor:
        return torch.full(tuple(self._batch_shape), log_sphere_area(self.dim))


class VonMisesFisher(Located):
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
            u = rng.rand((n_prop, *shape), generator, "cpu", torch.float64)
            t = 2 * a * b / (1 - (1 - b) * e)
            ok = m1 * torch.log(t) - t + d >= torch.log(u)
            first = ok.to(torch.uint8).argmax(0, keepdim=True)  # the first accepted proposal
            take = ok.any(0) & ~done
            eps = torch.where(take, e.gather(0, first).squeeze(0), eps)
            done = done | take
        return eps

    def rsample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draws, shape sample_shape + (*B, m), on the unit sphere (an int n means (n,)).

        Gradients reach μ (through the Householder reflection) and κ (through ω(ε, κ) with the accepted
        ε fixed: g_rep of Davidson et al. 2018)."""
        with _fp64():
            return self._rsample64(as_sample_shape(sample_shape), generator)[0].to(self.dtype)

    def rsample_with_eps_log_prob(self, sample_shape: SampleShape = (),
                                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log π(ε | κ)): the draws of :meth:`rsample` (the same ones for the same RNG state) and the
        log density of each accepted proposal ε, shape sample_shape + (*B,), differentiable in κ with ε
        fixed. f(z).detach() · ∇_κ log π(ε | κ) is the correction g_cor that makes the pathwise
        gradient of E f(z) unbiased (module docstring)."""
        with _fp64():
            z, (k, b, eps) = self._rsample64(as_sample_shape(sample_shape), generator)
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
        shape = tuple(sample_shape) + tuple(self.batch_shape)
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
        v = rng.randn((*shape, m1), generator, dev, torch.float64)
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

    def sample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator)


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p: VonMisesFisher, q: HypersphericalUniform) -> torch.Tensor:
    """KL(vMF(μ, κ) ‖ U(S^{m−1})) = κ A_m(κ) + log C_m(κ) + log |S^{m−1}|, shape (*B,)
    (Davidson et al. 2018, eq. 12 / Appendix B). Depends on κ only."""
    if q.dim != p.dim:
        raise KLNotImplementedError(f"KL(VonMisesFisher ‖ HypersphericalUniform): the vMF lives on S^{p.dim - 1}, "
                                    f"the uniform on S^{q.dim - 1}")
    with _fp64():
        return p._kl64().to(p.dtype)


__all__ = ["HypersphericalUniform", "VonMisesFisher", "bessel_ratio", "log_bessel_iv", "log_bessel_ive", "log_sphere_area"]
