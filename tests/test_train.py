"""The trainer: learning, run records, resume equivalence, DDP equivalence, dev-only selection."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from fasdistill.cli import main
from fasdistill.config import BUILTIN_RECIPES, load_recipe
from fasdistill.data.prepare import INDEX_COLUMNS
from fasdistill.engine.checkpoint import load_checkpoint
from fasdistill.engine.objective import Supervised
from fasdistill.engine.optim import lr_factor
from fasdistill.engine.rundir import RunLogger
from fasdistill.engine.trainer import NonFiniteLossError, train
from fasdistill.errors import InputError
from fasdistill.models import build_model
from support import assert_ddp_matches_single, make_index, smoke

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 16, "dev": 8, "test": 8})


def test_learns_a_separable_set_and_records_the_run(toy_index: Path, tmp_path: Path) -> None:
    config = smoke(**{"train.epochs": 4, "data.input_size": 16})
    result = train(config, toy_index, tmp_path / "run", show_progress=False)
    assert result.epochs_run == 4
    assert result.best_metric == 0.0  # dev ACER at the dev EER threshold
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    run = tmp_path / "run"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["classes"] == ["bonafide", "print", "replay"]
    assert meta["versions"]["torch"] == torch.__version__ and meta["git_commit"]
    assert load_recipe(run / "config.yaml") == config
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["type"] for r in records} == {"budget", "step", "epoch"}
    budget = next(r for r in records if r["type"] == "budget")
    assert (budget["epochs"], budget["steps_per_epoch"], budget["steps"]) == (4, 3, 12)
    steps = [r for r in records if r["type"] == "step"]
    assert all(set(r["terms"]) == {"ce"} for r in steps)
    assert all(r["loss"] == pytest.approx(r["terms"]["ce"]) for r in steps)
    assert [r["step"] for r in records if r["type"] == "epoch"] == [1, 2, 3, 4]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    meta = best["meta"]
    assert meta["classes"] == ["bonafide", "print", "replay"] and meta["input_size"] == 16
    assert meta["crop_scale"] == 1.5 and meta["colour_order"] == "RGB"
    assert 0.0 <= meta["threshold"] <= 1.0 and meta["epoch"] == result.best_epoch
    model = build_model(meta["model"], num_classes=3)
    model.load_state_dict(best["model"])  # strict: the deployable part only, no aux heads


def test_resume_continues_bit_for_bit(
    toy_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = smoke(**{"train.epochs": 4, "train.log_every": 1, "data.input_size": 16})
    train(config, toy_index, tmp_path / "whole", show_progress=False)

    class Interrupt(Exception):
        pass

    original = RunLogger.record

    def record(self: RunLogger, kind: str, step: int, values: dict) -> None:
        if kind == "step" and values["epoch"] == 3:
            raise Interrupt  # killed during epoch 3: last.pt holds epoch 2
        original(self, kind, step, values)

    monkeypatch.setattr(RunLogger, "record", record)
    with pytest.raises(Interrupt):
        train(config, toy_index, tmp_path / "split", show_progress=False)
    monkeypatch.setattr(RunLogger, "record", original)
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")["epoch"] == 2
    train(config, toy_index, tmp_path / "split", resume=True, show_progress=False)
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 4 and a["global_step"] == b["global_step"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_selection_never_reads_the_test_split(tmp_path: Path) -> None:
    index = make_index(tmp_path, {"train": 8, "dev": 4, "test": 4}, missing_test=True)
    result = train(smoke(**{"data.input_size": 16}), index, tmp_path / "run", show_progress=False)
    assert result.epochs_run == 2  # the test crops do not exist: reading one would fail


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    toy_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Supervised.losses
    calls = {"n": 0}

    def losses(self: Supervised, *args: object) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        terms = original(self, *args)  # type: ignore[arg-type]
        return {k: v * float("nan") for k, v in terms.items()} if calls["n"] == 5 else terms

    monkeypatch.setattr(Supervised, "losses", losses)
    config = smoke(**{"data.input_size": 16})  # 48 crops / 16 = 3 steps per epoch
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 5"):
        train(config, toy_index, tmp_path / "run", show_progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 1


def test_two_process_ddp_matches_one_process(toy_index: Path, tmp_path: Path) -> None:
    overrides = [
        "train.epochs=2",
        "data.input_size=16",
        "data.augment.flip=false",
        "data.augment.resized_crop=[1.0,1.0]",
    ]
    assert_ddp_matches_single(
        "train",
        overrides,
        toy_index,
        tmp_path,
        {"model": lambda state: state["model"]},
    )
    meta = json.loads((tmp_path / "ddp" / "meta.json").read_text())
    assert meta["world_size"] == 2


def test_learning_rate_schedules() -> None:
    config = load_recipe(None, ["train.epochs=10", "schedule.warmup_epochs=1"])
    assert lr_factor(0, 10, config) == pytest.approx(0.1)  # first warm-up step
    assert lr_factor(9, 10, config) == pytest.approx(1.0)
    assert lr_factor(10, 10, config) == pytest.approx(1.0)  # cosine starts at the top
    assert lr_factor(99, 10, config) < 0.01  # and ends near zero
    step = load_recipe(None, ["schedule.name=step", "schedule.step_epochs=3", "schedule.gamma=0.5"])
    assert [lr_factor(e * 10, 10, step) for e in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]


def test_recipes_validate_and_name_known_models() -> None:
    for path in sorted(BUILTIN_RECIPES.glob("*.yaml")):
        config = load_recipe(path)
        build_model(config.model.name, num_classes=3, aux=tuple(config.model.aux))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=0.1"], "unknown key 'optim.lrr'"),
        (["train.epochs=many"], "train.epochs"),
        (["optim.name=rmsprop"], "optim.name"),
        (["data.augment.resized_crop=[0.9,0.5]"], "resized_crop"),
        (["epochs"], "expected key.sub=value"),
    ],
)
def test_bad_recipes_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        load_recipe(BUILTIN_RECIPES / "smoke.yaml", overrides)


def test_cli_train_and_models(
    toy_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    assert (
        main(
            [
                "train",
                "--recipe",
                str(BUILTIN_RECIPES / "smoke.yaml"),
                "--data",
                str(toy_index),
                "--out",
                str(out),
                "--no-progress",
                "train.epochs=1",
                "data.input_size=16",
            ]
        )
        == 0
    )
    assert "best dev acer" in capsys.readouterr().out
    assert (
        main(
            [
                "train",
                "--recipe",
                str(BUILTIN_RECIPES / "smoke.yaml"),
                "--data",
                str(toy_index),
                "--out",
                str(out),
                "train.epochs=1",
            ]
        )
        == 2
    )
    assert "not empty" in capsys.readouterr().err
    assert (
        main(
            ["train", "--data", str(toy_index), "--out", str(tmp_path / "x"), "model.nmae=resnet18"]
        )
        == 2
    )
    assert "unknown key 'model.nmae'" in capsys.readouterr().err
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    for name in ("resnet18", "cdcnpp", "minifasnet", "mobilenetv3-small-0.75", "swapnet"):
        assert name in listing


def test_early_stopping_ends_a_run_that_stops_improving(toy_index: Path, tmp_path: Path) -> None:
    # With a zero learning rate nothing changes after epoch 1: no dev improvement.
    config = smoke(
        **{"train.epochs": 5, "train.early_stop": 2, "optim.lr": 1e-12, "data.input_size": 16}
    )
    result = train(config, toy_index, tmp_path / "run", show_progress=False)
    assert result.epochs_run == 3 and result.best_epoch == 1


def test_aux_weights_are_a_checked_section() -> None:
    with pytest.raises(InputError, match=r"unknown key 'train\.aux_weights\.pixle'"):
        load_recipe(None, ["train.aux_weights.pixle=1.0"])
    with pytest.raises(InputError, match="would train nothing"):
        load_recipe(None, ["model.aux=[pixel]", "train.aux_weights.pixel=0"])
    config = load_recipe(None, ["train.aux_weights.fourier=0.2"])
    assert (config.train.aux_weights.pixel, config.train.aux_weights.fourier) == (0.5, 0.2)


def test_foreign_checkpoints_are_refused_in_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(InputError, match="not a readable fasdistill checkpoint"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError, match="not a fasdistill checkpoint"):
        load_checkpoint(foreign)


def test_a_dev_split_without_attacks_is_refused_before_training(tmp_path: Path) -> None:
    index = make_index(tmp_path, {"train": 4, "dev": 2, "test": 2})
    rows = list(csv.DictReader(index.open()))
    kept = [r for r in rows if not (r["split"] == "dev" and r["label"] == "attack")]
    with index.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(kept)
    with pytest.raises(InputError, match="the dev split needs bona fide and attack"):
        train(smoke(), index, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
