"""Export a ``best.pt`` to deployable formats, each checked against PyTorch before it is written.

For every format: export to a temporary file, score real dev crops with it and with
the PyTorch model, and keep the file only if the scores agree (fp32: max |Δ score|
within a tolerance; int8: decisions at the calibrated threshold agree on enough
crops). Then its dev and test ISO metrics at the embedded threshold and its latency,
interleaved with the fp32 reference, go into ``export.json`` with the machine they
were measured on.
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

from fasdistill.data.loader import CropDataset, CropIndex, read_crop_index
from fasdistill.engine.checkpoint import load_deployable
from fasdistill.engine.evaluation import score_dataset
from fasdistill.errors import InputError
from fasdistill.export import litert, ncnn, pte
from fasdistill.export.checks import conversion, parity, require_parity
from fasdistill.export.onnx import INPUT_NAME, add_metadata, export_onnx
from fasdistill.export.quantize import quantize_int8
from fasdistill.metrics import EvalOptions, evaluate
from fasdistill.metrics.scores import ScoreSet
from fasdistill.models import bonafide_score
from fasdistill.swap.machine import machine
from fasdistill.swap.speed import interleaved_latency
from fasdistill.utils.atomic import atomic_write_json
from fasdistill.utils.ort import open_session

FORMATS = ("onnx", "onnx-int8", "pte", "pte-int8", "tflite", "tflite-int8", "ncnn")
FILE_NAMES = {
    "onnx": "model.onnx",
    "onnx-int8": "model.int8.onnx",
    "pte": "model.pte",
    "pte-int8": "model.int8.pte",
    "tflite": "model.tflite",
    "tflite-int8": "model.int8.tflite",
    "ncnn": "model.ncnn.param",  # + model.ncnn.bin
}
Scorer = Callable[[np.ndarray], np.ndarray]
# Batch-1 programs with a JSON sidecar, fp32 and int8 (PT2E):
# runtime, exporter, scorer, sidecar format.
PROGRAMS: dict[str, tuple[str, Any, Callable[[Path, int], Scorer], str]] = {
    "pte": ("ExecuTorch", pte.export_pte, pte.pte_scorer, pte.SIDECAR_FORMAT),
    "tflite": ("LiteRT", litert.export_tflite, litert.tflite_scorer, litert.SIDECAR_FORMAT),
}


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


def load_images(index: CropIndex, split: str, size: int, count: int) -> np.ndarray:
    """Up to ``count`` preprocessed crops of ``split``, evenly spread over it (deterministic)."""
    dataset = CropDataset(index, split, size)
    if len(dataset) == 0:
        raise InputError(f"{index.root}: the index has no {split} crops, needed to check an export")
    picks = np.unique(
        np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    )
    return torch.stack([dataset[int(i)][0] for i in picks]).numpy()


def onnx_scorer(path: Path, threads: int) -> Scorer:
    session = open_session(path, threads)
    return lambda x: session.run(["score"], {INPUT_NAME: x.astype(np.float32)})[0]


def runtime_scorer(fmt: str, path: Path, threads: int) -> Scorer:
    """The scorer of an exported file in the runtime its format runs in."""
    if fmt.removesuffix("-int8") in PROGRAMS:
        return PROGRAMS[fmt.removesuffix("-int8")][2](path, threads)
    if fmt == "ncnn":
        return ncnn.ncnn_scorer(path, threads)
    return onnx_scorer(path, threads)


def torch_scorer(model: torch.nn.Module) -> Scorer:
    @torch.no_grad()
    def score(x: np.ndarray) -> np.ndarray:
        return bonafide_score(model(torch.from_numpy(x))).numpy()

    return score


def score_splits(scorer: Scorer, index: CropIndex, size: int) -> dict[str, ScoreSet]:
    """Scores of the dev (and test, when present) crops by ``scorer``, each split scored once."""
    sets = {}
    for split in ("dev", "test"):
        dataset = CropDataset(index, split, size)
        if len(dataset):
            sets[split] = score_dataset(lambda images: scorer(images.numpy()), dataset, 64)
    return sets


def metrics_at(
    sets: dict[str, ScoreSet], meta: dict[str, Any], threshold: float
) -> dict[str, dict[str, float]]:
    """Dev (and test) ISO metrics of scored splits at a fixed ``threshold``."""
    options = EvalOptions(
        criterion=f"fixed={threshold!r}",
        level=meta.get("threshold_level", "frame"),
        bootstrap=0,
    )
    report = evaluate(sets["dev"], sets.get("test"), options).report
    keys = ("acer", "apcer", "bpcer", "hter", "eer", "auc")
    return {split: {k: float(report[split][k]) for k in keys} for split in sets}


def split_metrics(
    scorer: Scorer, index: CropIndex, size: int, meta: dict[str, Any], threshold: float
) -> dict[str, dict[str, float]]:
    """Dev (and test, when present) ISO metrics at the model's embedded threshold."""
    return metrics_at(score_splits(scorer, index, size), meta, threshold)


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    index_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export, check, measure; write the artifacts and ``export.json`` into ``out_dir``."""
    options = options or ExportOptions()
    options.validate()
    model, meta = load_deployable(checkpoint)
    index = read_crop_index(index_path)
    if index.scale != meta["crop_scale"]:
        raise InputError(
            f"{index_path}: crops at scale {index.scale}, the model expects {meta['crop_scale']}"
        )
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output directory ({exc.strerror})") from None
    torch.set_num_threads(options.threads)
    size = int(meta["input_size"])
    threshold = float(meta["threshold"])
    parity_images = load_images(index, "dev", size, options.parity_crops)
    reference = torch_scorer(model)
    ref_scores = reference(parity_images)
    formats = [f for f in FORMATS if f in options.formats]
    skipped = {}
    missing = {}
    if not pte.available():
        missing |= {"pte": f"ExecuTorch is not installed ({pte.EXTRA})"}
        missing |= {"pte-int8": missing["pte"]}
    if not litert.available():
        missing |= {"tflite": f"LiteRT is not installed ({litert.EXTRA})"}
        missing |= {"tflite-int8": missing["tflite"]}
    if not ncnn.available():
        missing["ncnn"] = f"pnnx/ncnn are not installed ({ncnn.EXTRA})"
    for fmt in [f for f in formats if f in missing]:
        if not options.skip_unavailable:
            raise InputError(f"{fmt}: {missing[fmt]}")
        skipped[fmt] = missing[fmt]
        log(f"{fmt}: skipped, {skipped[fmt]}")
        formats.remove(fmt)
    calibration = None
    if any(f.endswith("int8") for f in formats):
        calibration = load_images(index, "train", size, options.calibration_crops)
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "index": str(index_path),
        "model": meta["model"],
        "input_size": size,
        "threshold": threshold,
        "threshold_criterion": meta["threshold_criterion"],
        "options": asdict(options),
        "machine": machine(),
        "formats": {},
        "skipped": skipped,
    }
    # The fp32 ONNX file is also the input of INT8; asked only for INT8, it stays temporary.
    fp32_onnx = out / (FILE_NAMES["onnx"] if "onnx" in formats else ".fp32-source.onnx.tmp")
    tmp_fp32 = out / f".{FILE_NAMES['onnx']}.tmp"
    written: dict[str, tuple[Path, float]] = {}  # format -> (file, its embedded threshold)
    try:
        if "onnx" in formats or "onnx-int8" in formats:
            start = time.perf_counter()
            with conversion("onnx", meta["model"]):
                export_onnx(model, meta, tmp_fp32)
            seconds = time.perf_counter() - start
            check = parity(
                ref_scores, onnx_scorer(tmp_fp32, options.threads)(parity_images), threshold
            )
            require_parity(check, fp32_onnx, "ONNX", quantized=False, options=options)
            tmp_fp32.replace(fp32_onnx)
            if "onnx" in formats:
                written["onnx"] = (fp32_onnx, threshold)
                report["formats"]["onnx"] = _entry(fp32_onnx, check, seconds, threshold)
                log(f"onnx: {fp32_onnx} max |Δscore| {check['max_abs_score_diff']:.1e}")
            if "onnx-int8" in formats and calibration is not None:
                int8 = out / FILE_NAMES["onnx-int8"]
                tmp_int8 = out / f".{FILE_NAMES['onnx-int8']}.tmp"
                start = time.perf_counter()
                quantize_int8(
                    fp32_onnx, tmp_int8, calibration, keep_stem_fp32=not options.int8_stem
                )
                seconds = time.perf_counter() - start
                # Quantization shifts scores, so the INT8 model gets its own threshold, chosen
                # the same way on the same dev crops (never test), and carries it.
                scorer = onnx_scorer(tmp_int8, options.threads)
                int8_threshold = dev_threshold(scorer, index, size, meta)
                set_threshold(
                    tmp_int8, int8_threshold, f"{meta['threshold_criterion']}, int8 scores"
                )
                check = parity(ref_scores, scorer(parity_images), threshold, int8_threshold)
                require_parity(check, int8, "INT8", quantized=True, options=options)
                tmp_int8.replace(int8)
                written["onnx-int8"] = (int8, int8_threshold)
                report["formats"]["onnx-int8"] = _entry(int8, check, seconds, int8_threshold)
                report["formats"]["onnx-int8"]["calibration"] = {
                    "split": "train",
                    "crops": len(calibration),
                    "method": "minmax, QDQ, per-channel int8 weights, uint8 activations",
                    "stem": "int8" if options.int8_stem else "fp32",
                }
                agreement = 100 * check["decision_agreement"]
                log(f"onnx-int8: {int8} decision agreement {agreement:.1f} %")
        for fmt in [f for f in formats if f.removesuffix("-int8") in PROGRAMS]:
            _write_program(
                fmt,
                model,
                meta,
                out,
                index,
                ref_scores,
                parity_images,
                calibration,
                options,
                report,
                written,
                log,
            )
        if "ncnn" in formats:
            _write_ncnn(model, meta, out, ref_scores, parity_images, options, report, written, log)
    finally:
        for tmp in out.glob(".*.tmp"):
            tmp.unlink()
    _measure(report, model, meta, index, written, options, log)
    atomic_write_json(out / "export.json", report)
    return report


def _write_program(
    fmt: str,
    model: torch.nn.Module,
    meta: dict[str, Any],
    out: Path,
    index: CropIndex,
    ref_scores: np.ndarray,
    parity_images: np.ndarray,
    calibration: np.ndarray | None,
    options: ExportOptions,
    report: dict[str, Any],
    written: dict[str, tuple[Path, float]],
    log: Callable[[str], None],
) -> None:
    """An ExecuTorch or LiteRT program: convert, check, write its sidecar, then the program."""
    quantized = fmt.endswith("-int8")
    runtime, export, scorer_of, kind = PROGRAMS[fmt.removesuffix("-int8")]
    target, tmp = out / FILE_NAMES[fmt], out / f".{FILE_NAMES[fmt]}.tmp"
    threshold = float(meta["threshold"])
    start = time.perf_counter()
    with conversion(fmt, meta["model"]):
        export(model, meta, tmp, calibration if quantized else None)
    seconds = time.perf_counter() - start
    scorer = scorer_of(tmp, options.threads)
    # int8 shifts scores: its own dev EER threshold, chosen the same way (never on test).
    size = int(meta["input_size"])
    own = dev_threshold(scorer, index, size, meta) if quantized else threshold
    check = parity(ref_scores, scorer(parity_images), threshold, own)
    require_parity(check, target, "INT8" if quantized else runtime, quantized, options)
    criterion = meta["threshold_criterion"] + (", int8 scores" if quantized else "")
    pte.write_sidecar(target, meta, own, criterion, kind)
    tmp.replace(target)  # after the sidecar: a program never lacks it
    written[fmt] = (target, own)
    report["formats"][fmt] = _entry(target, check, seconds, own)
    log(
        f"{fmt}: {target} max |Δscore| {check['max_abs_score_diff']:.1e}, "
        f"decision agreement {100 * check['decision_agreement']:.1f} %"
    )


def _write_ncnn(
    model: torch.nn.Module,
    meta: dict[str, Any],
    out: Path,
    ref_scores: np.ndarray,
    parity_images: np.ndarray,
    options: ExportOptions,
    report: dict[str, Any],
    written: dict[str, tuple[Path, float]],
    log: Callable[[str], None],
) -> None:
    """Convert in a scratch folder, check parity there, then move the pair into place."""
    target = out / FILE_NAMES["ncnn"]
    threshold = float(meta["threshold"])
    with tempfile.TemporaryDirectory(dir=out, prefix=".ncnn-") as tmp:
        param = Path(tmp) / target.name
        start = time.perf_counter()
        with conversion("ncnn", meta["model"]):
            ncnn.export_ncnn(model, meta, param)
        seconds = time.perf_counter() - start
        check = parity(
            ref_scores, ncnn.ncnn_scorer(param, options.threads)(parity_images), threshold
        )
        require_parity(check, target, "ncnn", quantized=False, options=options)
        ncnn.sidecar(target, meta, threshold)
        ncnn.bin_path(param).replace(ncnn.bin_path(target))
        param.replace(target)  # last: the model exists once its .param does
    written["ncnn"] = (target, threshold)
    report["formats"]["ncnn"] = _entry(target, check, seconds, threshold)
    report["formats"]["ncnn"]["bytes"] += ncnn.bin_path(target).stat().st_size
    log(f"ncnn: {target} max |Δscore| {check['max_abs_score_diff']:.1e}")


def dev_threshold(scorer: Scorer, index: CropIndex, size: int, meta: dict[str, Any]) -> float:
    """The dev EER threshold of ``scorer``'s scores, at the model's threshold level."""
    dev = score_dataset(lambda images: scorer(images.numpy()), CropDataset(index, "dev", size), 64)
    return eer_threshold(dev, meta)


def eer_threshold(dev: ScoreSet, meta: dict[str, Any]) -> float:
    """The EER threshold of scored dev crops, at the model's threshold level."""
    options = EvalOptions(criterion="eer", level=meta.get("threshold_level", "frame"), bootstrap=0)
    return float(evaluate(dev, None, options).threshold)


