"""The fixed-variance Gaussian likelihood (``likelihood="gaussian"``) against torch.distributions in float64."""
import math

import pytest
import torch

from vaelab.errors import ConfigError
from vaelab.losses.likelihood import GAUSSIAN_VARIANCE, gaussian_log_prob, make_likelihood
from vaelab.registry import make_config


def test_gaussian_matches_a_normal_density_summed_over_the_event():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 1, 4, 4, generator=g, dtype=torch.float64)  # 3 samples of a batch of 5
    x = torch.rand(5, 1, 4, 4, generator=g, dtype=torch.float64)
    got = gaussian_log_prob(logits, x)
    ref = torch.distributions.Normal(torch.sigmoid(logits), math.sqrt(GAUSSIAN_VARIANCE)).log_prob(x).flatten(2).sum(-1)
    assert got.shape == (3, 5)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_gaussian_is_the_summed_squared_error_plus_a_constant():
    """With σ² = ½, −log p(x|z) = Σ (x − m)² + ½·log(π) per pixel: the public S3VAE/DSVAE loss plus its constant."""
    logits = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.float64)
    nll = -make_likelihood("gaussian", (3,))(logits, x)
    sse = (x - torch.sigmoid(logits)).square().sum(-1)
    torch.testing.assert_close(nll, sse + 3 * 0.5 * math.log(math.pi), rtol=1e-12, atol=1e-12)


def test_gaussian_gradient_matches_finite_differences():
    x = torch.rand(4, 6, dtype=torch.float64)
    logits = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: gaussian_log_prob(a, x), (logits,))


def test_gaussian_is_a_valid_choice_and_a_typo_is_refused():
    assert make_config("s3vae", likelihood="gaussian").likelihood == "gaussian"
    with pytest.raises(ConfigError, match="likelihood"):
        make_config("vae", likelihood="gauss")
