"""The common interface of vaelab's distributions, and KL dispatch on (type(p), type(q)).

Every latent distribution (posterior or prior) derives from :class:`Distribution` and follows one
convention, that of ``torch.distributions``:

* ``batch_shape`` / ``event_shape``: a draw has shape ``sample_shape + batch_shape + event_shape``;
* ``rsample(sample_shape=(), generator=None)``: reparameterised draws (gradients reach the
  parameters); ``sample(sample_shape=(), generator=None)``: draws without gradient. ``sample_shape``
  is a tuple (or ``torch.Size``); a plain int ``n`` means ``(n,)``. Priors with an empty batch shape
  therefore draw ``sample((n,))`` → (n, D), and a posterior with batch shape (B,) draws
  ``rsample()`` → (B, D) or ``rsample((k,))`` → (k, B, D). Some add keyword arguments (``device=``; the
  Gaussians' ``share=``, the :class:`vaelab.share.BatchShare` whose noise a training draw takes);
* ``log_prob(z)``: the log density summed over the event dims, shape ``z.shape[:-len(event_shape)]``
  (leading sample dims of z broadcast against the batch shape);
* ``mean`` (and where defined ``entropy()``, ``mode``).

KL divergences are looked up, not branched on: ``@register_kl(P, Q)`` registers a closed form for
KL(p ‖ q) with p a ``P`` and q a ``Q``; :func:`kl` picks the most specific registered pair along both
classes' MROs, so a subclass inherits its parents' closed forms. A pair without one raises
:class:`KLNotImplementedError` (a ``NotImplementedError``) naming both classes, unless ``mc_samples``
asks for the Monte-Carlo estimate E_p[log p(z) − log q(z)], z ~ p (reparameterised, so it has a
pathwise gradient): :func:`vaelab.losses.divergences.kl_monte_carlo`.
"""
from __future__ import annotations

import operator
from typing import Callable, ClassVar, Sequence

import torch

from ..losses.divergences import kl_monte_carlo

SampleShape = int | Sequence[int] | torch.Size


def as_sample_shape(sample_shape: SampleShape) -> tuple[int, ...]:
    """``sample_shape`` as a tuple of ints; a single int n means (n,)."""
    if isinstance(sample_shape, torch.Tensor):
        sample_shape = sample_shape.tolist()
    try:
        return (operator.index(sample_shape),)
    except TypeError:
        pass
    try:
        return tuple(operator.index(s) for s in sample_shape)
    except TypeError:
        raise TypeError(f"sample_shape must be an int or a tuple of ints, got {sample_shape!r}") from None


class KLNotImplementedError(NotImplementedError):
    """No closed form of KL(p ‖ q) is registered for the pair of classes (and no Monte-Carlo fallback
    was asked for)."""


