"""What every disentanglement metric shares: the factor sampler's protocol, drawing factors and
representing their observations in batches, the checks of counts and codes."""
from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np

Represent = Callable[[np.ndarray], np.ndarray]

#: Default batch of observations per ``represent`` call.
BATCH_SIZE = 256


class FactorSampler(Protocol):
    """A ground-truth generative process with discrete factors (e.g. dSprites: sizes (3, 6, 40, 32, 32))."""

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """int64 (n, K), factor k uniform over range(factor_sizes[k])."""
        ...

    def sample_observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Observations (n, ...) as float32, one per row of ``factors``."""
        ...


# ----- sampling and representing ----------------------------------------------------------------------------

def _check_sampler(sampler: FactorSampler, metric: str) -> tuple[int, ...]:
    sizes = tuple(int(s) for s in sampler.factor_sizes)
    if len(sizes) < 2 or len(sizes) != len(sampler.factor_names):
        raise ValueError(f"{metric}: need at least 2 factors with one name each, got sizes {sizes} and names "
                         f"{tuple(sampler.factor_names)}")
    if min(sizes) < 2:
        raise ValueError(f"{metric}: every factor needs at least 2 values, got sizes {sizes}")
    return sizes


def _check_count(name: str, value: int, metric: str, minimum: int = 1) -> None:
    if int(value) != value or value < minimum:
        raise ValueError(f"{metric}: {name} must be an integer ≥ {minimum}, got {value!r}")


def _sample_factors(sampler: FactorSampler, n: int, rng: np.random.Generator, metric: str) -> np.ndarray:
    f = np.asarray(sampler.sample_factors(n, rng))
    k = len(sampler.factor_sizes)
    if f.shape != (n, k):
        raise ValueError(f"{metric}: sample_factors({n}) returned shape {f.shape}, expected {(n, k)}")
    return f.astype(np.int64, copy=False)


def _represent(represent: Represent, sampler: FactorSampler, factors: np.ndarray, rng: np.random.Generator,
               batch_size: int, metric: str) -> np.ndarray:
    """Codes (n, d) float64 of observations drawn for each row of ``factors``, ``batch_size`` rows at a time."""
    out: list[np.ndarray] = []
    for start in range(0, len(factors), batch_size):
        obs = sampler.sample_observations_from_factors(factors[start:start + batch_size], rng)
        out.append(_check_codes(represent(obs), len(obs), metric, out[0].shape[1] if out else None))
    return np.concatenate(out) if out else np.zeros((0, 0))


def _check_codes(z: Any, n: int, metric: str, d: int | None) -> np.ndarray:
    if hasattr(z, "detach"):
        z = z.detach().cpu().numpy()
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != n:
        raise ValueError(f"{metric}: represent must return an (n, d) array with one row per observation; "
                         f"got shape {z.shape} for {n} observations")
    if d is not None and z.shape[1] != d:
        raise ValueError(f"{metric}: represent returned {z.shape[1]} dimensions for one batch and {d} for another")
    if not np.isfinite(z).all():
        raise ValueError(f"{metric}: represent returned {int((~np.isfinite(z)).sum())} NaN or infinite values")
    return z


def _codes_and_factors(represent: Represent, sampler: FactorSampler, n: int, rng: np.random.Generator,
                       batch_size: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, d), factors (n, K)) for ``n`` independent draws."""
    f = _sample_factors(sampler, n, rng, metric)
    return _represent(represent, sampler, f, rng, batch_size, metric), f


def _seed(rng: np.random.Generator) -> int:
    """A scikit-learn ``random_state`` drawn from ``rng``."""
    return int(rng.integers(2**31 - 1))


