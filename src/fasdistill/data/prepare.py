"""Face-crop preparation: dataset samples -> square face crops on disk + an index.

For every sample of a protocol: decode the sampled frames (videos) or the image,
find the face (the dataset's own boxes or landmarks when it has them, else a
detector), cut square context crops at one or more scales and write them as PNG
(lossless: compression would erase the very traces FAS models look for).

Output::

    DIR/prepare.json   settings, summary (counts per status and split), skipped files
    DIR/index.csv      one row per crop (or per frame/sample that could not be cropped)
    DIR/crops/<split>/<sample>/f<frame>_s<scale>.png
    DIR/parts/         per-sample rows: the resume journal

Bad data never stops the run: an unreadable or truncated video, a frame without
a face or a frame whose annotation is missing gets an index row whose
``status`` names the reason, and the summary counts each reason. A run that is
interrupted resumes where it stopped when started again with the same settings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing as mp
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fasdistill import __version__
from fasdistill.data.crops import square_crop
from fasdistill.data.formats import DatasetAdapter, Sample, get_adapter
from fasdistill.data.formats.base import MODALITIES, Box
from fasdistill.data.video import FramesTooLarge
from fasdistill.errors import InputError
from fasdistill.utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

INDEX_COLUMNS = (
    "split",
    "label",
    "pai",
    "subject",
    "session",
    "device",
    "domain",
    "video_id",
    "frame",
    "scale",
    "crop_path",
    "box_x",
    "box_y",
    "box_w",
    "box_h",
    "box_source",
    "det_score",
    "status",
    "source_path",
    "depth_path",  # multi-modal sets: the registered crops of the same box (else empty)
    "ir_path",
)
BOX_MODES = ("auto", "annotation", "detector")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PrepareConfig:
    """Everything that determines a prepared crop set."""

    dataset: str
    root: str
    protocol: str | None = None  # None: the adapter's default protocol
    frames: int | None = 10  # frames per video, spread uniformly (None with every=None: all)
    every: int | None = None  # or: every k-th frame
    detector: str = "blazeface"
    boxes: str = "auto"  # auto: dataset boxes, else detector; annotation | detector: only those
    scales: tuple[float, ...] = (1.5,)
    size: int = 128
    # rgb, plus depth and/or ir on multi-modal sets: one aligned crop per modality.
    modalities: tuple[str, ...] = ("rgb",)

    def validate(self) -> None:
        if self.frames is not None and self.every is not None:
            raise InputError("give --frames N or --every K, not both")
        if self.frames is not None and self.frames < 1:
            raise InputError(f"--frames must be >= 1, got {self.frames}")
        if self.every is not None and self.every < 1:
            raise InputError(f"--every must be >= 1, got {self.every}")
        if self.boxes not in BOX_MODES:
            raise InputError(f"--boxes must be one of {', '.join(BOX_MODES)}, got {self.boxes!r}")
        if not self.scales or any(s <= 0 or s > 10 for s in self.scales):
            raise InputError(f"--scale values must lie in (0, 10], got {self.scales}")
        if len(set(self.scales)) != len(self.scales):
            raise InputError(f"--scale lists a value twice: {self.scales}")
        if not 16 <= self.size <= 1024:
            raise InputError(f"--size must lie in [16, 1024] pixels, got {self.size}")
        if "rgb" not in self.modalities or not set(self.modalities) <= set(MODALITIES):
            raise InputError(
                f"--modalities must list rgb and optionally depth and ir, got "
                f"{','.join(self.modalities) or 'nothing'}"
            )

    @property
    def extra_modalities(self) -> tuple[str, ...]:
        return tuple(m for m in ("depth", "ir") if m in self.modalities)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scales"] = list(self.scales)
        # RGB-only sets keep the settings (and resume check) they had before modalities.
        if self.extra_modalities:
            data["modalities"] = ["rgb", *self.extra_modalities]
        else:
            del data["modalities"]
        return data


# ---------------------------------------------------------------------------- per-sample work


class _Worker:
    """Per-process state: the adapter, the (lazily built) detector, the settings."""

    def __init__(self, config: PrepareConfig, out: str) -> None:
        self.config = config
        self.out = Path(out)
        self.adapter: DatasetAdapter = get_adapter(config.dataset, config.root)
        self._detector: Any = None

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from fasdistill.data.detect import get_detector

            self._detector = get_detector(self.config.detector)
        return self._detector

    def process(self, sample: Sample) -> list[dict[str, str]]:
        """Crop one sample; every outcome, good or bad, becomes index rows."""
        config = self.config
        try:  # the adapter reads images, videos, frame folders or HDF5 recordings alike
            frames, missing = self.adapter.read_frames(sample, "rgb", config.frames, config.every)
        except FramesTooLarge:
            return [_row(sample, -1, status="image_too_large")]
        except InputError:
            return [_row(sample, -1, status=f"unreadable_{sample.media}")]
        if not frames and not missing:
            return [_row(sample, -1, status="empty_video")]
        try:
            annotations = None if config.boxes == "detector" else self.adapter.face_boxes(sample)
        except InputError:
            return [_row(sample, -1, status="bad_annotation")]
        size = self.adapter.annotation_frame_size(sample)
        rows = [_row(sample, index, status="unreadable_frame") for index in missing]
        extra = self._modality_frames(sample)
        for index, frame in frames:
            registered = {m: extra[m].get(index) for m in extra}
            rows.extend(self._crop_frame(sample, index, frame, annotations, size, registered))
        return rows

    def _modality_frames(self, sample: Sample) -> dict[str, dict[int, np.ndarray]]:
        """{modality: {frame index: single-channel image}} of the extra modalities asked for
        (an unreadable file gives an empty dict: its frames' rows say ``missing_<modality>``)."""
        out: dict[str, dict[int, np.ndarray]] = {}
        for name in self.config.extra_modalities:
            if sample.modality_path(name) is None:
                out[name] = {}
                continue
            try:
                frames, _ = self.adapter.read_frames(
                    sample, name, self.config.frames, self.config.every
                )
            except InputError:
                frames = []
            out[name] = {
                i: f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for i, f in frames
            }
        return out

    def _crop_frame(
        self,
        sample: Sample,
        index: int,
        frame: np.ndarray,
        annotations: dict[int, Box] | None,
        size: tuple[int, int] | None = None,
        registered: dict[str, np.ndarray | None] | None = None,
    ) -> list[dict[str, str]]:
        config = self.config
        registered = registered or {}
        for name, image in registered.items():
            if image is None:
                return [_row(sample, index, status=f"missing_{name}")]
            if image.shape[:2] != frame.shape[:2]:
                return [_row(sample, index, status=f"{name}_size_mismatch")]
        box: Box | None = None
        source, score = "", ""
        # A box refers to frames of one size (and orientation): on another it would cut elsewhere.
        mismatch = size is not None and (frame.shape[1], frame.shape[0]) != size
        if annotations is not None and index in annotations and not mismatch:
            box, source = annotations[index], "annotation"
        elif config.boxes == "annotation":
            status = "annotation_frame_mismatch" if mismatch else "missing_annotation"
            return [_row(sample, index, status=status)]
        else:
            found = self.detector.best(frame)
            if found is None:
                return [_row(sample, index, status="no_face", box_source=config.detector)]
            box, source, score = found.box, config.detector, f"{found.score:.4f}"
        rows = []
        for scale in config.scales:
            try:
                crop = square_crop(frame, box, scale, config.size)
            except InputError:
                rows.append(_row(sample, index, status="bad_box", box=box, box_source=source))
                continue
            relative = _crop_path(sample, index, scale)
            paths = {}
            for name, image in registered.items():  # the same box: registered crops
                paths[f"{name}_path"] = relative[: -len(".png")] + f".{name}.png"
                _write_png(
                    self.out / paths[f"{name}_path"],
                    square_crop(image, box, scale, config.size),
                    sample,
                )
            _write_png(self.out / relative, crop, sample)
            rows.append(
                _row(
                    sample,
                    index,
                    status="ok",
                    scale=scale,
                    crop_path=relative,
                    box=box,
                    box_source=source,
                    det_score=score,
                    **paths,
                )
            )
        return rows


def _write_png(path: Path, image: np.ndarray, sample: Sample) -> None:
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"OpenCV could not PNG-encode a crop of {sample.path}")
    atomic_write_bytes(path, png.tobytes())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "__"))


