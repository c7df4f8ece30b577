"""A small gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders") over a grid of discrete codes: the learned prior of VQ-VAE.

p(k) = Π_i p(k_i | k_<i) in raster order. Causal (masked) convolutions keep the autoregressive order:
type A (first layer) excludes the current position, type B (later layers) includes the current
position of the previous layer's features. Two stacks remove the plain PixelCNN's blind spot:
a vertical stack ((k//2 + 1) × k kernel over the rows above — and the current row in type B layers,
whose vertical features already look strictly above) and a horizontal stack (1 × (k//2 + 1), the
positions to the left in the current row), joined by a 1 × 1 convolution from vertical to
horizontal. The kernels are cropped to their causal part (padding on the top/left only) instead of
masking half of a k × k kernel, which halves the cost. Gates are tanh(a) ⊙ σ(b); horizontal layers
after the first are residual.

Log-probabilities are computed in float32 (logits are cast before the softmax).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import rng


def causal_mask(stack: str, kernel: int, mask_type: str) -> torch.Tensor:
    """0/1 mask of the cropped kernel of a stack. ``stack``: "vertical" — (k//2 + 1) × k taps over the
    rows above and the current row (type A drops the current row); "horizontal" — 1 × (k//2 + 1) taps
    over the positions to the left and the current one (type A drops the current one)."""
    half = kernel // 2
    if stack == "vertical":
        m = torch.ones(half + 1, kernel)
        if mask_type == "A":
            m[-1] = 0
    elif stack == "horizontal":
        m = torch.ones(1, half + 1)
        if mask_type == "A":
            m[0, -1] = 0
    else:
        raise ValueError(f"unknown stack {stack!r}")
    return m


class CausalConv2d(nn.Conv2d):
    """A convolution over a cropped causal kernel (padded on the top/left only, so output (i, j) sees
    rows ≤ i, or columns ≤ j in its row), times a fixed mask for type A."""

    def __init__(self, in_ch: int, out_ch: int, stack: str, kernel: int, mask_type: str):
        mask = causal_mask(stack, kernel, mask_type)
        super().__init__(in_ch, out_ch, tuple(mask.shape))
        half = kernel // 2
        self.pad = (half, half, half, 0) if stack == "vertical" else (half, 0, 0, 0)  # (left, right, top, bottom)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight * self.mask, self.bias)


def _gate(h: torch.Tensor) -> torch.Tensor:
    a, b = h.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer: (vertical, horizontal) feature maps → (vertical, horizontal)."""

    def __init__(self, ch: int, kernel: int, mask_type: str):
        super().__init__()
        self.vertical = CausalConv2d(ch, 2 * ch, "vertical", kernel, mask_type)
        self.horizontal = CausalConv2d(ch, 2 * ch, "horizontal", kernel, mask_type)
        self.v_to_h = nn.Conv2d(2 * ch, 2 * ch, 1)
        self.h_out = nn.Conv2d(ch, ch, 1)
        self.residual = mask_type == "B"  # a residual in the type-A layer would leak the current input

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hv = self.vertical(v)
        h_new = self.h_out(_gate(self.horizontal(h) + self.v_to_h(hv)))
        return _gate(hv), (h + h_new if self.residual else h_new)


class PixelCNN(nn.Module):
    """Autoregressive categorical model over (H, W) grids of codes in 0..K−1."""

    def __init__(self, num_codes: int, channels: int = 64, layers: int = 6, kernel: int = 3, first_kernel: int = 5):
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
                idx[:, i, j] = rng.multinomial(probs, 1, generator=generator).squeeze(1)
        return idx
