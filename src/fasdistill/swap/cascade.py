"""Cascades in the SWAP report: one row, timed on real test faces, its speed the mean per face.

A cascade (:mod:`fasdistill.infer.cascade`) spends a different time on each face:
the small member's alone, or both members' when the face goes on. Timing it on a
zero tensor would measure one path only, so its calls score real test crops (up
to 256, evenly spread over the split and shuffled, cycled through at batch 1 and
``--batch``, interleaved with the other models as usual) and its speed figure is
the **mean** per call, not the median; speed-ups, energy and the report use that
mean and say so (``latency_statistic: "mean"``).
Every timing cell also records how many faces went on to the large member and
each member's mean time (``cascade`` in the cell).

It runs in its members' runtime (the small member's names the column; when the
large one runs elsewhere, both are named) and in no other: those cells are
"not run", like a third-party model's. Its threshold is the one stored in the
cascade (the band was chosen on dev for it). Parameters count both members (both
ship); MACs, activations and the modelled compute energy count the small member
plus the large one times the share of test faces passed on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.data.loader import CropDataset, CropIndex
from fasdistill.engine.evaluation import score_dataset
from fasdistill.errors import InputError
from fasdistill.export.formats import REGISTRY
from fasdistill.export.scoring import load_images, metrics_at
from fasdistill.infer.cascade import PYTORCH, ROLES, CascadeModel, CascadeScorer, open_cascade
from fasdistill.infer.model_file import ModelFile
from fasdistill.metrics.scores import ScoreSet
from fasdistill.swap.options import SwapOptions
from fasdistill.swap.power import compute_energy_j
from fasdistill.swap.weight import bytes_moved

TIMING_FACES = 256  # real test crops cycled through while timing (evenly spread, shuffled)
Log = Callable[[str], None]
Scorer = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[Scorer, int, str, Log], Scorer]


@dataclass
class CheckedCascade:
    """A cascade opened and checked before any work, with each member's weight."""

    model: CascadeModel
    weights: dict[str, dict[str, Any]]  # role -> params, macs, activation_elements, counted

    @property
    def runtime(self) -> str:
        """The runtime column it is timed in: its small member's."""
        return self.model.runtimes[0]

    @property
    def runs_in(self) -> str:
        small, large = self.model.runtimes
        return small if small == large else f"{small} (small) + {large} (large)"


def member_weight(member: ModelFile) -> dict[str, Any]:
    """Parameters and MACs of one member: measured on a ``best.pt``, counted in an ONNX
    graph, or stated in a model-from-elsewhere's sidecar."""
    size = int(member.meta["input_size"])
    if member.kind == PYTORCH:
        from fasdistill.engine.checkpoint import load_deployable
        from fasdistill.swap.weight import measure_weight

        model, _ = load_deployable(member.path)
        return measure_weight(model, size).as_dict() | {"counted": "PyTorch model"}
    if not member.format.sidecar:  # an ONNX graph: count it
        from fasdistill.swap.foreign import onnx_weight

        counted = onnx_weight(member.path, size)
        return {
            "params": counted["params"],
            "macs": counted["macs"],
            "activation_elements": 0,
            "counted": "ONNX graph",
        }
    if member.kind == "foreign":
        from fasdistill.infer.foreign import read_sidecar

        spec = read_sidecar(member.path, Path(member.meta["sidecar"]))
        if spec.params is not None and spec.macs is not None:
            return {
                "params": spec.params,
                "macs": spec.macs,
                "activation_elements": 0,
                "counted": "stated in its sidecar",
            }
    raise InputError(
        f"{member.path}: params, macs: SWAP cannot count the parameters and MACs of a "
        f"{member.format.runtime} cascade member; build the cascade from its best.pt or ONNX "
        "export, or describe it with a YAML sidecar stating params and macs"
    )


def check_cascade(path: Path, index: CropIndex, options: SwapOptions) -> CheckedCascade:
    """Open a cascade for SWAP: crop scale, runtimes and weights checked before any work."""
    model = open_cascade(path)
    if float(model.meta["crop_scale"]) != float(index.scale):
        raise InputError(
            f"{path}: the cascade expects crops at scale {model.meta['crop_scale']}, the index "
            f"{index.root} has {index.scale}; prepare crops at its scale"
        )
    for member in (model.small, model.large):
        if member.kind != PYTORCH and not member.format.available():
            raise InputError(f"{member.path}: its runtime is not installed ({member.format.extra})")
    checked = CheckedCascade(model, {})
    if checked.runtime not in options.runtimes:
        raise InputError(
            f"{path}: a cascade runs in its members' runtime ({checked.runs_in}); add "
            f"{checked.runtime} to --runtimes"
        )
    checked.weights = {role: member_weight(getattr(model, role)) for role in ROLES}
    return checked