def _crop_path(sample: Sample, frame: int, scale: float) -> str:
    """A readable, collision-free folder per sample: the sanitised id plus a digest of the id
    (sanitising alone maps ``img 1`` and ``img_1``, or two non-ASCII names, to one folder)."""
    digest = hashlib.sha1(sample.sample_id.encode()).hexdigest()[:10]
    folder = f"{_safe(sample.sample_id)[:80]}-{digest}"
    return f"crops/{sample.split or 'all'}/{folder}/f{frame:05d}_s{scale:g}.png"


def _row(
    sample: Sample,
    frame: int,
    status: str,
    scale: float | None = None,
    crop_path: str = "",
    box: Box | None = None,
    box_source: str = "",
    det_score: str = "",
    depth_path: str = "",
    ir_path: str = "",
) -> dict[str, str]:
    x, y, w, h = (f"{v:.1f}" for v in box) if box is not None else ("", "", "", "")
    return {
        "split": sample.split,
        "label": sample.label,
        "pai": sample.pai,
        "subject": sample.subject,
        "session": sample.session,
        "device": sample.device,
        "domain": sample.domain,
        "video_id": sample.sample_id,
        "frame": str(frame),
        "scale": "" if scale is None else f"{scale:g}",
        "crop_path": crop_path,
        "box_x": x,
        "box_y": y,
        "box_w": w,
        "box_h": h,
        "box_source": box_source,
        "det_score": det_score,
        "status": status,
        "source_path": sample.path,
        "depth_path": depth_path,
        "ir_path": ir_path,
    }


