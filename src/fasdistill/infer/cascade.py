"""Cascaded inference: the smallest student decides the faces it is sure of, a larger one the rest.

Two model files of any kind :func:`fasdistill.infer.model_file.open_model` opens
(a ``best.pt``, ``.onnx``, ``.int8.onnx``, ``.pte``, ``.tflite``, ncnn ``.param``, or
a model from elsewhere with its YAML sidecar) become one deployable unit:

- the **small** member scores every face; a face whose score lies outside the band
  ``[lo, hi]`` is decided by it, at its own threshold;
- a face inside the band goes on to the **large** member (a larger student or the
  teacher), which decides at its own threshold.

The band is chosen on the dev split only (:mod:`fasdistill.infer.cascade_band`):
``lo <= t_small <= hi``, with edges from the small member's dev score quantiles,
passing on as few dev faces as possible while the cascade's dev ACER (ISO/IEC
30107-3, APCER = worst PAI species) stays at or below the large member's alone. The
band covering every score is the large member alone, so a band always exists.

The cascade has one score, so ACER, EER, AUC, score files and prediction treat it
like any model: a face the small member decides gets its score mapped monotonically
onto the large member's scale, ``sigmoid(logit(s) - logit(t_small) + logit(t_large))``,
which puts the small threshold on the large one; a face passed on gets the large
member's score. The cascade's threshold is the large member's, so ``score >=
threshold`` is exactly the cascade's decision.

Input sizes may differ. The cascade's input is the larger of the two input sizes
(normally the large member's); the other member's crops are resized inside the
scorer as :func:`fasdistill.distill.batches.resize_batch` resizes batches for a
teacher (bilinear, antialiased when shrinking). Dev figures are computed through
that same path, so they are what the deployed cascade does.

On disk (:func:`build_cascade`) a cascade is a folder: copies of both members with
every companion file (metadata sidecars, ncnn weights, YAML sidecars) and
``model.cascade.json``, the manifest (docs/cascade.md describes its fields).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.data.loader import COLOUR_ORDER, MEAN, STD, CropDataset, read_crop_index
from fasdistill.errors import InputError
from fasdistill.export.formats import REGISTRY, Format
from fasdistill.infer.cascade_band import (
    BAND_RULE,
    QUANTILES,
    SCORE_RULE,
    BandChoice,
    cascade_scores,
    check_threshold,
    choose_band,
    in_band,
    map_small_scores,
)
from fasdistill.infer.model_file import OPENERS, ModelFile, Scorer, open_model
from fasdistill.metrics.scores import ScoreSet

__all__ = [
    "CASCADE_FILE",
    "QUANTILES",
    "BandChoice",
    "CascadeModel",
    "CascadeScorer",
    "build_cascade",
    "cascade_scores",
    "check_members",
    "choose_band",
    "in_band",
    "is_cascade",
    "map_small_scores",
    "member_runtime",
    "open_cascade",
]

CASCADE_FILE = "model.cascade.json"
CASCADE_SUFFIX = ".cascade.json"
MANIFEST_FORMAT = "fasdistill-cascade/1"
ROLES = ("small", "large")
PYTORCH = "pytorch"  # the runtime a best.pt member runs in (swap's runtime name)
SHARED_FIELDS = ("classes", "crop_scale", "colour_order", "mean", "std", "threshold_level")
RESIZE_RULE = (
    "crops at input_size; a member with another input size gets them resized bilinearly "
    "(antialiased when shrinking), as batches are resized for a teacher"
)


# ---------------------------------------------------------------------------- members


def member_runtime(member: ModelFile) -> str:
    """The runtime a member runs in, as ``swap --runtimes`` names it.

    A ``best.pt`` runs in PyTorch; an artifact in its format's runtime, the quantized
    entry when its file name carries that entry's marker (``model.int8.onnx``), since
    an int8 file has the same suffix as the fp32 one.
    """
    if member.kind == PYTORCH:
        return PYTORCH
    entry = member.format
    for other in REGISTRY.values():
        if other.quantized and not entry.quantized and other.suffix == entry.suffix:
            marker = other.file_name.removeprefix("model").removesuffix(other.suffix)
            if f"{marker}." in member.path.name:
                return other.name
    return entry.name


def _entry(member: ModelFile) -> Format | None:
    return None if member.kind == PYTORCH else member.format


def _copy_names(member: ModelFile, role: str) -> list[tuple[Path, str]]:
    """(source, name in the cascade folder) of every file of ``member`` as ``role``."""
    runtime = member_runtime(member)
    marker = ""
    if runtime != PYTORCH and REGISTRY[runtime].quantized:
        entry = REGISTRY[runtime]
        marker = entry.file_name.removeprefix("model").removesuffix(entry.suffix)
    target = Path(f"{role}{marker}{member.path.suffix.lower()}")
    entry = _entry(member)
    sources = [member.path] if entry is None else entry.files_of(member.path)
    targets = [target] if entry is None else entry.files_of(target)
    pairs = [(s, t.name) for s, t in zip(sources, targets, strict=True) if s.is_file()]
    if member.kind == "foreign":  # found again beside the copy as <file>.yaml
        pairs.append((Path(member.meta["sidecar"]), f"{target.name}.yaml"))
    return pairs


def _same(key: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if key == "classes":
        return sorted(a) == sorted(b)
    if key in ("mean", "std"):
        return [float(v) for v in a] == [float(v) for v in b]
    if key == "crop_scale":
        return float(a) == float(b)
    return bool(a == b)


def check_members(small: ModelFile, large: ModelFile) -> None:
    """Refuse members that do not share their preprocessing, classes and threshold level,
    or lack a usable threshold; each error names the file and the field."""
    for role, member in (("small", small), ("large", large)):
        if member.kind == "cascade":
            raise InputError(f"{member.path}: is a cascade; a {role} member must be one model")
        check_threshold(member.threshold, str(member.path))
    for key in SHARED_FIELDS:
        a, b = small.meta.get(key), large.meta.get(key)
        if not _same(key, a, b):
            raise InputError(
                f"{large.path}: {key}: {b!r} differs from the small member {small.path}'s {a!r}; "
                "a cascade's members must share it"
            )
    detectors = small.meta.get("detector"), large.meta.get("detector")
    if None not in detectors and detectors[0] != detectors[1]:
        raise InputError(
            f"{large.path}: detector: {detectors[1]!r} differs from the small member "
            f"{small.path}'s {detectors[0]!r}; a cascade's members must find faces alike"
        )


def _fit(images: np.ndarray, size: int) -> np.ndarray:
    """Crops at ``size``: resized like a teacher's batch when the side differs."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    import torch

    from fasdistill.distill.batches import resize_batch

    return resize_batch(torch.from_numpy(np.ascontiguousarray(images)), size).numpy()


