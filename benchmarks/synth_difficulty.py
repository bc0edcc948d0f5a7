"""How does SynthSpoof's ``difficulty`` knob move the error of hand-crafted baselines?

For each difficulty in 0, 0.25, 0.5 (the default), 0.75 and 1, generates a
SynthSpoof still-image set (all domains, same seed, so only the difficulty
changes) into a temporary directory and fits two baselines on its ``train``
split: ``colour-hist`` (joint Cr-Cb chroma histogram plus saturation, value
and luma histograms of the face crop) and ``fft-energy``
(log energy of the grey face crop's 2-D spectrum in radial bands and high-band
angular sectors), each a numpy L2-regularised logistic regression scoring
P(bona fide). The threshold is chosen on ``dev`` (EER); test EER (all attacks
pooled: the per-species ISO figure moves in large steps on sets this size), ACER
(worst species, ISO) and AUC are reported, with whether the EER is
non-decreasing and the AUC non-increasing in difficulty, and whether the default
difficulty is far from perfect (test EER >= 10 % for both baselines).

    python benchmarks/synth_difficulty.py [--subjects 30] [--samples 2] [--size 96] \
        [--seeds 0,1,2] [--workers N]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from fasdistill.data.synth.domains import DOMAINS
from fasdistill.data.synth.generator import SynthConfig, default_workers, generate, iter_samples
from fasdistill.metrics import EvalOptions, ScoreSet, evaluate

DIFFICULTIES = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_DIFFICULTY = 0.5
FAR_FROM_PERFECT_EER = 0.10
HIST_BINS = 8
FFT_SIZE = 64
RADIAL_BANDS = 12
HIGH_SECTORS = 4

Features = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------- features


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


BASELINES: dict[str, Features] = {"colour-hist": colour_hist, "fft-energy": fft_energy}
SHORT = {"colour-hist": "hist", "fft-energy": "fft"}  # table headers


# ---------------------------------------------------------------------------- model


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


# ---------------------------------------------------------------------------- benchmark


def score_set(rows: list[dict[str, str]], scores: np.ndarray, split: str) -> ScoreSet:
    return ScoreSet.from_arrays(
        scores,
        [r["label"] for r in rows],
        [r["pai"] for r in rows],
        [r["sample_id"] for r in rows],
        [r["subject"] for r in rows],
        [r["sample_id"] for r in rows],
        source=f"<synth {split}>",
    )


def run_baseline(
    rows: list[dict[str, str]], crops: list[np.ndarray], features: Features
) -> dict[str, float]:
    """Train on train, pick the threshold on dev, return test EER/ACER/AUC and seconds."""
    start = time.perf_counter()
    x = np.stack([features(c) for c in crops])
    y = np.array([r["label"] == "bonafide" for r in rows], dtype=np.float64)
    split = np.array([r["split"] for r in rows])
    model = LogisticRegression().fit(x[split == "train"], y[split == "train"])
    sets = {}
    for name in ("dev", "test"):
        index = np.flatnonzero(split == name)
        sets[name] = score_set([rows[i] for i in index], model.predict(x[index]), name)
    test = evaluate(sets["dev"], sets["test"], EvalOptions(criterion="eer", bootstrap=0))
    report = test.report["test"]
    result = {
        "eer": float(report["eer_pooled"]),
        "acer": float(report["acer"]),
        "auc": float(report["auc"]),
    }
    result["seconds"] = time.perf_counter() - start
    return result


def load_crops(root: Path, rows: list[dict[str, str]]) -> list[np.ndarray]:
    crops = []
    for row in rows:
        image = cv2.imread(str(root / row["path"]), cv2.IMREAD_COLOR)
        if image is None:
            raise RuntimeError(f"cannot read {root / row['path']}")
        crops.append(face_crop(image, row))
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=30, help="subjects per domain")
    parser.add_argument("--samples", type=int, default=2, help="samples per class and subject")
    parser.add_argument("--size", type=int, default=96, help="image size in pixels")
    parser.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds; metrics are averaged over them"
    )
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()

    results: dict[float, dict[str, dict[str, float]]] = {}
    gen_seconds: dict[float, float] = {}
    n_samples = 0
    seeds = [int(s) for s in args.seeds.split(",")]
    for difficulty in DIFFICULTIES:
        per_seed: list[dict[str, dict[str, float]]] = []
        gen_seconds[difficulty] = 0.0
        for seed in seeds:
            config = SynthConfig(
                subjects=args.subjects,
                samples=args.samples,
                frames=1,
                size=args.size,
                domains=tuple(DOMAINS),
                difficulty=difficulty,
                seed=seed,
            )
            with tempfile.TemporaryDirectory(prefix="synth_difficulty.") as tmp:
                start = time.perf_counter()
                generate(tmp, config, workers=args.workers)
                rows = list(iter_samples(tmp))
                crops = load_crops(Path(tmp), rows)
                gen_seconds[difficulty] += time.perf_counter() - start
            n_samples = len(rows)
            per_seed.append(
                {name: run_baseline(rows, crops, features) for name, features in BASELINES.items()}
            )
        results[difficulty] = {
            name: {k: float(np.mean([r[name][k] for r in per_seed])) for k in per_seed[0][name]}
            for name in BASELINES
        }

    table = Table(
        title=(
            f"SynthSpoof difficulty vs baselines: {len(DOMAINS)} domains x {args.subjects} "
            f"subjects, {n_samples} images of {args.size}px per set, mean of seeds {args.seeds}; "
            "test EER/ACER/AUC in %, threshold at dev EER; s = seconds"
        ),
        caption=", ".join(f"{short} = {name}" for name, short in SHORT.items()),
        caption_justify="left",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("difficulty", justify="right")
    table.add_column("gen s", justify="right")
    for name in BASELINES:  # two header lines, so the table fits 80 columns
        for metric in ("EER", "ACER", "AUC", "s"):
            table.add_column(f"{SHORT[name]}\n{metric}", justify="right")
    for difficulty in DIFFICULTIES:
        cells = [f"{difficulty:.2f}", f"{gen_seconds[difficulty]:.1f}"]
        for name in BASELINES:
            r = results[difficulty][name]
            cells += [
                f"{100 * r['eer']:.1f}",
                f"{100 * r['acer']:.1f}",
                f"{100 * r['auc']:.1f}",
                f"{r['seconds']:.1f}",
            ]
        table.add_row(*cells)
    console = Console()
    console.print(table)

    for name in BASELINES:
        eers = [results[d][name]["eer"] for d in DIFFICULTIES]
        aucs = [results[d][name]["auc"] for d in DIFFICULTIES]
        eer_up = all(b >= a for a, b in itertools.pairwise(eers))
        auc_down = all(b <= a for a, b in itertools.pairwise(aucs))
        console.print(
            f"{name}: test EER non-decreasing with difficulty: {'yes' if eer_up else 'no'}; "
            f"test AUC non-increasing: {'yes' if auc_down else 'no'}"
        )
    default_eers = {name: results[DEFAULT_DIFFICULTY][name]["eer"] for name in BASELINES}
    far = all(e >= FAR_FROM_PERFECT_EER for e in default_eers.values())
    listed = ", ".join(f"{name} {100 * e:.1f} %" for name, e in default_eers.items())
    console.print(
        f"default difficulty {DEFAULT_DIFFICULTY}: far from perfect (test EER >= "
        f"{100 * FAR_FROM_PERFECT_EER:.0f} % for both baselines): {'yes' if far else 'no'} "
        f"({listed})"
    )


if __name__ == "__main__":
    main()
