"""SynthSpoof: layout, manifests, determinism, balance, splits, artefacts, errors, resume."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from fasdistill.cli import main
from fasdistill.data.synth import SynthConfig, generate, iter_samples, plan, render_sample
from fasdistill.data.synth.domains import DISPLAYS, PRINT_MEDIA
from fasdistill.data.synth.faces import Identity, Light, Shot, render_face
from fasdistill.data.synth.media import _halftone, replay_attack
from fasdistill.errors import InputError

TINY = SynthConfig(subjects=3, samples=1, size=48, domains=("studio", "office"), seed=3)


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "set"
    generate(out, TINY, workers=1)
    return out


def test_layout_and_manifests(tiny_set: Path) -> None:
    rows = list(iter_samples(tiny_set))
    assert len(rows) == 2 * 3 * 4  # domains x subjects x classes x samples
    for row in rows:
        image = cv2.imread(str(tiny_set / row["path"]))
        assert image is not None and image.shape == (48, 48, 3)
        x, y, w, h = (float(row[k]) for k in ("box_x", "box_y", "box_w", "box_h"))
        assert w > 10 and h > 10 and -5 < x < 48 and -5 < y < 48
        assert (tiny_set / row["boxes_path"]).exists()
        assert row["label"] == ("bonafide" if row["pai"] == "" else "attack")
    instruments = {r["instrument"] for r in rows if r["pai"] == "print"}
    assert instruments <= set(PRINT_MEDIA)
    assert {r["instrument"] for r in rows if r["pai"] == "replay"} <= set(DISPLAYS)
    names = sorted(p.name for p in (tiny_set / "protocols").iterdir())
    assert names == ["intra.csv", "lodo_office.csv", "lodo_studio.csv"]


def read_protocol(root: Path, name: str) -> dict[str, str]:
    with (root / "protocols" / f"{name}.csv").open() as handle:
        return {r["sample_id"]: r["split"] for r in csv.DictReader(handle)}


def test_splits_are_subject_disjoint_and_balanced(tiny_set: Path) -> None:
    rows = {r["sample_id"]: r for r in iter_samples(tiny_set)}
    intra = read_protocol(tiny_set, "intra")
    assert set(intra) == set(rows)
    subjects: dict[str, set[str]] = {}
    for sample_id, split in intra.items():
        subjects.setdefault(split, set()).add(rows[sample_id]["subject"])
    assert set(subjects) == {"train", "dev", "test"}
    assert not subjects["train"] & subjects["dev"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["dev"] & subjects["test"]
    for split in subjects:
        per_class = Counter(rows[s]["pai"] or "bonafide" for s, sp in intra.items() if sp == split)
        assert len(set(per_class.values())) == 1, per_class  # every class equally often
        assert set(per_class) == {"bonafide", "print", "replay", "mask"}
    lodo = read_protocol(tiny_set, "lodo_studio")
    for sample_id, split in lodo.items():
        domain = rows[sample_id]["domain"]
        assert (domain == "studio") == (split == "test")
    # the whole held-out domain is the test set; the other domains lose their test subjects
    studio = {s for s, row in rows.items() if row["domain"] == "studio"}
    assert {s for s, split in lodo.items() if split == "test"} == studio
    assert set(lodo) == studio | {s for s, sp in intra.items() if sp != "test"}


def test_byte_identical_across_runs_and_worker_counts(tiny_set: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, TINY, workers=2)
    assert tree_hashes(again) == tree_hashes(tiny_set)


def test_videos_have_frames_and_boxes(tmp_path: Path) -> None:
    config = SynthConfig(subjects=3, samples=1, frames=4, size=48, domains=("phone",), seed=1)
    generate(tmp_path / "v", config, workers=1)
    rows = list(iter_samples(tmp_path / "v"))
    assert {r["media"] for r in rows} == {"video"}
    for row in rows[:4]:
        capture = cv2.VideoCapture(str(tmp_path / "v" / row["path"]))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        assert len(frames) == 4 and frames[0].shape == (48, 48, 3)
        assert not np.array_equal(frames[0], frames[-1])  # motion between frames
        boxes = (tmp_path / "v" / row["boxes_path"]).read_text().strip().splitlines()
        assert len(boxes) == 5  # header + one row per frame


def spectrum_peak_ratio(channel: np.ndarray, radius: float, width: float = 0.03) -> float:
    """Spectral energy near |f| = radius (cycles/px) over the energy of the rest (excluding DC)."""
    h, w = channel.shape
    power = np.abs(np.fft.fft2(channel - channel.mean())) ** 2
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    r = np.sqrt(fx**2 + fy**2)
    ring = np.abs(r - radius) < width
    rest = (~ring) & (r > 0.02)
    return float(power[ring].mean() / power[rest].mean())


def test_print_halftone_is_periodic() -> None:
    medium = PRINT_MEDIA["a4_laser"]
    flat = np.full((128, 128, 3), 0.45, np.float32)
    dots = _halftone(flat, medium, np.random.default_rng(0))
    # AM screening puts the ink on a lattice of period `cell`: energy at 1/cell.
    assert spectrum_peak_ratio(dots[..., 0], 1.0 / medium.cell) > 20


def test_replay_subpixels_carry_energy_at_the_pixel_pitch() -> None:
    display = DISPLAYS["monitor"]
    frame = np.full((64, 64, 3), 150, np.uint8)
    background = np.full((128, 128, 3), 0.3, np.float32)

    def ratio(strength: float) -> float:
        scene, _, _ = replay_attack(
            frame,
            (10, 10, 40, 40),
            display,
            background,
            np.ones(3, np.float32),
            strength,
            (0.0, 0.0, 0.0),
            np.random.default_rng(0),
            (0.5, 0.5, 0.1),
            False,
        )
        return spectrum_peak_ratio(scene[..., 0], 1.0 / (2 * display.pitch))

    # At full strength the screen is at its coarsest (twice the nominal pitch): its stripes
    # put a spectral peak at 1 / (2 pitch), which fades as strength falls.
    assert ratio(1.0) > 5
    assert ratio(1.0) > 3 * ratio(0.0)


def high_frequency_share(image: np.ndarray) -> float:
    grey = image.astype(np.float32).mean(axis=2)
    power = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    f = np.sqrt(
        np.fft.fftfreq(grey.shape[0])[:, None] ** 2 + np.fft.fftfreq(grey.shape[1])[None] ** 2
    )
    return float(power[f > 0.2].sum() / power[f > 0.02].sum())


def face_texture(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Fine-detail energy on both cheeks (skin only: below the eyes, beside the nose)."""
    x, y, w, h = box
    detail = cv2.Laplacian(image.astype(np.float32).mean(axis=2), cv2.CV_32F)
    rows = slice(int(y + 0.5 * h), int(y + 0.6 * h))
    cheeks = [slice(int(x + a * w), int(x + b * w)) for a, b in ((0.2, 0.33), (0.67, 0.8))]
    return float(np.mean([detail[rows, c].var() for c in cheeks]))