def _sized(scorer: Scorer, size: int) -> Scorer:
    return lambda images: np.asarray(scorer(_fit(images, size)), np.float64).reshape(-1)


# ---------------------------------------------------------------------------- the scorer


class CascadeScorer:
    """P(bona fide) of preprocessed crops: the small member scores every face, the large
    member only those whose small score lies in the band.

    Thread-safe when both members are; it counts the faces it saw, those it passed on
    and the seconds each member took (:meth:`stats`), so SWAP can state them.
    """

    def __init__(
        self,
        small: Scorer,
        large: Scorer,
        sizes: tuple[int, int],
        band: tuple[float, float],
        thresholds: tuple[float, float],
    ) -> None:
        self.small = _sized(small, sizes[0])
        self.large = _sized(large, sizes[1])
        self.band = band
        self.thresholds = thresholds
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero the counters."""
        with self._lock:
            self._counts = {"calls": 0, "faces": 0, "passed_on": 0, "large_calls": 0}
            self._seconds = {"small": 0.0, "large": 0.0}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, np.float32)
        start = time.perf_counter()
        small = self.small(x)
        middle = time.perf_counter()
        passed = in_band(small, *self.band)
        out = map_small_scores(small, *self.thresholds)
        n_passed = int(passed.sum())
        if n_passed:
            out[passed] = self.large(x[passed])
        end = time.perf_counter()
        with self._lock:
            self._counts["calls"] += 1
            self._counts["faces"] += len(small)
            self._counts["passed_on"] += n_passed
            self._counts["large_calls"] += bool(n_passed)
            self._seconds["small"] += middle - start
            self._seconds["large"] += end - middle
        return out

    def stats(self) -> dict[str, Any]:
        """Faces seen and passed on since the last reset, and each member's mean time."""
        with self._lock:
            counts, seconds = dict(self._counts), dict(self._seconds)
        faces, calls, large_calls = counts["faces"], counts["calls"], counts["large_calls"]
        return counts | {
            "share_passed_on": counts["passed_on"] / faces if faces else None,
            "small_ms_per_call": 1e3 * seconds["small"] / calls if calls else None,
            "large_ms_per_call_run": 1e3 * seconds["large"] / large_calls if large_calls else None,
        }


