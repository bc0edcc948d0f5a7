"""The batches a teacher sees and what its outputs become.

A teacher takes the student's normalised batch; these bring it to the teacher's
input size, build the dummy batch every teacher is probed on as it loads, and turn
a live probability into two-class logits.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fasdistill.data.loader import MEAN, STD

PROBE_BATCH = 2


def resize_batch(images: Tensor, size: int) -> Tensor:
    """Square bilinear resize of a batch (antialiased when shrinking); identity at ``size``."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )


def binary_logits_from_probability(p: Tensor, eps: float = 1e-6) -> Tensor:
    """(N,) live probabilities -> (N, 2) logits [log p, log(1 - p)] (bona fide first)."""
    p = p.float().clamp(eps, 1.0 - eps)
    return torch.stack([p.log(), (1.0 - p).log()], dim=1)


def probe_batch(size: int, device: torch.device | None = None, channels_: int = 3) -> Tensor:
    """Two images at ``size`` normalised like the loader: mid-grey, and seeded noise.

    The noise has its own generator, so loading a teacher draws nothing from the
    global RNG and a run trains (and resumes) exactly as it would without the probe.
    (``channels_`` > 3: a multi-modal model's input, every channel normalised alike.)
    """
    pixels = torch.rand(
        PROBE_BATCH, channels_, size, size, generator=torch.Generator().manual_seed(0)
    )
    pixels[0] = 0.5
    return ((pixels - MEAN[0]) / STD[0]).to(device or torch.device("cpu"))


def channels(values: Any) -> Tensor:
    """Per-channel constants (mean, std) shaped to broadcast over an (N, 3, H, W) batch."""
    return torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)
