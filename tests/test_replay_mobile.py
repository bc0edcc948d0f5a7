"""Replay-Mobile: the release's file names give exactly the published split sizes."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from adapter_checks import assert_disjoint_subjects
from fasdistill.data.formats import ProtocolError, get_adapter
from fasdistill.data.formats.replay_mobile import ReplayMobile
from fasdistill.data.prepare import PrepareConfig, prepare
from fasdistill.errors import InputError

FILES = Path(__file__).parent / "data" / "replay_mobile_files.txt"
# (bona fide, attack) videos per split, from the Replay-Mobile paper and Idiap's database
PUBLISHED = {
    "grandtest": {"train": (120, 192), "dev": (160, 256), "test": (110, 192)},
    "print": {"train": (120, 96), "dev": (160, 128), "test": (110, 96)},
    "mattescreen": {"train": (120, 96), "dev": (160, 128), "test": (110, 96)},
}


def release_tree(root: Path) -> Path:
    """Empty files named like the release: 1,190 videos, enrolment and face locations included."""
    names = [line for line in FILES.read_text().splitlines() if line and not line.startswith("#")]
    assert len(names) == 1190
    for name in names:
        for path in (root / f"{name}.mov", root / "faceloc" / "rect" / f"{name}.face"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return release_tree(tmp_path_factory.mktemp("replay_mobile"))


@pytest.mark.parametrize("protocol", list(PUBLISHED))
def test_published_split_sizes(tree: Path, protocol: str) -> None:
    samples = get_adapter("replay-mobile", tree).protocol(protocol)
    counts = {
        split: (
            sum(1 for s in samples if s.split == split and s.label == "bonafide"),
            sum(1 for s in samples if s.split == split and s.label == "attack"),
        )
        for split in ("train", "dev", "test")
    }
    assert counts == PUBLISHED[protocol]
    assert_disjoint_subjects(samples)
    assert not any("enroll" in s.sample_id for s in samples)
    if protocol != "grandtest":
        assert {s.pai for s in samples if s.label == "attack"} == {protocol}


def test_fields_and_what_is_skipped(tree: Path) -> None:
    adapter = ReplayMobile(tree)
    samples = adapter.samples()
    assert len(samples) == 390 + 640  # enrolment videos are not samples
    by_id = {s.sample_id: s for s in samples}
    real = by_id["train/real/client001_session02_authenticate_mobile_adverse"]
    assert (real.label, real.pai, real.subject, real.device, real.session) == (
        "bonafide",
        "",
        "client001",
        "mobile",
        "adverse",
    )
    attack = by_id[
        "devel/attack/attack_client005_session01_mattescreen_fixed_mobile_photo_lightoff"
    ]
    assert (attack.pai, attack.subject, attack.device, attack.session) == (
        "mattescreen",
        "client005",
        "mobile",
        "lightoff",
    )
    assert Counter(s.device for s in samples) == {"mobile": 515, "tablet": 515}
    assert adapter.skipped == []  # face-location files live outside the split folders
    (tree / "train" / "real" / "notes.txt").write_text("x")
    (
        tree
        / "train"
        / "attack"
        / "attack_client001_session01_glossy_fixed_mobile_photo_lightoff.mov"
    ).touch()
    adapter = ReplayMobile(tree)
    adapter.samples()
    assert len(adapter.skipped) == 2
    (tree / "train" / "real" / "notes.txt").unlink()
    (
        tree
        / "train"
        / "attack"
        / "attack_client001_session01_glossy_fixed_mobile_photo_lightoff.mov"
    ).unlink()


def test_missing_folders_stop_the_protocol(tmp_path: Path) -> None:
    (tmp_path / "train" / "real").mkdir(parents=True)
    with pytest.raises(ProtocolError) as err:
        ReplayMobile(tmp_path).protocol("grandtest")
    assert str(tmp_path / "devel" / "real") in err.value.missing


# ---------------------------------------------------------------------------- face locations

STORED = (720, 1280)  # (rows, columns) of a stored Replay-Mobile frame, before rotation
MARK = (slice(100, 260), slice(300, 420))  # a white patch in the stored frame


def first_loader_box(stored: np.ndarray, flip: bool) -> tuple[int, int, int, int]:
    """Where Idiap's loader puts the white patch, as the .face files give it.

    bob.db.replaymobile rolls the colour axis of each stored frame to the end (so
    frames are transposed) and flips the rows of the phone videos; the box is
    x y w h in the frame it yields.
    """
    frame = np.ascontiguousarray(stored.transpose(1, 0, 2))
    if flip:
        frame = frame[::-1]
    rows, cols = np.nonzero(frame[..., 0] > 127)
    return (
        int(cols.min()),
        int(rows.min()),
        int(cols.max() - cols.min() + 1),
        int(rows.max() - rows.min() + 1),
    )


def counts(summary: dict) -> dict[str, int]:
    """Status counts without the tree's empty split folders."""
    return {k: v for k, v in summary["status_counts"].items() if k != "empty_folder"}


