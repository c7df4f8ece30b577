"""Decoder likelihoods log p(x|z), per example, in nats, computed in float32 (float64 stays float64).

The decoder outputs one logit per pixel and channel; its image is sigmoid(logit) in [0, 1] for every
likelihood, so samples and reconstructions are drawn the same way whichever is used.

* ``bernoulli`` — log Bernoulli(x; sigmoid(logit)) for grey levels or binary pixels in [0, 1]
  (the seed study's choice for MNIST).
* ``logistic`` — a discretised logistic over the 256 levels of 8-bit data (Salimans et al. 2017,
  PixelCNN++, one mixture component): level k/255 has the probability mass of a logistic with mean
  sigmoid(logit) and scale s_c on the bin [k − ½, k + ½]/255, with the first and last bins open
  to −∞ and +∞, so the masses of the 256 levels sum to 1 and −log p(x) is a real code length.
  The scale is one learned parameter per colour channel (``log_scale``). The default for RGB data.
* ``gaussian`` — a Gaussian density N(x; sigmoid(logit), ½) per pixel with the variance fixed at ½, so
  −log p(x|z) = Σ (x − sigmoid(logit))² + ½·log(π) per pixel: the summed squared error that the
  public S3VAE / DSVAE implementations train with, plus its normalising constant. It is a density of
  continuous values, so its nats are not comparable with the other two likelihoods'.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

LEVELS = 255  # 8-bit data: the levels 0..255 of x·255
LOGISTIC_INIT_SCALE = 0.1  # s at initialisation, in units of the [0, 1] pixel range
LOGISTIC_MIN_LOG_SCALE = -7.0  # s ≥ e^-7 ≈ 0.0009, a quarter of a bin: keeps the bound finite
GAUSSIAN_VARIANCE = 0.5  # the fixed σ² of ``gaussian``: −log p is then the summed squared error + a constant


def _f32(t: torch.Tensor) -> torch.Tensor:
    """Low-precision tensors (bf16 under autocast) to float32; float32 and float64 as they are."""
    return t if t.dtype == torch.float64 else t.float()


def _event_sum(t: torch.Tensor, event_ndim: int) -> torch.Tensor:
    return t.flatten(start_dim=t.dim() - event_ndim).sum(-1)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)) summed over the event dims, shape (*S, B).

    ``x`` (B, *event) holds grey levels in [0, 1] or binary values; ``logits`` (*S, B, *event) may have
    extra leading sample dims (e.g. K importance samples). The sum is in nats.
    """
    logits = logits.float()
    nll = F.binary_cross_entropy_with_logits(logits, x.float().expand_as(logits), reduction="none")
    return -_event_sum(nll, x.dim() - 1)


def discretized_logistic_log_prob(logits: torch.Tensor, x: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) of 8-bit data under a discretised logistic with mean sigmoid(logits) and scale
    exp(log_scale) (broadcast over the event dims, e.g. (C, 1, 1)), summed over the event dims: (*S, B).

    With a = (x + ½/255 − m)/s and b = (x − ½/255 − m)/s, σ(a) − σ(b) = σ(a)·σ(−b)·(1 − e^(b−a)),
    whose logarithm is finite and accurate for every a > b; the first level has mass σ(a), the last σ(−b).
    """
    event_ndim = x.dim() - 1
    logits = _f32(logits)
    x = x.to(logits.dtype).expand_as(logits)
    m = torch.sigmoid(logits)
    inv_s = torch.exp(-log_scale.to(logits.dtype).clamp(min=LOGISTIC_MIN_LOG_SCALE))
    half = 0.5 / LEVELS
    a = (x + half - m) * inv_s
    b = (x - half - m) * inv_s
    log_sig_a = -F.softplus(-a)  # log σ(a)
    log_sig_neg_b = -F.softplus(b)  # log σ(−b) = log(1 − σ(b))
    width = (2 * half) * inv_s  # a − b
    middle = log_sig_a + log_sig_neg_b + torch.log(-torch.expm1(-width))
    lo, hi = x < half, x > 1 - half
    logp = torch.where(lo, log_sig_a, torch.where(hi, log_sig_neg_b, middle))
    return _event_sum(logp, event_ndim)


def gaussian_log_prob(logits: torch.Tensor, x: torch.Tensor, variance: float = GAUSSIAN_VARIANCE) -> torch.Tensor:
    """log N(x; sigmoid(logits), variance) summed over the event dims, shape (*S, B); ``logits`` may
    have extra leading sample dims, as in :func:`bernoulli_log_prob`."""
    logits = _f32(logits)
    sq = (x.to(logits.dtype).expand_as(logits) - torch.sigmoid(logits)).square()
    logp = -sq / (2 * variance) - 0.5 * math.log(2 * math.pi * variance)
    return _event_sum(logp, x.dim() - 1)


class Likelihood(nn.Module):
    """log p(x|z) from the decoder's logits: ``forward(logits, x)`` → (*S, B) nats."""

    name = "?"

    def image(self, logits: torch.Tensor) -> torch.Tensor:
        """The decoder's image in [0, 1] (its mean for ``bernoulli``, its location for ``logistic``)."""
        return torch.sigmoid(logits.float())


class Bernoulli(Likelihood):
    name = "bernoulli"

    def __init__(self, data_shape: tuple[int, ...]):
        super().__init__()

    def forward(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return bernoulli_log_prob(logits, x)


class DiscretizedLogistic(Likelihood):
    name = "logistic"

    def __init__(self, data_shape: tuple[int, ...]):
        super().__init__()
        if len(data_shape) != 3:
            raise ConfigError(f"likelihood: 'logistic' needs (C, H, W) images, got data_shape {tuple(data_shape)}")
        self.log_scale = nn.Parameter(torch.full((data_shape[0], 1, 1), math.log(LOGISTIC_INIT_SCALE)))

    def forward(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return discretized_logistic_log_prob(logits, x, self.log_scale)


class Gaussian(Likelihood):
    name = "gaussian"

    def __init__(self, data_shape: tuple[int, ...]):
        super().__init__()

    def forward(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return gaussian_log_prob(logits, x)


LIKELIHOODS = {"bernoulli": Bernoulli, "logistic": DiscretizedLogistic, "gaussian": Gaussian}


def make_likelihood(name: str, data_shape: tuple[int, ...]) -> Likelihood:
    """The likelihood module ``name`` for data of ``data_shape``."""
    if name not in LIKELIHOODS:
        raise ConfigError(f"likelihood: {name!r} is not valid; choose one of {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[name](tuple(data_shape))
