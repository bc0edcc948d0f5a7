"""ACER per attack species of the ``multimodal`` study's runs, and the multi-modal
teacher with a sensor missing.

The study's table gives each run's test ACER; masks are the case multi-modal
teachers are for, so this rescoring of every run's dev-selected ``best.pt`` gives
APCER per species and ``ACER(species) = (APCER(species) + BPCER) / 2`` at the run's
dev EER threshold (the test split chooses nothing). The multi-modal teacher is also
scored with its depth, its NIR or both given as zeros (a missing sensor, as modality
dropout trained it for; its threshold then chosen on dev scored the same way).

    python benchmarks/multimodal.py --study runs/multimodal \
        --out benchmarks/results/multimodal_species
    python benchmarks/multimodal.py --tables-only --out benchmarks/results/multimodal_species
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from fasdistill.data.loader import CropDataset, read_crop_index
from fasdistill.engine.checkpoint import load_deployable
from fasdistill.engine.evaluation import score_dataset
from fasdistill.metrics.evaluate import EvalOptions, evaluate
from fasdistill.models import bonafide_score
from fasdistill.models.multimodal import select
from fasdistill.utils.atomic import atomic_write_json, atomic_write_text

SPECIES = ("print", "replay", "mask")
ORDER = ("rgb", "mm", "scratch", "kd_rgb", "kd_mm", "kd_rgb_logit", "kd_mm_logit", "rgbir")
NAMES = {
    "rgb": "RGB teacher (ResNet-18)",
    "mm": "RGB + depth + NIR teacher (ResNet-18, early fusion)",
    "scratch": "RGB student alone (swapnet)",
    "kd_rgb": "RGB student taught by the RGB teacher (KD + FitNets)",
    "kd_mm": "RGB student taught by the multi-modal teacher (KD + FitNets)",
    "kd_rgb_logit": "RGB student, logit KD only, RGB teacher",
    "kd_mm_logit": "RGB student, logit KD only, multi-modal teacher",
    "rgbir": "RGB + NIR student alone (swapnet)",
}
MISSING = {"no depth": ("rgb", "ir"), "no NIR": ("rgb", "depth"), "RGB only": ("rgb",)}


def score(model: torch.nn.Module, index: Any, split: str, size: int, given: tuple[str, ...]):
    """Scores of ``split`` with only the ``given`` modalities (the rest zeros)."""
    dataset = CropDataset(index, split, size, modalities=given)
    wanted = model.modalities

    @torch.no_grad()
    def scorer(images: torch.Tensor):
        return bonafide_score(model(select(images, given, wanted, fill=True))).numpy()

    return score_dataset(scorer, dataset, 128)


def metrics(model: torch.nn.Module, meta: dict, index: Any, given: tuple[str, ...]) -> dict:
    size = int(meta["input_size"])
    dev, test = (score(model, index, s, size, given) for s in ("dev", "test"))
    level = meta.get("threshold_level", "frame")
    report = evaluate(dev, test, EvalOptions(criterion="eer", level=level, bootstrap=0)).report
    t = report["test"]
    per = t["apcer_per_pai"]
    out = {"acer": t["acer"], "bpcer": t["bpcer"], "apcer": t["apcer"], "auc": t["auc"]}
    for species in SPECIES:
        if species in per:
            out[f"apcer_{species}"] = per[species]
            out[f"acer_{species}"] = (per[species] + t["bpcer"]) / 2
    return out


@torch.no_grad()
def softness(model: torch.nn.Module, meta: dict, index: Any) -> dict[str, float]:
    """What a teacher's outputs on the training crops carry beyond the labels: the mean
    probability of its top class and the mean entropy (nats) of its class distribution."""
    dataset = CropDataset(index, "train", int(meta["input_size"]), modalities=model.modalities)
    top, entropy = [], []
    for images, *_ in torch.utils.data.DataLoader(dataset, batch_size=128):
        p = torch.softmax(model(images).float(), dim=1)
        top.append(p.max(dim=1).values)
        entropy.append(-(p * p.clamp_min(1e-12).log()).sum(dim=1))
    return {"top_p": float(torch.cat(top).mean()), "entropy": float(torch.cat(entropy).mean())}


def run_dirs(study: Path, protocol: str) -> dict[str, list[Path]]:
    """{method: [best.pt per seed]} of a study's finished runs on ``protocol``."""
    out: dict[str, list[Path]] = {}
    for method in ORDER:
        folder = study / protocol / method
        paths = sorted(folder.glob("seed*/checkpoints/best.pt")) or sorted(
            folder.glob("checkpoints/best.pt")
        )
        if paths:
            out[method] = paths
    return out


def measure(study: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"study": str(study), "protocols": {}}
    protocols = sorted(p.name.removeprefix("crops_") for p in study.glob("crops_*"))
    for protocol in protocols:
        index = read_crop_index(study / f"crops_{protocol}" / "index.csv")
        rows: dict[str, Any] = {}
        for method, paths in run_dirs(study, protocol).items():
            runs = []
            for path in paths:
                model, meta = load_deployable(path)
                runs.append(metrics(model, meta, index, model.modalities))
                print(f"{protocol} {method} {path.parent.parent.name}: {runs[-1]}", flush=True)
            rows[method] = runs
            if method in ("rgb", "mm"):
                model, meta = load_deployable(paths[0])
                soft = results.setdefault("teacher_outputs", {}).setdefault(protocol, {})
                soft[method] = softness(model, meta, index)
            if method == "mm":
                model, meta = load_deployable(paths[0])
                for name, given in MISSING.items():
                    rows[f"mm ({name})"] = [metrics(model, meta, index, given)]
        results["protocols"][protocol] = rows
    return results


def _cell(runs: list[dict[str, Any]], key: str) -> str:
    values = [100 * r[key] for r in runs if key in r]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def tables(results: dict[str, Any]) -> str:
    keys = ["acer", "bpcer", *(f"apcer_{s}" for s in SPECIES), *(f"acer_{s}" for s in SPECIES)]
    head = (
        "| run | n | ACER | BPCER | APCER print | APCER replay | APCER mask "
        "| ACER print | ACER replay | ACER mask |"
    )
    lines = []
    for protocol, rows in results["protocols"].items():
        lines += [
            f"### {protocol}: test, % (mean ± std over seeds; thresholds at the dev EER)",
            "",
            head,
            "|---" * 10 + "|",
        ]
        for method, runs in rows.items():
            name = NAMES.get(method, f"multi-modal teacher, {method[4:-1]}")
            cells = " | ".join(_cell(runs, k) for k in keys)
            lines.append(f"| `{method}`: {name} | {len(runs)} | {cells} |")
        lines.append("")
    soft = results.get("teacher_outputs", {})
    if soft:
        lines += [
            "### The teachers' outputs on the training crops",
            "",
            "| protocol | teacher | mean top-class probability | mean entropy (nats) |",
            "|---|---|---|---|",
        ]
        for protocol, teachers in soft.items():
            for method, v in teachers.items():
                lines.append(f"| {protocol} | `{method}` | {v['top_p']:.3f} | {v['entropy']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, help="the study's output folder")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parser.add_argument("--tables-only", action="store_true", help="rewrite OUT.md from OUT.json")
    args = parser.parse_args(argv)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    if args.tables_only:
        results = json.loads(json_path.read_text())
    else:
        if args.study is None or not (args.study / "study.json").is_file():
            print(f"--study {args.study}: not a study output folder", file=sys.stderr)
            return 2
        torch.set_num_threads(1)
        results = measure(args.study)
        atomic_write_json(json_path, results)
    atomic_write_text(md_path, tables(results))
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
