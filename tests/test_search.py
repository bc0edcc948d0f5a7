"""The student search: SearchNet strings, the space, latency tables, proxies and the run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from fasdistill.cli import main
from fasdistill.config import dump_recipe, load_recipe
from fasdistill.distill import fit
from fasdistill.engine.checkpoint import load_deployable
from fasdistill.engine.optim import lr_factor, planned_epochs
from fasdistill.errors import InputError
from fasdistill.models import build_model, count_macs, count_params
from fasdistill.models.searchnet import SWAPNET_ARCH, arch_blocks, arch_macs, parse_arch
from fasdistill.search import run as search_run
from fasdistill.search.latency import LatencyTable, check_table, fit_table, head_key
from fasdistill.search.report import rho_text
from fasdistill.search.run import _spread, pareto, proxy_warmup, run_search
from fasdistill.search.settings import SearchConfig, load_search_config, parse_count
from fasdistill.search.space import SearchSpace
from fasdistill.search.train import candidate_overrides, ranks, spearman

TINY_SPACE = {
    "resolutions": [16, 24],
    "widths": [[4, 8], [8, 16]],
    "depths": [[1], [1, 2]],
    "kernels": [3],
    "expansions": [2],
}


# ------------------------------------------------------------------------- SearchNet


def test_swapnet_is_a_point_of_the_family() -> None:
    ours, theirs = build_model("searchnet", arch=SWAPNET_ARCH), build_model("swapnet")
    a, b = ours.deployable().state_dict(), theirs.deployable().state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    assert count_macs(ours.deployable(), 64) == count_macs(theirs.deployable(), 64)


def test_arch_blocks_follow_the_string() -> None:
    blocks = arch_blocks("d3w8n1-i5e3w16n2", 33)
    assert [(b.type, b.stride, b.side, b.out_side) for b in blocks] == [
        ("d", 2, 33, 17),
        ("i", 2, 17, 9),
        ("i", 1, 9, 9),
    ]
    assert blocks[1].in_channels == 8 and blocks[1].expansion == 3 and blocks[1].kernel == 5
    model = build_model("searchnet", arch="d3w8n1-i5e3w16n2").deployable().eval()
    features = model.backbone(torch.zeros(1, 3, 33, 33))
    assert features.shape == (1, 16, 9, 9)


def test_macs_from_blocks_equal_the_counted_ones() -> None:
    rng = random.Random(5)
    space = SearchSpace(resolutions=[16, 24, 33])
    for _ in range(4):
        arch, size = space.sample(rng)
        model = build_model("searchnet", num_classes=3, arch=arch).deployable()
        assert arch_macs(arch, size, 3) == count_macs(model, size)


@pytest.mark.parametrize(
    ("arch", "says"),
    [
        ("i3e2w8n1", "must be dense"),
        ("d3w8n1-x3w8n1", "not d or i"),
        ("d3w8n1-d3e2w8n1", "expansion"),
        ("d4w8n1", "odd"),
        ("d3w8", "is not"),
        ("d3w8n0", "depth"),
    ],
)
def test_bad_arch_strings_name_the_stage(arch: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        parse_arch(arch)


def test_arch_travels_with_the_checkpoint(index: Path, tmp_path: Path) -> None:
    config = load_recipe(
        "smoke",
        [
            "model.name=searchnet",
            "model.arch=d3w4n1-i3e2w8n1",
            "train.epochs=1",
            "data.input_size=16",
        ],
    )
    fit(config, index, tmp_path, show_progress=False)
    model, meta = load_deployable(tmp_path / "checkpoints" / "best.pt")
    assert meta["arch"] == "d3w4n1-i3e2w8n1"
    rebuilt = build_model("searchnet", num_classes=3, arch="d3w4n1-i3e2w8n1").deployable()
    assert count_params(model) == count_params(rebuilt)


def test_recipes_without_an_arch_dump_as_before() -> None:
    """Runs saved before model.arch existed still resume (their config.yaml has no arch)."""
    assert "arch" not in dump_recipe(load_recipe("smoke"))
    with_arch = dump_recipe(load_recipe("smoke", ["model.name=searchnet", "model.arch=d3w4n1"]))
    assert "arch: d3w4n1" in with_arch


def test_arch_on_a_model_without_one_is_refused(index: Path, tmp_path: Path) -> None:
    config = load_recipe("smoke", ["model.arch=d3w4n1", "train.epochs=1"])
    with pytest.raises(InputError, match="arch"):
        fit(config, index, tmp_path, show_progress=False)


# ------------------------------------------------------------------------- the space


def test_samples_and_mutations_stay_in_the_space() -> None:
    space, rng = SearchSpace(), random.Random(3)
    for _ in range(50):
        arch, size = space.sample(rng)
        assert space.contains(arch, size)
        new_arch, new_size = space.mutate(arch, size, rng)
        assert space.contains(new_arch, new_size)
        assert (new_arch, new_size) != (arch, size)
        changed = sum(a != b for a, b in zip(parse_arch(arch), parse_arch(new_arch), strict=True))
        assert changed + (new_size != size) == 1
    assert SearchSpace().contains(SWAPNET_ARCH, 64)
    again = [SearchSpace().sample(random.Random(7)) for _ in range(2)]
    assert again[0] == again[1]


def test_space_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="one list per stage"):
        SearchSpace(widths=[[8]], depths=[[1], [1]])
    with pytest.raises(ValueError, match="odd"):
        SearchSpace(kernels=[4])


# ------------------------------------------------------------------------- latency


def test_latency_table_sums_blocks_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "onnx.json"
    table = LatencyTable(path, "onnx", 1)
    archs = [("d3w4n1-i3e2w8n1", 16), ("d3w8n1-d3w8n2", 24)]
    added = table.build(archs, 2, runs=5, seconds=0.0, log=lambda _: None)
    keys = {b.key for a, s in archs for b in arch_blocks(a, s)}
    assert added == len(keys) + 2  # every block once, plus two heads
    raw = table.raw_estimate(*archs[0], 2)
    blocks = arch_blocks(*archs[0])
    head = table.entries[head_key(8, blocks[-1].out_side, 2)]["ms"]
    assert blocks[-1].out_side == 4
    assert raw == pytest.approx(sum(table.entries[b.key]["ms"] for b in blocks) + head)
    assert LatencyTable(path, "onnx", 1).build(archs, 2, runs=5, log=lambda _: None) == 0
    with pytest.raises(InputError, match="latency table for"):
        LatencyTable(path, "onnx", 2)
    fit = fit_table(table, archs, 2, runs=5, seconds=0.0)
    assert fit["scale"] == 1.0 and len(fit["models"]) == 2
    assert table.estimate(*archs[0], 2) == pytest.approx(fit["scale"] * raw + fit["offset_ms"])
    check = check_table(table, archs, 2, runs=5, seconds=0.0)
    assert {m["arch"] for m in check["models"]} == {a for a, _ in archs}
    assert check["median_abs_error"] >= 0
    with pytest.raises(InputError, match="no entry"):
        table.estimate("d3w16n2", 16, 2)


def test_latency_table_on_pytorch_and_unknown_runtimes(tmp_path: Path) -> None:
    table = LatencyTable(tmp_path / "pt.json", "pytorch", 1)
    assert table.build([("d3w4n1", 16)], 2, runs=5, seconds=0.0, log=lambda _: None) == 2
    with pytest.raises(InputError, match="unknown runtime"):
        LatencyTable(tmp_path / "x.json", "tpu", 1).build([("d3w4n1", 16)], 2)


# ------------------------------------------------------------------------- helpers


def test_spearman_with_ties() -> None:
    assert list(ranks([3.0, 1.0, 1.0, 2.0])) == [4.0, 1.5, 1.5, 3.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert rho_text(None) == "n/a" and rho_text(0.5) == "+0.50"


@pytest.mark.parametrize(("rows", "proxy_steps"), [(12_000, 90), (12_000, 60), (3_000, 45)])
def test_a_proxy_run_follows_the_full_runs_learning_rate_compressed(
    rows: int, proxy_steps: int
) -> None:
    """One epoch of warm-up would fill a short run: the proxy gets the same share of it."""
    base = ["train.epochs=1", "data.batch_size=128", "schedule.warmup_epochs=1"]
    per_epoch = rows // 128
    full = load_recipe("distill_kd", [*base, "train.min_steps=270"])
    warmup = proxy_warmup(1.0, rows, 128, proxy_steps, 270)
    proxy = load_recipe(
        "distill_kd", [*base, f"train.min_steps={proxy_steps}", f"schedule.warmup_epochs={warmup}"]
    )
    full_total = planned_epochs(full, per_epoch) * per_epoch
    proxy_total = planned_epochs(proxy, per_epoch) * per_epoch
    for share in (0.2, 0.5, 0.8, 0.95):  # (warm-ups of a few steps round differently)
        a = lr_factor(int(share * full_total), per_epoch, full, planned_epochs(full, per_epoch))
        b = lr_factor(int(share * proxy_total), per_epoch, proxy, planned_epochs(proxy, per_epoch))
        assert abs(a - b) < 0.06, (share, a, b)
    # and the proxy's rate climbs, peaks, and has decayed by its end
    end = lr_factor(proxy_total - 1, per_epoch, proxy, planned_epochs(proxy, per_epoch))
    assert end < 0.05


def test_probes_have_module_paths_every_converter_can_name() -> None:
    """pnnx (ncnn) writes module paths as Python names: none may start with a digit."""
    from fasdistill.search.latency import _block_probe, _head_probe

    probes = [_head_probe(32, 4, 2)[0]]
    probes += [_block_probe(b)[0] for b in arch_blocks("d3w8n2-i5e3w16n1", 32)]
    for probe in probes:
        for name, _ in probe.named_modules():
            assert not name[:1].isdigit(), (type(probe).__name__, name)


def test_pareto_and_spread() -> None:
    table = [("a", 1, 0.5), ("b", 2, 0.4), ("c", 3, 0.45), ("d", 4, 0.1), ("e", 1.5, 0.6)]
    rows = [{"point": p, "ms": ms, "err": e} for p, ms, e in table]
    assert [r["point"] for r in pareto(rows, "ms", lambda r: r["err"])] == ["a", "b", "d"]
    assert _spread(list(range(10)), 3) == [0, 4, 9] or _spread(list(range(10)), 3) == [0, 5, 9]
    assert _spread([1, 2], 5) == [1, 2]


def test_counts_and_settings() -> None:
    assert parse_count("1M") == 1_000_000 and parse_count("500k") == 500_000
    with pytest.raises(InputError, match="max-params"):
        parse_count("lots")
    with pytest.raises(InputError, match="unknown key 'bogus'"):
        load_search_config(None, ["bogus=1"])
    config = load_search_config(None, ["space.resolutions=[32,48]"], max_latency_ms=0.5)
    assert config.space.resolutions == [32, 48] and config.max_latency_ms == 0.5


def test_candidate_overrides_match_the_study_budget(tmp_path: Path) -> None:
    overrides = candidate_overrides("d3w8n1", 32, 270, 1, tmp_path / "t.pt", ["x=1"])
    for expected in (
        "train.min_steps=270",
        "train.seed=1",
        "train.early_stop=null",
        "data.augment.resized_crop=[1.0,1.0]",
        "distill.cache=true",
        "data.input_size=32",
        "model.arch=d3w8n1",
    ):
        assert expected in overrides


# ------------------------------------------------------------------------- the search


def _tiny(**changes: object) -> SearchConfig:
    settings = {
        "space": TINY_SPACE,
        "pool": 6,
        "include": ["d3w8n1-d3w16n1@16"],
        "candidates": 4,
        "refine": 1,
        "proxy_steps": 2,
        "steps": 3,
        "check": 3,
        "seeds": [0, 1],
        "lut_fit": 2,
        "lut_check": 2,
        "lut_runs": 5,
        "timing_runs": 5,
        "timing_seconds": 0.0,
        "overrides": ["data.batch_size=8", "model.aux=[]"],
    }
    return SearchConfig.model_validate(settings | changes)


def _fake_runs(proxy_of: dict[str, float] | None = None):
    """run_jobs stand-in: dev figures from the architecture (no training).

    Full runs' ACER falls with the width sum; the proxy's ACER is given per point
    (default: the full ACER, a proxy that ranks), its NLL always ranks.
    """
    calls: list[list[str]] = []

    def acer_of(point: str) -> float:
        arch = point.split("@")[0]
        return 1.0 / (1 + sum(s.width * s.depth for s in parse_arch(arch)))

    def run_jobs(jobs, parallel, log):
        calls.append([j.name for j in jobs])
        out = {}
        for job in jobs:
            point = job.name.split("/")[0]
            full = acer_of(point)
            proxy = full if proxy_of is None else proxy_of.get(point, full)
            is_full = "/seed" in job.name
            acer = full if is_full else proxy
            out[job.name] = {"dev": {"acer": acer, "eer": acer, "auc": 1 - full, "nll": full}}
        return out

    return run_jobs, calls


def _no_training(monkeypatch: pytest.MonkeyPatch, run_jobs) -> None:
    """The search with ``run_jobs`` for training, no test scoring and no summary page."""
    monkeypatch.setattr(search_run, "run_jobs", run_jobs)
    monkeypatch.setattr(search_run.Search, "test", lambda self, final: {"teacher": {}})
    monkeypatch.setattr(search_run, "markdown", lambda result: "")


def test_search_flow_keeps_a_proxy_that_ranks(
    index: Path, smoke_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, calls = _fake_runs()
    _no_training(monkeypatch, fake)
    result = run_search(_tiny(), index, smoke_checkpoint, tmp_path, swap_runtimes=None)
    assert calls[0] and all("/seed" not in name for name in calls[0])  # proxies come first
    assert len(json.loads((tmp_path / "pool.json").read_text())) == 6 + 1  # pool + include
    assert result["proxy"]["used"] == "acer" and not result["proxy"]["replaced"]
    assert result["proxy"]["history"][-1]["candidates"] >= 3
    # the chosen point has the lowest mean dev ACER of the final front, every seed trained
    front = result["front"]
    assert result["chosen"] == min(front, key=lambda r: r["dev_acer_mean"])["point"]
    assert all(set(r["seeds"]) == {0, 1} for r in front)
    assert "d3w8n1-d3w16n1@16" in {c["point"] for c in result["candidates"]}
    assert json.loads((tmp_path / "latency" / "check.json").read_text())["models"]


def test_search_replaces_a_proxy_that_does_not_rank(
    index: Path, smoke_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy ACER that orders every point backwards: NLL (which ranks) must replace it.
    space = SearchSpace.model_validate(TINY_SPACE)
    rng = random.Random(0)
    points = {"@".join(map(str, space.sample(rng))) for _ in range(200)}
    backwards = {
        p: 1.0 - sum(s.width * s.depth for s in parse_arch(p.split("@")[0])) / 100 for p in points
    }
    fake, _ = _fake_runs({p: 1 - v for p, v in backwards.items()})
    _no_training(monkeypatch, fake)
    result = run_search(_tiny(check=4), index, smoke_checkpoint, tmp_path, swap_runtimes=None)
    proxy = result["proxy"]
    assert proxy["replaced"] and proxy["used"] != "acer"
    assert proxy["history"][0]["spearman"]["acer"] < 0.5
    assert proxy["history"][-1]["spearman"][proxy["used"]] >= 0.5


@pytest.mark.parametrize("escalate", [1, 0])
def test_search_lengthens_a_proxy_when_no_figure_ranks(
    index: Path,
    smoke_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    escalate: int,
) -> None:
    """Short runs whose every figure orders the points backwards; runs twice as long rank."""
    fake, _ = _fake_runs()
    jobs_seen: list = []

    def short_backwards(jobs, parallel, log):
        jobs_seen.extend(jobs)
        out = fake(jobs, parallel, log)
        for job in jobs:
            if Path(job.run_dir).parent.name == "proxy":  # the first, short proxy runs
                out[job.name] = {"dev": {k: 1 - v for k, v in out[job.name]["dev"].items()}}
        return out

    _no_training(monkeypatch, short_backwards)
    config = _tiny(check=4, proxy_steps=2, steps=4, escalate=escalate)
    result = run_search(config, index, smoke_checkpoint, tmp_path, swap_runtimes=None)
    proxy = result["proxy"]
    first = proxy["history"][0]
    assert first["proxy_steps"] == 2 and first["spearman"]["acer"] < 0.5
    longer = [j for j in jobs_seen if Path(j.run_dir).parent.name == "proxy4"]
    if escalate:
        assert proxy["replaced"] and proxy["ranks"] and proxy["proxy_steps"] == 4
        assert proxy["history"][-1]["spearman"][proxy["used"]] >= 0.5
        # every candidate ran again, with the full run's schedule shrunk to 4 steps
        assert {j.name for j in longer} == {c["point"] for c in result["candidates"]}
        assert all("schedule.warmup_epochs=1" in j.overrides for j in longer)
        assert all(c["proxy"]["acer"] < 0.5 for c in result["candidates"])  # the longer runs'
    else:
        assert not proxy["ranks"] and proxy["proxy_steps"] == 2 and not longer


def test_search_records_a_rank_check_it_cannot_judge(
    index: Path, smoke_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every candidate at the same dev ACER: no ranking to judge, written as null."""
    fake, _ = _fake_runs()

    def constant(jobs, parallel, log):
        return {
            k: {"dev": dict.fromkeys(("acer", "eer", "auc", "nll"), 0.25)}
            for k in fake(jobs, parallel, log)
        }

    _no_training(monkeypatch, constant)
    result = run_search(_tiny(), index, smoke_checkpoint, tmp_path, swap_runtimes=None)
    rank = json.loads((tmp_path / "rank.json").read_text())
    assert rank["history"][-1]["spearman"]["acer"] is None and rank["ranks"] is False
    assert result["chosen"]


