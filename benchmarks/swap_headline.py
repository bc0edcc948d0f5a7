"""The SWAP headline on SynthSpoof: how much faster and cheaper the student is, and what limits it.

Reads the finished ``intra`` runs of ``fasdistill study kd_gain``: the teacher, the
distilled student of the method with the best mean *dev* ACER over seeds (never
test) at the seed with the best dev ACER, and the scratch student of that seed.
Runs the SWAP measurement on them (ONNX Runtime fp32 and INT8, PyTorch eager, and
ExecuTorch, LiteRT and ncnn when installed), then profiles the student in ONNX Runtime:
time per operator type and the arithmetic rate it reaches against the core's nominal
peak. Last, the student's speed against a ResNet-50 at the same input size.

    fasdistill study kd_gain --out runs/kd_gain    # first (or kd_gain_quick)
    python benchmarks/swap_headline.py --runs runs/kd_gain --out runs/swap_headline
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from fasdistill.export import litert, ncnn, pte
from fasdistill.swap.measure import run_swap
from fasdistill.swap.options import DEFAULT_RUNTIMES, SwapOptions
from fasdistill.swap.profile import nominal_peak_gflops, profile_onnx
from fasdistill.swap.report import write_reports
from fasdistill.utils.atomic import atomic_write_json, atomic_write_text


def pick_student(runs: Path, protocol: str) -> tuple[str, int, dict[str, float]]:
    """The distilled method with the best mean dev ACER, and its best-dev seed."""
    by_method: dict[str, dict[int, float]] = {}
    for result in sorted((runs / protocol).glob("*/seed*/result.json")):
        data = json.loads(result.read_text())
        if data["method"] in ("scratch", "teacher"):
            continue
        by_method.setdefault(data["method"], {})[data["seed"]] = data["dev"]["acer"]
    if not by_method:
        raise SystemExit(f"no distilled runs under {runs / protocol}; run fasdistill study kd_gain")
    means = {m: statistics.fmean(seeds.values()) for m, seeds in by_method.items()}
    method = min(means, key=lambda m: (means[m], m))
    seed = min(by_method[method], key=lambda s: (by_method[method][s], s))
    return method, seed, means


def video_stage(args: argparse.Namespace, student: dict, swap: dict) -> dict:
    """Decode + crop + infer throughput of the student on a generated SynthSpoof video."""
    import cv2

    from fasdistill.data.loader import read_crop_index
    from fasdistill.data.synth import SynthConfig, generate
    from fasdistill.engine.checkpoint import load_deployable
    from fasdistill.export.pipeline import onnx_scorer
    from fasdistill.swap.pipeline_speed import read_boxes, video_throughput

    root = args.out / "video"
    config = SynthConfig(subjects=3, samples=1, frames=64, size=224, domains=("phone",), seed=7)
    generate(root, config, workers=1)
    sample = next(p for p in sorted((root / "media").rglob("*bonafide*.avi")))
    boxes = read_boxes(sample.with_name(sample.stem + ".boxes.csv"))
    # The crop scale the student was trained at, and the side its crops were stored at.
    _, meta = load_deployable(student["checkpoint"])
    index = read_crop_index(args.runs / f"crops_{args.protocol}")
    stored = cv2.imread(str(index.root / index.rows[0]["crop_path"])).shape[0]
    score = onnx_scorer(args.out / "artifacts" / student["label"] / "model.onnx", args.threads)
    result = video_throughput(sample, boxes, score, meta["crop_scale"], stored, meta["input_size"])
    return result | {"size": config.size}


def resnet50_reference(args: argparse.Namespace, student: dict) -> dict:
    """Batch-1 ONNX Runtime latency of a ResNet-50 at the student's input size, interleaved.

    The aim is stated against a ResNet-50 teacher, which the kd_gain study does not train.
    Latency does not depend on the weights' values, so a ResNet-50 with freshly
    initialised weights and the student's input size, exported the same way, gives
    the speed half of that comparison (no accuracy: it is not trained).
    """
    import numpy as np

    from fasdistill.engine.checkpoint import load_deployable
    from fasdistill.export.onnx import export_onnx
    from fasdistill.export.pipeline import onnx_scorer
    from fasdistill.models.registry import build_model, count_macs, count_params
    from fasdistill.utils.latency import interleaved_latency

    _, meta = load_deployable(student["checkpoint"])
    size = int(meta["input_size"])
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=len(meta["classes"]), input_size=size).eval()
    meta = meta | {"model": "resnet50", "threshold_criterion": "none: untrained, timing only"}
    path = args.out / "artifacts" / "resnet50_untrained.onnx"
    export_onnx(model, meta, path)
    one = np.zeros((1, 3, size, size), np.float32)
    scorers = {
        "resnet50": onnx_scorer(path, args.threads),
        "student": onnx_scorer(
            args.out / "artifacts" / student["label"] / "model.onnx", args.threads
        ),
    }
    timings = interleaved_latency({k: (lambda s=s: s(one)) for k, s in scorers.items()})
    return {
        "input_size": size,
        "params": count_params(model),
        "macs": count_macs(model, size),
        "resnet50_ms": timings["resnet50"].median_ms,
        "student_ms": timings["student"].median_ms,
        "speedup": timings["resnet50"].median_ms / timings["student"].median_ms,
    }


def runtime_lines(swap: dict) -> list[str]:
    """Teacher and student per runtime (same-runtime speed-up), then best-to-best.

    The same-runtime ratio flatters a runtime that handles the teacher badly (ncnn runs
    a ResNet-18 5-6x slower than ONNX Runtime), so each model's own fastest CPU runtime
    and the best-to-best ratio are printed beside it.
    """
    teacher, student = swap["models"][:2]
    vs = student["vs_reference"]
    lines = [
        "| runtime | teacher ms | student ms | speed-up | energy ratio |",
        "|---|---|---|---|---|",
    ]
    for runtime in swap["options"]["runtimes"]:
        if runtime not in vs:
            lines.append(f"| {runtime} | {vs['omitted'][runtime]} | | | |")
            continue
        lines.append(
            f"| {runtime} | {teacher['latency'][runtime]['batch1']['median_ms']:.3f} "
            f"| {student['latency'][runtime]['batch1']['median_ms']:.3f} "
            f"| {vs[runtime]['speedup']:.1f}x | {vs[runtime]['energy_ratio']:.3f} |"
        )
    lines.append("")
    for kind, what in (("fp32", "fp32 runtimes"), ("any", "int8 included")):
        best = vs["best_to_best"].get(kind)
        if best is None:
            continue
        t, s = teacher["best_runtime"][kind], student["best_runtime"][kind]
        lines.append(
            f"Best-to-best ({what}): teacher in {t['runtime']} {t['median_ms']:.3f} ms, student "
            f"in {s['runtime']} {s['median_ms']:.3f} ms: **{best['speedup']:.1f}x**."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/kd_gain"))
    parser.add_argument("--protocol", default="intra")
    parser.add_argument("--out", type=Path, default=Path("runs/swap_headline"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile-runs", type=int, default=500)
    args = parser.parse_args()
    method, seed, means = pick_student(args.runs, args.protocol)
    base = args.runs / args.protocol
    models = [
        base / "teacher" / "checkpoints" / "best.pt",
        base / method / f"seed{seed}" / "checkpoints" / "best.pt",
        base / "scratch" / f"seed{seed}" / "checkpoints" / "best.pt",
    ]
    runtimes = DEFAULT_RUNTIMES + (("pte", "pte-int8") if pte.available() else ())
    runtimes += ("tflite", "tflite-int8") if litert.available() else ()
    runtimes += ("ncnn",) if ncnn.available() else ()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    swap = run_swap(models, base.parent / f"crops_{args.protocol}", args.out,
                    SwapOptions(runtimes=runtimes, threads=args.threads))  # fmt: skip
    write_reports(swap, args.out)
    teacher, student, scratch = swap["models"]
    onnx_file = args.out / "artifacts" / student["label"] / "model.onnx"
    profile = profile_onnx(onnx_file, student["input_size"], args.threads, args.profile_runs)
    peak = nominal_peak_gflops(swap["machine"]["cpu"], args.threads)
    vs = student["vs_reference"]
    headline = {
        "selection": {"method": method, "seed": seed, "mean_dev_acer": means},
        "student": student["label"],
        "speedup": {r: vs[r]["speedup"] for r in runtimes if r in vs},
        "energy_ratio": {r: vs[r]["energy_ratio"] for r in runtimes if r in vs},
        "best_runtime": {"teacher": teacher["best_runtime"], "student": student["best_runtime"]},
        "best_to_best": vs["best_to_best"],
        "left_out": swap["left_out"],
        "retention": student["vs_reference"]["accuracy"],
        "params": {"teacher": teacher["weight"]["params"], "student": student["weight"]["params"]},
        "scratch_retention": scratch["vs_reference"]["accuracy"]["retention"],
        "student_onnx_ms": student["latency"]["onnx"]["batch1"]["median_ms"],
        "profile": profile,
        "nominal_peak": peak,
    }
    headline["video"] = video_stage(args, student, swap)
    headline["resnet50"] = resnet50_reference(args, student)
    atomic_write_json(args.out / "headline.json", headline)
    lines = [
        f"Student: `{student['label']}` ({method}: best mean dev ACER over seeds; seed {seed}: "
        f"best dev ACER), {student['weight']['params'] / 1e6:.3f} M parameters "
        f"({teacher['weight']['params'] / 1e6:.2f} M teacher).",
        "",
        *runtime_lines(swap),
    ]
    r = headline["retention"]
    lines += [
        "",
        f"Retention (1 - ACER_s) / (1 - ACER_t): {100 * r['retention']:.1f} % "
        f"[{100 * r['retention_ci'][0]:.1f}, {100 * r['retention_ci'][1]:.1f}] (scratch student: "
        f"{100 * headline['scratch_retention']:.1f} %).",
        "",
        f"Where the student's time goes (ONNX Runtime profiler, {args.profile_runs} runs, "
        f"{args.threads} thread): {profile['kernel_ms']:.3f} ms of kernels, "
        f"{profile['gflops']:.1f} GFLOP/s overall against a nominal peak of "
        f"{peak['gflops']:.1f} ({peak['method']}, {peak['ghz']:.2f} GHz).",
        "",
        *(
            [
                "Above 100 % of the nominal peak means the count of direct-convolution MACs "
                "overstates the work done (fast convolution algorithms) or the core runs above "
                "the clock /proc/cpuinfo reports: either way the convolutions are compute-bound, "
                "and more speed must come from fewer MACs or narrower arithmetic (INT8).",
                "",
            ]
            if profile["gflops"] and profile["gflops"] > peak["gflops"]
            else []
        ),
        "| operator | ms | share | GFLOP/s | of peak |",
        "|---|---|---|---|---|",
    ]
    for op in profile["ops"]:
        rate = op["gflops"]
        rate_text = "" if rate is None else f"{rate:.1f}"
        share_of_peak = "" if rate is None else f"{100 * rate / peak['gflops']:.0f} %"
        lines.append(
            f"| {op['op']} | {op['ms']:.3f} | {100 * op['share']:.1f} % "
            f"| {rate_text} | {share_of_peak} |"
        )
    video = headline["video"]
    ms = video["ms_per_frame"]
    lines += [
        "",
        f"End to end on a {video['frames']}-frame {video['size']} px SynthSpoof video (decode, "
        f"crop + preprocess, ONNX Runtime fp32 inference, {args.threads} thread): "
        f"{video['fps']:.0f} frames/s; per frame decode {ms['decode']:.3f} ms, crop + "
        f"preprocess {ms['crop_preprocess']:.3f} ms, inference {ms['infer']:.3f} ms.",
    ]
    r50 = headline["resnet50"]
    lines += [
        "",
        f"Against a ResNet-50 at the same {r50['input_size']} px input "
        f"({r50['params'] / 1e6:.1f} M parameters, {r50['macs'] / 1e6:.0f} M MACs; freshly "
        "initialised weights, speed only: "
        f"latency does not depend on the weights' values), ONNX Runtime fp32, batch 1, "
        f"{args.threads} thread, interleaved: {r50['resnet50_ms']:.3f} ms vs the student's "
        f"{r50['student_ms']:.3f} ms, **{r50['speedup']:.1f}x**.",
    ]
    markdown = "\n".join(lines) + "\n"
    atomic_write_text(args.out / "headline.md", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