def rm_tree(root: Path) -> Path:
    for split in ("train", "devel", "test"):
        for kind in ("real", "attack"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
    return root


@pytest.mark.parametrize(
    ("sample_id", "degrees", "flip_box"),
    [
        # phone videos: the first loader flips them (upright = its frames)
        ("train/real/client001_session02_authenticate_mobile_adverse", 270, True),
        # tablet videos: not flipped (upright = its frames mirrored left-right)
        ("train/attack/attack_client001_session01_print_fixed_tablet_photo_lightoff", 90, False),
        # client 8's two exceptions: stored like phone videos, boxes shipped unflipped
        ("train/real/client008_session02_authenticate_tablet_adverse", 270, False),
    ],
)
def test_shipped_boxes_cut_the_face_in_upright_frames(
    tmp_path: Path, sample_id: str, degrees: int, flip_box: bool
) -> None:
    """The shipped box, mapped by the adapter, lands on the patch in the frames prepare decodes.

    The videos are stored landscape with the rotation (90 or 270 degrees) under
    which the frames of Idiap's loaders are upright, as the release's must be.
    """
    from test_crops_video import write_rotated_mp4

    root = rm_tree(tmp_path / "rm")
    stored = np.zeros((*STORED, 3), np.uint8)
    stored[MARK] = 255
    video = root / f"{sample_id}.mov"
    write_rotated_mp4(video, frames=[stored] * 3, degrees=degrees)
    x, y, w, h = first_loader_box(stored, flip_box)
    face = root / "faceloc" / "rect" / f"{sample_id}.face"
    face.parent.mkdir(parents=True)
    face.write_text("0 0 0 0\n" + f"{x} {y} {w} {h}\n" * 2)  # frame 0: no face found
    sample = next(s for s in ReplayMobile(root).samples() if s.sample_id == sample_id)
    assert set(ReplayMobile(root).face_boxes(sample)) == {1, 2}

    config = PrepareConfig("replay-mobile", str(root), boxes="annotation", scales=(1.0,), size=32)
    summary = prepare(config, tmp_path / "out", workers=1)
    rows = list(csv.DictReader((tmp_path / "out" / "index.csv").open()))
    assert counts(summary) == {"missing_annotation": 1, "ok": 2}
    for row in (r for r in rows if r["status"] == "ok"):
        crop = cv2.imread(str(tmp_path / "out" / row["crop_path"]))
        # the square around a 160 x 120 patch is three quarters white; a mirrored box is black
        assert crop.mean() > 150, (row["box_x"], row["box_y"], crop.mean())


def test_face_file_formats_and_errors(tmp_path: Path) -> None:
    root = rm_tree(tmp_path)
    sample_id = "test/real/client030_session01_authenticate_mobile_controlled"
    (root / f"{sample_id}.mov").touch()
    sample = ReplayMobile(root).samples()[0]
    face = root / "faceloc" / "rect" / f"{sample_id}.face"
    face.parent.mkdir(parents=True)
    face.write_text("10 20 30 40\n\n0 0 0 0\n11 21 31 41\n")  # line n = frame n, blanks skipped
    assert ReplayMobile(root).face_boxes(sample) == {0: (10, 20, 30, 40), 2: (11, 21, 31, 41)}
    face.write_text("5 10 20 30 40\n")  # 'frame x y w h', as Replay-Attack ships them
    assert ReplayMobile(root).face_boxes(sample) == {5: (10, 20, 30, 40)}
    assert ReplayMobile(root).annotation_frame_size(sample) == (720, 1280)
    for bad in ("10 20 30\n", "1 2 three 4\n", "0.5 1 2 3 4\n"):
        face.write_text("10 20 30 40\n" + bad)
        with pytest.raises(InputError, match=rf"{face.name}:2: expected"):
            ReplayMobile(root).face_boxes(sample)


def test_a_frame_of_another_size_does_not_use_the_shipped_box(tmp_path: Path) -> None:
    """A video decoded sideways (no rotation applied) must not be cut at upright coordinates."""
    root = rm_tree(tmp_path / "rm")
    sample_id = "train/real/client001_session02_authenticate_mobile_adverse"
    video = root / f"{sample_id}.mov"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, STORED[::-1])
    for _ in range(2):  # no rotation metadata: landscape frames
        writer.write(np.zeros((*STORED, 3), np.uint8))
    writer.release()
    face = root / "faceloc" / "rect" / f"{sample_id}.face"
    face.parent.mkdir(parents=True)
    face.write_text("100 860 160 120\n" * 2)
    config = PrepareConfig("replay-mobile", str(root), boxes="annotation", scales=(1.0,), size=32)
    summary = prepare(config, tmp_path / "strict", workers=1)
    assert counts(summary) == {"annotation_frame_mismatch": 2}
    auto = PrepareConfig("replay-mobile", str(root), boxes="auto", scales=(1.0,), size=32)
    summary = prepare(auto, tmp_path / "auto", workers=1)
    assert counts(summary) == {"no_face": 2}  # the detector ran (on a black frame)


