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

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fasdistill.data.loader import CropIndex, read_crop_index
from fasdistill.engine.checkpoint import load_deployable
from fasdistill.errors import InputError
from fasdistill.export import ncnn, pte
from fasdistill.export.checks import (
    conversion,
    describe_resolution,
    parity,
    require_parity,
    score_resolution,
)
from fasdistill.export.formats import FILE_NAMES, FORMATS, REGISTRY, missing_runtimes
from fasdistill.export.onnx import add_metadata, export_onnx, onnx_metadata
from fasdistill.export.quantize import quantize_int8
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
    "set_threshold",
    "split_metrics",
    "torch_scorer",
]

Log = Callable[[str], None]


@dataclass
class ExportOptions:
    """What to export and how strictly to check it."""

    formats: tuple[str, ...] = ("onnx", "onnx-int8")  # the CLI default is every format
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
    if any(f.endswith("int8") for f in formats):
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
        if {"onnx", "onnx-int8"} & set(job.formats):
            run.onnx_family()
        for fmt in [f for f in job.formats if REGISTRY[f].exporter is not None]:
            run.attempt(fmt, lambda fmt=fmt: run.program(fmt))
        if "ncnn" in job.formats:
            run.attempt("ncnn", run.ncnn)
        run.measure()
    finally:
        for tmp in job.out.glob(".*.tmp"):
            tmp.unlink()
        atomic_write_json(job.out / "export.json", run.report)
    return run.report


def _artifact_files(out: Path, fmt: str) -> list[Path]:
    """Every file a written ``fmt`` consists of (model, sidecar, ncnn weights)."""
    return REGISTRY[fmt].files(out)