_STATE: dict[str, _Worker] = {}


def _init_worker(config: PrepareConfig, out: str) -> None:
    cv2.setNumThreads(1)
    _STATE["worker"] = _Worker(config, out)


def _work(sample: Sample) -> tuple[Sample, list[dict[str, str]]]:
    return sample, _STATE["worker"].process(sample)


# ---------------------------------------------------------------------------- orchestration


def _part_path(out: Path, sample: Sample) -> Path:
    digest = hashlib.sha1(f"{sample.split}/{sample.sample_id}".encode()).hexdigest()[:20]
    return out / "parts" / f"{digest}.csv"


def _rows_to_csv(rows: list[dict[str, str]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _read_part(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, fieldnames=INDEX_COLUMNS))


def _check_output(out: Path, settings: dict[str, Any]) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    marker = out / "prepare.json"
    if marker.exists():
        previous = json.loads(marker.read_text())
        if previous.get("settings") != settings:
            raise InputError(
                f"{out} holds crops prepared with other settings ({previous.get('settings')}); "
                "use a new --out, or the same settings to resume"
            )
    elif out.exists() and any(out.iterdir()):
        raise InputError(f"--out {out}: directory is not empty and holds no prepared crops")


def prepare(
    config: PrepareConfig,
    out: str | os.PathLike[str],
    workers: int = 1,
    progress: Callable[[int, int, int], None] | None = None,
) -> dict[str, Any]:
    """Prepare (or resume) the crops of ``config`` in ``out``; returns the summary.

    ``progress(done_samples, total_samples, frames_done)`` is called as samples finish.
    """
    config.validate()
    out = Path(out)
    adapter = get_adapter(config.dataset, config.root)
    protocol = config.protocol or adapter.default_protocol
    samples = adapter.protocol(protocol)
    lacking = [m for m in config.modalities if m not in adapter.modalities]
    if lacking:
        raise InputError(
            f"{config.dataset} under {config.root} has no {', '.join(lacking)} frames "
            f"(it records {', '.join(adapter.modalities)})"
        )
    if not samples:
        raise InputError(
            f"{config.dataset} protocol {protocol!r} under {config.root} has no samples"
        )
    settings = config.to_json() | {"protocol": protocol, "format_version": FORMAT_VERSION}
    _check_output(out, settings)
    if config.boxes != "annotation":
        from fasdistill.data.detect import get_detector

        get_detector(config.detector)  # fail now, not in every worker, if it cannot load
    (out / "parts").mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "prepare.json", {"settings": settings, "complete": False})
    todo = [s for s in samples if not _part_path(out, s).exists()]
    done, frames_done = len(samples) - len(todo), 0
    start = time.perf_counter()
    if progress:
        progress(done, len(samples), frames_done)

    def record(sample: Sample, rows: list[dict[str, str]]) -> None:
        nonlocal done, frames_done
        atomic_write_text(_part_path(out, sample), _rows_to_csv(rows, header=False))
        done += 1
        frames_done += len({r["frame"] for r in rows if r["frame"] != "-1"})
        if progress:
            progress(done, len(samples), frames_done)

    if workers <= 1 or len(todo) <= 1:
        worker = _Worker(config, str(out))
        for sample in todo:
            record(sample, worker.process(sample))
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(config, str(out))) as pool:
            for sample, rows in pool.imap_unordered(_work, todo, chunksize=1):
                record(sample, rows)
    seconds = time.perf_counter() - start
    rows = [row for s in samples for row in _read_part(_part_path(out, s))]
    rows += [_empty_folder_row(p) for p in empty_folders(adapter.data_roots(), exclude=out)]
    atomic_write_text(out / "index.csv", _rows_to_csv(rows, header=True))
    summary = _summary(rows, samples, adapter, seconds, frames_done)
    atomic_write_json(
        out / "prepare.json",
        {"settings": settings, "complete": True, "fasdistill_version": __version__, **summary},
    )
    return summary