def test_the_box_check_script_tells_a_right_mapping_from_a_mirrored_one(tmp_path: Path) -> None:
    """benchmarks/verify_replay_mobile_boxes.py: IoU near 1 as shipped, failure when mirrored."""
    skdata = pytest.importorskip("skimage.data")
    from fasdistill.data.detect import get_detector
    from test_crops_video import write_rotated_mp4

    root = rm_tree(tmp_path / "rm")
    upright = np.zeros((1280, 720, 3), np.uint8)
    upright[300:812, 60:572] = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    found = get_detector("yunet").best(upright)
    assert found is not None
    x, y, w, h = (round(v) for v in found.box)
    mask = np.zeros_like(upright)
    mask[y : y + h, x : x + w] = 255
    videos = {  # sample id -> (metadata rotation, np.rot90 turns from upright to stored)
        "train/real/client001_session02_authenticate_mobile_adverse": (270, -1),
        "train/real/client002_session02_authenticate_tablet_adverse": (90, 1),
    }
    for sample_id, (degrees, turns) in videos.items():
        stored = np.ascontiguousarray(np.rot90(upright, turns))
        write_rotated_mp4(root / f"{sample_id}.mov", frames=[stored] * 2, degrees=degrees)
        box = first_loader_box(np.rot90(mask, turns), flip="mobile" in sample_id)
        face = root / "faceloc" / "rect" / f"{sample_id}.face"
        face.parent.mkdir(parents=True, exist_ok=True)
        face.write_text(" ".join(map(str, box)) + "\n" + " ".join(map(str, box)) + "\n")

    script = Path(__file__).parents[1] / "benchmarks" / "verify_replay_mobile_boxes.py"
    run = [sys.executable, str(script), str(root), "--frames", "2"]
    ok = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    rows = table_rows(ok.stdout)
    assert set(rows) == {"mobile", "tablet"}
    assert all(r[:2] == ["1", "2"] and float(r[2]) > 0.9 and r[4] == "0" for r in rows.values())
    tablet_face = root / "faceloc" / "rect" / f"{list(videos)[1]}.face"
    bx, by, bw, bh = map(int, tablet_face.read_text().split()[:4])
    mirrored = f"{720 - (bx + bw)} {by} {bw} {bh}\n"  # as if tablets were not mirrored
    tablet_face.write_text(mirrored * 2)
    bad = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    rows = table_rows(bad.stdout)
    assert float(rows["mobile"][2]) > 0.9 and float(rows["tablet"][2]) < 0.1


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The script's table as {kind: [videos, frames, median IoU, share, not upright]}."""
    cells = [line.strip("|").split("|") for line in markdown.splitlines()[2:] if line]
    return {c[0].strip(): [v.strip() for v in c[1:]] for c in cells}
