"""Pieces of the sequence models (S3VAE, DSVAE): the posterior over a static z_f and per-frame z_t, the
learned dynamic prior p(z_t | z_<t), and the per-frame location labels of S3VAE's dynamic factor
prediction (docs/equations.md, "S3VAE and DSVAE")."""
from __future__ import annotations

import torch
from torch import nn

from .. import rng
from ..distributions import DiagonalGaussian
from .heads import GaussianHead
from .utils import ink_centres

#: q(z_t | ·): ``causal`` x_≤t (S3VAE), ``frame`` x_t alone (DSVAE's factorised posterior), ``full``
#: x_1:T and z_f (DSVAE's full posterior)
DYNAMIC_POSTERIORS = ("causal", "frame", "full")
INK = 0.1  # pixels above this count as ink for locations and the judge's window (a haze below it is ignored)


class SequencePosterior(nn.Module):
    """Frame features h (B, T, F) → q(z_f | x_1:T) (batch (B,)) and q(z_t | ·) (batch (B, T)).

    q(z_f | x_1:T): a bidirectional LSTM over h, its last forward and first backward states (each has
    read all T frames) into a Gaussian head. q(z_t) by ``mode``:

    * ``causal``: a forward LSTM over h; the head reads its state at t (and, with ``skip``, h_t too);
    * ``frame``: the head reads h_t alone;
    * ``full``: a bidirectional LSTM over [h_t, z_f], then a forward LSTM over its outputs, whose state
      at t the head reads (Li & Mandt's full posterior q(z_1:T | x_1:T, z_f)).
    """

    def __init__(self, features: int, hidden: int, static_dim: int, dynamic_dim: int, skip: bool = True,
                 mode: str = "causal"):
        super().__init__()
        if mode not in DYNAMIC_POSTERIORS:
            raise ValueError(f"dynamic posterior {mode!r}: choose from {', '.join(DYNAMIC_POSTERIORS)}")
        self.mode, self.skip = mode, skip and mode == "causal"
        self.bilstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.static_head = GaussianHead(2 * hidden, static_dim)
        if mode == "causal":
            self.causal = nn.LSTM(features, hidden, batch_first=True)
            head_in = hidden + (features if self.skip else 0)
        elif mode == "full":
            self.joint = nn.LSTM(features + static_dim, hidden, batch_first=True, bidirectional=True)
            self.causal = nn.LSTM(2 * hidden, hidden, batch_first=True)
            head_in = hidden
        else:
            head_in = features
        self.dynamic_head = GaussianHead(head_in, dynamic_dim)

    def static(self, h: torch.Tensor) -> DiagonalGaussian:
        out, _ = self.bilstm(h)  # (B, T, 2H): forward states, then backward states
        half = out.shape[-1] // 2
        return self.static_head(torch.cat([out[:, -1, :half], out[:, 0, half:]], dim=-1))

    def dynamic(self, h: torch.Tensor, z_f: torch.Tensor | None = None) -> DiagonalGaussian:
        """q(z_t | ·) given the frame features and (``full`` only) a z_f (B, Df)."""
        if self.mode == "frame":
            return self.dynamic_head(h)
        if self.mode == "full":
            if z_f is None:
                raise ValueError("the full posterior of z_t reads z_f")
            both, _ = self.joint(torch.cat([h, z_f.to(h.dtype).unsqueeze(1).expand(-1, h.shape[1], -1)], -1))
            state, _ = self.causal(both)
            return self.dynamic_head(state)
        state, _ = self.causal(h)  # (B, T, H): state t has read frames 1..t
        # the skip of h_t past the LSTM is still a function of x_≤t; without it q(z_t) stayed collapsed for
        # hundreds of updates (docs/equations.md, "S3VAE")
        return self.dynamic_head(torch.cat([state, h], dim=-1) if self.skip else state)


