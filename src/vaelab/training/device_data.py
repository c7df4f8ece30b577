"""The training images on the device: the dataset's tensor as stored (uint8 images: a quarter of
float32's memory; floats per batch), or, for images drawn on demand (dSprites'
:class:`vaelab.data.LazyImages`), an :class:`OnDemand` that draws a batch's rows when indexed."""
from __future__ import annotations

import torch

from ..data import LazyImages, binarize, to_tensor


def device_images(images, device: torch.device, static: bool):
    """The training images on ``device`` (thresholded at 0.5 once under ``static`` binarisation), as
    a tensor or an :class:`OnDemand`."""
    if isinstance(images, LazyImages):  # drawn per batch: never one array
        return OnDemand(images, device, static=static)
    x = torch.as_tensor(images).to(device)
    if static:  # u/255 > 0.5 exactly when u ≥ 128
        x = binarize(to_tensor(x), "static") if x.dtype != torch.uint8 else (x >= 128).to(torch.uint8) * 255
    return x


class OnDemand:
    """On-demand training images standing in for the dataset's device tensor: indexing with rows (a
    tensor, an array or a slice) draws them and gives a tensor on ``device`` — uint8 (thresholded at
    128 under static binarisation), or float in [0, 1] once :meth:`scaled` (what ``begin_phase`` sees)."""

    def __init__(self, images: LazyImages, device: torch.device, static: bool = False, as_float: bool = False):
        self.images, self.device, self.static, self.as_float = images, device, static, as_float
        self.shape = torch.Size(images.shape)

    def dim(self) -> int:
        return len(self.shape)

    def scaled(self) -> "OnDemand":
        return OnDemand(self.images, self.device, self.static, as_float=True)

    def __getitem__(self, rows) -> torch.Tensor:
        x = torch.from_numpy(self.images[rows.cpu().numpy() if isinstance(rows, torch.Tensor) else rows]).to(self.device)
        if self.static:
            x = (x >= 128).to(torch.uint8) * 255
        return to_tensor(x) if self.as_float else x
