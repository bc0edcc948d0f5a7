"""Hand-crafted face anti-spoofing baselines: colour histograms and spectrum energy.

Two classic, training-cheap detectors, each a logistic regression over a fixed
feature vector of the face crop. They are the floor any learned model must
clear, and they check that a benchmark is not trivially separable (see
``benchmarks/synth_difficulty.py``). Score = P(bona fide), so higher = more
likely bona fide, as everywhere in fasdistill.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fasdistill.errors import InputError
from fasdistill.metrics.scores import ScoreSet

HIST_BINS = 8
FFT_SIZE = 64
RADIAL_BANDS = 12
HIGH_SECTORS = 4

Features = Callable[[np.ndarray], np.ndarray]


def face_crop(image: np.ndarray, row: dict[str, str]) -> np.ndarray:
    """The face box of ``row`` cut from ``image`` (clipped to it, at least 2x2 pixels)."""
    h, w = image.shape[:2]
    x, y = float(row["box_x"]), float(row["box_y"])
    bw, bh = float(row["box_w"]), float(row["box_h"])
    x0 = int(np.clip(np.floor(x), 0, w - 2))
    y0 = int(np.clip(np.floor(y), 0, h - 2))
    x1 = int(np.clip(np.ceil(x + bw), x0 + 2, w))
    y1 = int(np.clip(np.ceil(y + bh), y0 + 2, h))
    return image[y0:y1, x0:x1]


def colour_hist(crop: np.ndarray) -> np.ndarray:
    """Colour histograms of a BGR crop, as colour-texture FAS baselines use them.

    A joint 8 x 8 (Cr, Cb) chroma histogram plus 16-bin histograms of HSV
    saturation, HSV value and luma Y; each normalised and square-rooted
    (Hellinger), concatenated.
    """
    ycc = cv2.cvtColor(crop, cv2.COLOR_BGR2YCrCb)
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    chroma = cv2.calcHist([ycc], [1, 2], None, [HIST_BINS, HIST_BINS], [0, 256, 0, 256]).ravel()
    parts = [chroma]
    for image, channel in ((hsv, 1), (hsv, 2), (ycc, 0)):
        parts.append(cv2.calcHist([image], [channel], None, [2 * HIST_BINS], [0, 256]).ravel())
    return np.concatenate([np.sqrt(p / max(p.sum(), 1.0)) for p in parts])


def _fft_masks() -> list[np.ndarray]:
    """Radial bands over (0, Nyquist] and angular sectors of the upper half of the spectrum."""
    freq = np.fft.fftfreq(FFT_SIZE)
    fy, fx = np.meshgrid(freq, freq, indexing="ij")
    radius = np.hypot(fx, fy) / 0.5  # 1 at Nyquist along an axis
    angle = np.mod(np.arctan2(fy, fx), np.pi)  # the spectrum of a real image is symmetric
    edges = np.linspace(0.0, 1.0, RADIAL_BANDS + 1)
    masks = [(radius > lo) & (radius <= hi) for lo, hi in itertools.pairwise(edges)]
    high = (radius > 0.5) & (radius <= 1.0)
    sectors = np.linspace(0.0, np.pi, HIGH_SECTORS + 1)
    masks += [high & (angle >= lo) & (angle < hi) for lo, hi in itertools.pairwise(sectors)]
    return masks


_MASKS = _fft_masks()
_WINDOW = np.outer(np.hanning(FFT_SIZE), np.hanning(FFT_SIZE))


def fft_energy(crop: np.ndarray) -> np.ndarray:
    """Log share of the grey crop's (windowed, mean-removed) spectral energy per band/sector."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float64)
    grey = cv2.resize(grey, (FFT_SIZE, FFT_SIZE), interpolation=cv2.INTER_AREA)
    power = np.abs(np.fft.fft2((grey - grey.mean()) * _WINDOW)) ** 2
    total = power.sum() + 1e-12
    return np.log(np.array([power[m].sum() for m in _MASKS]) / total + 1e-10)


FEATURES: dict[str, Features] = {"colour-hist": colour_hist, "fft-energy": fft_energy}


class LogisticRegression:
    """L2-regularised logistic regression on standardised features, fitted by Newton steps."""

    def __init__(self, l2: float = 1.0, steps: int = 50) -> None:
        self.l2 = l2
        self.steps = steps
        self.mean = np.zeros(0)
        self.scale = np.ones(0)
        self.weights = np.zeros(0)

    def _design(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return np.hstack([z, np.ones((len(z), 1))])

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
        """Fit on features ``x`` and 0/1 targets ``y`` (classes weighted to equal total mass)."""
        self.mean = x.mean(axis=0)
        self.scale = np.where(x.std(axis=0) > 1e-8, x.std(axis=0), 1.0)
        a = self._design(x)
        n_pos = max(int(y.sum()), 1)
        n_neg = max(len(y) - int(y.sum()), 1)
        sample_w = np.where(y == 1, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
        penalty = np.full(a.shape[1], self.l2)
        penalty[-1] = 0.0  # the intercept is not shrunk
        w = np.zeros(a.shape[1])
        for _ in range(self.steps):
            p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -30, 30)))
            grad = a.T @ (sample_w * (p - y)) + penalty * w
            hess = (a * (sample_w * p * (1 - p))[:, None]).T @ a + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.max(np.abs(step)) < 1e-8:
                break
        self.weights = w
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(class 1) for each row of ``x``."""
        return 1.0 / (1.0 + np.exp(-np.clip(self._design(x) @ self.weights, -30, 30)))


def load_crops(root: str | os.PathLike[str], rows: list[dict[str, str]]) -> list[np.ndarray]:
    """Face crops (BGR) of the rows of a samples index whose ``path`` is relative to ``root``."""
    crops = []
    for row in rows:
        path = Path(root) / row["path"]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{path}: cannot read the image (missing or not an image file)")
        crops.append(face_crop(image, row))
    return crops


def score_set(rows: list[dict[str, str]], scores: np.ndarray, source: str) -> ScoreSet:
    """Scores of ``rows`` (samples-index rows) as a ScoreSet for evaluation."""
    return ScoreSet.from_arrays(
        scores,
        [r["label"] for r in rows],
        [r["pai"] for r in rows],
        [r.get("video_id") or r["sample_id"] for r in rows],
        [r["subject"] for r in rows],
        [r["sample_id"] for r in rows],
        source=source,
    )


def fit_and_score(
    rows: list[dict[str, str]], crops: list[np.ndarray], features: str | Features
) -> dict[str, ScoreSet]:
    """Fit on the ``train`` rows, score the ``dev`` and ``test`` rows (keyed by split)."""
    extract = FEATURES[features] if isinstance(features, str) else features
    x = np.stack([extract(c) for c in crops])
    y = np.array([r["label"] == "bonafide" for r in rows], dtype=np.float64)
    split = np.array([r["split"] for r in rows])
    for needed in ("train", "dev", "test"):
        if not (split == needed).any():
            raise InputError(f"no {needed!r} rows: a baseline needs train, dev and test splits")
    model = LogisticRegression().fit(x[split == "train"], y[split == "train"])
    name = features if isinstance(features, str) else getattr(features, "__name__", "baseline")
    out = {}
    for part in ("dev", "test"):
        index = np.flatnonzero(split == part)
        out[part] = score_set([rows[i] for i in index], model.predict(x[index]), f"<{name} {part}>")
    return out