class DynamicPrior(nn.Module):
    """p(z_t | z_<t) = N(μ_t, σ_t²) from an LSTM cell fed z_{t−1} (z_0 = 0)."""

    def __init__(self, dynamic_dim: int, hidden: int):
        super().__init__()
        self.cell = nn.LSTMCell(dynamic_dim, hidden)
        self.head = GaussianHead(hidden, dynamic_dim)

    def conditional(self, z: torch.Tensor) -> DiagonalGaussian:
        """The prior of every z_t given the given z_<t: z (B, T, D) → batch shape (B, T)."""
        b, t, d = z.shape
        inputs = torch.cat([z.new_zeros(b, 1, d), z[:, :-1]], dim=1)
        state, outs = None, []
        for i in range(t):
            state = self.cell(inputs[:, i], state)
            outs.append(state[0])
        return self.head(torch.stack(outs, 1))

    @torch.no_grad()
    def sample(self, n: int, steps: int, generator: torch.Generator | None = None, mean: bool = False) -> torch.Tensor:
        """Ancestral draws z_1:T (n, steps, D); ``mean``: each z_t the mean of p(z_t | z_<t) given the earlier
        means (one deterministic path, the same for all n)."""
        d = self.head.latent_dim
        z_prev, state, zs = self.head.weight.new_zeros(n, d), None, []
        for _ in range(steps):
            state = self.cell(z_prev, state)
            p = self.head(state[0])
            z_prev = p.mean if mean else p.rsample(generator=generator)
            zs.append(z_prev)
        return torch.stack(zs, 1)


def frame_cells(x: torch.Tensor, grid: int, threshold: float = INK) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the ink is in every frame of x (B, T, C, H, W): the cell (row-major, 0..grid²−1) of a
    grid × grid partition of the frame holding the centre of mass of the pixels above ``threshold``:
    (labels (B, T) int64, valid (B, T) bool — False for a frame without ink). Measured from the frames,
    never from a generator's labels: S3VAE's per-frame dynamic signal."""
    cy, cx, mass = ink_centres(x, threshold)
    h, w = x.shape[-2:]
    row = (cy * grid / h).long().clamp(0, grid - 1)
    col = (cx * grid / w).long().clamp(0, grid - 1)
    return row * grid + col, mass > 0


def _ink_span(ink: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last index holding ink along the last dim of ``ink`` (N, L) bool; (0, L − 1) where there is none."""
    n, length = ink.shape
    pos = torch.arange(length, device=ink.device).expand(n, length)
    first = torch.where(ink, pos, length).amin(-1)
    last = torch.where(ink, pos, -1).amax(-1)
    empty = ~ink.any(-1)
    return torch.where(empty, 0, first), torch.where(empty, length - 1, last)


def translate_frames(x: torch.Tensor, generator: torch.Generator | None = None, threshold: float = INK) -> torch.Tensor:
    """Every frame of x (B, T, C, H, W) moved by its own random whole-pixel offset, drawn uniformly among
    the offsets that keep all of its ink (pixels above ``threshold``) inside the frame; what enters at
    the edges is the frame's own background from the opposite edge (there is no ink there). The
    content of each frame is unchanged, its position is not: S3VAE's ``scc_positive="shuffle-shift"``."""
    b, t, c, h, w = x.shape
    frames = x.flatten(0, 1)  # (N, C, H, W)
    ink = frames.amax(1) > threshold  # (N, H, W)
    offsets = []
    for dim, size in ((1, h), (2, w)):  # rows, then columns
        first, last = _ink_span(ink.any(3 - dim))
        lo, hi = -first, size - 1 - last  # the offsets that keep the ink inside: [lo, hi]
        u = rng.rand((frames.shape[0],), generator, x.device)
        offsets.append(lo + (u * (hi - lo + 1).to(u.dtype)).long().clamp(max=(hi - lo)))
    rows = (torch.arange(h, device=x.device) - offsets[0][:, None]) % h  # (N, H): source row of each row
    cols = (torch.arange(w, device=x.device) - offsets[1][:, None]) % w
    out = frames.gather(2, rows[:, None, :, None].expand(-1, c, h, w))
    out = out.gather(3, cols[:, None, None, :].expand(-1, c, h, w))
    return out.view_as(x)
