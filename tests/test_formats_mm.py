"""Adapters for the multi-modal sets CASIA-SURF, CeFA and WMCA on fake trees.

Tiny 8x8 images and HDF5 recordings stand in for the media where frames are read;
elsewhere folders and empty files with the official names. CeFA's split rule is
checked on a full tree of its 6,000 named videos against the authors' video counts.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from adapter_checks import assert_disjoint_subjects, subjects_by_split, totals
from fasdistill.data.formats import ProtocolError, get_adapter, split_counts
from fasdistill.data.formats.casia_surf import CasiaSurf
from fasdistill.data.formats.cefa import CeFA, frame_names
from fasdistill.data.formats.wmca import WMCA, to_bgr
from fasdistill.errors import InputError

MODALITIES = ("rgb", "depth", "ir")


def image(path: Path, value: int, size: tuple[int, int] = (8, 8), grey: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if grey else (size[1], size[0], 3)
    assert cv2.imwrite(str(path), np.full(shape, value, np.uint8))


def assert_registered(adapter, sample, count=None) -> dict[str, list[int]]:
    """Every modality yields the same frame indices, as BGR uint8 frames of one size."""
    indices, sizes = {}, set()
    for modality in MODALITIES:
        frames, missing = adapter.read_frames(sample, modality, count, None)
        assert missing == []
        indices[modality] = [i for i, _ in frames]
        for _, frame in frames:
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
            sizes.add(frame.shape)
    assert len(set(map(tuple, indices.values()))) == 1 and len(sizes) == 1
    return indices


# ----------------------------------------------------------------------------- CASIA-SURF

SURF_TRAIN = {"CLKJ_AS0005": ("real.rssdk", "04_en_b.rssdk"), "CLKJ_CS0110": ("real.rssdk",)}


def surf_tree(root: Path, two_columns: bool = False) -> Path:
    """Train: 2 subjects, 2 frames per recording; Val and Testing: 3 and 4 triples."""
    lines: dict[str, list[str]] = {"train_list.txt": [], "val_private_list.txt": []}
    lines["test_private_list.txt"] = []
    for subject, recordings in SURF_TRAIN.items():
        for rec in recordings:
            part = "real_part" if rec.startswith("real") else "fake_part"
            for n in (1, 11):
                rel = {
                    m: f"Training/{part}/{subject}/{rec}/{m}/{n}.jpg"
                    for m in ("color", "depth", "ir")
                }
                for m, path in rel.items():
                    image(root / path, 40, grey=m != "color")
                label = "1" if part == "real_part" else "0"
                lines["train_list.txt"].append(f"{rel['color']} {rel['depth']} {rel['ir']} {label}")
    for folder, list_name, labels in (
        ("Val", "val_private_list.txt", "101"),
        ("Testing", "test_private_list.txt", "1000"),
    ):
        for i, label in enumerate(labels):
            stem = f"{folder}/000{i // 2}/{i:06d}"
            for m in ("color", "depth", "ir"):
                image(root / f"{stem}-{m}.jpg", 90, size=(10, 12), grey=m != "color")
            paths = (
                f"{stem}-color.jpg"
                if two_columns
                else " ".join(f"{stem}-{m}.jpg" for m in ("color", "depth", "ir"))
            )
            lines[list_name].append(f"{paths} {label}")
    for name, text in lines.items():
        (root / name).write_text("\n".join(text) + "\n")
    return root


def test_casia_surf_official_lists(tmp_path: Path) -> None:
    root = surf_tree(tmp_path)
    (root / "Val" / "notes.txt").write_text("x")
    adapter = get_adapter("casia-surf", root)
    assert isinstance(adapter, CasiaSurf) and adapter.modalities == MODALITIES
    samples = adapter.protocol("official")
    # one sample per list line, the split is the list
    assert totals(samples) == {"train": 6, "dev": 3, "test": 4}
    assert split_counts(samples) == {
        "train": {"bonafide": 4, "print": 2},
        "dev": {"bonafide": 2, "print": 1},
        "test": {"bonafide": 1, "print": 3},
    }
    by_id = {s.sample_id: s for s in samples}
    s = by_id["Training/fake_part/CLKJ_AS0005/04_en_b.rssdk/color/11"]
    assert (s.media, s.label, s.pai, s.subject) == ("image", "attack", "print", "CLKJ_AS0005")
    assert s.modality_path("depth").endswith("04_en_b.rssdk/depth/11.jpg")
    assert {x.subject for x in samples if x.split != "train"} == {""}
    assert all(Path(x.modality_path(m)).is_file() for x in samples for m in MODALITIES)
    assert adapter.skipped == ["Val/notes.txt"]
    assert [x.split for x in adapter.samples()] == [""] * 13

    val = by_id["Val/0000/000000-color"]
    assert assert_registered(adapter, val) == {m: [0] for m in MODALITIES}
    assert adapter.face_boxes(val) == {0: (0.0, 0.0, 10.0, 12.0)}


def test_casia_surf_older_list_names_and_two_columns(tmp_path: Path) -> None:
    root = surf_tree(tmp_path, two_columns=True)
    (root / "val_private_list.txt").rename(root / "val_label.txt")
    samples = CasiaSurf(root).protocol("official")
    assert totals(samples) == {"train": 6, "dev": 3, "test": 4}
    test = next(s for s in samples if s.sample_id == "Testing/0001/000003-color")
    assert test.modality_path("ir").endswith("Testing/0001/000003-ir.jpg")


def test_casia_surf_errors(tmp_path: Path) -> None:
    root = surf_tree(tmp_path)
    with pytest.raises(InputError, match="unknown protocol 'grandtest'"):
        CasiaSurf(root).protocol("grandtest")
    listed = root / "Testing/0001/000003-ir.jpg"
    listed.unlink()
    with pytest.raises(ProtocolError) as err:
        CasiaSurf(root).protocol("official")
    assert err.value.missing == ["Testing/0001/000003-ir.jpg (listed in test_private_list.txt)"]
    (root / "test_private_list.txt").unlink()
    with pytest.raises(ProtocolError, match=r"test_private_list\.txt"):
        CasiaSurf(root).protocol("official")

    root = surf_tree(tmp_path / "b")
    train = root / "train_list.txt"
    text = train.read_text()
    train.write_text(text.replace(" 0\n", " 1\n", 1))
    with pytest.raises(InputError, match=r"train_list\.txt:3: label says bonafide .* fake_part"):
        CasiaSurf(root).protocol("official")
    first = text.splitlines()[0]
    train.write_text(text + first + "\n")
    with pytest.raises(InputError, match=r"already listed at train_list\.txt:1"):
        CasiaSurf(root).protocol("official")
    train.write_text("Training/x.jpg 1\n")
    with pytest.raises(InputError, match=r"train_list\.txt:1: expected"):
        CasiaSurf(root).protocol("official")


# ----------------------------------------------------------------------------- CeFA

CEFA_CODES = ("1_1_1", "3_1_2", "3_2_2", "3_1_4")  # bona fide, print x2, replay per subject
# The authors' video lists (github.com/liuajian/CASIA-FAS-Dataset, CASIA_CeFA/readme.md):
# train / dev / test videos; every test set there also holds the 1,123 3D and silicone
# mask videos of the mask subsets, which are outside the ethnicity naming.
CEFA_PUBLISHED = {
    "1@1": (800, 400, 2723),
    "2@1": (1800, 900, 2323),
    "2@2": (1200, 600, 2923),
    "4@1": (400, 200, 2323),
}
CEFA_MASK_VIDEOS = 1123


def test_cefa_rule_matches_published_counts(tmp_path: Path) -> None:
    """All 3 x 500 subjects x 4 videos of the ethnicity part, named by code."""
    for e in "123":
        for s in range(500):
            for code in CEFA_CODES:
                (tmp_path / "videos" / f"{e}_{s:03d}_{code}" / "profile").mkdir(parents=True)
    adapter = CeFA(tmp_path)
    assert adapter.skipped == [] and len(adapter.samples()) == 6000
    for name in adapter.protocols:
        samples = adapter.protocol(name)
        published = CEFA_PUBLISHED[name[:2] + ("1" if name[0] in "14" else name[2])]
        got = totals(samples)
        assert (got["train"], got["dev"], got["test"] + CEFA_MASK_VIDEOS) == published, name
        assert_disjoint_subjects(samples)
        by_split = subjects_by_split(samples)
        assert {len(v) for k, v in by_split.items() if k != "test"} in ({200, 100}, {600, 300})
        train_domains = {s.domain for s in samples if s.split != "test"}
        test_domains = {s.domain for s in samples if s.split == "test"}
        if name[0] in "14":  # cross-ethnicity: train and dev on one, test on the others
            assert train_domains == {("AF", "CA", "EA")[int(name[2]) - 1]}
            assert not train_domains & test_domains and len(test_domains) == 2
    p4 = split_counts(adapter.protocol("4@2"))
    assert p4 == {
        "train": {"bonafide": 200, "replay": 200},
        "dev": {"bonafide": 100, "replay": 100},
        "test": {"bonafide": 400, "print": 800},
    }
    assert set(split_counts(adapter.protocol("2@1"))["test"]) == {"bonafide", "replay"}


def cefa_video(folder: Path, frames: int = 3, skip_depth: int | None = None) -> None:
    for m in ("profile", "depth", "ir"):
        for n in range(1, frames + 1):
            if not (m == "depth" and n == skip_depth):
                image(folder / m / f"{n:04d}.jpg", 30 * n, grey=m != "profile")


def cefa_challenge(root: Path) -> Path:
    """4@1 as shipped: named train folders, anonymised dev and test, labelled lists."""
    train = []
    for s in range(2):
        for code, label in (("1_1_1", 1), ("3_1_4", 0)):
            name = f"1_{s:03d}_{code}"
            cefa_video(root / "train" / name, frames=2)
            train += [f"train/{name}/profile/{n:04d}.jpg {label}" for n in (1, 2)]
    (root / "4@1_train.txt").write_text("\n".join(train) + "\n")
    dev = [f"dev/{3000 + i:06d} {label}" for i, label in enumerate((1, 0, 0))]
    test = [f"test/{1 + i:06d} {label}" for i, label in enumerate((1, 1, 0, 0, 0))]
    for line in dev + test:
        cefa_video(root / line.split()[0], frames=1)
    (root / "4@1_dev_res.txt").write_text("\n".join(x.split()[0] for x in dev) + "\n")
    (root / "4@1_dev_ref.txt").write_text("\n".join(dev) + "\n")
    (root / "4@1_test_ref.txt").write_text("\n".join(test) + "\n")
    return root


def test_cefa_challenge_lists(tmp_path: Path) -> None:
    adapter = get_adapter("cefa", cefa_challenge(tmp_path))
    assert adapter.modalities == MODALITIES
    samples = adapter.protocol("4@1")
    assert split_counts(samples) == {
        "train": {"bonafide": 2, "replay": 2},
        "dev": {"bonafide": 1, "replay": 2},
        "test": {"bonafide": 2, "print": 3},
    }
    by_id = {s.sample_id: s for s in samples}
    named = by_id["train/1_001_3_1_4"]
    assert (named.subject, named.domain, named.session, named.device) == (
        "AF-001",
        "AF",
        "session1",
        "device3",
    )
    assert (named.media, Path(named.path).name) == ("video", "profile")
    assert {(s.subject, s.domain) for s in samples if s.split == "dev"} == {("", "AF")}
    assert {(s.subject, s.domain) for s in samples if s.split == "test"} == {("", "")}
    assert adapter.skipped == []
    assert {s.sample_id for s in adapter.samples()} == {s.sample_id for s in samples[:4]}


def test_cefa_read_frames(tmp_path: Path) -> None:
    cefa_video(tmp_path / "train" / "2_007_1_1_1", frames=3)
    cefa_video(tmp_path / "train" / "2_007_3_1_4", frames=3, skip_depth=2)
    (tmp_path / "train" / "2_007_1_1_1" / "profile" / ".hidden.jpg").write_bytes(b"")
    adapter = CeFA(tmp_path)
    live, replay = sorted(adapter.samples(), key=lambda s: s.sample_id)
    assert assert_registered(adapter, live) == {m: [0, 1, 2] for m in MODALITIES}
    assert assert_registered(adapter, live, count=2) == {m: [0, 2] for m in MODALITIES}
    frames, _ = adapter.read_frames(live, "ir", None, 2)
    assert [(i, int(f[0, 0, 0])) for i, f in frames] == [(0, 30), (2, 90)]
    frames, missing = adapter.read_frames(replay, "depth", None, None)
    assert ([i for i, _ in frames], missing) == ([0, 2], [1])
    for n in ("10.jpg", "9.jpg", "x.txt"):
        (tmp_path / n).write_bytes(b"")
    assert frame_names(tmp_path) == ["9.jpg", "10.jpg"]


def test_cefa_errors(tmp_path: Path) -> None:
    root = cefa_challenge(tmp_path)
    with pytest.raises(InputError, match="unknown protocol '3@1'"):
        CeFA(root).protocol("3@1")
    # 4@2 has no lists, and no named dev or test videos for its rule
    with pytest.raises(ProtocolError, match=r"4@2_dev_ref\.txt"):
        CeFA(root).protocol("4@2")
    (root / "4@1_dev_ref.txt").rename(root / "dev_ref.bak")
    with pytest.raises(ProtocolError, match=r"4@1_dev_res\.txt has no labels") as err:
        CeFA(root).protocol("4@1")
    assert len(err.value.missing) == 1
    (root / "dev_ref.bak").rename(root / "4@1_dev_ref.txt")

    test_list = root / "4@1_test_ref.txt"
    original = test_list.read_text()
    test_list.write_text(original + "test/000099 1\n")
    with pytest.raises(ProtocolError) as err:
        CeFA(root).protocol("4@1")
    assert err.value.missing == ["test/000099/ (listed in 4@1_test_ref.txt)"]
    test_list.write_text(original + "dev/003000 1\n")
    with pytest.raises(InputError, match=r"also listed in 4@1_dev_ref\.txt"):
        CeFA(root).protocol("4@1")
    test_list.write_text(original)

    train = root / "4@1_train.txt"
    lines = train.read_text().splitlines()
    train.write_text("\n".join([*lines, lines[0][:-1] + "0"]) + "\n")
    with pytest.raises(InputError, match="frames of train/1_000_1_1_1 carry different labels"):
        CeFA(root).protocol("4@1")
    train.write_text(lines[2].replace(" 0", " 1") + "\n")
    with pytest.raises(InputError, match=r"4@1_train\.txt:1: the list says bonafide"):
        CeFA(root).protocol("4@1")
    train.write_text("train/1_000_1_1_1\n")
    with pytest.raises(InputError, match=r"4@1_train\.txt:1: expected"):
        CeFA(root).protocol("4@1")


# ----------------------------------------------------------------------------- WMCA

WMCA_ATTACKS = {  # species -> (type id, PAI id, attack type as the protocol files spell it)
    "glasses": ("1", "01", "glasses"),
    "fakehead": ("2", "02", "fakehead"),
    "rigidmask": ("2", "05", "rigidmask"),
    "flexiblemask": ("2", "06", "flexiblemask"),
    "papermask": ("2", "07", "papermask"),
    "print": ("3", "03", "prints"),
    "replay": ("4", "04", "replay"),
}
WMCA_CLIENTS = {"001": "train", "002": "train", "003": "dev", "004": "eval"}


def recording(path: Path, channels: int, frames: int = 3, dtype=np.uint8, skip=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for n in range(frames):
            if n != skip:
                values = np.arange(1, channels + 1, dtype=dtype)[:, None, None] * (n + 1)
                f.create_dataset(f"Frame_{n}/array", data=np.broadcast_to(values, (channels, 8, 8)))


def wmca_tree(root: Path) -> Path:
    """Per client one bona fide and one recording of each attack, both stations."""
    rows = ["path,label,attack_type,group"]
    for client, group in WMCA_CLIENTS.items():
        kinds = [("0", "00", "bonafide"), *WMCA_ATTACKS.values()]
        for type_id, pai_id, attack in kinds:
            rel = f"2{client[-1]}.01.18/{client}_01_000_{type_id}_{pai_id}"
            recording(root / "preprocessed-face-station_RGB" / f"{rel}.hdf5", 3)
            recording(root / "preprocessed-face-station_CDIT" / f"{rel}.hdf5", 4)
            rows.append(f"face-station/{rel},{int(type_id != '0')},{attack},{group}")
    (root / "wmca-protocols-csv").mkdir()
    (root / "wmca-protocols-csv" / "PROTOCOL-grandtest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_wmca_grandtest_and_loo_rule(tmp_path: Path) -> None:
    adapter = get_adapter("wmca", wmca_tree(tmp_path))
    assert isinstance(adapter, WMCA) and adapter.modalities == MODALITIES
    grand = adapter.protocol("grandtest")
    assert totals(grand) == {"train": 16, "dev": 8, "test": 8}
    assert split_counts(grand)["test"] == {"bonafide": 1, **{a: 1 for a in WMCA_ATTACKS}}
    assert_disjoint_subjects(grand)
    s = next(x for x in grand if x.sample_id == "23.01.18/003_01_000_2_06")
    assert (s.label, s.pai, s.subject, s.session, s.split) == (
        "attack",
        "flexiblemask",
        "client003",
        "session01",
        "dev",
    )
    assert s.modality_path("depth") == s.modality_path("ir") != s.path
    for name in adapter.protocols[1:]:
        left_out = "print" if name == "LOO_prints" else name[4:]
        loo = adapter.protocol(name)
        assert totals(loo) == {"train": 14, "dev": 7, "test": 2}, name
        assert split_counts(loo)["test"] == {"bonafide": 1, left_out: 1}
        assert left_out not in {x.pai for x in loo if x.split != "test"}
        assert_disjoint_subjects(loo)
    assert len(adapter.samples()) == 32 and {x.split for x in adapter.samples()} == {""}


def test_wmca_loo_file_and_read_frames(tmp_path: Path) -> None:
    root = wmca_tree(tmp_path)
    own = root / "wmca-protocols-csv" / "PROTOCOL-LOO_replay.csv"
    own.write_text("face-station/21.01.18/001_01_000_4_04,1,replay,eval\n")
    assert [(s.split, s.pai) for s in WMCA(root).protocol("LOO_replay")] == [("test", "replay")]

    adapter = WMCA(root)
    sample = next(s for s in adapter.protocol("grandtest") if s.pai == "replay")
    assert assert_registered(adapter, sample, count=2) == {m: [0, 2] for m in MODALITIES}
    rgb, depth, ir = (adapter.read_frames(sample, m, 1, None)[0][0][1] for m in MODALITIES)
    assert rgb[0, 0].tolist() == [3, 2, 1]  # stored RGB, returned BGR
    assert (depth[0, 0].tolist(), ir[0, 0].tolist()) == ([2, 2, 2], [3, 3, 3])
    assert adapter.face_boxes(sample) == {n: (0.0, 0.0, 8.0, 8.0) for n in range(3)}

    cdit = Path(sample.modality_path("depth"))
    recording(cdit, 4, frames=3, skip=1)
    frames, missing = adapter.read_frames(sample, "depth", None, None)
    assert ([i for i, _ in frames], missing) == ([0, 2], [1])
    cdit.unlink()
    bare = next(s for s in WMCA(root).protocol("grandtest") if s.pai == "replay")
    assert bare.modalities == ()
    with pytest.raises(InputError, match="no depth recording"):
        adapter.read_frames(bare, "depth", None, None)


def test_wmca_bit_depths() -> None:
    deep = np.zeros((4, 2, 2), np.uint16)
    deep[1] = [[0, 257], [65535, 65535]]
    assert to_bgr(deep, 1)[..., 0].tolist() == [[0, 1], [255, 255]]
    assert to_bgr(np.full((4, 2, 2), 0.5, np.float32), 2)[0, 0].tolist() == [128, 128, 128]
    with pytest.raises(InputError, match=r"expected a \(3, H, W\) RGB frame"):
        to_bgr(np.zeros((4, 2, 2), np.uint8), None)


def test_wmca_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = wmca_tree(tmp_path)
    with pytest.raises(InputError, match="unknown protocol 'LOO_makeup'"):
        WMCA(root).protocol("LOO_makeup")
    csv = root / "wmca-protocols-csv" / "PROTOCOL-grandtest.csv"
    text = csv.read_text()
    csv.write_text(text + "face-station/24.01.18/004_01_000_2_09,1,wig,eval\n")
    with pytest.raises(InputError, match=r"csv:34: unknown attack type 'wig'"):
        WMCA(root).protocol("grandtest")
    csv.write_text(text.replace("004_01_000_0_00,0", "004_01_000_0_00,1"))
    with pytest.raises(InputError, match="label 1 contradicts type 0"):
        WMCA(root).protocol("grandtest")
    csv.write_text(text + "004_01_000_0_00;0\n")
    with pytest.raises(InputError, match=r"csv:34: expected"):
        WMCA(root).protocol("grandtest")
    csv.write_text(text + text.splitlines()[1] + "\n")
    with pytest.raises(InputError, match="already listed on line 2"):
        WMCA(root).protocol("grandtest")
    csv.write_text(text)
    rgb = root / "preprocessed-face-station_RGB" / "22.01.18" / "002_01_000_3_03.hdf5"
    rgb.rename(rgb.with_suffix(".bak"))
    with pytest.raises(ProtocolError) as err:
        WMCA(root).protocol("grandtest")
    assert err.value.missing == ["preprocessed-face-station_RGB/22.01.18/002_01_000_3_03.hdf5"]
    rgb.with_suffix(".bak").rename(rgb)
    csv.unlink()
    with pytest.raises(ProtocolError, match=r"PROTOCOL-grandtest\.csv"):
        WMCA(root).protocol("LOO_glasses")

    sample = WMCA(wmca_tree(tmp_path / "b")).samples()[0]
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(InputError, match=r'pip install "fasdistill\[hdf5\]"'):
        WMCA(tmp_path / "b").read_frames(sample, "rgb", None, None)
    with pytest.raises(InputError, match=r'needs h5py: pip install "fasdistill\[hdf5\]"'):
        WMCA(tmp_path / "b").protocol("grandtest")


def test_registry_lists_the_multimodal_sets(tmp_path: Path) -> None:
    assert Counter(
        get_adapter(name, tmp_path).modalities for name in ("casia-surf", "cefa", "wmca")
    ) == {MODALITIES: 3}
