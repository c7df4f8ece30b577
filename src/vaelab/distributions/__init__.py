"""Latent distributions and priors, on one interface (:class:`Distribution`, see :mod:`.base`).

Every distribution has ``batch_shape`` / ``event_shape``, ``rsample(sample_shape=(), generator=None)``
(reparameterised) and ``sample(sample_shape=(), generator=None)`` (no gradient), both returning
``sample_shape + batch_shape + event_shape`` (an int n means (n,)), ``log_prob(z)`` summed over the
event dims, and ``mean``; where a closed form exists also ``entropy()``.

KL divergences go through :func:`kl` (``p.kl(q)`` is the same), which dispatches on the most specific
pair of classes registered with :func:`register_kl`; registered closed forms:

* KL(:class:`DiagonalGaussian` ‖ :class:`StandardNormal`) and KL(:class:`DiagonalGaussian` ‖
  :class:`DiagonalGaussian`) (:mod:`.gaussian`);
* KL(:class:`VonMisesFisher` ‖ :class:`HypersphericalUniform`) (:mod:`.vmf`).

A pair without one raises :class:`KLNotImplementedError`, or with ``kl(p, q, mc_samples=n)`` returns
the Monte-Carlo estimate. :class:`MixtureOfGaussians` / :class:`GaussianMixturePrior` (:mod:`.mixture`)
are the clustering priors of VaDE and GMVAE; :mod:`.bessel` holds the stable Bessel functions of the
vMF. The network head features → :class:`DiagonalGaussian` is :class:`vaelab.nn.GaussianHead`.
"""
from .base import Distribution, KLNotImplementedError, as_sample_shape, kl, register_kl
from .gaussian import DiagonalGaussian, StandardNormal
from .mixture import GaussianMixturePrior, MixtureOfGaussians
from .vmf import HypersphericalUniform, VonMisesFisher

__all__ = [
    "Distribution",
    "KLNotImplementedError",
    "as_sample_shape",
    "kl",
    "register_kl",
    "DiagonalGaussian",
    "StandardNormal",
    "MixtureOfGaussians",
    "GaussianMixturePrior",
    "HypersphericalUniform",
    "VonMisesFisher",
]
