"""A run that stopped before its first checkpoint starts again with the same command;
a directory holding anything else is never cleared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fasdistill.cli import main
from fasdistill.config import load_recipe
from fasdistill.engine.objective import Supervised
from fasdistill.engine.rundir import RunLogger, check_run_dir
from fasdistill.errors import InputError
from support import make_index

RECIPE = (
    "name: restart\nmodel: {name: smoke-cnn}\n"
    "data: {input_size: 16, batch_size: 16, workers: 0}\n"
    "schedule: {name: constant}\ntrain: {epochs: 1, log_every: 1}\n"
)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 8, "dev": 2, "test": 2})


def command(tmp_path: Path, index: Path) -> list[str]:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    run = tmp_path / "run"
    return [
        "train",
        "--recipe",
        str(recipe),
        "--data",
        str(index),
        "--out",
        str(run),
        "--no-progress",
    ]


def fail_at_first_step(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A NaN loss, or Ctrl-C, at the first optimiser step."""
    original = Supervised.losses

    def losses(self: Supervised, *args: object) -> dict[str, torch.Tensor]:
        if how == "interrupt":
            raise KeyboardInterrupt
        terms = original(self, *args)  # type: ignore[arg-type]
        return {k: v * float("nan") for k, v in terms.items()}

    monkeypatch.setattr(Supervised, "losses", losses)


@pytest.mark.parametrize(("how", "status"), [("nan", 2), ("interrupt", 130)])
def test_a_run_stopped_before_its_first_checkpoint_starts_again(
    index: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
    status: int,
) -> None:
    args = command(tmp_path, index)
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        fail_at_first_step(patch, how)
        assert main(args) == status
    assert (run / "meta.json").is_file() and not (run / "checkpoints" / "last.pt").exists()
    if how == "nan":
        assert "the same command, without --resume, starts the run again" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 2
    assert "stopped before its first checkpoint" in capsys.readouterr().err
    assert main(args) == 0, capsys.readouterr().err
    assert (run / "checkpoints" / "last.pt").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records].count("budget") == 1  # the failed start's records are gone
    assert len(list((run / "tb").iterdir())) == 1


def leftovers(run: Path) -> None:
    """What a run that failed at its first step leaves behind."""
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("name: old\n")
    (run / "meta.json").write_text(json.dumps({"seed": 0, "command": [], "objective": {}}))
    (run / "metrics.jsonl").write_text('{"type": "budget"}\n')
    (run / "tb").mkdir()
    (run / "tb" / "events.out.tfevents.1.host.1.0").write_bytes(b"x")


@pytest.mark.parametrize(
    "extra",
    [
        "notes.txt",  # a file of the user's
        "checkpoints/best.pt",  # a finished run whose last.pt was deleted to save space
        "tb/mine/events.txt",  # something else inside tb/
    ],
)
def test_directories_holding_anything_else_are_never_cleared(tmp_path: Path, extra: str) -> None:
    run = tmp_path / "run"
    leftovers(run)
    (run / extra).parent.mkdir(parents=True, exist_ok=True)
    (run / extra).write_text("keep me")
    config = load_recipe(None, [])
    with pytest.raises(InputError, match="run directory is not empty; use --resume"):
        check_run_dir(run, config, resume=False)
    with pytest.raises(InputError, match=r"nothing to resume \(no checkpoints/last.pt\)"):
        check_run_dir(run, config, resume=True)
    assert (run / extra).read_text() == "keep me" and (run / "metrics.jsonl").is_file()


def test_only_our_own_unfinished_runs_are_replaced(tmp_path: Path) -> None:
    config = load_recipe(None, [])
    run = tmp_path / "run"
    leftovers(run)
    check_run_dir(run, config, resume=False)  # ours: replaced on start
    (run / "meta.json").write_text('{"written": "by someone else"}')
    with pytest.raises(InputError, match="not empty"):
        check_run_dir(run, config, resume=False)
    bare = tmp_path / "bare"
    (bare / "checkpoints").mkdir(parents=True)
    (bare / "config.yaml").write_text("name: mine\n")  # not the recipe about to be written
    with pytest.raises(InputError, match="not empty"):
        check_run_dir(bare, config, resume=False)
    with pytest.raises(InputError, match=r"nothing to resume \(no run here\)"):
        check_run_dir(tmp_path / "missing", config, resume=True)


def test_the_logger_of_a_restarted_run_starts_a_fresh_metrics_file(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the first epoch's logging, then the same command: one run's records."""
    args = command(tmp_path, index)
    original = RunLogger.record

    def record(self: RunLogger, kind: str, step: int, values: dict) -> None:
        original(self, kind, step, values)
        if kind == "step":
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(RunLogger, "record", record)
        assert main(args) == 130
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["budget", "step"]
    assert main(args) == 0
    types = [json.loads(line)["type"] for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert types.count("budget") == 1 and types[-1] == "epoch"
