"""Fingerprints of the weights that tiny runs of every built-in recipe produce.

A refactor of the trainer, the distillation objective or the recipes must leave
training bit for bit the same. This script makes a small SynthSpoof set (4
subjects, 64 px crops), runs every teacher, student and distillation recipe for a
few steps on one thread (32 px input; 64 px for attention transfer, whose maps are
1 x 1 at 32 px), and prints the SHA-256 of each run's final weights (the
student, its distillation adapters, and the optimiser, scheduler and scaler state
of ``last.pt``), plus its dev ACER:

    python benchmarks/weights_fingerprint.py --out runs/fingerprint --write before.json
    ... refactor ...
    python benchmarks/weights_fingerprint.py --out runs/fingerprint2 --check before.json

``--check`` exits 1 and names every run whose fingerprint moved. Fingerprints hold
on one CPU type and one torch version (other kernels round differently), so
compare files made on the same machine; a file records both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from fasdistill.cli import main as cli
from fasdistill.data.prepare import PrepareConfig, prepare
from fasdistill.data.synth import SynthConfig, generate
from fasdistill.engine.checkpoint import load_checkpoint
from fasdistill.utils.atomic import atomic_write_json

COMMON = [
    "data.input_size=32",
    "data.batch_size=16",
    "data.workers=0",
    "train.epochs=1",
    "train.min_steps=6",
    "train.early_stop=null",
]
TEACHERS = ["teacher_resnet18", "teacher_cdcnpp", "teacher_resnet50", "teacher_resnet18_xdomain"]
STUDENTS = [
    "student_swapnet",
    "student_minifasnet",
    "student_mobilenetv3",
    "student_swapnet_xdomain",
    "smoke",
]
DISTILL = [
    "distill_kd",
    "distill_kd_std",
    "distill_dkd",
    "distill_dist",
    "distill_fitnet",
    "distill_at",
    "distill_rkd",
    "distill_pkt",
    "distill_sp",
    "distill_pixel",
    "distill_one_class",
    "distill_kd_xdomain",
    "distill_kd_xdomain_clean",
]


def digest(value: Any) -> str:
    """SHA-256 of a checkpoint entry: tensors by their bytes, in sorted key order."""
    h = hashlib.sha256()

    def feed(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            h.update(str((v.dtype, tuple(v.shape))).encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(v, dict):
            for key in sorted(v, key=str):
                h.update(str(key).encode())
                feed(v[key])
        elif isinstance(v, (list, tuple)):
            for item in v:
                feed(item)
        else:
            h.update(repr(v).encode())

    feed(value)
    return h.hexdigest()[:16]


def data(out: Path) -> Path:
    index = out / "crops" / "index.csv"
    if not index.exists():
        generate(out / "synth", SynthConfig(subjects=4, size=64), workers=1)
        config = PrepareConfig(
            dataset="synthspoof", root=str(out / "synth"), protocol="intra",
            boxes="annotation", size=64,
        )  # fmt: skip
        prepare(config, index.parent, workers=1)
    return index


def run(
    command: str, recipe: str, index: Path, out: Path, flags: list[str], overrides: list[str]
) -> dict[str, Any]:
    folder = out / "runs" / recipe
    if not (folder / "checkpoints" / "last.pt").exists():
        args = [command, "--recipe", recipe, "--data", str(index), "--out", str(folder)]
        code = cli([*args, "--no-progress", *flags, *COMMON, *overrides])
        if code != 0:
            raise SystemExit(f"{recipe}: exit status {code}")
    last = load_checkpoint(folder / "checkpoints" / "last.pt")
    epochs = [
        json.loads(line)
        for line in (folder / "metrics.jsonl").read_text().splitlines()
        if '"type": "epoch"' in line
    ]
    return {
        "model": digest(last["model"]),
        "objective": digest(last.get("objective", {})),
        "optimizer": digest(last["optimizer"]),
        "scheduler": digest(last["scheduler"]),
        "scaler": digest(last["scaler"]),
        "dev_acer": [e["dev"]["acer"] for e in epochs],
        "train_loss": [e["train_loss"] for e in epochs],
    }


def fingerprints(out: Path) -> dict[str, Any]:
    torch.set_num_threads(1)
    index = data(out)
    runs: dict[str, Any] = {}
    teacher = str(out / "runs" / "teacher_resnet18" / "checkpoints" / "best.pt")
    for recipe in TEACHERS + STUDENTS:
        runs[recipe] = run("train", recipe, index, out, [], [])
        print(f"{recipe}: {runs[recipe]['model']}", flush=True)
    for recipe in DISTILL:
        size = ["data.input_size=64"] if recipe == "distill_at" else []
        runs[recipe] = run("distill", recipe, index, out, ["--teacher", teacher], size)
        print(f"{recipe}: {runs[recipe]['model']}", flush=True)
    cdcn = str(out / "runs" / "teacher_cdcnpp" / "checkpoints" / "best.pt")
    runs["distill_multi_teacher"] = run(
        "distill", "distill_multi_teacher", index, out, [], [f"distill.teacher=[{teacher},{cdcn}]"]
    )
    print(f"distill_multi_teacher: {runs['distill_multi_teacher']['model']}", flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (data and runs)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--write", type=Path, help="write the fingerprints to this JSON")
    what.add_argument("--check", type=Path, help="compare with the fingerprints in this JSON")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    machine = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
    if Path("/proc/cpuinfo").exists():
        names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
        machine["cpu"] = names[0].split(":", 1)[1].strip() if names else machine["cpu"]
    runs = fingerprints(args.out)
    print(f"{len(runs)} runs in {time.perf_counter() - start:.0f} s")
    if args.write:
        atomic_write_json(args.write, {"machine": machine, "runs": runs})
        print(f"wrote {args.write}")
        return 0
    before = json.loads(args.check.read_text())
    if before.get("machine") != machine:
        print(f"note: made on {before.get('machine')}, checked on {machine}", file=sys.stderr)
    moved = [
        f"{name}: {key} {old[key]} -> {runs.get(name, {}).get(key)}"
        for name, old in before["runs"].items()
        for key in old
        if runs.get(name, {}).get(key) != old[key]
    ]
    for line in moved:
        print(f"MOVED {line}")
    print("bit for bit the same" if not moved else f"{len(moved)} fingerprint(s) moved")
    return 1 if moved else 0


if __name__ == "__main__":
    raise SystemExit(main())