class RealFaces:
    """A cascade's caller for timing: each call scores the next real test faces, cycling."""

    def __init__(self, scorer: CascadeScorer, faces: np.ndarray) -> None:
        self.scorer = scorer
        self.faces = faces
        self._next = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Score given crops (what every caller does); timing uses :meth:`cycle`."""
        return self.scorer(images)

    def cycle(self, batch: int) -> Callable[[], np.ndarray]:
        """One timed inference: the next ``batch`` real faces, wrapping round the set."""
        n = len(self.faces)

        def call() -> np.ndarray:
            start = self._next
            stop = start + batch
            if stop <= n:
                x = self.faces[start:stop]
            else:
                x = np.take(self.faces, np.arange(start, stop), axis=0, mode="wrap")
            self._next = stop % n
            return self.scorer(x)

        return call

    def take_stats(self) -> dict[str, Any]:
        """Faces scored and passed on since the last call, and each member's mean time."""
        stats = self.scorer.stats()
        self.scorer.reset()
        return stats


def cascade_entry(
    label: str,
    checked: CheckedCascade,
    index: CropIndex,
    options: SwapOptions,
    callers: dict[str, dict[str, Callable[[np.ndarray], Any]]],
    log: Log,
    progress: Progress,
) -> tuple[dict[str, Any], ScoreSet]:
    """The cascade's row (accuracy at its stored threshold, weight, what runs where) and its
    test scores; its timing caller goes into ``callers``."""
    model = checked.model
    size = int(model.meta["input_size"])
    scorer = model.scorer(options.threads)
    sets: dict[str, ScoreSet] = {}
    routed: dict[str, dict[str, Any]] = {}
    for split in ("dev", "test"):
        dataset = CropDataset(index, split, size)
        if len(dataset) == 0:
            raise InputError(f"{index.root}: no {split} crops; SWAP scores a cascade on both")
        scorer.reset()
        score = progress(scorer, len(dataset), f"scoring {split}", log)
        sets[split] = score_dataset(lambda images, s=score: s(images.numpy()), dataset, 64)
        routed[split] = scorer.stats()
    threshold = model.threshold
    accuracy = metrics_at(sets, model.meta, threshold)
    faces = load_images(index, "test", size, TIMING_FACES)
    # shuffled (fixed seed), so the faces a time-capped loop reaches are a random sample
    faces = faces[np.random.default_rng(0).permutation(len(faces))]
    scorer.reset()
    runtime = checked.runtime
    callers[runtime][label] = RealFaces(scorer, faces)
    share = float(routed["test"]["share_passed_on"])
    folder = model.path.parent
    files = [
        model.path,
        *(folder / n for m in model.manifest["members"].values() for n in m["bytes"]),
    ]
    weight = _weight(checked.weights, share) | {
        "bytes": {runtime: sum(f.stat().st_size for f in files)}  # both members + manifest
    }
    only = f"cascade: runs in its members' runtime ({checked.runs_in}) only"
    entry = {
        "label": label,
        "source": f"cascade {model.path}",
        "checkpoint": str(model.path),
        "model": model.meta["model"],
        "role": "cascade",
        "input_size": size,
        "threshold": threshold,
        "primary_runtime": runtime,
        "weight": weight,
        "accuracy": {runtime: accuracy},
        "export": {},
        "missing": {},
        "not_run": {r: only for r in options.runtimes if r != runtime},
        "latency_statistic": "mean",
        "cascade": {
            "manifest": str(model.path),
            "runtime": runtime,
            "runs_in": checked.runs_in,
            "members": {
                role: {
                    "file": member.path.name,
                    "model": member.meta.get("model", member.path.name),
                    "runtime": rt,
                    "input_size": int(member.meta["input_size"]),
                    "threshold": member.threshold,
                }
                for role, member, rt in zip(
                    ROLES, (model.small, model.large), model.runtimes, strict=True
                )
            },
            "band": dict(model.meta["band"]),
            "scored": {
                split: {k: stats[k] for k in ("faces", "passed_on", "share_passed_on")}
                for split, stats in routed.items()
            },
            "timing_faces": len(faces),
            "built_on_dev": model.manifest.get("dev", {}),
        },
    }
    return entry, sets["test"]


def _weight(weights: dict[str, dict[str, Any]], share: float) -> dict[str, Any]:
    """Both members ship (params); each face costs the small member plus, for the share
    passed on, the large one (MACs, activations)."""
    small, large = weights["small"], weights["large"]
    activations = 0
    if small["activation_elements"] and large["activation_elements"]:
        activations = round(small["activation_elements"] + share * large["activation_elements"])
    return {
        "params": int(small["params"] + large["params"]),
        "macs": round(small["macs"] + share * large["macs"]),
        "activation_elements": activations,
        "members": {"small": small, "large": large},
        "note": "params: both members (both ship); MACs and activations: the small member's "
        f"plus the large member's times the share of test faces passed on ({100 * share:.1f} %)",
    }


def compute_energy(entry: dict[str, Any], profile: Any) -> float:
    """Modelled compute energy per face: the small member's, plus the large member's
    times the share of test faces passed on, each at its own precision."""
    share = entry["cascade"]["scored"]["test"]["share_passed_on"]
    total = 0.0
    for role, factor in (("small", 1.0), ("large", share)):
        weight = entry["weight"]["members"][role]
        runtime = entry["cascade"]["members"][role]["runtime"]
        int8 = runtime in REGISTRY and REGISTRY[runtime].quantized
        moved = bytes_moved(weight["params"], weight["activation_elements"], 1 if int8 else 4)
        total += factor * compute_energy_j(weight["macs"], moved, int8, profile)
    return total
