"""A study's per-run records and its results file, which never loses runs.

Every finished run leaves ``OUT/<job>/result.json``: its recipe, overrides, steps,
the dev-selected epoch, the dev-fixed threshold and the dev and test figures. The
results file (``OUT/results.json``) holds them all, with what was planned and on
which machine; it is merged, never overwritten by fewer runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from fasdistill.errors import InputError

RESULT_KEYS = ("budget", "protocols", "methods", "seeds", "results")
METRICS = ("acer", "hter", "auc", "apcer", "bpcer", "eer")


def read_results_file(path: Path) -> dict[str, Any]:
    """A results file (a study's or a committed one), checked: it names what it holds."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: results file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable results file ({exc})") from None
    missing = [k for k in RESULT_KEYS if not isinstance(data, dict) or k not in data]
    if missing:
        raise InputError(f"{path}: not a study results file (no {', '.join(missing)})")
    return data


def merge_results(
    path: Path, payload: dict[str, Any], replace: bool
) -> tuple[dict[str, Any], list[str]]:
    """``payload`` merged with the results already in ``path``: a file never loses runs.

    Runs in ``payload`` win over the stored ones; the stored runs it lacks are kept,
    and protocols, methods and seeds become the union. ``replace`` writes ``payload``
    alone (asked for by name). Returns the content and the job names only the file had.
    """
    if not path.exists() or replace:
        return payload, []
    stored = read_results_file(path)
    check_compatible(path, stored, payload)
    kept = sorted(set(stored["results"]) - set(payload["results"]))
    merged = dict(payload)
    merged["results"] = {k: stored["results"][k] for k in kept} | payload["results"]
    for key in ("protocols", "methods"):
        merged[key] = [*stored[key], *(v for v in payload[key] if v not in stored[key])]
    merged["seeds"] = sorted(set(stored["seeds"]) | set(payload["seeds"]))
    return merged, kept


def check_compatible(path: Path, stored: dict[str, Any], settings: dict[str, Any]) -> None:
    """Runs of another budget or data are not merged: ``path`` (holding ``stored``) is
    refused for a study of these ``settings`` (its ``budget`` and ``data``)."""
    for key in ("budget", "data"):
        if key in stored and stored[key] != settings.get(key):
            raise InputError(
                f"{path} holds runs of another {key} ({stored[key]}, now {settings.get(key)}); "
                "use another --out"
            )


def test_fingerprint(index: Path) -> dict[str, Any]:
    """Size and SHA-256 of an index's test rows: a result is valid only for this test set."""
    with index.open(newline="") as handle:
        paths = sorted(
            r["crop_path"]
            for r in csv.DictReader(handle)
            if r["split"] == "test" and r["status"] == "ok"
        )
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()
    return {"crops": len(paths), "sha256": digest}


def summarise(
    name: str,
    run: str,
    seed: int | None,
    run_dir: Path,
    index: Path,
    recipe: str,
    overrides: list[str],
    wall: float,
) -> dict[str, Any]:
    """Evaluate a finished run's dev-selected checkpoint and write its ``result.json``.

    The threshold is fixed on dev (its EER point) and applied to test.
    """
    from fasdistill.data.loader import read_crop_index
    from fasdistill.engine.checkpoint import load_checkpoint
    from fasdistill.engine.evaluation import evaluate_checkpoint
    from fasdistill.utils.atomic import atomic_write_json

    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    report = evaluate_checkpoint(run_dir / "checkpoints" / "best.pt", read_crop_index(index))
    result = {
        "job": name,
        "method": run,
        "seed": 0 if seed is None else seed,
        "recipe": recipe,
        "overrides": overrides,
        "epochs": state["epoch"],
        "steps": state["global_step"],
        "best_epoch": state["best"]["epoch"],
        "train_seconds": sum(h["seconds"] for h in state["history"]),
        "wall_seconds": wall,
        "test_set": test_fingerprint(index),
        "threshold": report["threshold"],
        "dev": {k: report["dev"][k] for k in METRICS},
        "test": {k: report["test"][k] for k in METRICS},
    }
    atomic_write_json(run_dir / "result.json", result)
    return result


def finished_runs(out: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The ``result.json`` of every named job that finished in ``out``."""
    found = {}
    for name in names:
        path = out / name / "result.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found