class _Run:
    """One export run: tries each format, records what was written and what failed."""

    def __init__(self, job: ExportJob, log: Log) -> None:
        self.job, self.log, self.options, self.out = job, log, job.options, job.out
        self.size = int(job.meta["input_size"])
        self.threshold = float(job.meta["threshold"])
        torch.set_num_threads(job.options.threads)
        self.ref_scores = torch_scorer(job.model)(job.parity_images)
        self.written: dict[str, tuple[Path, float]] = {}  # format -> (file, embedded threshold)
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
        if fmt.endswith("int8"):
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

    def onnx_family(self) -> None:
        """fp32 ONNX (also the source of ONNX INT8, kept temporary when only INT8 is asked)."""
        asked = [f for f in ("onnx", "onnx-int8") if f in self.job.formats]
        named = self.out / FILE_NAMES["onnx"]
        source = named if "onnx" in asked else self.out / ".fp32-source.onnx.tmp"
        tmp = self.out / f".{FILE_NAMES['onnx']}.tmp"
        try:
            start = time.perf_counter()
            with conversion("onnx", self.job.meta["model"]):
                export_onnx(self.job.model, self.job.meta, tmp)
            seconds = time.perf_counter() - start
            scores = onnx_scorer(tmp, self.options.threads)(self.job.parity_images)
            check = parity(self.ref_scores, scores, self.threshold)
            require_parity(check, named, "ONNX", quantized=False, options=self.options)
            tmp.replace(source)
        except Exception as error:  # noqa: BLE001 - recorded per format, the others go on
            reason = failure_reason(error)
            if "onnx" in asked:
                self.fail("onnx", reason)
            if "onnx-int8" in asked:
                self.fail("onnx-int8", f"not tried: its fp32 ONNX source failed ({reason})")
            return
        if "onnx" in asked:
            self.record("onnx", source, check, seconds, self.threshold, scores)
        if "onnx-int8" in asked:
            self.attempt("onnx-int8", lambda: self.onnx_int8(source))

    def onnx_int8(self, source: Path) -> None:
        """Static INT8 for ONNX Runtime, with its own dev EER threshold (never test)."""
        target = self.out / FILE_NAMES["onnx-int8"]
        tmp = self.out / f".{FILE_NAMES['onnx-int8']}.tmp"
        calibration = self.job.calibration
        assert calibration is not None  # prepare_export loads it whenever int8 is asked
        start = time.perf_counter()
        with conversion("onnx-int8", self.job.meta["model"]):
            quantize_int8(source, tmp, calibration, keep_stem_fp32=not self.options.int8_stem)
        seconds = time.perf_counter() - start
        scorer = onnx_scorer(tmp, self.options.threads)
        own = dev_threshold(scorer, self.job.index, self.size, self.job.meta)
        set_threshold(tmp, own, f"{self.job.meta['threshold_criterion']}, int8 scores")
        scores = scorer(self.job.parity_images)
        check = parity(self.ref_scores, scores, self.threshold, own)
        require_parity(check, target, "INT8", quantized=True, options=self.options)
        tmp.replace(target)
        entry = self.record("onnx-int8", target, check, seconds, own, scores)
        entry["calibration"] = {
            "split": "train",
            "crops": len(calibration),
            "method": "minmax, QDQ, per-channel int8 weights, uint8 activations",
            "stem": "int8" if self.options.int8_stem else "fp32",
            "head": "fp32",
        }

    def program(self, fmt: str) -> None:
        """An ExecuTorch or LiteRT program: convert, check, write its sidecar, then the program."""
        entry = REGISTRY[fmt]
        quantized, runtime, export = entry.quantized, entry.runtime, entry.export()
        target, tmp = self.out / entry.file_name, self.out / f".{entry.file_name}.tmp"
        meta = self.job.meta
        start = time.perf_counter()
        with conversion(fmt, meta["model"]):
            export(self.job.model, meta, tmp, self.job.calibration if quantized else None)
        seconds = time.perf_counter() - start
        scorer = entry.scorer(tmp, self.options.threads)
        # int8 shifts scores: its own dev EER threshold, chosen the same way (never on test).
        own = (
            dev_threshold(scorer, self.job.index, self.size, meta) if quantized else self.threshold
        )
        scores = scorer(self.job.parity_images)
        check = parity(self.ref_scores, scores, self.threshold, own)
        require_parity(check, target, "INT8" if quantized else runtime, quantized, self.options)
        criterion = meta["threshold_criterion"] + (", int8 scores" if quantized else "")
        pte.write_sidecar(target, meta, own, criterion, entry.sidecar_format())
        tmp.replace(target)  # after the sidecar: a program never lacks it
        self.record(fmt, target, check, seconds, own, scores)

    def ncnn(self) -> None:
        """Convert in a scratch folder, check parity there, then move the pair into place."""
        target = self.out / FILE_NAMES["ncnn"]
        with tempfile.TemporaryDirectory(dir=self.out, prefix=".ncnn-") as tmp:
            param = Path(tmp) / target.name
            start = time.perf_counter()
            with conversion("ncnn", self.job.meta["model"]):
                ncnn.export_ncnn(self.job.model, self.job.meta, param)
            seconds = time.perf_counter() - start
            scores = ncnn.ncnn_scorer(param, self.options.threads)(self.job.parity_images)
            check = parity(self.ref_scores, scores, self.threshold)
            require_parity(check, target, "ncnn", quantized=False, options=self.options)
            ncnn.sidecar(target, self.job.meta, self.threshold)
            ncnn.bin_path(param).replace(ncnn.bin_path(target))
            param.replace(target)  # last: the model exists once its .param does
        weights = ncnn.bin_path(target).stat().st_size
        self.record("ncnn", target, check, seconds, self.threshold, scores, weights)

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
        if "onnx-int8" in timings and "onnx" in timings:
            ratio = timings["onnx-int8"].median_ms / timings["onnx"].median_ms
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


def set_threshold(path: Path, threshold: float, criterion: str) -> None:
    """Replace the threshold an exported ONNX model carries."""
    import onnx

    proto = onnx.load(str(path))
    add_metadata(
        proto, {"threshold": json.dumps(threshold), "threshold_criterion": json.dumps(criterion)}
    )
    onnx.save(proto, str(path))
