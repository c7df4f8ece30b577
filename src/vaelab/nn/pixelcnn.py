"""A small gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders") over a grid of discrete codes: the learned prior of VQ-VAE.

p(k) = Π_i p(k_i | k_<i) in raster order. Masked convolutions keep the autoregressive order:
type A (first layer) excludes the current position, type B (later layers) includes the current
position of the previous layer's features. Two stacks remove the plain PixelCNN's blind spot:
a vertical stack (k × k kernel, rows above only — the current row too in type B layers, whose
vertical features already look strictly above) and a horizontal stack (1 × k, positions to the left
in the current row), joined by a 1 × 1 convolution from vertical to horizontal. Gates are
tanh(a) ⊙ σ(b); horizontal layers after the first are residual.

Log-probabilities are computed in float32 (logits are cast before the softmax).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(kh: int, kw: int, stack: str, mask_type: str) -> torch.Tensor:
    """(kh, kw) 0/1 mask. ``stack``: "vertical" | "horizontal" | "plain"; ``mask_type``: "A" | "B"."""
    m = torch.zeros(kh, kw)
    ci, cj = kh // 2, kw // 2
    strict = mask_type == "A"
    if stack == "vertical":
        m[:ci + (0 if strict else 1), :] = 1  # rows above (and the centre row for B)
    elif stack == "horizontal":
        m[ci, :cj + (0 if strict else 1)] = 1  # left of the centre (and the centre for B)
    elif stack == "plain":
        m[:ci, :] = 1
        m[ci, :cj + (0 if strict else 1)] = 1
    else:
        raise ValueError(f"unknown stack {stack!r}")
    return m


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded convolution whose kernel is multiplied by a fixed causal mask."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int], stack: str, mask_type: str):
        kh, kw = kernel
        super().__init__(in_ch, out_ch, (kh, kw), padding=(kh // 2, kw // 2))
        self.register_buffer("mask", causal_mask(kh, kw, stack, mask_type), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def _gate(h: torch.Tensor) -> torch.Tensor:
    a, b = h.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer: (vertical, horizontal) feature maps → (vertical, horizontal)."""

    def __init__(self, ch: int, kernel: int, mask_type: str):
        super().__init__()
        self.vertical = MaskedConv2d(ch, 2 * ch, (kernel, kernel), "vertical", mask_type)
        self.horizontal = MaskedConv2d(ch, 2 * ch, (1, kernel), "horizontal", mask_type)
        self.v_to_h = nn.Conv2d(2 * ch, 2 * ch, 1)
        self.h_out = nn.Conv2d(ch, ch, 1)
        self.residual = mask_type == "B"  # a residual in the type-A layer would leak the current input

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hv = self.vertical(v)
        h_new = self.h_out(_gate(self.horizontal(h) + self.v_to_h(hv)))
        return _gate(hv), (h + h_new if self.residual else h_new)


class PixelCNN(nn.Module):
    """Autoregressive categorical model over (H, W) grids of codes in 0..K−1."""

    def __init__(self, num_codes: int, channels: int = 64, layers: int = 6, kernel: int = 3, first_kernel: int = 7):
        super().__init__()
        self.num_codes = num_codes
        self.embedding = nn.Embedding(num_codes, channels)
        self.layers = nn.ModuleList(
            [GatedLayer(channels, first_kernel, "A")] + [GatedLayer(channels, kernel, "B") for _ in range(layers - 1)]
        )
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, num_codes, 1))

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, H, W) int64 → (B, C, H, W) input features."""
        return self.embedding(indices).permute(0, 3, 1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, H, W) from embedded input (B, C, H, W); position i sees inputs before i only."""
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h)
        return self.out(h)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.forward_features(self.embed(indices))

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        """log p(k) summed over the grid, shape (B,), in float32."""
        logp = F.log_softmax(self(indices).float(), dim=1)  # (B, K, H, W)
        return logp.gather(1, indices.unsqueeze(1)).squeeze(1).flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, shape: tuple[int, int], generator: torch.Generator | None = None,
               device: torch.device | None = None) -> torch.Tensor:
        """Ancestral sampling in raster order: (n, H, W) int64 codes."""
        hh, ww = shape
        idx = torch.zeros(n, hh, ww, dtype=torch.int64, device=device)
        for i in range(hh):
            for j in range(ww):
                probs = F.softmax(self(idx)[:, :, i, j].float(), dim=1)  # (n, K)
                idx[:, i, j] = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(idx.device)
        return idx