# ---------------------------------------------------------------------------- the model file


@dataclass
class CascadeModel(ModelFile):
    """An opened cascade (``kind`` "cascade"): both members and its manifest.

    ``meta`` has what prediction needs (input size, crop scale, crop size and
    detector when the members carry them, classes, threshold and its criterion and
    level); ``scorer`` runs the members as the band says.
    """

    small: ModelFile
    large: ModelFile
    manifest: dict[str, Any]

    @property
    def format(self) -> Format:
        raise InputError(
            f"{self.path}: a cascade runs two model files ({self.small.path.name}, "
            f"{self.large.path.name}); it has no single format"
        )

    @property
    def thread_safe(self) -> bool:
        return self.small.thread_safe and self.large.thread_safe

    @property
    def band(self) -> tuple[float, float]:
        return float(self.manifest["band"]["lo"]), float(self.manifest["band"]["hi"])

    @property
    def runtimes(self) -> tuple[str, str]:
        """The runtimes of the small and the large member."""
        return member_runtime(self.small), member_runtime(self.large)

    def scorer(self, threads: int = 1) -> CascadeScorer:
        return CascadeScorer(
            self.small.scorer(threads),
            self.large.scorer(threads),
            (int(self.small.meta["input_size"]), int(self.large.meta["input_size"])),
            self.band,
            (self.small.threshold, self.large.threshold),
        )