class Distribution:
    """Base class of vaelab's distributions (see the module docstring for the conventions).

    Subclasses implement ``rsample`` (or set ``has_rsample = False`` and override ``sample``),
    ``log_prob``, ``mean``, ``batch_shape`` and ``event_shape``."""

    #: Whether ``rsample`` gives reparameterised (differentiable) draws.
    has_rsample: ClassVar[bool] = True

    @property
    def batch_shape(self) -> torch.Size:
        raise NotImplementedError(f"{type(self).__name__} does not define batch_shape")

    @property
    def event_shape(self) -> torch.Size:
        raise NotImplementedError(f"{type(self).__name__} does not define event_shape")

    @property
    def mean(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no mean")

    def rsample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draws, shape sample_shape + batch_shape + event_shape."""
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sampler (rsample); use sample")

    def sample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws without gradient, shape sample_shape + batch_shape + event_shape (default: ``rsample``
        under ``torch.no_grad``, the same random numbers)."""
        if not self.has_rsample:
            raise NotImplementedError(f"{type(self).__name__} defines neither rsample nor sample")
        with torch.no_grad():
            return self.rsample(sample_shape, generator)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log density at z, summed over the event dims."""
        raise NotImplementedError(f"{type(self).__name__} has no log_prob")

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form entropy")

    def expand(self, batch_shape: Sequence[int]) -> "Distribution":
        """The same distribution with a larger batch shape (independent copies)."""
        raise NotImplementedError(f"{type(self).__name__} does not support expand")

    def kl(self, other: "Distribution", mc_samples: int | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
        """KL(self ‖ other): :func:`kl`."""
        return kl(self, other, mc_samples=mc_samples, generator=generator)

    def __repr__(self) -> str:
        try:
            shapes = f"batch_shape={tuple(self.batch_shape)}, event_shape={tuple(self.event_shape)}"
        except Exception:  # noqa: BLE001 - repr must not fail
            shapes = "?"
        return f"{type(self).__name__}({shapes})"


class Located(Distribution):
    """A distribution with a location parameter ``loc`` of shape batch_shape + (D,): its shapes are
    read from ``loc``, and its mean is ``loc`` unless a subclass says otherwise."""

    loc: torch.Tensor

    @property
    def batch_shape(self) -> torch.Size:
        return self.loc.shape[:-1]

    @property
    def event_shape(self) -> torch.Size:
        return self.loc.shape[-1:]

    @property
    def mean(self) -> torch.Tensor:
        return self.loc


class Centred(Distribution):
    """A parameter-free distribution on R^dim (or a sphere in it) with mean 0 and an optional batch
    shape (default empty: one shared prior)."""

    def __init__(self, dim: int, batch_shape: Sequence[int] = ()):
        self.dim = dim
        self._batch_shape = torch.Size(batch_shape)

    @property
    def batch_shape(self) -> torch.Size:
        return self._batch_shape

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size((self.dim,))

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros(*self._batch_shape, self.dim)


# ----- KL dispatch ----------------------------------------------------------------------------
KLFunction = Callable[[Distribution, Distribution], torch.Tensor]
_KL_REGISTRY: dict[tuple[type, type], KLFunction] = {}
_KL_CACHE: dict[tuple[type, type], KLFunction | None] = {}


def register_kl(type_p: type, type_q: type) -> Callable[[KLFunction], KLFunction]:
    """Decorator registering ``fn(p, q)`` as the closed form of KL(p ‖ q) for p a ``type_p`` and q a
    ``type_q`` (and their subclasses, unless a more specific pair is registered)::

        @register_kl(DiagonalGaussian, StandardNormal)
        def _kl_diag_std(p, q):
            return kl_normal_std(p.loc, p.logvar)
    """
    if not (isinstance(type_p, type) and isinstance(type_q, type)):
        raise TypeError(f"register_kl takes two classes, got {type_p!r} and {type_q!r}")

    def deco(fn: KLFunction) -> KLFunction:
        _KL_REGISTRY[type_p, type_q] = fn
        _KL_CACHE.clear()
        return fn

    return deco


def _dispatch(tp: type, tq: type) -> KLFunction | None:
    """The registered function of the most specific pair (P, Q) with tp ⊆ P and tq ⊆ Q: the one whose
    positions in tp's and tq's MROs are both no later than every other match's. Two matches that are
    each more specific on one side are ambiguous (an error: register the exact pair)."""
    key = (tp, tq)
    if key in _KL_CACHE:
        return _KL_CACHE[key]
    mro_p, mro_q = tp.__mro__, tq.__mro__
    matches = [(mro_p.index(p), mro_q.index(q), p, q) for (p, q) in _KL_REGISTRY
               if issubclass(tp, p) and issubclass(tq, q)]
    fn = None
    if matches:
        best = [m for m in matches if not any(o[0] <= m[0] and o[1] <= m[1] and o[:2] != m[:2] for o in matches)]
        if len(best) > 1:
            pairs = ", ".join(f"({m[2].__name__}, {m[3].__name__})" for m in best)
            raise KLNotImplementedError(f"KL({tp.__name__} ‖ {tq.__name__}) is ambiguous between the registered "
                                        f"pairs {pairs}; register the pair ({tp.__name__}, {tq.__name__})")
        fn = _KL_REGISTRY[best[0][2], best[0][3]]
    _KL_CACHE[key] = fn
    return fn


def kl(p: Distribution, q: Distribution, mc_samples: int | None = None,
       generator: torch.Generator | None = None) -> torch.Tensor:
    """KL(p ‖ q) = E_p[log p(z) − log q(z)], one value per batch element (shape: the broadcast batch shape).

    The closed form registered (:func:`register_kl`) for the most specific pair of classes along
    type(p)'s and type(q)'s MROs; a registered closed form is always preferred. Without one: the
    Monte-Carlo estimate mean_s [log p(z_s) − log q(z_s)], z_s ~ p.rsample (``mc_samples`` draws, from
    ``generator`` if given) when ``mc_samples`` is set, else :class:`KLNotImplementedError`.
    """
    fn = _dispatch(type(p), type(q))
    if fn is not None:
        return fn(p, q)
    if mc_samples is None:
        raise KLNotImplementedError(
            f"no closed form of KL({type(p).__name__} ‖ {type(q).__name__}) is registered "
            f"(register one with @register_kl({type(p).__name__}, {type(q).__name__}), or pass mc_samples= "
            "for a Monte-Carlo estimate)")
    return kl_monte_carlo(p, q, n_samples=mc_samples, generator=generator)


__all__ = ["Distribution", "KLNotImplementedError", "as_sample_shape", "kl", "register_kl"]
