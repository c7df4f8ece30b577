"""The sequence judge's network (the S3VAE paper's evaluation classifier of content and motion); trained
and cached by :mod:`vaelab.reference_classifier`."""
from __future__ import annotations

import torch
from torch import nn

from .backbones import ConvTrunk

FEATURES = 128  # the content features' width (as the image classifier's penultimate layer)


class SequenceJudgeNet(nn.Module):
    """Sequences (B, T, C, H, W) in [0, 1] → content logits (B, n_classes); ``motion_logits`` → (B, n_motions);
    ``features`` → (B, 128), the mean over frames of each frame's content features.

    Every frame goes through three stride-2 4×4 convolutions (16, 32, 64 channels) and a 3×3 one
    (64 channels, stride 1), whose units see 38×38 pixels: a whole 28×28 digit (the three strided
    layers alone see 22×22, part of a digit). Content: the
    maximum over positions of the last map (the digit's identity wherever it is) → FC(→128) + ReLU,
    averaged over frames. Motion: the flattened last map of each frame (which keeps where the digit
    is) → FC(→64) + ReLU, concatenated over frames → FC(→128) + ReLU → FC(→n_motions)."""

    def __init__(self, shape: tuple[int, ...], n_classes: int = 10, n_motions: int = 8):
        super().__init__()
        t, c, h, w = shape
        self.trunk = nn.Sequential(ConvTrunk(c, 16, 32, 64), nn.Conv2d(64, 64, 3, 1, 1), nn.LeakyReLU(0.1))
        self.content = nn.Sequential(nn.Linear(64, FEATURES), nn.ReLU())
        self.where = nn.Sequential(nn.Flatten(), nn.Linear(64 * (h // 8) * (w // 8), 64), nn.ReLU())
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(FEATURES, n_classes)
        self.motion = nn.Sequential(nn.Linear(t * 64, FEATURES), nn.ReLU(), nn.Linear(FEATURES, n_motions))

    def _maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x.flatten(0, 1).float() - 0.5)  # (B·T, 64, H/8, W/8)

    def _content(self, maps: torch.Tensor, b: int) -> torch.Tensor:
        return self.content(maps.amax((-2, -1))).view(b, -1, FEATURES).mean(1)

    def _motion(self, maps: torch.Tensor, b: int) -> torch.Tensor:
        return self.motion(self.where(maps).view(b, -1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._content(self._maps(x), x.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.features(x)))

    def both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(content logits, motion logits) from one pass over the frames."""
        maps = self._maps(x)
        return self.out(self.drop(self._content(maps, x.shape[0]))), self._motion(maps, x.shape[0])

    def motion_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._motion(self._maps(x), x.shape[0])