def is_cascade(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a cascade: a ``*.cascade.json`` file or a folder holding one."""
    path = Path(path)
    if path.name.lower().endswith(CASCADE_SUFFIX):
        return True
    return path.is_dir() and (path / CASCADE_FILE).is_file()


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """The manifest of a cascade given as its file or its folder."""
    path = Path(path)
    return path / CASCADE_FILE if path.is_dir() else path


def _field(data: dict[str, Any], dotted: str, kinds: type | tuple[type, ...], where: Path) -> Any:
    value: Any = data
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise InputError(f"{where}: {dotted}: missing; rebuild it with fasdistill cascade")
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InputError(f"{where}: {dotted}: expected {kinds}, got {value!r}")
    return value


def _shared_meta(small: ModelFile, large: ModelFile) -> dict[str, Any]:
    """The preprocessing both members share, at the cascade's input size, and how crops
    are cut (crop size and detector from the member whose input size it is)."""
    sizes = int(small.meta["input_size"]), int(large.meta["input_size"])
    source = small if sizes[0] > sizes[1] else large
    meta = {
        "input_size": max(sizes),
        "crop_scale": float(large.meta["crop_scale"]),
        "colour_order": large.meta["colour_order"],
        "mean": list(large.meta["mean"]),
        "std": list(large.meta["std"]),
        "classes": list(large.meta["classes"]),
    }
    for key in ("crop_size", "detector"):
        value = source.meta.get(key) or (small if source is large else large).meta.get(key)
        if value:
            meta[key] = value
    return meta


def open_cascade(path: str | os.PathLike[str]) -> CascadeModel:
    """Open a cascade from its manifest (or its folder); both members are opened and checked.

    A member file that is missing, has changed size, or whose threshold differs from
    the one the band was chosen for is one line naming it (rebuild the cascade).
    """
    manifest = manifest_path(path)
    if not manifest.is_file():
        raise InputError(f"{manifest}: cascade manifest not found")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{manifest}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{manifest}: not valid JSON (line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{manifest}: format: expected {MANIFEST_FORMAT!r}, got {got!r}")
    members = {}
    for role in ROLES:
        name = _field(data, f"members.{role}.file", str, manifest)
        if Path(name).name != name:
            raise InputError(f"{manifest}: members.{role}.file: {name!r} must be a plain file name")
        sizes = _field(data, f"members.{role}.bytes", dict, manifest)
        for file, size in sizes.items():
            on_disk = manifest.parent / str(file)
            if not on_disk.is_file():
                raise InputError(f"{on_disk}: missing; the cascade {manifest} needs it")
            if on_disk.stat().st_size != size:
                raise InputError(
                    f"{on_disk}: {on_disk.stat().st_size} bytes, the manifest says {size} "
                    f"(members.{role}.bytes); the file changed: rebuild the cascade"
                )
        member = open_model(manifest.parent / name)
        stated = float(_field(data, f"members.{role}.threshold", (int, float), manifest))
        if member.threshold != stated:
            raise InputError(
                f"{member.path}: threshold {member.threshold:.6g} differs from the {stated:.6g} "
                f"the band was chosen for (members.{role}.threshold); rebuild the cascade"
            )
        members[role] = member
    small, large = members["small"], members["large"]
    check_members(small, large)
    lo = float(_field(data, "band.lo", (int, float), manifest))
    hi = float(_field(data, "band.hi", (int, float), manifest))
    if not 0.0 <= lo <= small.threshold <= hi <= 1.0:
        raise InputError(
            f"{manifest}: band: [{lo:.6g}, {hi:.6g}] must lie in [0, 1] and hold the small "
            f"member's threshold {small.threshold:.6g}"
        )
    meta = _shared_meta(small, large) | {
        "model": f"cascade({small.meta.get('model', small.path.name)} > "
        f"{large.meta.get('model', large.path.name)})",
        "role": "cascade",
        "threshold": large.threshold,
        "threshold_criterion": f"the large member's ({large.meta.get('threshold_criterion')}); "
        "the small member's scores mapped onto it",
        "threshold_level": large.meta.get("threshold_level") or "frame",
        "band": {"lo": lo, "hi": hi},
        "members": {
            role: {"file": m.path.name, "runtime": member_runtime(m), "threshold": m.threshold}
            for role, m in members.items()
        },
    }
    return CascadeModel(manifest, "cascade", meta, small, large, data)


# ---------------------------------------------------------------------------- building one


def _check_out(out: Path) -> None:
    """``out`` must be new, empty, or an earlier cascade (replaced); nothing else is touched."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose a new folder for the cascade")
    if out.is_dir() and any(out.iterdir()) and not (out / CASCADE_FILE).is_file():
        raise InputError(
            f"{out}: exists and is not a cascade folder (no {CASCADE_FILE}); choose a new or "
            "empty folder"
        )


def _dev_scores(member: ModelFile, dataset: CropDataset, threads: int) -> ScoreSet:
    from fasdistill.engine.evaluation import score_dataset

    score = _sized(member.scorer(threads), int(member.meta["input_size"]))
    return score_dataset(lambda images: score(images.numpy()), dataset, 64)


