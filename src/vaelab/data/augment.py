"""Random small affine moves of image batches (data augmentation), with torch only.

Applied by the trainer to each batch of a phase that declares it (``Phase.affine``): VaDE's
autoencoder pretraining (``pretrain_shift``, ``pretrain_rotation``), where an autoencoder
trained on randomly shifted and rotated digits learns an embedding that k-means/GMMs cluster far
better than one trained on the fixed images (Guo et al. 2018, "Deep Embedded Clustering with Data
Augmentation", ACML; their Keras setting is shifts of 10% of the width and rotations of 10°).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def affine(x: torch.Tensor, angle_deg: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
    """Rotate each image of ``x`` (B, C, H, W) by ``angle_deg`` about its centre (counter-clockwise
    as displayed, rows running down) and then move it by (``shift_x``, ``shift_y``) pixels (right,
    down); each argument has shape (B,). Bilinear interpolation, zeros outside the image."""
    if x.dim() != 4:
        raise ConfigError(f"image augmentation needs image batches (B, C, H, W), got shape {tuple(x.shape)}")
    _, _, H, W = x.shape
    a = angle_deg.to(torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(a), torch.sin(a)
    # affine_grid maps output coordinates (normalised to [-1, 1]) to input coordinates.
    inv_rot = torch.stack([torch.stack([cos, -sin * H / W], -1), torch.stack([sin * W / H, cos], -1)], -2)  # R⁻¹
    shift = torch.stack([2.0 * shift_x.to(torch.float32) / W, 2.0 * shift_y.to(torch.float32) / H], -1)  # t
    # A rotation followed by a shift: input = R⁻¹ (output − t), so the translation goes through R⁻¹ as well.
    theta = torch.cat([inv_rot, -(inv_rot @ shift.unsqueeze(-1))], -1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_affine(x: torch.Tensor, max_shift: float, max_rotation: float) -> torch.Tensor:
    """Each image rotated by U(−max_rotation, max_rotation) degrees and shifted by U(−max_shift,
    max_shift) × its width (height) pixels along x (y), drawn from torch's global generator."""
    if max_shift == 0 and max_rotation == 0:
        return x
    B, H, W = x.shape[0], x.shape[-2], x.shape[-1]  # ``affine`` refuses anything but (B, C, H, W)
    u = torch.rand(3, B, device=x.device) * 2.0 - 1.0
    return affine(x, u[0] * max_rotation, u[1] * max_shift * W, u[2] * max_shift * H)
