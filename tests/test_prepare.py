"""`fasdistill prepare`: crops and index, bad data per reason, resume, errors, the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fasdistill.cli import main
from fasdistill.data.formats import ProtocolError
from fasdistill.data.prepare import INDEX_COLUMNS, PrepareConfig, prepare
from fasdistill.data.synth import SynthConfig, generate
from fasdistill.errors import InputError
from test_detect import needs_yuface
from test_predict import png_bomb


@pytest.fixture(scope="module")
def synth_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prep") / "synth"
    config = SynthConfig(subjects=3, samples=1, frames=4, size=64, domains=("studio", "dim"))
    generate(root, config, workers=1)
    return root


def read_index(out: Path) -> list[dict[str, str]]:
    with (out / "index.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == INDEX_COLUMNS
        return list(reader)


def synth_config(root: Path, **changes: object) -> PrepareConfig:
    settings: dict[str, object] = {
        "dataset": "synthspoof",
        "root": str(root),
        "frames": 3,
        "boxes": "annotation",
        "scales": (1.0, 2.0),
        "size": 32,
    }
    settings.update(changes)
    return PrepareConfig(**settings)  # type: ignore[arg-type]


def test_crops_and_index_from_dataset_boxes(synth_videos: Path, tmp_path: Path) -> None:
    summary = prepare(synth_config(synth_videos), tmp_path / "out", workers=1)
    rows = read_index(tmp_path / "out")
    assert len(rows) == 24 * 3 * 2  # samples x frames x scales
    assert summary["status_counts"] == {"ok": 144}
    assert {r["box_source"] for r in rows} == {"annotation"}
    assert {r["frame"] for r in rows} == {"0", "2", "3"}  # 3 of 4 frames, spread uniformly
    assert {r["split"] for r in rows} == {"train", "dev", "test"}
    for r in rows[:6]:
        crop = cv2.imread(str(tmp_path / "out" / r["crop_path"]))
        assert crop is not None and crop.shape == (32, 32, 3)
    assert summary["crops_by_split"]["train"] == {
        "bonafide": 12,
        "mask": 12,
        "print": 12,
        "replay": 12,
    }
    meta = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert meta["complete"] and meta["settings"]["protocol"] == "intra"


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "prepare.json":
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_workers_and_resume_give_the_same_output(synth_videos: Path, tmp_path: Path) -> None:
    config = synth_config(synth_videos)
    prepare(config, tmp_path / "one", workers=1)
    prepare(config, tmp_path / "two", workers=2)
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "two")

    class Stop(Exception):
        pass

    def interrupt(done: int, total: int, frames: int) -> None:
        if done >= 5:
            raise Stop

    with pytest.raises(Stop):
        prepare(config, tmp_path / "resumed", workers=1, progress=interrupt)
    assert not (tmp_path / "resumed" / "index.csv").exists()
    summary = prepare(config, tmp_path / "resumed", workers=1)
    assert summary["frames_this_run"] == (24 - 5) * 3  # only the unfinished samples
    assert tree_digest(tmp_path / "resumed") == tree_digest(tmp_path / "one")


def test_other_settings_and_foreign_directories_are_refused(
    synth_videos: Path, tmp_path: Path
) -> None:
    prepare(synth_config(synth_videos), tmp_path / "out", workers=1)
    with pytest.raises(InputError, match="other settings"):
        prepare(synth_config(synth_videos, size=48), tmp_path / "out", workers=1)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        prepare(synth_config(synth_videos), tmp_path / "foreign", workers=1)


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()


@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    """A folder dataset with one good face photo and every kind of bad data."""
    root = tmp_path / "mine"
    (root / "bonafide" / "alice").mkdir(parents=True)
    (root / "attack" / "print" / "bob").mkdir(parents=True)
    face = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(root / "bonafide" / "alice" / "face.jpg"), face)
    cv2.imwrite(str(root / "bonafide" / "alice" / "wall.png"), np.full((120, 120, 3), 90, np.uint8))
    (root / "bonafide" / "alice" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "bonafide" / "alice" / "zero.png").write_bytes(b"")
    (root / "bonafide" / "alice" / "bomb.png").write_bytes(png_bomb(40000, 40000))
    _, png = cv2.imencode(".png", face)
    (root / "bonafide" / "alice" / "png_named.jpg").write_bytes(png.tobytes())
    small = cv2.resize(face, (160, 160))
    write_video(root / "attack" / "print" / "bob" / "clip.avi", [small] * 6)
    write_video(root / "attack" / "print" / "bob" / "long.avi", [small] * 40)
    data = (root / "attack" / "print" / "bob" / "long.avi").read_bytes()
    (root / "attack" / "print" / "bob" / "cut.avi").write_bytes(data[: len(data) // 3])
    (root / "attack" / "print" / "bob" / "long.avi").unlink()
    (root / "attack" / "print" / "bob" / "empty.avi").write_bytes(b"")
    (root / "attack" / "replay" / "carol").mkdir(parents=True)  # media went missing
    (root / "splits.csv").write_text("subject,split\nalice,train\nbob,test\n")
    return root


@needs_yuface
def test_bad_data_is_counted_per_reason_never_fatal(messy_folder: Path, tmp_path: Path) -> None:
    config = PrepareConfig(
        dataset="folder",
        root=str(messy_folder),
        frames=10,
        detector="yunet",
        scales=(1.5,),
        size=48,
    )
    summary = prepare(config, tmp_path / "out", workers=1)
    rows = read_index(tmp_path / "out")
    by_video = {Path(r["video_id"]).name: r["status"] for r in rows if r["frame"] in ("-1", "0")}
    assert by_video["face.jpg"] == "ok"
    assert by_video["wall.png"] == "no_face"
    assert by_video["broken.jpg"] == "unreadable_image"
    assert by_video["zero.png"] == "unreadable_image"
    assert by_video["bomb.png"] == "image_too_large"  # from its header, nothing decoded
    assert by_video["png_named.jpg"] == "ok"  # the bytes decide the format, not the name
    assert by_video["clip.avi"] == "ok"
    assert by_video["empty.avi"] == "unreadable_video"
    cut = [r["status"] for r in rows if r["video_id"].endswith("cut.avi")]
    assert "unreadable_frame" in cut or cut == ["unreadable_video"]
    counts = summary["status_counts"]
    assert counts["no_face"] == 1 and counts["unreadable_image"] == 2
    assert counts["image_too_large"] == 1
    assert counts["empty_folder"] == 1
    empty = next(r for r in rows if r["status"] == "empty_folder")
    assert empty["source_path"].endswith("attack/replay/carol")
    assert counts["ok"] >= 2 + 6  # the photos and every frame of the good clip
    assert sum(counts.values()) == len(rows)
    ok = next(r for r in rows if r["video_id"].endswith("face.jpg"))
    assert ok["box_source"] == "yunet" and float(ok["det_score"]) > 0.5


@needs_yuface
def test_a_decompression_bomb_prepares_to_completion_in_bounded_memory(
    messy_folder: Path, tmp_path: Path
) -> None:
    """The whole messy folder, in a fresh process: its peak resident memory stays < 1 GiB."""
    out = tmp_path / "out"
    code = (
        "import re, sys\n"
        "from fasdistill.cli import main\n"
        f"rc = main(['prepare', '--dataset', 'folder', '--root', {str(messy_folder)!r},\n"
        f"           '--out', {str(out)!r}, '--size', '48', '--workers', '1'])\n"
        "status = open('/proc/self/status').read()\n"
        "print('PEAK_GIB', int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) / 2**20)\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split("PEAK_GIB")[1].split()[0]) < 1.0
    statuses = {Path(r["video_id"]).name: r["status"] for r in read_index(out)}
    assert statuses["bomb.png"] == "image_too_large"


def test_video_frames_beyond_the_memory_bound_are_refused_before_decoding(
    messy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fasdistill.data import video

    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 100 * 100)  # the clips are 160 x 160
    config = PrepareConfig(
        dataset="folder", root=str(messy_folder), boxes="annotation", scales=(1.0,), size=32
    )
    prepare(config, tmp_path / "out", workers=1)
    statuses = {Path(r["video_id"]).name: r["status"] for r in read_index(tmp_path / "out")}
    assert statuses["clip.avi"] == "image_too_large"


def test_annotation_only_mode_reports_missing_annotations(
    messy_folder: Path, tmp_path: Path
) -> None:
    (messy_folder / "bonafide" / "alice" / "face.box").write_text("180 60 90 115\n")
    config = PrepareConfig(
        dataset="folder", root=str(messy_folder), boxes="annotation", scales=(1.0,), size=32
    )
    summary = prepare(config, tmp_path / "out", workers=1)
    rows = read_index(tmp_path / "out")
    face = next(r for r in rows if r["video_id"].endswith("face.jpg"))
    assert (face["status"], face["box_source"], face["box_x"]) == ("ok", "annotation", "180.0")
    assert summary["status_counts"]["missing_annotation"] >= 2  # wall.png, clip.avi frames


def test_missing_protocol_files_stop_before_writing(tmp_path: Path) -> None:
    (tmp_path / "oulu").mkdir()
    config = PrepareConfig(dataset="oulu-npu", root=str(tmp_path / "oulu"), protocol="1")
    with pytest.raises(ProtocolError, match="Train_files"):
        prepare(config, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"frames": 0}, "--frames must be >= 1"),
        ({"frames": 3, "every": 2}, "not both"),
        ({"scales": (0.0,)}, "--scale values"),
        ({"size": 8}, "--size must lie"),
        ({"boxes": "guess"}, "--boxes must be one of"),
    ],
)
def test_bad_settings(
    synth_videos: Path, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        prepare(synth_config(synth_videos, **changes), tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_cli(synth_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = main(
        [
            "prepare",
            "--dataset",
            "synthspoof",
            "--root",
            str(synth_videos),
            "--out",
            str(out),
            "--frames",
            "2",
            "--boxes",
            "annotation",
            "--scale",
            "1.0,2.7",
            "--size",
            "32",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    assert "ok" in capsys.readouterr().out
    assert len(read_index(out)) == 24 * 2 * 2
    assert (
        main(
            [
                "prepare",
                "--dataset",
                "casia-fasd",
                "--root",
                str(tmp_path / "nowhere"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "is not a directory" in capsys.readouterr().err
    assert (
        main(
            [
                "prepare",
                "--dataset",
                "synthspoof",
                "--root",
                str(synth_videos),
                "--out",
                str(tmp_path / "y"),
                "--scale",
                "big",
            ]
        )
        == 2
    )
    assert "--scale 'big'" in capsys.readouterr().err


def test_cross_domain_preparation_runs_to_the_index(tmp_path: Path) -> None:
    from test_formats_b import oci_m_trees

    roots = oci_m_trees(tmp_path / "data")
    root_arg = ",".join(f"{name}={path}" for name, path in roots.items())
    config = PrepareConfig(
        dataset="cross-domain",
        root=root_arg,
        protocol="OCI-M",
        boxes="annotation",
        scales=(1.0,),
        size=16,
    )
    summary = prepare(config, tmp_path / "out", workers=1)
    rows = read_index(tmp_path / "out")
    # The placeholder videos are empty files: every sample is reported, none crashes the run.
    assert {r["status"] for r in rows} <= {"unreadable_video", "empty_video"}
    assert summary["samples"] == len({r["video_id"] for r in rows})
    assert {r["domain"] for r in rows} == {"oulu-npu", "casia-fasd", "replay-attack", "msu-mfsd"}


def test_crop_folders_never_collide(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    face = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    for subject in ("张三", "李四"):
        (root / "bonafide" / subject).mkdir(parents=True)
        cv2.imwrite(str(root / "bonafide" / subject / "1.png"), face)
        (root / "bonafide" / subject / "1.box").write_text("180 60 90 115\n")
    (root / "attack" / "print" / "x").mkdir(parents=True)
    cv2.imwrite(str(root / "attack" / "print" / "x" / "1.png"), face)
    (root / "attack" / "print" / "x" / "1.box").write_text("180 60 90 115\n")
    (root / "splits.csv").write_text("subject,split\n张三,train\n李四,train\nx,train\n")
    config = PrepareConfig(
        dataset="folder", root=str(root), boxes="annotation", scales=(1.0,), size=16
    )
    prepare(config, tmp_path / "out", workers=1)
    paths = [r["crop_path"] for r in read_index(tmp_path / "out")]
    assert len(paths) == len(set(paths)) == 3


def test_a_malformed_annotation_is_a_status_not_a_crash(messy_folder: Path, tmp_path: Path) -> None:
    (messy_folder / "bonafide" / "alice" / "face.box").write_text("nan 60 90 115\n")
    config = PrepareConfig(
        dataset="folder", root=str(messy_folder), boxes="annotation", scales=(1.0,), size=32
    )
    summary = prepare(config, tmp_path / "out", workers=1)
    assert summary["status_counts"]["bad_annotation"] == 1