def set_threshold(path: Path, threshold: float, criterion: str) -> None:
    """Replace the threshold an exported ONNX model carries."""
    import onnx

    proto = onnx.load(str(path))
    add_metadata(
        proto, {"threshold": json.dumps(threshold), "threshold_criterion": json.dumps(criterion)}
    )
    onnx.save(proto, str(path))


def _entry(path: Path, check: dict[str, float], seconds: float, threshold: float) -> dict[str, Any]:
    return {
        "path": path.name,
        "threshold": threshold,
        "bytes": path.stat().st_size,
        "export_seconds": seconds,
        "parity": check,
    }


def _measure(
    report: dict[str, Any],
    model: torch.nn.Module,
    meta: dict[str, Any],
    index: CropIndex,
    written: dict[str, tuple[Path, float]],
    options: ExportOptions,
    log: Callable[[str], None],
) -> None:
    """Accuracy per runtime at its embedded threshold, and interleaved batch-1 latency."""
    size = int(meta["input_size"])
    scorers: dict[str, tuple[Scorer, float]] = {
        "pytorch": (torch_scorer(model), float(meta["threshold"]))
    }
    for fmt, (path, threshold) in written.items():
        scorers[fmt] = (runtime_scorer(fmt, path, options.threads), threshold)
    report["accuracy"] = {
        name: split_metrics(scorer, index, size, meta, threshold)
        for name, (scorer, threshold) in scorers.items()
    }
    if options.latency_runs == 0:
        return
    one = np.zeros((1, 3, size, size), np.float32)
    timings = interleaved_latency(
        {name: (lambda s=s: s(one)) for name, (s, _) in scorers.items()},
        min_runs=options.latency_runs,
        min_seconds=options.latency_seconds,
    )
    report["latency"] = {
        "batch": 1,
        "threads": options.threads,
        "method": "interleaved in one process, after warm-up",
        "runtimes": {name: t.as_dict() for name, t in timings.items()},
    }
    if "onnx-int8" in timings and "onnx" in timings:
        ratio = timings["onnx-int8"].median_ms / timings["onnx"].median_ms
        report["latency"]["int8_vs_fp32"] = ratio
        if ratio > 1:
            cpu = report["machine"]["cpu"]
            note = (
                f"INT8 is {ratio:.2f}x the fp32 latency on this CPU ({cpu['model']}; "
                f"int8 dot-product instructions: {'yes' if cpu['int8_dot_product'] else 'no'}): "
                "for a model this small the quantize/dequantize overhead outweighs the cheaper "
                "arithmetic"
            )
            report["latency"]["note"] = note
            log(note)
    for name, t in timings.items():
        acc = report["accuracy"][name]
        test = acc.get("test", acc["dev"])
        log(
            f"{name:10s} median {t.median_ms:.3f} ms  "
            f"ACER {100 * test['acer']:.2f} %  AUC {test['auc']:.4f}"
        )
