"""A feature extractor trained without labels: contrastive learning on images (SimCLR, Chen et al. 2020).

Two random views of every image of a batch (a random rotation, scaling and shift, and with some
probability a square patch erased) go through the reference classifier's convolutional body and a
small projection head; the NT-Xent loss asks each view to pick out its partner among the other
2B − 1 views of the batch (cosine similarities over a temperature). The 128-d body outputs, not the
head's, are the features, as in SimCLR. No label is read, so the features cannot encode the
seen/unseen split except through which images the extractor is given (docs/zsl.md, "Features").

Every random draw comes from one seeded CPU generator: the same images and recipe give the same
weights bit for bit on one machine and thread count.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import rng
from ..data import to_tensor
from ..nn.classifier import FEATURE_DIM, ClassifierNet


@dataclass(frozen=True)
class ContrastiveRecipe:
    """How the contrastive extractor is trained (recorded with the cached features)."""

    epochs: int = 15
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    rotation: float = 20.0  # degrees, uniform in ±rotation
    scale: float = 0.2  # zoom uniform in 1 ± scale
    shift: float = 0.2  # uniform in ±shift × half the image width (height)
    erase: int = 8  # side of the erased square (pixels); 0 = none
    erase_prob: float = 0.5
    head_hidden: int = 256
    head_dim: int = 64
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def augment(x: torch.Tensor, r: ContrastiveRecipe, g: torch.Generator) -> torch.Tensor:
    """One random view of each image of ``x`` (B, C, H, W) in [0, 1] (see the module doc)."""
    b, _, h, w = x.shape
    u = rng.rand((6, b), g, x.device) * 2 - 1
    angle, zoom = u[0] * math.radians(r.rotation), 1 + r.scale * u[1]
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, r.shift * u[2]], -1), torch.stack([sin, cos, r.shift * u[3]], -1)], -2)
    view = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    if r.erase <= 0:
        return view
    top = ((u[4] + 1) / 2 * (h - r.erase + 1)).floor().clamp_max(h - r.erase).view(b, 1, 1)
    left = ((u[5] + 1) / 2 * (w - r.erase + 1)).floor().clamp_max(w - r.erase).view(b, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    square = (rows >= top) & (rows < top + r.erase) & (cols >= left) & (cols < left + r.erase)
    erase = square & (rng.rand((b, 1, 1), g, x.device) < r.erase_prob)
    return view * (~erase).unsqueeze(1).to(view.dtype)


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss of 2B projections ``z``, row i's partner being row (i + B) mod 2B: the mean over
    rows of −log softmax, among the other 2B − 1 rows, of the partner's cosine similarity / temperature."""
    n = z.shape[0] // 2
    z = F.normalize(z, dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


class Extractor(nn.Module):
    """The reference classifier's body (``features``: images → 128-d ReLU features) with the projection head."""

    def __init__(self, shape: tuple[int, ...], r: ContrastiveRecipe):
        super().__init__()
        self.net = ClassifierNet(shape[0], 1, tuple(shape[1:]))  # its 1-way output layer is never used
        self.head = nn.Sequential(nn.Linear(FEATURE_DIM, r.head_hidden), nn.ReLU(), nn.Linear(r.head_hidden, r.head_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_contrastive(images: np.ndarray, r: ContrastiveRecipe, log: Callable[[str], None] | None = None) -> Extractor:
    """Train an :class:`Extractor` on ``images`` (N, C, H, W) uint8 with recipe ``r``; returns it in eval mode."""
    n = len(images)
    steps = n // r.batch_size
    if steps < 1:
        raise ValueError(f"contrastive extractor: {n} images are fewer than one batch of {r.batch_size}")
    x_all = torch.as_tensor(images)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(r.seed)
        model = Extractor(tuple(images.shape[1:]), r)
    g = torch.Generator().manual_seed(r.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, total_steps=r.epochs * steps)
    for epoch in range(r.epochs):
        model.train()
        perm, t0, tot = rng.randperm(n, g), time.perf_counter(), 0.0
        for s in range(steps):  # the last partial batch is dropped: NT-Xent's difficulty depends on the batch size
            x = to_tensor(x_all[perm[s * r.batch_size:(s + 1) * r.batch_size]])
            loss = nt_xent(model(torch.cat([augment(x, r, g), augment(x, r, g)])), r.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach())
        if log:
            log(f"contrastive extractor epoch {epoch + 1}/{r.epochs}: loss {tot / steps:.4f} ({time.perf_counter() - t0:.1f}s)")
    return model.eval()
