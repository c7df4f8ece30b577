"""Encoder and decoder backbones shared by every variant.

``paper``: the MNIST conv net of the seed's Fig. 3, i.e. the MMD-VAE tutorial network of Zhao et al.:
encoder Conv(1→64, 4×4, s2) → Conv(64→128, 4×4, s2) → FC(6272→1024), LeakyReLU(0.1);
decoder FC(z→1024) → FC(1024→7·7·128) → ConvT(128→64, 4×4, s2) → ConvT(64→1, 4×4, s2), ReLU;
about 13.2M parameters with a 16-d latent.

``small``: the same shape at a quarter of the width (32/64 channels, FC 256); ≥ 5× cheaper, for
quick runs and tests.

``dcgan``: stride-2 4×4 convolutions down to 4×4 maps (DCGAN's shape, Radford et al. 2016), 16
channels doubling per layer up to 64, FC 256; the decoder mirrors it. For larger square frames
(e.g. 64×64 Moving MNIST), where the two-layer trunks spend most of their time at full resolution.

``dcgan-bn`` and ``dcgan-bn32``: the frame networks of the sequence papers' reference code (S3VAE,
DSVAE): the same DCGAN shape, but 64 channels doubling per layer up to 512 (``dcgan-bn32``: 32 up
to 256, for a quarter of the cost) with batch normalisation after every convolution but the first
(encoder) and after every layer but the last (decoder); the decoder maps z straight to its 4×4 maps
(one linear layer, as the reference code's first 4×4 transposed convolution), without the narrow
FC layer of the other conv decoders.

``mlp``: two 512-unit layers, for flat inputs (feature vectors, shape (D,)) or flattened images.

``dec``: the 500-500-2000 MLP of DEC's stacked autoencoder (Xie et al. 2016), which VaDE (Jiang et
al. 2017) and its clustering results use; the decoder mirrors it (2000-500-500).

``svae``: the 256-128 MLP of the S-VAE authors' MNIST code (Davidson et al. 2018), decoder 128-256;
for their Table 1 in its own setting.

``iwae``: the network of the IWAE paper's one-stochastic-layer MNIST models (Burda et al. 2016, §5):
two deterministic layers of 200 tanh units, decoder mirrored (200-200 tanh, then the linear output
layer); with ``latent_dim=50`` it is their VAE (docs/guide.md, "IWAE-paper VAE").

The MLP backbones use ReLU between layers except ``iwae`` (tanh): the activation is part of each
backbone's entry in ``_MLP``.

An encoder maps x (and an optional condition vector y) to a feature vector of ``out_features``;
a variant's head turns features into distribution parameters. A decoder maps a latent vector
(and optional condition) to logits of the data's shape.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError

BACKBONES = ("paper", "small", "dcgan", "dcgan-bn", "dcgan-bn32", "mlp", "dec", "svae", "iwae")
_DCGAN = {"dcgan": (16, 64, False), "dcgan-bn": (64, 512, True), "dcgan-bn32": (32, 256, True)}  # first width, cap, batch norm
_CONV = {"paper": (64, 128, 1024), "small": (32, 64, 256)}
# hidden widths (input side first) and the activation after each hidden layer
_MLP: dict[str, tuple[tuple[int, ...], type[nn.Module]]] = {
    "mlp": ((512, 512), nn.ReLU), "dec": ((500, 500, 2000), nn.ReLU), "svae": ((256, 128), nn.ReLU),
    "iwae": ((200, 200), nn.Tanh),
}


def is_mlp(backbone: str) -> bool:
    """True for the fully-connected backbones (flat features, no conv trunk)."""
    return backbone in _MLP


def _mlp(widths: tuple[int, ...], act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear + ``act`` (ReLU by default) through ``widths`` (input width first)."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers)


def conv_shape_ok(data_shape: tuple[int, ...], backbone: str = "paper") -> bool:
    """Whether the conv backbones take data of this shape: (C, H, W) with H and W divisible by 4
    (the ``dcgan`` family: square, H = 4·2^k with k ≥ 1)."""
    if len(data_shape) != 3:
        return False
    if backbone in _DCGAN:
        h = data_shape[1]
        return h == data_shape[2] and h >= 8 and h % 4 == 0 and (h // 4) & (h // 4 - 1) == 0
    return data_shape[1] % 4 == 0 and data_shape[2] % 4 == 0


def dcgan_widths(size: int, backbone: str = "dcgan") -> tuple[int, ...]:
    """Channels of a ``dcgan``-family trunk's layers for square images of ``size`` (one layer per halving to 4)."""
    first, cap, _ = _DCGAN[backbone]
    return tuple(min(first * 2 ** i, cap) for i in range(int(math.log2(size // 4))))


def batch_normed(backbone: str) -> bool:
    """Whether the backbone's conv layers are batch-normalised."""
    return _DCGAN.get(backbone, (0, 0, False))[2]


def shape_error(backbone: str, data_shape: tuple[int, ...]) -> ConfigError:
    need = "square images of 4·2^k pixels (8, 16, 32, 64, ...)" if backbone in _DCGAN else \
        "(C, H, W) images with H and W divisible by 4"
    return ConfigError(f"backbone: {backbone!r} needs {need}, got {data_shape} (resize with --image-size, "
                       f"or use --backbone mlp)")


class ConvTrunk(nn.Module):
    """Stride-2 4×4 convolutions with LeakyReLU(0.1), one per width: (B, C, H, W) → (B, widths[-1], H/2^n, W/2^n);
    ``norm``: batch normalisation after every convolution but the first."""

    def __init__(self, in_ch: int, *widths: int, norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip((in_ch, *widths[:-1]), widths)):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=not (norm and i))] + ([nn.BatchNorm2d(b)] if norm and i else [])
            layers.append(nn.LeakyReLU(0.1))
        self.net = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DeconvHead(nn.Module):
    """Stride-2 4×4 transposed convolutions through ``widths`` (deepest first) to ``out_ch`` logits, ReLU
    between them (``norm``: batch normalisation before each ReLU): (B, widths[0], H/2^n, W/2^n) → (B, out_ch, H, W)."""

    def __init__(self, *widths: int, out_ch: int, norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip(widths, (*widths[1:], out_ch)):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=not norm)] + ([nn.BatchNorm2d(b)] if norm else []) + [nn.ReLU()]
        if norm:  # the last layer gives logits: its own bias, no normalisation
            layers[-3:] = [nn.ConvTranspose2d(widths[-1], out_ch, 4, 2, 1)]
        else:
            layers = layers[:-1]
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def _conv_widths(backbone: str, data_shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """(trunk widths, FC width) of a conv backbone."""
    if backbone in _DCGAN:
        return dcgan_widths(data_shape[1], backbone), 256
    c1, c2, fc = _CONV[backbone]
    return (c1, c2), fc


class Encoder(nn.Module):
    """x (B, *data_shape) [+ condition (B, cond_dim)] → features (B, out_features)."""

    def __init__(self, data_shape: tuple[int, ...], backbone: str = "paper", cond_dim: int = 0):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.cond_dim = cond_dim
        if not is_mlp(backbone):
            if not conv_shape_ok(self.data_shape, backbone):
                raise shape_error(backbone, self.data_shape)
            widths, fc = _conv_widths(backbone, self.data_shape)
            self.trunk: nn.Module = ConvTrunk(self.data_shape[0], *widths, norm=batch_normed(backbone))
            down = 2 ** len(widths)
            flat = widths[-1] * (self.data_shape[1] // down) * (self.data_shape[2] // down)
            self.fc = nn.Sequential(nn.Linear(flat + cond_dim, fc), nn.LeakyReLU(0.1))
        else:
            hidden, act = _MLP[backbone]
            self.trunk = nn.Flatten()
            self.fc = _mlp((math.prod(self.data_shape) + cond_dim, *hidden), act)
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
        if not is_mlp(backbone):
            if not conv_shape_ok(self.data_shape, backbone):
                raise shape_error(backbone, self.data_shape)
            widths, fc = _conv_widths(backbone, self.data_shape)
            down = 2 ** len(widths)
            self.grid = (widths[-1], self.data_shape[1] // down, self.data_shape[2] // down)
            norm = batch_normed(backbone)
            if norm:  # the reference code's first layer: z straight to the 4×4 maps (no narrow FC between)
                self.fc = nn.Sequential(nn.Linear(n_in, math.prod(self.grid), bias=False), nn.BatchNorm1d(math.prod(self.grid)), nn.ReLU())
            else:
                self.fc = nn.Sequential(nn.Linear(n_in, fc), nn.ReLU(), nn.Linear(fc, math.prod(self.grid)), nn.ReLU())
            self.head: nn.Module = DeconvHead(*widths[::-1], out_ch=self.data_shape[0], norm=norm)
        else:
            hidden, act = _MLP[backbone]
            hidden = hidden[::-1]
            self.grid = None
            self.fc = _mlp((n_in, *hidden), act)
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
