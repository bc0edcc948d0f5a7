"""The packaged real-data studies end to end, on fake trees named like the real datasets.

The trees are the adapter tests' layouts (file names as the publishers ship them),
each video a two-frame clip of a real public-domain face (scikit-image's astronaut),
tinted for attacks; the studies run with the smoke recipe's tiny model and a few steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fasdistill.cli import main
from fasdistill.data.formats import get_adapter
from test_formats_a import oulu_tree
from test_formats_b import mapping, oci_m_trees

SMOKE = [
    "budget.input_size=16",
    "budget.teacher_steps=3",
    "budget.student_steps=3",
    "teachers.teacher.recipe=smoke",
    "teachers.teacher.overrides=[data.workers=0]",
    "students.scratch.recipe=smoke",
    "students.kd.overrides=[model.name=smoke-cnn]",
    'student_overrides=["data.augment.resized_crop=[1.0,1.0]"]',
    "data.dataset.frames=2",
    "data.dataset.detector=haar",
    "swap.runtimes=[pytorch]",
    "swap.latency_runs=2",
    "swap.latency_seconds=0",
    "swap.bootstrap=0",
]
FACE = cv2.resize(skdata.astronaut()[0:300, 90:390][..., ::-1], (96, 96))  # BGR, haar finds it


def write_clip(path: Path, attack: bool) -> None:
    """Two frames of the face; attacks get a blue cast (a cue the tiny model can learn)."""
    frame = FACE.astype(np.int16)
    if attack:
        frame = frame + np.array([60, 0, -40], dtype=np.int16)
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    codec = "mp4v" if path.suffix == ".mp4" else "MJPG"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 10, (96, 96))
    for _ in range(2):
        writer.write(frame)
    writer.release()


def fill_videos(adapter_name: str, root: Path | str) -> int:
    """Replace every (empty) video of a fake tree with a real clip of its class."""
    samples = get_adapter(adapter_name, root).samples()
    for s in samples:
        write_clip(Path(s.path), s.label != "bonafide")
    return len(samples)


def run_study(name: str, out: Path, root: str, *args: str) -> int:
    sets = [x for item in SMOKE for x in ("--set", item)]
    return main(["study", name, "--out", str(out), "--root", root, *sets, *args])


def test_oulu_npu_study_on_a_fake_release(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = oulu_tree(
        tmp_path / "OULU-NPU", {"Train_files": [1], "Dev_files": [21], "Test_files": [36]}
    )
    assert fill_videos("oulu-npu", root) == 270
    out = tmp_path / "study"
    args = ["--protocols", "P1,P3_1,P3_2", "--seeds", "0"]
    assert run_study("oulu_npu", out, str(root), *args, "--students", "scratch,kd") == 0
    table = (out / "oulu_npu.md").read_text()
    # the literature's layout: P1 on its own, P3 as mean ± std over its sub-protocols
    assert "| test ACER % | P1 | P3 |" in table
    assert "**P1**" in table and "**P3** (mean ± std over 2 protocols (of 6): P3_1, P3_2" in table
    assert "**P3_1**" not in table  # the sub-protocols appear through their group
    assert "| kd | 2 x 1 |" in table
    index = (out / "crops_P3_1" / "index.csv").read_text()
    assert "oulu-npu" in index and ",ok," in index
    prepared = json.loads((out / "results.json").read_text())
    assert prepared["data"]["dataset"]["name"] == "oulu-npu"
    assert (out / "swap" / "P1" / "report.html").is_file()
    capsys.readouterr()


def test_ocim_study_on_fake_releases(tmp_path: Path) -> None:
    roots = oci_m_trees(tmp_path / "data")
    for name, root in roots.items():
        fill_videos(name, root)
    out = tmp_path / "study"
    args = ["--protocols", "OCI-M,ICM-O", "--seeds", "0", "--students", "scratch", "--no-swap"]
    assert run_study("ocim", out, mapping(roots), *args) == 0
    table = (out / "ocim.md").read_text()
    assert "| test ACER % | OCI-M | ICM-O | mean |" in table
    assert "**mean** (mean ± std over 2 protocols (of 4): OCI-M, ICM-O" in table
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"OCI-M/teacher", "OCI-M/scratch/seed0", "ICM-O/teacher",
                            "ICM-O/scratch/seed0"}  # fmt: skip


def test_a_dataset_study_without_its_root_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["study", "oulu_npu", "--out", str(tmp_path / "out"), "--no-swap"]) == 2
    err = capsys.readouterr().err
    assert "data.dataset.root is not set" in err and "--root" in err
    assert not (tmp_path / "out").exists()


def test_lodo_study_generates_synthspoof_and_tabulates_the_group(tmp_path: Path) -> None:
    """The packaged leave-one-domain-out study on a tiny SynthSpoof made in its folder."""
    out = tmp_path / "study"
    sets = [
        "data.synthspoof.subjects=3",
        "data.synthspoof.size=64",
        "data.crop_size=32",
        *(s for s in SMOKE if not s.startswith(("data.dataset", "students.kd."))),
    ]
    args = ["--protocols", "lodo_office", "--students", "scratch", "--seeds", "0", "--no-swap"]
    assert (
        main(["study", "lodo", "--out", str(out), *(x for s in sets for x in ("--set", s)), *args])
        == 0
    )
    assert (out / "synth" / "protocols" / "lodo_office.csv").is_file()
    table = (out / "lodo.md").read_text()
    assert "| test ACER % | lodo_office | LODO |" in table
    assert "**LODO** (mean ± std over 1 protocol (of 4): lodo_office" in table
    assert "Capture parameters of `office` outside the source domains' range" in table
