"""`fasdistill metrics` end to end: outputs, threshold discipline, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fasdistill.cli import main
from fasdistill.metrics.scores import write_scores
from fasdistill.metrics.simulate import simulate_scores


@pytest.fixture
def score_files(tmp_path: Path) -> tuple[Path, Path]:
    dev = write_scores(tmp_path / "dev.csv", simulate_scores(n_subjects=8, seed=1, prefix="d"))
    test = write_scores(tmp_path / "test.csv", simulate_scores(n_subjects=8, seed=2, prefix="t"))
    return dev, test


def test_writes_report_and_figures(score_files: tuple[Path, Path], tmp_path: Path) -> None:
    dev, test = score_files
    out = tmp_path / "out"
    code = main(
        [
            "metrics",
            "--dev",
            str(dev),
            "--test",
            str(test),
            "--out",
            str(out),
            "--bootstrap",
            "200",
            "--level",
            "video",
        ]
    )
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["criterion"] == "eer" and report["level"] == "video"
    for split in ("dev", "test"):
        m = report[split]
        for key in (
            "apcer",
            "apcer_per_pai",
            "apcer_pooled",
            "bpcer",
            "acer",
            "hter",
            "eer",
            "auc",
        ):
            assert key in m
        for key in ("apcer", "apcer_pooled", "bpcer", "acer", "hter", "eer", "auc"):
            assert 0.0 <= m[key] <= 1.0
        assert set(m["apcer_per_pai"]) == {"print", "replay"}
        assert m["apcer"] == max(m["apcer_per_pai"].values())
        assert m["ci"]["n_resamples"] == 200
    assert report["inputs"]["test"]["sha256"]
    for png in ("det.png", "roc.png", "histograms.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp"))


def test_test_scores_never_move_the_threshold(
    score_files: tuple[Path, Path], tmp_path: Path
) -> None:
    dev, test = score_files
    other = write_scores(tmp_path / "other.csv", simulate_scores(n_subjects=5, seed=9, prefix="o"))
    reports = []
    for t in (test, other):
        out = tmp_path / t.stem
        assert (
            main(
                [
                    "metrics",
                    "--dev",
                    str(dev),
                    "--test",
                    str(t),
                    "--out",
                    str(out),
                    "--bootstrap",
                    "0",
                    "--no-plots",
                ]
            )
            == 0
        )
        reports.append(json.loads((out / "metrics.json").read_text()))
    assert reports[0]["threshold"] == reports[1]["threshold"]
    assert reports[0]["dev"] == reports[1]["dev"]


def test_criterion_fixed_and_bpcer20(score_files: tuple[Path, Path], tmp_path: Path) -> None:
    dev, _ = score_files
    assert (
        main(
            [
                "metrics",
                "--dev",
                str(dev),
                "--criterion",
                "fixed=0.25",
                "--bootstrap",
                "0",
                "--out",
                str(tmp_path / "f"),
                "--no-plots",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "f" / "metrics.json").read_text())["threshold"] == 0.25
    assert (
        main(
            [
                "metrics",
                "--dev",
                str(dev),
                "--criterion",
                "bpcer20",
                "--bootstrap",
                "0",
                "--out",
                str(tmp_path / "b"),
                "--no-plots",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert report["criterion"] == "bpcer@apcer=0.05"
    assert report["dev"]["apcer"] <= 0.05


@pytest.mark.parametrize(
    ("dev_text", "message"),
    [
        ("sample_id,label,score\na,bonafide,0.5\nb,bonafide,nan\n", "line 3"),
        ("sample_id,label,score\na,bonafide,0.5\nb,bonafide,0.7\n", "no attack samples"),
        ("sample_id,label,score\na,attack,0.5\n", "no bona fide samples"),
        ("sample_id,label\na,bonafide\n", "missing column"),
        ("", "empty file"),
    ],
)
def test_bad_dev_file_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dev_text: str, message: str
) -> None:
    dev = tmp_path / "dev.csv"
    dev.write_text(dev_text)
    out = tmp_path / "out"
    assert main(["metrics", "--dev", str(dev), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(dev) in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_test_file_writes_nothing(score_files: tuple[Path, Path], tmp_path: Path) -> None:
    dev, _ = score_files
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,label,score\nx,robot,0.5\n")
    out = tmp_path / "out"
    assert main(["metrics", "--dev", str(dev), "--test", str(bad), "--out", str(out)]) == 2
    assert not out.exists()


def test_bad_criterion_is_rejected_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["metrics", "--dev", str(tmp_path / "missing.csv"), "--criterion", "best"]) == 2
    assert "unknown threshold criterion 'best'" in capsys.readouterr().err


def test_console_script_lists_stages() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fasdistill.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "metrics" in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "fasdistill.cli", "metrics", "--dev", "/nonexistent.csv"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2
    assert "/nonexistent.csv: score file not found" in missing.stderr


def test_no_plots_removes_figures_of_an_earlier_run(
    score_files: tuple[Path, Path], tmp_path: Path
) -> None:
    dev, _ = score_files
    out = tmp_path / "out"
    assert main(["metrics", "--dev", str(dev), "--out", str(out), "--bootstrap", "0"]) == 0
    assert (out / "det.png").exists()
    assert (
        main(
            [
                "metrics",
                "--dev",
                str(dev),
                "--out",
                str(out),
                "--bootstrap",
                "0",
                "--criterion",
                "bpcer20",
                "--no-plots",
            ]
        )
        == 0
    )
    assert not (out / "det.png").exists() and (out / "metrics.json").exists()


def test_fixed_threshold_must_be_finite(
    score_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dev, _ = score_files
    assert main(["metrics", "--dev", str(dev), "--criterion", "fixed=1e999"]) == 2
    assert "finite" in capsys.readouterr().err


@pytest.mark.parametrize("resamples", ["1", "39", "-5"])
def test_metrics_and_swap_refuse_too_few_resamples_for_an_interval(
    resamples: str, score_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dev, test = score_files
    out = tmp_path / "out"
    args = ["metrics", "--dev", str(dev), "--test", str(test), "--out", str(out)]
    assert main([*args, "--bootstrap", resamples]) == 2
    err = capsys.readouterr().err
    assert f"--bootstrap {resamples}: " in err and "at least 40 resamples" in err
    assert not out.exists()
    swap_out = tmp_path / "swap"
    swap = ["swap", "--models", str(dev), "--data", str(dev), "--out", str(swap_out)]
    assert main([*swap, "--bootstrap", resamples]) == 2  # options are checked before the models
    assert "at least 40 resamples" in capsys.readouterr().err
    assert not swap_out.exists()
