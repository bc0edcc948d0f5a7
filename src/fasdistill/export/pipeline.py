"""Export a ``best.pt`` to deployable formats, each checked against PyTorch before it is written.

For every format: export to a temporary file, score real dev crops with it and with
the PyTorch model, and keep the file only if the scores agree (fp32: max |Δ score|
within a tolerance; int8: decisions at the calibrated threshold agree on enough
crops). Then its dev and test ISO metrics at the embedded threshold, its score
resolution and its latency, interleaved with the fp32 reference, go into
``export.json`` with the machine they were measured on.

Bad input (checkpoint, index, options, a runtime asked for by name but not
installed) stops :func:`prepare_export` before anything is written. After that, one
format's failure (a converter crash, a refused parity gate, a runtime error) never
sinks the others: :func:`run_export` records it in ``export.json["failed"]`` with
its reason, still tries every other format, and always writes ``export.json``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fasdistill.data.loader import CropIndex, read_crop_index
from fasdistill.engine.checkpoint import load_deployable, require_rgb
from fasdistill.errors import InputError
from fasdistill.export.checks import (
    conversion,
    describe_resolution,
    parity,
    require_parity,
    score_resolution,
)
from fasdistill.export.formats import (
    DEFAULT_FORMATS,
    FILE_NAMES,
    FORMATS,
    REGISTRY,
    Conversion,
    Format,
    missing_runtimes,
)
from fasdistill.export.onnx import onnx_metadata
from fasdistill.export.scoring import (
    Scorer,
    dev_threshold,
    eer_threshold,
    load_images,
    metrics_at,
    onnx_scorer,
    runtime_scorer,
    score_splits,
    split_metrics,
    torch_scorer,
)
from fasdistill.utils.atomic import atomic_write_json
from fasdistill.utils.latency import interleaved_latency
from fasdistill.utils.machine import machine
from fasdistill.utils.text import failure_reason

# The scoring helpers live in export.scoring; they stay importable from here.
__all__ = [
    "FILE_NAMES",
    "FORMATS",
    "ExportJob",
    "ExportOptions",
    "Scorer",
    "dev_threshold",
    "eer_threshold",
    "export_checkpoint",
    "load_images",
    "metrics_at",
    "onnx_scorer",
    "prepare_export",
    "run_export",
    "runtime_scorer",
    "score_splits",
    "split_metrics",
    "torch_scorer",
]

Log = Callable[[str], None]


@dataclass
class ExportOptions:
    """What to export and how strictly to check it."""

    formats: tuple[str, ...] = DEFAULT_FORMATS  # the CLI default is every format
    parity_crops: int = 256  # dev crops scored by PyTorch and by each export
    calibration_crops: int = 256  # train crops that calibrate INT8 ranges
    fp32_tolerance: float = 1e-4  # max |score difference| an fp32 export may show
    int8_min_agreement: float = 0.95  # fraction of parity crops with the same decision
    int8_stem: bool = False  # quantize the first convolution too (default: it stays fp32)
    threads: int = 1  # runtime threads for scoring and timing
    skip_unavailable: bool = False  # formats whose runtime is not installed: skip (else error)
    latency_runs: int = 200  # 0: no latency measurement (the SWAP report times models itself)
    latency_seconds: float = 3.0

    def validate(self) -> None:
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown or not self.formats:
            raise InputError(f"unknown export formats {unknown}; choose from {', '.join(FORMATS)}")
        if self.parity_crops < 1 or self.calibration_crops < 1 or self.threads < 1:
            raise InputError("parity crops, calibration crops and threads must be >= 1")
        if self.latency_runs < 0:
            raise InputError(f"latency runs must be >= 0, got {self.latency_runs}")


@dataclass
class ExportJob:
    """An export whose inputs passed every check (:func:`prepare_export`), ready to run."""

    checkpoint: str
    index_path: str
    out: Path
    options: ExportOptions
    model: torch.nn.Module
    meta: dict[str, Any]
    index: CropIndex
    formats: list[str]  # to try, in FORMATS order
    skipped: dict[str, str]  # format -> why (its runtime is not installed)
    parity_images: np.ndarray  # dev crops
    calibration: np.ndarray | None  # train crops, when an int8 format is to be tried


def prepare_export(
    checkpoint: str | os.PathLike[str],
    index_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
) -> ExportJob:
    """Check every input and load the crops; creating ``out_dir`` is the only write."""
    options = options or ExportOptions()
    options.validate()
    model, meta = load_deployable(checkpoint)
    require_rgb(meta, checkpoint, "export")
    onnx_metadata(meta)  # every artifact carries these keys: a checkpoint lacking them is refused
    index = read_crop_index(index_path)
    if index.scale != meta["crop_scale"]:
        raise InputError(
            f"{index_path}: crops at scale {index.scale}, the model expects {meta['crop_scale']}"
        )
    size = int(meta["input_size"])
    parity_images = load_images(index, "dev", size, options.parity_crops)
    formats = [f for f in FORMATS if f in options.formats]
    missing = {f: reason for f, reason in missing_runtimes().items() if f in formats}
    if missing and not options.skip_unavailable:
        fmt = next(iter(missing))
        raise InputError(f"{fmt}: {missing[fmt]}")
    formats = [f for f in formats if f not in missing]
    calibration = None
    if any(REGISTRY[f].quantized for f in formats):
        calibration = load_images(index, "train", size, options.calibration_crops)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output directory ({exc.strerror})") from None
    return ExportJob(
        str(checkpoint),
        str(index_path),
        out,
        options,
        model,
        meta,
        index,
        formats,
        missing,
        parity_images,
        calibration,
    )


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    index_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Export, check, measure; write the artifacts and ``export.json`` into ``out_dir``.

    Raises :class:`InputError` on bad input, before anything is written. A format
    that fails is not raised: the returned report (also ``export.json``) has
    ``failed[fmt]`` (its reason), ``formats[fmt]`` for written files only and
    ``skipped[fmt]`` for runtimes not installed.
    """
    return run_export(prepare_export(checkpoint, index_path, out_dir, options), log)


