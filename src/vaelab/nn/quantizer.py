"""Vector quantisation for VQ-VAE (van den Oord et al. 2017, Section 3.1–3.2 and Appendix A.1).

z_e (B, D, H, W) → k*(i) = argmin_k ‖z_e,i − e_k‖² per grid position i → z_q,i = e_{k*(i)}; the decoder
gets the straight-through value z_e + sg[z_q − z_e] (forward: z_q; backward: identity to z_e).

Losses (eq. 3), both as **means over the elements** of the code grid (B·H·W·D), the reduction of the
authors' reference implementation (Sonnet's ``VectorQuantizer``):
  codebook   ‖sg[z_e] − z_q‖²  (moves the codes; absent with the EMA codebook),
  commitment ‖z_e − sg[z_q]‖²  (keeps the encoder near its codes; weighted by β in the model).

EMA codebook (Appendix A.1), with γ = ``decay`` and Laplace smoothing ε:
  N_k ← γ N_k + (1 − γ) n_k,  m_k ← γ m_k + (1 − γ) Σ_{i: k*(i)=k} z_e,i,
  Ñ_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j,  e_k = m_k / Ñ_k.
N starts at 1 and m at the initial codes, so an unused code stays put (decaying slowly) instead of
jumping to 0 or blowing up as in implementations that start N at 0.

Dead-code restarts: a code unused for ``restart_after`` consecutive updating steps is re-initialised to
a random encoder output of the current batch (EMA statistics reset to it with N_k = 1). Codes start
dead, so the first training step also initialises the codes its batch leaves unused from the data.
The step counters are buffers, so a checkpoint restores them.

Distances, losses and statistics are computed in float32 with autocast off (bf16 distances pick wrong
codes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..distributions.base import Distribution, SampleShape, as_sample_shape
from ..share import WHOLE, BatchShare


def _no_autocast():
    return torch.autocast("cpu", enabled=False)


@dataclass
class Quantized:
    """What the quantiser returns for a (B, D, H, W) input."""

    z_q: torch.Tensor  # (B, D, H, W) straight-through output: value z_q, gradient to z_e
    codes: torch.Tensor  # (B, D, H, W) the chosen code vectors (gradient to the codebook without EMA)
    indices: torch.Tensor  # (B, H, W) int64
    codebook_loss: torch.Tensor  # mean over elements of (sg[z_e] − z_q)²; 0 with the EMA codebook
    commitment_loss: torch.Tensor  # mean over elements of (z_e − sg[z_q])²
    perplexity: torch.Tensor  # exp(entropy of the batch's average code usage)
    usage: torch.Tensor  # share of codes used at least once in the batch


class CodeGrid(Distribution):
    """The VQ-VAE posterior as a distribution: a point mass on the chosen codes; batch shape (B,),
    event shape (D·H·W,).

    ``mean`` / ``rsample()`` are the code vectors flattened to (B, D·H·W); ``log_prob`` is 0 at them
    and −inf elsewhere (q(z|x) is one-hot, eq. 1 of van den Oord et al.)."""

    def __init__(self, indices: torch.Tensor, codes: torch.Tensor):
        self.indices = indices  # (B, H, W)
        self.codes = codes  # (B, D, H, W)

    @property
    def batch_shape(self) -> torch.Size:
        return self.indices.shape[:1]

    @property
    def event_shape(self) -> torch.Size:
        return self.codes.flatten(1).shape[1:]

    @property
    def mean(self) -> torch.Tensor:
        return self.codes.flatten(1)

    mode = mean

    def rsample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """The codes, expanded to sample_shape + (B, D·H·W) (an int n means (n,))."""
        return self.mean.expand(*as_sample_shape(sample_shape), *self.mean.shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        hit = (z == self.mean).all(-1)
        return torch.where(hit, 0.0, float("-inf"))

    def entropy(self) -> torch.Tensor:
        return torch.zeros(self.indices.shape[0])


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation of a (B, D, H, W) grid with a K × D codebook."""

    def __init__(self, num_codes: int, code_dim: int, ema: bool = True, decay: float = 0.99, eps: float = 1e-5,
                 restart_after: int = 100):
        super().__init__()
        self.num_codes, self.code_dim = num_codes, code_dim
        self.ema, self.decay, self.eps, self.restart_after = ema, decay, eps, restart_after
        init = torch.randn(num_codes, code_dim)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(num_codes))  # N_k
            self.register_buffer("ema_sum", init.clone())  # m_k
        else:
            self.codebook = nn.Parameter(init)
        # Codes start "dead": the first updating step restarts every code its batch does not use at the
        # batch's encoder outputs (a data-dependent initialisation; random codes far from the encoder's
        # outputs otherwise leave all but a few codes unused at the start).
        self.register_buffer("unused_steps", torch.full((num_codes,), restart_after, dtype=torch.int64))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, D) float32 vectors → (N,) index of the nearest code (squared Euclidean distance, fp32)."""
        with _no_autocast():
            e = self.codebook.detach().float()
            dist = (flat * flat).sum(1, keepdim=True) - 2.0 * flat @ e.t() + (e * e).sum(1)  # (N, K)
            return dist.argmin(1)

    def forward(self, z_e: torch.Tensor, update: bool = False, share: BatchShare = WHOLE) -> Quantized:
        """Quantise z_e (B, D, H, W). ``update``: apply the EMA step and dead-code restarts (training), with
        the statistics of the batch ``share`` is part of (data-parallel: the global batch's)."""
        b, d, h, w = z_e.shape
        with _no_autocast():
            flat = z_e.float().permute(0, 2, 3, 1).reshape(-1, d)  # (N, D), N = B·H·W
            idx = self.nearest(flat.detach())
            codes = self.codebook.float()[idx]  # (N, D)
            commitment = F.mse_loss(flat, codes.detach())  # mean over elements
            codebook_loss = flat.new_zeros(()) if self.ema else F.mse_loss(codes, flat.detach())
            counts = torch.bincount(idx, minlength=self.num_codes).float()
            p = counts / counts.sum()
            perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
            usage = (counts > 0).float().mean()
            if update:
                self._update(flat.detach(), idx, counts, share)
            z_q = codes.detach() + (flat - flat.detach())  # straight-through: value exactly z_q, gradient to z_e
        to_grid = lambda t: t.view(b, h, w, d).permute(0, 3, 1, 2)  # noqa: E731
        return Quantized(to_grid(z_q), to_grid(codes), idx.view(b, h, w), codebook_loss, commitment, perplexity, usage)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor, share: BatchShare) -> None:
        (counts,) = share.sum(counts)  # data-parallel: the global batch's counts (and sums below)
        if self.ema:
            g = self.decay
            (sums,) = share.sum(torch.zeros_like(self.ema_sum).index_add_(0, idx, flat))  # Σ_{i: k*(i)=k} z_e,i
            self.ema_count.mul_(g).add_(counts, alpha=1 - g)
            self.ema_sum.mul_(g).add_(sums, alpha=1 - g)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n
            self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        self.unused_steps.copy_(torch.where(counts > 0, torch.zeros_like(self.unused_steps), self.unused_steps + 1))
        if self.restart_after > 0:
            dead = (self.unused_steps >= self.restart_after).nonzero().squeeze(1)
            if dead.numel():
                flat = share.gather(flat)  # data-parallel: restart at the global batch's encoder outputs
                pick = torch.randint(0, flat.shape[0], (dead.numel(),), device=flat.device)
                fresh = flat[pick]
                cb = self.codebook.data if isinstance(self.codebook, nn.Parameter) else self.codebook
                cb[dead] = fresh.to(cb.dtype)
                if self.ema:
                    self.ema_sum[dead] = fresh
                    self.ema_count[dead] = 1.0
                self.unused_steps[dead] = 0

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of an index grid (B, H, W) → (B, D, H, W)."""
        return self.codebook.detach().float()[indices].permute(0, 3, 1, 2)