def empty_folders(roots: list[Path], exclude: Path | None = None) -> list[str]:
    """Leaf folders with nothing in them (a subject or species folder whose media went missing).

    ``exclude`` (the output directory, when it lies inside a dataset) is not searched.
    """
    skip = exclude.absolute() if exclude is not None else None
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            if skip is not None and Path(dirpath).absolute() == skip:
                dirnames.clear()
                continue
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            if not dirnames and not filenames:
                found.append(str(Path(dirpath)))
    return sorted(found)


def _empty_folder_row(path: str) -> dict[str, str]:
    row = dict.fromkeys(INDEX_COLUMNS, "")
    row.update(frame="-1", status="empty_folder", source_path=path)
    return row


def _summary(
    rows: list[dict[str, str]],
    samples: list[Sample],
    adapter: DatasetAdapter,
    seconds: float,
    frames_done: int,
) -> dict[str, Any]:
    status = Counter(r["status"] for r in rows)
    ok_by_split: dict[str, Counter[str]] = {}
    for r in rows:
        if r["status"] == "ok":
            ok_by_split.setdefault(r["split"], Counter())[r["pai"] or "bonafide"] += 1
    skipped = list(adapter.skipped)
    return {
        "samples": len(samples),
        "rows": len(rows),
        "status_counts": dict(sorted(status.items())),
        "crops_by_split": {k: dict(sorted(v.items())) for k, v in sorted(ok_by_split.items())},
        "box_sources": dict(Counter(r["box_source"] for r in rows if r["status"] == "ok")),
        "skipped_files": len(skipped),
        "skipped_examples": skipped[:100],
        "seconds_this_run": round(seconds, 3),
        "frames_this_run": frames_done,
    }
