"""The sequence judge's network (the S3VAE paper's evaluation classifier of content and motion); trained
and cached by :mod:`vaelab.reference_classifier`."""
from __future__ import annotations

import torch
from torch import nn

from .backbones import ConvTrunk
from .classifier import FEATURE_DIM, ClassifierNet
from .sequence import INK
from .utils import ink_centres

DIGIT = 28  # the side of an MNIST digit's field, the window the content is read from


def ink_windows(frames: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size``×``size`` window of each frame (N, C, H, W) centred on the centre of mass of its ink —
    the pixels above :data:`vaelab.nn.sequence.INK`, so a faint haze over a generated frame's background
    does not move the window — rounded to a pixel and shifted inside the frame; a frame without ink
    gives its central window."""
    n, c, h, w = frames.shape
    cy, cx, mass = ink_centres(frames, INK)
    cy = torch.where(mass > 0, cy, torch.full_like(cy, (h - 1) / 2))
    cx = torch.where(mass > 0, cx, torch.full_like(cx, (w - 1) / 2))
    top = (cy + 0.5 - size / 2).floor().long().clamp(0, h - size)  # the window's centre is at top + size/2 - 1/2
    left = (cx + 0.5 - size / 2).floor().long().clamp(0, w - size)
    span = torch.arange(size, device=frames.device)
    r = (top[:, None] + span)[:, :, None]  # (N, size, 1)
    q = (left[:, None] + span)[:, None, :]  # (N, 1, size)
    return frames[torch.arange(n, device=frames.device)[:, None, None], :, r, q].permute(0, 3, 1, 2)  # (N, C, size, size)


class SequenceJudgeNet(nn.Module):
    """Sequences (B, T, C, H, W) in [0, 1] → content logits (B, n_classes); ``motion_logits`` → (B, n_motions);
    ``features`` → (B, 128), the mean over frames of each frame's content features.

    Content: each frame's 28×28 window centred on the centre of mass of its ink (where MNIST centres
    its digits, so the window holds the digit as MNIST shows it) goes through the reference image
    classifier's network (:class:`vaelab.nn.classifier.ClassifierNet`); its 128 features are averaged
    over frames → Dropout → FC(→n_classes). Motion: every frame through three stride-2 4×4
    convolutions (16, 32, 64 channels), the flattened last map (which keeps where the digit is) →
    FC(→64) + ReLU, concatenated over frames → FC(→128) + ReLU → FC(→n_motions). A content head that
    saw the whole frame (the strided trunk's maximum over positions) stayed under 99% on digits."""

    def __init__(self, shape: tuple[int, ...], n_classes: int = 10, n_motions: int = 8):
        super().__init__()
        t, c, h, w = shape
        self.window = min(DIGIT, h, w)
        self.digit = ClassifierNet(c, n_classes, (self.window, self.window))
        self.trunk = ConvTrunk(c, 16, 32, 64)
        self.where = nn.Sequential(nn.Flatten(), nn.Linear(64 * (h // 8) * (w // 8), 64), nn.ReLU())
        self.motion = nn.Sequential(nn.Linear(t * 64, FEATURE_DIM), nn.ReLU(), nn.Linear(FEATURE_DIM, n_motions))

    @property
    def out(self) -> nn.Linear:
        """The content logits' last layer (features → logits), as on the image classifier."""
        return self.digit.out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.flatten(0, 1).float()
        return self.digit.features(ink_windows(frames, self.window)).view(x.shape[0], -1, FEATURE_DIM).mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.digit.drop(self.features(x)))

    def motion_logits(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.trunk(x.flatten(0, 1).float() - 0.5)  # (B·T, 64, H/8, W/8)
        return self.motion(self.where(maps).view(x.shape[0], -1))

    def both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(content logits, motion logits)."""
        return self(x), self.motion_logits(x)
