"""Encoder and decoder backbones shared by every variant.

``paper``: the MNIST conv net of the seed's Fig. 3, i.e. the MMD-VAE tutorial network of Zhao et al.:
encoder Conv(1→64, 4×4, s2) → Conv(64→128, 4×4, s2) → FC(6272→1024), LeakyReLU(0.1);
decoder FC(z→1024) → FC(1024→7·7·128) → ConvT(128→64, 4×4, s2) → ConvT(64→1, 4×4, s2), ReLU;
about 13.2M parameters with a 16-d latent.

``small``: the same shape at a quarter of the width (32/64 channels, FC 256); ≥ 5× cheaper, for
quick runs and tests.

``mlp``: two 512-unit layers, for flat inputs (feature vectors, shape (D,)) or flattened images.

``dec``: the 500-500-2000 MLP of DEC's stacked autoencoder (Xie et al. 2016), which VaDE (Jiang et
al. 2017) and its clustering results use; the decoder mirrors it (2000-500-500).

``svae``: the 256-128 MLP of the S-VAE authors' MNIST code (Davidson et al. 2018), decoder 128-256;
for their Table 1 in its own setting.

An encoder maps x (and an optional condition vector y) to a feature vector of ``out_features``;
a variant's head turns features into distribution parameters. A decoder maps a latent vector
(and optional condition) to logits of the data's shape.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError

BACKBONES = ("paper", "small", "mlp", "dec", "svae")
_CONV = {"paper": (64, 128, 1024), "small": (32, 64, 256)}
_MLP = {"mlp": (512, 512), "dec": (500, 500, 2000), "svae": (256, 128)}  # hidden widths, input side first


def is_mlp(backbone: str) -> bool:
    """True for the fully-connected backbones (flat features, no conv trunk)."""
    return backbone in _MLP


def _mlp(widths: tuple[int, ...]) -> nn.Sequential:
    """Linear + ReLU through ``widths`` (input width first)."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


def conv_shape_ok(data_shape: tuple[int, ...]) -> bool:
    """Whether the conv backbones take data of this shape: (C, H, W) with H and W divisible by 4."""
    return len(data_shape) == 3 and data_shape[1] % 4 == 0 and data_shape[2] % 4 == 0


class ConvTrunk(nn.Module):
    """Two stride-2 4×4 convolutions: (B, C, H, W) → (B, c2, H/4, W/4)."""

    def __init__(self, in_ch: int, c1: int, c2: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, c1, 4, 2, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c1, c2, 4, 2, 1), nn.LeakyReLU(0.1),
        )
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DeconvHead(nn.Module):
    """Two stride-2 4×4 transposed convolutions: (B, c2, H/4, W/4) → logits (B, C, H, W)."""

    def __init__(self, c2: int, c1: int, out_ch: int):
        super().__init__()
        self.net = nn.Sequential(nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c1, out_ch, 4, 2, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class Encoder(nn.Module):
    """x (B, *data_shape) [+ condition (B, cond_dim)] → features (B, out_features)."""

    def __init__(self, data_shape: tuple[int, ...], backbone: str = "paper", cond_dim: int = 0):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.cond_dim = cond_dim
        if backbone in _CONV and conv_shape_ok(self.data_shape):
            c1, c2, fc = _CONV[backbone]
            self.trunk: nn.Module = ConvTrunk(self.data_shape[0], c1, c2)
            flat = c2 * (self.data_shape[1] // 4) * (self.data_shape[2] // 4)
            self.fc = nn.Sequential(nn.Linear(flat + cond_dim, fc), nn.LeakyReLU(0.1))
        else:
            if backbone in _CONV:
                raise ConfigError(f"backbone: {backbone!r} needs (C, H, W) images with H and W divisible by 4, got "
                                  f"{self.data_shape} (resize with --image-size, or use --backbone mlp)")
            hidden = _MLP[backbone]
            self.trunk = nn.Flatten()
            self.fc = _mlp((math.prod(self.data_shape) + cond_dim, *hidden))
            fc = hidden[-1]
        self.out_features = fc

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.trunk(x).flatten(1)
        if self.cond_dim:
            h = torch.cat([h, cond.to(h.dtype)], dim=1)
        return self.fc(h)


class Decoder(nn.Module):
    """z (B, in_dim) [+ condition (B, cond_dim)] → logits (B, *data_shape)."""

    def __init__(self, data_shape: tuple[int, ...], in_dim: int, backbone: str = "paper", cond_dim: int = 0):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.cond_dim = cond_dim
        n_in = in_dim + cond_dim
        if backbone in _CONV and conv_shape_ok(self.data_shape):
            c1, c2, fc = _CONV[backbone]
            self.grid = (c2, self.data_shape[1] // 4, self.data_shape[2] // 4)
            self.fc = nn.Sequential(nn.Linear(n_in, fc), nn.ReLU(), nn.Linear(fc, math.prod(self.grid)), nn.ReLU())
            self.head: nn.Module = DeconvHead(c2, c1, self.data_shape[0])
        else:
            if backbone in _CONV:
                raise ConfigError(f"backbone: {backbone!r} needs (C, H, W) images with H and W divisible by 4, got "
                                  f"{self.data_shape} (resize with --image-size, or use --backbone mlp)")
            hidden = _MLP[backbone][::-1]
            self.grid = None
            self.fc = _mlp((n_in, *hidden))
            self.head = nn.Linear(hidden[-1], math.prod(self.data_shape))

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_dim:
            z = torch.cat([z, cond.to(z.dtype)], dim=1)
        h = self.fc(z)
        if self.grid is not None:
            h = h.view(-1, *self.grid)
        return self.head(h).view(-1, *self.data_shape)


def make_encoder(data_shape, backbone: str = "paper", cond_dim: int = 0) -> Encoder:
    return Encoder(tuple(data_shape), backbone, cond_dim)


def make_decoder(data_shape, in_dim: int, backbone: str = "paper", cond_dim: int = 0) -> Decoder:
    return Decoder(tuple(data_shape), in_dim, backbone, cond_dim)