def test_search_refuses_other_settings_in_its_folder(
    index: Path, smoke_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = _fake_runs()
    _no_training(monkeypatch, fake)
    run_search(_tiny(), index, smoke_checkpoint, tmp_path, swap_runtimes=None)
    with pytest.raises(InputError, match="other config"):
        run_search(_tiny(steps=4), index, smoke_checkpoint, tmp_path, swap_runtimes=None)


def test_search_show_needs_no_data_and_a_search_needs_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--show", "--set", "proxy_steps=180", "--max-params", "500k"]) == 0
    shown = capsys.readouterr().out
    assert "proxy_steps: 180" in shown and "max_params: 500000" in shown and "escalate: 1" in shown
    assert main(["search", "--teacher", str(tmp_path / "t.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "--data required" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_search_checks_inputs_before_writing(
    index: Path, smoke_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="not found"):
        run_search(_tiny(), index, tmp_path / "missing.pt", tmp_path / "out", swap_runtimes=None)
    with pytest.raises(InputError, match="unknown runtime"):
        run_search(
            _tiny(runtime="tpu"), index, smoke_checkpoint, tmp_path / "out2", swap_runtimes=None
        )
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_search_end_to_end_from_the_command_line(
    index: Path, smoke_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real training, real ONNX timing, a SWAP report; a rerun trains nothing."""
    settings = tmp_path / "search.yaml"
    settings.write_text(json.dumps(_tiny(candidates=3, refine=0).model_dump(mode="json")))
    out = tmp_path / "out"
    argv = [
        "search",
        "--data",
        str(index),
        "--teacher",
        str(smoke_checkpoint),
        "--out",
        str(out),
        "--config",
        str(settings),
        "--max-latency-ms",
        "50",
    ]
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    chosen = result["chosen"]
    assert Path(result["checkpoint"]).exists()
    assert (out / "swap" / "report.html").exists()
    final = json.loads((out / "final.json").read_text())
    assert set(final["models"]) == {r["point"] for r in result["front"]}
    assert "test" in final["teacher"]
    _, meta = load_deployable(result["checkpoint"])
    assert f"{meta['arch']}@{meta['input_size']}" == chosen
    capsys.readouterr()
    assert main(argv) == 0
    assert "training" not in capsys.readouterr().out
