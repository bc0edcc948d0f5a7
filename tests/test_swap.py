"""SWAP: the measurement, its ratios and intervals, the modelled power, the reports."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from fasdistill.cli import main
from fasdistill.engine.trainer import train
from fasdistill.errors import InputError
from fasdistill.metrics.bootstrap import paired_acer_samples, unit_weights, weighted_auc
from fasdistill.metrics.pad import auc
from fasdistill.metrics.scores import ScoreSet
from fasdistill.models import build_model, count_macs, count_params
from fasdistill.swap.measure import SwapOptions, labels_for
from fasdistill.swap.power import (
    DeviceProfile,
    compute_energy_j,
    inferences_per_battery_percent,
    measure_rapl_j,
    rapl_domains,
)
from fasdistill.swap.ratios import pareto_front, swap_score
from fasdistill.swap.weight import measure_weight
from support import make_index, smoke


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 12, "dev": 8, "test": 8})


def trained(index: Path, root: Path, name: str, model: str, epochs: int) -> Path:
    config = smoke(**{"model.name": model, "train.epochs": epochs, "data.input_size": 16})
    train(config, index, root / name, show_progress=False)
    return root / name / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def report(index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    teacher = trained(index, root, "teacher", "swapnet", 3)
    student = trained(index, root, "student", "smoke-cnn", 3)
    out = root / "report"
    args = ["swap", "--models", str(teacher), str(student), "--data", str(index)]
    fast = ["--latency-runs", "3", "--latency-seconds", "0", "--bootstrap", "50", "--batch", "2"]
    assert main([*args, "--out", str(out), *fast]) == 0
    return out


def test_swap_report_has_every_model_runtime_and_label(report: Path) -> None:
    swap = json.loads((report / "swap.json").read_text())
    assert swap["reference"] == "teacher"
    assert [m["label"] for m in swap["models"]] == ["teacher", "student"]
    teacher, student = swap["models"]
    for m in swap["models"]:
        assert set(m["latency"]) == {"onnx", "onnx-int8", "pytorch"}
        assert set(m["latency"]["onnx"]) == {"batch1", "batch2"}
        assert set(m["accuracy"]) == {"pytorch", "onnx", "onnx-int8"}
        for power in m["power"].values():
            assert power["measured_j"] is None or power["measured_label"].startswith("measured")
            assert power["energy_source"] in ("measured, RAPL", "modelled, active power")
            assert power["modelled_compute_label"].startswith("modelled")
        assert (report / "artifacts" / m["label"] / "model.onnx").exists()
    assert teacher["vs_reference"]["accuracy"]["retention"] == pytest.approx(1.0)
    assert teacher["swap_score"] == pytest.approx(1.0)
    acer_t = teacher["test"]["acer"]
    acer_s = student["test"]["acer"]
    assert teacher["test"] == teacher["accuracy"]["pytorch"]["test"]
    retention = student["vs_reference"]["accuracy"]
    assert retention["retention"] == pytest.approx((1 - acer_s) / (1 - acer_t))
    lo, hi = retention["retention_ci"]
    assert lo <= hi
    speedup = student["vs_reference"]["onnx"]["speedup"]
    assert speedup == pytest.approx(
        teacher["latency"]["onnx"]["batch1"]["median_ms"]
        / student["latency"]["onnx"]["batch1"]["median_ms"]
    )
    assert student["weight"]["params"] < teacher["weight"]["params"]
    md = (report / "swap.md").read_text()
    assert md.count("| teacher (swapnet) |") == 1 and "| student (smoke-cnn) |" in md
    assert "modelled" in md and "Pareto front" in md


def test_swap_bad_input_is_one_line_and_writes_nothing(
    index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    base = ["swap", "--data", str(index), "--out", str(out)]
    cases = [
        (["--models", str(tmp_path / "none.pt")], "none.pt: checkpoint not found"),
        (["--models", "x.pt", "--runtimes", "tpu"], "unknown runtimes ['tpu']"),
        (["--models", "x.pt", "--profile", "watts=2"], "--profile: unknown key 'watts'"),
        (["--models", "x.pt", "--weights", "speed=fast"], "--weights: speed must be a number"),
        (["--models", "x.pt", "--weights", "beauty=1"], "SWAP score weights take keys"),
    ]
    if not torch.cuda.is_available():
        cases.append(
            (["--models", "x.pt", "--runtimes", "pytorch-cuda"], "pytorch-cuda: torch sees no CUDA")
        )
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (out / "swap.json").exists()


def test_labels_are_the_shortest_unique_run_paths() -> None:
    paths = [Path(f"runs/{m}/seed0/checkpoints/best.pt") for m in ("kd", "scratch")]
    assert labels_for(paths) == ["kd/seed0", "scratch/seed0"]
    assert labels_for([Path("runs/t/checkpoints/best.pt"), Path("s.pt")]) == ["t", "s"]


def test_weight_counts_match_the_model_zoo_and_activations_add_up() -> None:
    model = build_model("smoke-cnn", num_classes=3).deployable()
    weight = measure_weight(model, 16)
    assert weight.params == count_params(model)
    assert weight.macs == count_macs(model, 16)
    assert 0 < weight.peak_layer_elements <= 2 * weight.activation_elements + 3 * 16 * 16
    assert weight.bytes_moved(4) == 4 * (weight.params + 2 * weight.activation_elements)


def test_modelled_energy_uses_the_profile_and_battery_arithmetic() -> None:
    profile = DeviceProfile()
    assert compute_energy_j(10**9, 0, False, profile) == pytest.approx(4.6e-3)  # 1 GMAC fp32
    assert compute_energy_j(10**9, 0, True, profile) == pytest.approx(0.23e-3)
    assert compute_energy_j(0, 4, False, profile) == pytest.approx(640e-12)  # one 32-bit word
    # 1 % of 4,000 mAh at 3.85 V is 554.4 J
    assert inferences_per_battery_percent(1.0) == pytest.approx(554.4)


def test_rapl_is_read_when_present_and_absent_otherwise(tmp_path: Path) -> None:
    assert rapl_domains(tmp_path / "none") == []
    assert measure_rapl_j(lambda: None, 5, tmp_path / "none") is None
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    counter = zone / "energy_uj"
    counter.write_text("1000\n")
    (zone / "max_energy_range_uj").write_text("10000\n")
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-zone is not counted twice

    def burn() -> None:  # the counter advances 200 uJ per call and wraps around
        counter.write_text(f"{(int(counter.read_text()) + 200) % 10000}\n")

    counter.write_text("9900\n")
    measured = measure_rapl_j(burn, 4, tmp_path)
    assert measured is not None and measured["energy_j"] == pytest.approx(200e-6)
    assert measured["label"].startswith("measured")


def toy_scores(values: np.ndarray) -> ScoreSet:
    n = len(values)
    labels = ["bonafide" if i % 3 == 0 else "attack" for i in range(n)]
    pai = ["" if lab == "bonafide" else ("print", "replay")[i % 2] for i, lab in enumerate(labels)]
    return ScoreSet.from_arrays(
        values,
        labels,
        pai,
        [f"v{i}" for i in range(n)],
        [f"s{i % 7}" for i in range(n)],
        [f"p{i}" for i in range(n)],
    )


class FakeNvml:
    """libnvidia-ml as ctypes sees it: status codes, results through pointers."""

    def __init__(self, mj_per_read: int = 1000) -> None:
        self.energy = 5_000_000  # mJ since the driver loaded
        self.step = mj_per_read
        self.bus_ids: list[bytes] = []

    def nvmlInit_v2(self) -> int:
        return 0

    def nvmlDeviceGetHandleByPciBusId_v2(self, bus: bytes, handle: object) -> int:
        self.bus_ids.append(bus)
        return 0

    def nvmlDeviceGetHandleByIndex_v2(self, index: int, handle: object) -> int:
        return 0

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object, value: object) -> int:
        import ctypes

        ctypes.cast(value, ctypes.POINTER(ctypes.c_ulonglong)).contents.value = self.energy
        self.energy += self.step
        return 0


def test_nvml_energy_per_call_and_its_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from fasdistill.swap import gpu

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    props = SimpleNamespace(pci_domain_id=0, pci_bus_id=0x1B, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    monkeypatch.setattr(gpu, "MIN_SECONDS", 0.0)
    calls = []
    library = FakeNvml()
    nvml = gpu.Nvml(library)
    nvml.handle(torch.device("cuda", 0))
    assert library.bus_ids == [b"00000000:1b:00.0"]  # matched by PCI bus, not CUDA's numbering
    measured = gpu.measure_nvml_j(lambda: calls.append(1), torch.device("cpu"), 40, nvml)
    assert measured is not None and measured["runs"] == len(calls) == 40
    assert measured["energy_j"] == pytest.approx(1.0 / 40)  # 1,000 mJ between the two reads
    assert measured["label"].startswith("measured (NVML")

    class Broken(FakeNvml):
        def nvmlDeviceGetTotalEnergyConsumption(self, handle: object, value: object) -> int:
            return 3  # NVML_ERROR_NOT_SUPPORTED: a GPU older than Volta

    assert gpu.measure_nvml_j(lambda: None, torch.device("cpu"), 5, gpu.Nvml(Broken())) is None
    with pytest.raises(InputError, match="NVML: nvmlInit_v2 failed with status 9"):
        gpu.Nvml(type("NoDriver", (FakeNvml,), {"nvmlInit_v2": lambda self: 9})())


def test_the_gpu_runtime_is_scored_timed_and_measured_by_nvml(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pytorch-cuda path end to end, with the device and NVML stood in for on CPU."""
    from fasdistill.swap import gpu
    from fasdistill.swap.measure import run_swap

    real = gpu.Nvml
    monkeypatch.setattr(gpu, "require_cuda", lambda: torch.device("cpu"))
    monkeypatch.setattr(gpu, "Nvml", lambda: real(FakeNvml(mj_per_read=500)))
    monkeypatch.setattr(real, "handle", lambda self, device: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    model = trained(index, tmp_path, "m", "smoke-cnn", 1)
    options = SwapOptions(runtimes=("pytorch", "pytorch-cuda"), latency_runs=3, latency_seconds=0,
                          bootstrap=0, batch=2)  # fmt: skip
    swap = run_swap([model], index, tmp_path / "out", options, log=lambda _: None)
    (entry,) = swap["models"]
    assert entry["accuracy"]["pytorch-cuda"] == entry["accuracy"]["pytorch"]
    assert set(entry["latency"]["pytorch-cuda"]) == {"batch1", "batch2"}
    power = entry["power"]["pytorch-cuda"]
    assert power["energy_source"] == "measured, NVML" and power["energy_j"] > 0
    cpu_source = entry["power"]["pytorch"]["energy_source"]
    assert cpu_source in ("measured, RAPL", "modelled, active power")


def test_weighted_auc_equals_auc_of_the_resampled_set() -> None:
    rng = np.random.default_rng(0)
    values = np.round(rng.random(60), 1)  # ties on purpose
    scores = toy_scores(values)
    assert weighted_auc(scores, np.ones((1, 60)))[0] == pytest.approx(auc(scores))
    weights = unit_weights(scores, "subject", 4, seed=1)
    for row in weights:
        picks = np.repeat(np.arange(60), row.astype(int))
        resampled = ScoreSet.from_arrays(
            values[picks],
            [("bonafide" if i % 3 == 0 else "attack") for i in picks],
            [("" if i % 3 == 0 else ("print", "replay")[i % 2]) for i in picks],
            [f"v{i}" for i in picks],
            [f"s{i % 7}" for i in picks],
            [f"p{i}" for i in picks],
        )
        assert weighted_auc(scores, row[None])[0] == pytest.approx(auc(resampled))


def test_paired_bootstrap_of_a_model_against_itself_has_zero_difference() -> None:
    scores = toy_scores(np.random.default_rng(2).random(90))
    a, b = paired_acer_samples(scores, 0.5, scores, 0.5, n_resamples=200)
    np.testing.assert_array_equal(a, b)
    worse, _ = paired_acer_samples(scores, 0.9, scores, 0.5, n_resamples=200)
    assert not np.array_equal(worse, a)


def test_swap_score_and_pareto_front() -> None:
    options = SwapOptions()
    ratios = {
        "onnx": {"speedup": 8.0, "energy_ratio": 0.125},
        "params_ratio": 0.125,
        "accuracy": {"retention": 1.0},
    }
    assert swap_score(ratios, options) == pytest.approx(8.0**0.75)  # geometric mean
    options.score_weights = {"speed": 0, "weight": 0, "accuracy": 1, "power": 0}
    assert swap_score(ratios, options) == pytest.approx(1.0)

    def model(label: str, acer: float, ms: float, params: int) -> dict:
        return {
            "label": label,
            "test": {"acer": acer},
            "latency": {"onnx": {"batch1": {"median_ms": ms}}},
            "power": {"onnx": {"energy_j": ms * 1.5e-3}},
            "weight": {"params": params},
        }

    models = [model("t", 0.05, 10, 100), model("s", 0.04, 1, 10), model("w", 0.2, 2, 20)]
    assert pareto_front(models, ("onnx",)) == ["s"]  # s beats t and w on every axis
    models.append(model("tiny", 0.3, 0.5, 5))  # worse accuracy but faster and smaller
    assert pareto_front(models, ("onnx",)) == ["s", "tiny"]


def browser() -> str | None:
    """Debian's chromium (installed by .ci/run); CI sets FASDISTILL_REQUIRE_BROWSER=1."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("FASDISTILL_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium is required here (FASDISTILL_REQUIRE_BROWSER=1) but not installed")
    return found


def test_report_html_is_self_contained(report: Path) -> None:
    page = (report / "report.html").read_text()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no remote resources
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 4
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_report_html_renders_in_a_headless_browser(report: Path, tmp_path: Path) -> None:
    chromium = browser()
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run installs it)")
    page = (report / "report.html").read_text()
    # The probe needs an inline script, which the report's policy forbids; allow only that.
    probe = """<script>window.addEventListener('load', () => {
      const imgs = [...document.images];
      document.body.setAttribute('data-probe', JSON.stringify({
        rows: document.querySelectorAll('#swap-table tbody tr').length,
        images: imgs.length,
        decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
        fetched: performance.getEntriesByType('resource').length}));
    });</script></body>"""
    page = page.replace(
        "style-src 'unsafe-inline'", "style-src 'unsafe-inline'; script-src 'unsafe-inline'"
    )
    copy = tmp_path / "probe.html"
    copy.write_text(page.replace("</body>", probe))
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--dump-dom", copy.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = re.search(r"data-probe=\"([^\"]+)\"", result.stdout)
    assert found, result.stderr[-2000:]
    probe_result = json.loads(html.unescape(found.group(1)))
    swap = json.loads((report / "swap.json").read_text())
    assert probe_result == {"rows": len(swap["models"]), "images": 4, "decoded": 4, "fetched": 0}


def foreign_copy(checkpoint: Path, index: Path, root: Path, **sidecar: object) -> Path:
    """Our model exported, stripped of its metadata, described by a sidecar instead."""
    import onnx
    import yaml

    from fasdistill.export.pipeline import ExportOptions, export_checkpoint

    export_checkpoint(
        checkpoint, index, root, ExportOptions(formats=("onnx",), latency_runs=0), log=print
    )
    proto = onnx.load(str(root / "model.onnx"))
    del proto.metadata_props[:]
    path = root / "vendor.onnx"
    onnx.save(proto, str(path))
    if sidecar:
        (root / "vendor.onnx.yaml").write_text(yaml.safe_dump(sidecar))
    return path


def test_a_third_party_onnx_model_gets_a_row(
    index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = trained(index, tmp_path, "teacher", "swapnet", 2)
    described = {"input_size": 16, "crop_scale": 1.5, "output": "probability"}
    vendor = foreign_copy(teacher, index, tmp_path / "v", output_name="score", **described)
    out = tmp_path / "report"
    fast = ["--latency-runs", "3", "--latency-seconds", "0", "--bootstrap", "40"]
    args = ["swap", "--models", str(teacher), str(vendor), "--data", str(index), "--out", str(out)]
    assert main([*args, *fast]) == 0
    swap = json.loads((out / "swap.json").read_text())
    ours, theirs = swap["models"]
    assert theirs["role"] == "external" and "sidecar" not in theirs["source"]  # names the file
    assert set(theirs["latency"]) == {"onnx"} and set(theirs["accuracy"]) == {"onnx"}
    # the same network: the same scores, so the same test metrics and threshold
    assert theirs["test"]["auc"] == pytest.approx(ours["test"]["auc"], abs=1e-6)
    assert theirs["threshold"] == pytest.approx(ours["threshold"], abs=1e-5)
    # the ONNX graph has BatchNorm folded into the convolutions: a few hundred fewer
    assert 0.99 < theirs["weight"]["params"] / ours["weight"]["params"] <= 1.0
    assert theirs["weight"]["macs"] == pytest.approx(ours["weight"]["macs"], rel=0.01)
    assert "third-party" in (out / "swap.md").read_text()
    capsys.readouterr()
    # a sidecar that does not say enough, or says something unknown, or mismatches the crops
    cases = [
        ({}, "needs a sidecar vendor.onnx.yaml"),
        ({**described, "colour": "RGB"}, "unknown key 'colour'"),
        ({**described, "crop_scale": 2.0}, "expects crops at scale 2.0"),
    ]
    for i, (sidecar, message) in enumerate(cases):
        bad = foreign_copy(teacher, index, tmp_path / f"bad{i}", **sidecar)
        capsys.readouterr()
        argv = ["swap", "--models", str(teacher), str(bad), "--data", str(index)]
        assert main([*argv, "--out", str(tmp_path / f"r{i}"), *fast]) == 2
        assert message in capsys.readouterr().err


def test_profile_attributes_time_and_macs_to_operators(index: Path, tmp_path: Path) -> None:
    from fasdistill.export.pipeline import ExportOptions, export_checkpoint
    from fasdistill.swap.profile import nominal_peak_gflops, profile_onnx

    checkpoint = trained(index, tmp_path, "m", "swapnet", 1)
    export_checkpoint(
        checkpoint, index, tmp_path, ExportOptions(formats=("onnx",), latency_runs=0), log=print
    )
    profile = profile_onnx(tmp_path / "model.onnx", 16, threads=1, runs=5)
    ops = {row["op"]: row for row in profile["ops"]}
    model = build_model("swapnet", num_classes=3).deployable()
    assert profile["macs"] == pytest.approx(count_macs(model, 16), rel=0.01)
    assert ops["Conv"]["macs"] > 0 and ops["Conv"]["gflops"] > 0
    assert sum(row["share"] for row in profile["ops"]) == pytest.approx(1.0)
    fake = tmp_path / "cpuinfo"
    fake.write_text("cpu MHz\t\t: 2000.000\ncpu MHz\t\t: 2500.000\n")
    peak = nominal_peak_gflops({"isa": ["avx2", "fma"]}, threads=2, cpuinfo=str(fake))
    assert peak["gflops"] == pytest.approx(32 * 2.5 * 2)  # 8 lanes x 2 FLOPs x 2 FMA units


def test_video_throughput_times_each_stage_of_every_frame(tmp_path: Path) -> None:
    from fasdistill.data.synth import SynthConfig, generate
    from fasdistill.swap.pipeline_speed import read_boxes, video_throughput

    config = SynthConfig(subjects=3, samples=1, frames=4, size=64, domains=("phone",), seed=1)
    generate(tmp_path, config, workers=1)
    video = next(iter(sorted((tmp_path / "media").rglob("*bonafide*.avi"))))
    boxes = read_boxes(video.with_name(video.stem + ".boxes.csv"))
    seen: list[tuple[int, ...]] = []
    result = video_throughput(video, boxes, lambda x: seen.append(x.shape), 1.5, 32, 16, repeats=2)
    assert result["frames"] == 4 and len(seen) == 8  # every frame, in each of the 2 passes
    assert set(seen) == {(1, 3, 16, 16)}
    ms = result["ms_per_frame"]
    assert set(ms) == {"decode", "crop_preprocess", "infer"} and min(ms.values()) > 0
    assert result["fps"] == pytest.approx(1e3 / sum(ms.values()))
    del boxes[2]
    with pytest.raises(InputError, match="no face box for frame 2"):
        video_throughput(video, boxes, lambda x: None, 1.5, 32, 16, repeats=1)
