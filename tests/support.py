"""Helpers shared by the tests: a toy crop index, the smoke recipe, torchrun, DDP parity.

Fixtures built from them (the toy index, a trained smoke-cnn checkpoint and its
ONNX export) are in ``conftest.py``.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from fasdistill.config import BUILTIN_RECIPES, RunConfig, load_recipe
from fasdistill.data.prepare import INDEX_COLUMNS
from fasdistill.engine.checkpoint import load_checkpoint

# Separable classes: each has its own dominant colour, plus noise.
COLOURS = {"bonafide": (200, 60, 60), "print": (60, 60, 200), "replay": (60, 200, 60)}


def make_index(root: Path, per_class: dict[str, int], missing_test: bool = False) -> Path:
    """A prepared-index look-alike: 16-px crops whose colour gives away the class."""
    rng = np.random.default_rng(0)
    rows = []
    for split, n in per_class.items():
        for cls, colour in COLOURS.items():
            for i in range(n):
                subject = f"{split}_s{i % 4}"
                crop = f"crops/{split}/{cls}_{i}.png"
                if not (missing_test and split == "test"):
                    image = np.clip(rng.normal(colour, 25, (16, 16, 3)), 0, 255).astype(np.uint8)
                    (root / crop).parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(root / crop), image[..., ::-1])
                rows.append(
                    {
                        "split": split,
                        "label": "bonafide" if cls == "bonafide" else "attack",
                        "pai": "" if cls == "bonafide" else cls,
                        "subject": subject,
                        "session": "",
                        "device": "",
                        "domain": "toy",
                        "video_id": f"{split}_{cls}_{i}",
                        "frame": "0",
                        "scale": "1.5",
                        "crop_path": crop,
                        "box_x": "0",
                        "box_y": "0",
                        "box_w": "16",
                        "box_h": "16",
                        "box_source": "annotation",
                        "det_score": "",
                        "status": "ok",
                        "source_path": "",
                    }
                )
    with (root / "index.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root / "index.csv"


def smoke(**overrides: object) -> RunConfig:
    items = [f"{k}={v}" for k, v in overrides.items()]
    return load_recipe(BUILTIN_RECIPES / "smoke.yaml", items)


def trained(index: Path, run: Path, model: str, epochs: int, size: int = 16) -> Path:
    """``best.pt`` of the smoke recipe's loop training ``model`` on ``index``."""
    from fasdistill.engine.trainer import train

    config = smoke(**{"model.name": model, "train.epochs": epochs, "data.input_size": size})
    train(config, index, run, show_progress=False)
    return run / "checkpoints" / "best.pt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*cli_args: str, processes: int = 2) -> subprocess.CompletedProcess[str]:
    """``fasdistill`` under ``torchrun`` on this machine (gloo on CPU), outside pytest's env."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "fasdistill.cli",
        *cli_args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def assert_ddp_matches_single(
    command: str,
    overrides: list[str],
    index: Path,
    tmp_path: Path,
    parts: dict[str, Callable[[dict], dict]],
    rtol: float = 1e-4,
    atol: float = 1e-5,
    skip: tuple[str, ...] = (),
) -> tuple[dict, dict]:
    """Run the smoke recipe with ``overrides`` in this process and under 2-process
    torchrun (``fasdistill COMMAND``); every tensor of each part of ``last.pt`` must agree.

    ``parts`` maps a name to how to read it from a checkpoint (e.g. the adapters out of
    ``objective``); keys ending in one of ``skip`` are not compared. Returns both
    checkpoints for further checks.
    """
    from fasdistill.distill import fit

    recipe = BUILTIN_RECIPES / "smoke.yaml"
    fit(load_recipe(recipe, overrides), index, tmp_path / "single", show_progress=False)
    done = torchrun(
        command, "--recipe", str(recipe), "--data", str(index), "--out", str(tmp_path / "ddp"),
        "--no-progress", *overrides,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    single = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    for name, read in parts.items():
        a, b = read(single), read(ddp)
        assert set(a) == set(b), name
        for key, value in a.items():
            if not key.endswith(skip):
                torch.testing.assert_close(b[key], value, rtol=rtol, atol=atol, msg=f"{name}.{key}")
    return single, ddp