def build_cascade(
    small: str | os.PathLike[str],
    large: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    threads: int = 1,
    quantiles: int = QUANTILES,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Choose the band on ``data``'s dev split and write the cascade folder ``out``.

    Every check (members, crops, ``out``) runs before anything is written; the
    folder is staged beside ``out`` and renamed into place, the manifest last.
    Returns the manifest written to ``out/model.cascade.json``.
    """
    from fasdistill.infer.calibrate import check_probabilities

    say = log or (lambda _: None)
    members = {"small": open_model(small), "large": open_model(large)}
    check_members(members["small"], members["large"])
    data = Path(data)
    index = read_crop_index(data)
    shared = _shared_meta(members["small"], members["large"])
    if float(index.scale) != shared["crop_scale"]:
        raise InputError(
            f"{data}: crops at scale {index.scale}, the members expect {shared['crop_scale']} "
            "(prepare crops at their scale)"
        )
    loader = {"colour_order": COLOUR_ORDER, "mean": list(MEAN), "std": list(STD)}
    for key, value in loader.items():
        if not _same(key, shared[key], value):
            raise InputError(
                f"{members['large'].path}: {key}: {shared[key]} differs from the crop loader's "
                f"{value}; its dev crops cannot be scored here"
            )
    out = Path(out)
    _check_out(out)
    size = int(shared["input_size"])
    dataset = CropDataset(index, "dev", size)
    if len(dataset) == 0:
        raise InputError(f"{data}: no dev crops; the band is chosen on the dev split")
    dev = {}
    for role, member in members.items():
        say(f"scoring {len(dataset)} dev crops with the {role} member {member.path}")
        dev[role] = _dev_scores(member, dataset, threads)
        check_probabilities(dev[role], member.path)
    level = members["large"].meta.get("threshold_level") or "frame"
    choice = choose_band(
        dev["small"],
        dev["large"].scores,
        members["small"].threshold,
        members["large"].threshold,
        level,
        quantiles,
    )
    manifest = _manifest(members, shared, choice, dev["small"], data, quantiles)
    _write(out, members, manifest)
    say(f"wrote {out / CASCADE_FILE}")
    return manifest


def _manifest(
    members: dict[str, ModelFile],
    shared: dict[str, Any],
    choice: BandChoice,
    dev: ScoreSet,
    data: Path,
    quantiles: int,
) -> dict[str, Any]:
    """The manifest's content but the member files' names, sizes and digests (:func:`_write`)."""
    from fasdistill.engine.provenance import git_commit, versions
    from fasdistill.utils.machine import runtime_versions

    large = members["large"]
    return {
        "format": MANIFEST_FORMAT,
        "members": {
            role: {
                "model": m.meta.get("model", m.path.name),
                "kind": m.kind,
                "runtime": member_runtime(m),
                "input_size": int(m.meta["input_size"]),
                "threshold": m.threshold,
                "threshold_criterion": m.meta.get("threshold_criterion"),
                "source": str(m.path.resolve()),
            }
            for role, m in members.items()
        },
        "band": {"lo": choice.lo, "hi": choice.hi, "rule": BAND_RULE},
        "threshold": large.threshold,
        "threshold_criterion": f"the large member's ({large.meta.get('threshold_criterion')})",
        "threshold_level": choice.level,
        "score": SCORE_RULE,
        "preprocessing": shared | {"resize": RESIZE_RULE},
        "dev": {
            "data": str(data),
            "faces": choice.faces,
            "bonafide": dev.n_bonafide,
            "attack": dev.n_attack,
            "level": choice.level,
            "small_acer": choice.small_acer,
            "large_acer": choice.large_acer,
            "cascade_acer": choice.cascade_acer,
            "passed_on": choice.passed_on,
            "share_passed_on": choice.share,
            "bands_evaluated": choice.candidates,
            "quantiles": quantiles,
        },
        "versions": versions() | runtime_versions(),
        "git_commit": git_commit(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _write(out: Path, members: dict[str, ModelFile], manifest: dict[str, Any]) -> None:
    """Stage the members' copies and the manifest beside ``out``, then move them in.

    A new ``out`` is one rename of the staged folder. An earlier cascade in ``out``
    gets the new member files first and the manifest last (a reader sees the old
    cascade or the new one), then loses the files only the old manifest named.
    """
    from fasdistill.utils.hashing import sha256_file

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.cascade-") as tmp:
        staged = Path(tmp) / "cascade"
        staged.mkdir()
        for role, member in members.items():
            pairs = _copy_names(member, role)
            for source, name in pairs:
                shutil.copyfile(source, staged / name)
            names = [name for _, name in pairs]
            manifest["members"][role] |= {
                "file": names[0],
                "files": names,
                "bytes": {n: (staged / n).stat().st_size for n in names},
                "sha256": {n: sha256_file(staged / n) for n in names},
            }
        text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
        (staged / CASCADE_FILE).write_text(text, encoding="utf-8")
        if not out.exists() or not any(out.iterdir()):
            if out.exists():
                out.rmdir()
            staged.rename(out)
            return
        old = _named_files(out / CASCADE_FILE)
        for path in staged.iterdir():
            if path.name != CASCADE_FILE:
                path.replace(out / path.name)
        (staged / CASCADE_FILE).replace(out / CASCADE_FILE)
        new = {n for m in manifest["members"].values() for n in m["files"]}
        for name in old - new - {CASCADE_FILE}:
            (out / name).unlink(missing_ok=True)


def _named_files(manifest: Path) -> set[str]:
    """The member files an earlier manifest names (none when it cannot be read)."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return {
            str(n)
            for m in data["members"].values()
            for n in m.get("files", [])
            if Path(str(n)).name == str(n)
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


OPENERS.append((is_cascade, open_cascade))