def run_export(job: ExportJob, log: Log = print) -> dict[str, Any]:
    """Try every format of ``job``, measure what was written, write ``export.json``."""
    run = _Run(job, log)
    try:
        for fmt in job.formats:
            run.attempt(fmt, lambda fmt=fmt: run.export(fmt))
        run.measure()
    finally:
        run.close()
        atomic_write_json(job.out / "export.json", run.report)
    return run.report


def _artifact_files(out: Path, fmt: str) -> list[Path]:
    """Every file a written ``fmt`` consists of (model, sidecar, ncnn weights)."""
    return REGISTRY[fmt].files(out)


class _Run:
    """One export run: tries each format, records what was written and what failed.

    Every format takes the same path, from its registry entry: convert into a
    scratch folder, score there and check parity, write its metadata, then move its
    files into place, the model file last. A format converted from another's
    artifact (ONNX INT8 from fp32 ONNX) gets that artifact once it passed its own
    check; when that format was not asked for, it is built and checked in scratch.
    """

    def __init__(self, job: ExportJob, log: Log) -> None:
        self.job, self.log, self.options, self.out = job, log, job.options, job.out
        self.size = int(job.meta["input_size"])
        self.threshold = float(job.meta["threshold"])
        torch.set_num_threads(job.options.threads)
        self.ref_scores = torch_scorer(job.model)(job.parity_images)
        self.written: dict[str, tuple[Path, float]] = {}  # format -> (file, embedded threshold)
        self.sources: dict[str, Path | str] = {}  # format -> checked artifact, or why it failed
        self._scratch: Path | None = None  # sources built only to convert others from
        self.report: dict[str, Any] = {
            "checkpoint": job.checkpoint,
            "index": job.index_path,
            "model": job.meta["model"],
            "input_size": self.size,
            "threshold": self.threshold,
            "threshold_criterion": job.meta["threshold_criterion"],
            "options": asdict(job.options),
            "machine": machine(),
            "formats": {},
            "skipped": dict(job.skipped),
            "failed": {},
            "score_resolution": {"pytorch": score_resolution(self.ref_scores)},
        }
        log(
            f"exporting {job.meta['model']} ({self.size} px) to {self.out}: "
            f"{', '.join(job.formats) or 'no format'}; parity on "
            f"{len(job.parity_images)} dev crops"
        )
        for fmt, reason in job.skipped.items():
            log(f"{fmt}: skipped, {reason}")

    def close(self) -> None:
        """Remove the scratch sources and any temporary file an interrupted step left."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        for tmp in self.out.glob(".*.tmp"):
            tmp.unlink()

    def attempt(self, fmt: str, step: Callable[[], None]) -> bool:
        """Run one format's step; its failure is recorded, never raised."""
        try:
            step()
        except Exception as error:  # noqa: BLE001 - one format's failure never sinks the others
            self.fail(fmt, failure_reason(error))
            return False
        return True

    def fail(self, fmt: str, reason: str) -> None:
        """Record ``fmt`` as failed; remove its files (also an earlier run's) so none is stale."""
        self.report["failed"][fmt] = reason
        self.report["formats"].pop(fmt, None)
        self.report["score_resolution"].pop(fmt, None)
        self.written.pop(fmt, None)
        for path in _artifact_files(self.out, fmt):
            path.unlink(missing_ok=True)
        self.log(f"{fmt}: FAILED, {reason}")

    def record(
        self,
        fmt: str,
        path: Path,
        check: dict[str, float],
        seconds: float,
        threshold: float,
        scores: np.ndarray,
        extra_bytes: int = 0,
    ) -> dict[str, Any]:
        """Enter a written artifact in the report and say so, with parity and score resolution."""
        self.written[fmt] = (path, threshold)
        entry = {
            "path": path.name,
            "threshold": threshold,
            "bytes": path.stat().st_size + extra_bytes,
            "export_seconds": seconds,
            "parity": check,
        }
        self.report["formats"][fmt] = entry
        resolution = self.report["score_resolution"][fmt] = score_resolution(scores)
        if REGISTRY[fmt].quantized:
            agreement = (
                f"decisions agree with PyTorch on {100 * check['decision_agreement']:.1f} % of "
                f"{check['crops']} dev crops, max |Δscore| {check['max_abs_score_diff']:.1e}"
            )
        else:
            agreement = (
                f"max |Δscore| {check['max_abs_score_diff']:.1e} vs PyTorch on "
                f"{check['crops']} dev crops"
            )
        size_mb = entry["bytes"] / 1e6
        self.log(f"{fmt}: wrote {path.name} ({size_mb:.2f} MB, {seconds:.1f} s); {agreement}")
        self.log(f"{' ' * len(fmt)}  {describe_resolution(resolution)}")
        return entry

    def export(self, fmt: str) -> None:
        """Convert, check, write the metadata, then move the files into place (model last)."""
        entry = REGISTRY[fmt]
        target = self.out / entry.file_name
        try:
            source = self._source(entry)
            with tempfile.TemporaryDirectory(dir=self.out, prefix=f".{fmt}-") as tmp:
                staged = Path(tmp) / entry.file_name
                checked = self._checked(entry, staged, target, source)
                files = entry.files_of(staged)
                for part in files[1:]:  # the sidecar and companion files first
                    part.replace(self.out / part.name)
                staged.replace(target)  # last: a model never lacks its metadata or weights
        except Exception as error:
            self.sources[fmt] = failure_reason(error)
            raise
        self.sources[fmt] = target
        own, check, seconds, scores, report = checked
        companions = entry.files_of(target)[2 if entry.sidecar else 1 :]
        extra = sum(path.stat().st_size for path in companions)
        self.record(fmt, target, check, seconds, own, scores, extra).update(report)

    def _source(self, entry: Format) -> Path | None:
        """The checked artifact ``entry`` is converted from (built in scratch if not asked)."""
        if entry.source is None:
            return None
        source = REGISTRY[entry.source]
        if entry.source not in self.sources:
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(dir=self.out, prefix=".sources-"))
            staged = self._scratch / source.file_name
            try:
                self._checked(source, staged, self.out / source.file_name, None)
                self.sources[source.name] = staged
            except Exception as error:  # noqa: BLE001 - becomes this format's reason below
                self.sources[source.name] = failure_reason(error)
        found = self.sources[source.name]
        if isinstance(found, str):
            raise InputError(f"not tried: its fp32 {source.label} source failed ({found})")
        return found

    def _checked(
        self, entry: Format, staged: Path, target: Path, source: Path | None
    ) -> tuple[float, dict[str, float], float, np.ndarray, dict[str, Any]]:
        """Convert to ``staged``, check its scores against PyTorch's, write its metadata.

        A quantized format gets its own dev EER threshold, chosen the same way as the
        checkpoint's (never on test): int8 shifts scores. Returns that threshold, the
        parity check, the conversion seconds, the parity scores and what the
        converter reports (e.g. how it calibrated).
        """
        meta, quantized = self.job.meta, entry.quantized
        given = Conversion(
            self.job.model,
            meta,
            calibration=self.job.calibration if quantized else None,
            source=source,
            int8_stem=self.options.int8_stem,
        )
        start = time.perf_counter()
        with conversion(entry.name, meta["model"]):
            report = entry.convert(given, staged) or {}
        seconds = time.perf_counter() - start
        scorer = entry.scorer(staged, self.options.threads)
        own = (
            dev_threshold(scorer, self.job.index, self.size, meta) if quantized else self.threshold
        )
        scores = scorer(self.job.parity_images)
        check = parity(self.ref_scores, scores, self.threshold, own)
        require_parity(check, target, "INT8" if quantized else entry.label, quantized, self.options)
        criterion = meta["threshold_criterion"] + (", int8 scores" if quantized else "")
        entry.write_metadata(staged, meta | {"threshold": own, "threshold_criterion": criterion})
        return own, check, seconds, scores, report

    def measure(self) -> None:
        """Accuracy per runtime at its embedded threshold, and interleaved batch-1 latency."""
        job, options, meta = self.job, self.options, self.job.meta
        pytorch = torch_scorer(job.model)
        scorers: dict[str, Scorer] = {"pytorch": pytorch}
        accuracy = {"pytorch": split_metrics(pytorch, job.index, self.size, meta, self.threshold)}
        for fmt, (path, threshold) in list(self.written.items()):
            try:
                scorer = runtime_scorer(fmt, path, options.threads)
                accuracy[fmt] = split_metrics(scorer, job.index, self.size, meta, threshold)
            except Exception as error:  # noqa: BLE001 - recorded, the others are measured
                reason = failure_reason(error)
                self.fail(fmt, f"its runtime failed scoring dev/test after the check ({reason})")
                continue
            scorers[fmt] = scorer
        self.report["accuracy"] = accuracy
        if options.latency_runs == 0:
            return
        one = np.zeros((1, 3, self.size, self.size), np.float32)
        try:
            timings = interleaved_latency(
                {name: (lambda s=s: s(one)) for name, s in scorers.items()},
                min_runs=options.latency_runs,
                min_seconds=options.latency_seconds,
            )
        except Exception as error:  # noqa: BLE001 - the artifacts and accuracy still stand
            reason = failure_reason(error)
            self.report["latency"] = {"error": reason}
            self.log(f"latency: not measured, {reason}")
            return
        self._report_latency(timings)

    def _report_latency(self, timings: dict[str, Any]) -> None:
        report = self.report
        report["latency"] = {
            "batch": 1,
            "threads": self.options.threads,
            "method": "interleaved in one process, after warm-up",
            "runtimes": {name: t.as_dict() for name, t in timings.items()},
        }
        pairs = [
            (fmt, entry.source)
            for fmt, entry in REGISTRY.items()
            if fmt in timings and entry.quantized and entry.source in timings
        ]
        if pairs:  # an int8 artifact converted from a timed fp32 one (ONNX INT8 from ONNX)
            int8, fp32 = pairs[0]
            ratio = timings[int8].median_ms / timings[fp32].median_ms
            report["latency"]["int8_vs_fp32"] = ratio
            if ratio > 1:
                cpu = report["machine"]["cpu"]
                dot = "yes" if cpu["int8_dot_product"] else "no"
                note = (
                    f"INT8 is {ratio:.2f}x the fp32 latency on this CPU ({cpu['model']}; "
                    f"int8 dot-product instructions: {dot}): "
                    "for a model this small the quantize/dequantize overhead outweighs the cheaper "
                    "arithmetic"
                )
                report["latency"]["note"] = note
                self.log(note)
        split = "test" if "test" in report["accuracy"]["pytorch"] else "dev"
        self.log(
            f"batch-1 latency ({self.options.threads} thread(s), interleaved), {split} metrics:"
        )
        for name, t in timings.items():
            acc = report["accuracy"][name]
            test = acc.get("test", acc["dev"])
            self.log(
                f"{name:11s} median {t.median_ms:.3f} ms  "
                f"ACER {100 * test['acer']:.2f} %  AUC {test['auc']:.4f}"
            )