def replay_vs_bonafide_share(difficulty: float) -> tuple[float, float]:
    config = SynthConfig(
        subjects=6,
        samples=1,
        size=128,
        domains=("studio",),
        difficulty=difficulty,
        species=("replay",),
        seed=2,
    )
    share: dict[str, list[float]] = {}
    for spec in plan(config):
        frames, _ = render_sample(spec, config)
        share.setdefault(spec.pai or "bonafide", []).append(high_frequency_share(frames[0]))
    return float(np.mean(share["replay"])), float(np.mean(share["bonafide"]))


def test_replay_moire_survives_the_camera_and_fades_with_difficulty() -> None:
    easy_replay, easy_bonafide = replay_vs_bonafide_share(0.0)
    hard_replay, hard_bonafide = replay_vs_bonafide_share(1.0)
    # The recaptured sub-pixel grid aliases into moiré: far more high-frequency energy...
    assert easy_replay > 2 * easy_bonafide
    # ...and a hard attack (finer screen, sharper source) leaves much less of it.
    assert hard_replay - hard_bonafide < 0.5 * (easy_replay - easy_bonafide)


def test_mask_surface_is_smoother_than_skin() -> None:
    rng = np.random.default_rng(4)
    for _ in range(3):
        # Frontal, clean-shaven and without glasses, so the cheek patches hold only skin.
        identity = replace(Identity.sample(rng), beard=0.0, glasses=False)
        shot = replace(Shot.sample(rng, Light.sample(rng, 5500, 1.0)), yaw=0.0, pitch=0.0, roll=0.0)
        skin, box = render_face(identity, shot, 128)
        mask, _ = render_face(identity, shot, 128, texture=0.15, rigid_sheen=0.0)
        assert face_texture(mask * 255, box) < 0.25 * face_texture(skin * 255, box)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subjects", "-1"], "--subjects must be >= 3"),
        (["--samples", "0"], "--samples must be >= 1"),
        (["--domains", "studio,mars"], "unknown domain(s) mars"),
        (["--difficulty", "1.5"], "--difficulty must lie in [0, 1]"),
        (["--size", "33"], "--size must be an even number"),
        (["--frames", "0"], "--frames must be between 1 and 64"),
    ],
)
def test_bad_arguments_fail_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main(["synth", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unwritable_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["synth", "--out", str(blocker / "set"), "--subjects", "3"]) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_interrupted_run_resumes_to_identical_bytes(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"

    class Stop(Exception):
        pass

    def interrupt(done: int, total: int) -> None:
        if done >= 9:
            raise Stop

    with pytest.raises(Stop):
        generate(out, TINY, workers=1, progress=interrupt)
    assert not (out / "samples.csv").exists()
    assert len(list(out.rglob("*.png"))) == 9
    assert not list(out.rglob(".*.tmp"))
    # A worker killed mid-write leaves a hidden temporary behind: resuming removes it.
    stale = next(out.rglob("*.png")).with_name(".killed.png.abc123.tmp")
    stale.write_bytes(b"half")
    generate(out, TINY, workers=1)
    assert tree_hashes(out) == tree_hashes(tiny_set)


def test_other_settings_in_same_directory_are_refused(tiny_set: Path) -> None:
    other = SynthConfig(subjects=4, samples=1, size=48, domains=("studio", "office"), seed=3)
    with pytest.raises(InputError, match="made with other settings"):
        generate(tiny_set, other, workers=1)
