"""The reference image classifier's network (trained and cached by :mod:`vaelab.reference_classifier`),
also the digit reader of the sequence judge (:mod:`vaelab.nn.judge`)."""
from __future__ import annotations

import torch
from torch import nn

FEATURE_DIM = 128


class ClassifierNet(nn.Module):
    """A small CNN: images (B, C, 28, 28) in [0, 1] → logits (B, n_classes); ``features`` gives (B, 128)."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, size: tuple[int, int] = (28, 28)):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, stride=2, padding=2), nn.BatchNorm2d(32), nn.ReLU(),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, 5, stride=2, padding=2), nn.BatchNorm2d(64), nn.ReLU(),  # (B, 64, H/4, W/4)
            nn.Flatten(),
            nn.Linear(64 * (size[0] // 4) * (size[1] // 4), FEATURE_DIM), nn.ReLU(),
        )
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(FEATURE_DIM, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.float() - 0.5)  # (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.features(x)))  # (B, n_classes)
