"""Classifier heads, training-only auxiliary heads and the targets the aux heads learn.

Aux heads (``pixel``, ``fourier``) read the backbone's final feature map and add a
dense supervision signal during training; they are never part of the deployed model.
Their targets are pure functions of labels and images so any trainer can build them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fasdistill.errors import InputError

AUX_HEADS = ("pixel", "fourier")


class ClassifierHead(nn.Module):
    """Global average pool + dropout + linear -> logits.

    With ``hidden > 0`` a ``linear -> hard-swish`` layer comes before the dropout, as
    on top of MobileNetV3.
    """

    def __init__(
        self, in_channels: int, num_classes: int, dropout: float = 0.2, hidden: int = 0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        features = in_channels
        if hidden > 0:
            layers += [nn.Linear(in_channels, hidden), nn.Hardswish(inplace=True)]
            features = hidden
        layers += [nn.Dropout(dropout), nn.Linear(features, num_classes)]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(x), 1))


class GDCHead(nn.Module):
    """MiniFASNet's global depthwise conv (GDC) embedding, then a linear classifier.

    GDC is a ``kernel x kernel`` depthwise conv whose kernel covers the whole final map
    at the default input, so each channel learns its own spatial weighting instead of
    a plain average (faces are aligned: the centre matters more than the corners).
    To accept any input size the conv runs *valid* and the result is averaged over
    positions: identical to GDC when the map is exactly ``kernel`` wide, a sliding
    GDC when it is larger, and zero-padded up to ``kernel`` when it is smaller.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        kernel: int = 5,
        embedding: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.gdc = nn.Conv2d(in_channels, in_channels, kernel, groups=in_channels, bias=False)
        self.gdc_bn = nn.BatchNorm2d(in_channels)
        self.embed = nn.Linear(in_channels, embedding, bias=False)
        self.embed_bn = nn.BatchNorm1d(embedding)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(embedding, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = max(self.kernel - h, 0), max(self.kernel - w, 0)
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        x = self.gdc_bn(self.gdc(x)).mean(dim=(2, 3))
        return self.fc(self.dropout(self.embed_bn(self.embed(x))))


def resize_map(x: Tensor, size: int) -> Tensor:
    """Resize a map to ``size x size``: area pooling to shrink, bilinear to enlarge."""
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    if h >= size and w >= size:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class PixelMapHead(nn.Module):
    """DeepPixBiS-style bona fide map: a 1x1 conv -> (N, 1, h, w) logits.

    Train it with binary cross-entropy against :func:`pixel_map_target` (1 for every
    position of a bona fide face, 0 for an attack): it makes every region of the
    feature map carry evidence, not just the few the pooled classifier relies on.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class FourierMapHead(nn.Module):
    """Predicts the input's log-magnitude spectrum at ``size x size``, as MiniFASNet is trained.

    The feature map is resized to ``size x size`` (area pooling or bilinear) and a
    small conv stack (Silent-Face's FTGenerator widths: 128 -> 64 -> 1) regresses
    :func:`fourier_target`; spectra separate the moire and blur of replays and
    prints from live skin, so this auxiliary loss shapes low-level features.
    GroupNorm replaces FTGenerator's BatchNorm so the head, like ``smoke-cnn``, gives
    the same result however a batch is split across processes.
    """

    def __init__(self, in_channels: int, size: int = 10, hidden: int = 128) -> None:
        super().__init__()
        if size < 1:
            raise InputError(f"size must be >= 1, got {size}")
        if hidden < 16 or hidden % 16:
            raise InputError(f"hidden must be a positive multiple of 16, got {hidden}")
        self.size = size
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.GroupNorm(8, hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden // 2, 3, padding=1, bias=False),
            nn.GroupNorm(8, hidden // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden // 2, 1, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.convs(resize_map(x, self.size))


def make_aux_head(name: str, in_channels: int) -> nn.Module:
    """The auxiliary head called ``name`` for a feature map with ``in_channels`` channels."""
    if name == "pixel":
        return PixelMapHead(in_channels)
    if name == "fourier":
        return FourierMapHead(in_channels)
    raise InputError(f"unknown aux head {name!r} in aux; choose from {', '.join(AUX_HEADS)}")


def pixel_map_target(labels_is_bonafide: Tensor, like: Tensor) -> Tensor:
    """Target for :class:`PixelMapHead`: a map shaped like ``like``, 1 for bona fide, 0 else.

    ``labels_is_bonafide`` is (N,) bool or 0/1; ``like`` is the head's (N, 1, h, w) output.
    """
    if labels_is_bonafide.dim() != 1 or labels_is_bonafide.shape[0] != like.shape[0]:
        raise InputError(
            f"labels_is_bonafide must have shape ({like.shape[0]},) to match like, "
            f"got {tuple(labels_is_bonafide.shape)}"
        )
    if like.dim() != 4:
        raise InputError(f"like must be a (N, 1, h, w) map, got shape {tuple(like.shape)}")
    values = labels_is_bonafide.to(device=like.device, dtype=like.dtype)
    return values.view(-1, 1, 1, 1).expand_as(like).contiguous()


def fourier_target(images: Tensor, size: int = 10) -> Tensor:
    """Target for :class:`FourierMapHead`: (N, 1, size, size) spectra in [0, 1].

    Grey image -> centred ``log(1 + |FFT2|)`` -> min-max normalised per image ->
    area-resized to ``size x size`` (Silent-Face-Anti-Spoofing's recipe). Works for
    any normalisation of ``images`` (N, 3 or 1, H, W): the spectrum is rescaled.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise InputError(f"images must be (N, 3 or 1, H, W), got shape {tuple(images.shape)}")
    if size < 1:
        raise InputError(f"size must be >= 1, got {size}")
    x = images.detach().float()
    if x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        x = (x * weights).sum(dim=1, keepdim=True)
    spectrum = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    magnitude = torch.log1p(spectrum.abs())
    low = magnitude.amin(dim=(2, 3), keepdim=True)
    high = magnitude.amax(dim=(2, 3), keepdim=True)
    normalised = (magnitude - low) / (high - low).clamp_min(1e-12)
    return resize_map(normalised, size).clamp(0.0, 1.0)
