"""Latent distributions and priors: each has rsample, log_prob (summed over the event dim) and,
where a closed form exists, entropy and KL."""
from .gaussian import DiagonalGaussian, StandardNormal

__all__ = ["DiagonalGaussian", "StandardNormal"]
