"""Adapters for OULU-NPU, Replay-Attack, CASIA-FASD and MSU-MFSD on fake trees of empty files.

Small trees check fields, protocol rules and errors; one full tree per dataset,
with every official file name, checks the published split sizes exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from adapter_checks import assert_disjoint_subjects, subjects_by_split, totals
from fasdistill.data.formats import ProtocolError, Sample, get_adapter, split_counts
from fasdistill.data.formats.base import box_from_eyes
from fasdistill.data.formats.casia import CasiaFASD
from fasdistill.data.formats.msu import MsuMFSD
from fasdistill.data.formats.oulu import OuluNPU
from fasdistill.data.formats.replay_attack import ReplayAttack
from fasdistill.errors import InputError


def touch(root: Path, rel: str) -> Path:
    """An empty placeholder file at ``root/rel`` (parents created once, no utime call)."""
    path = root / rel
    if path.parent not in _made:
        path.parent.mkdir(parents=True, exist_ok=True)
        _made.add(path.parent)
    path.touch(exist_ok=False)
    return path


_made: set[Path] = set()  # folders touch() has created (tmp_path differs per test)


def assert_well_formed(samples: list[Sample], root: Path) -> None:
    ids = [s.sample_id for s in samples]
    assert len(ids) == len(set(ids))
    for s in samples:
        assert Path(s.path).is_absolute()
        assert Path(s.path).is_file()
        assert Path(s.path).resolve().is_relative_to(root.resolve())
        assert s.media == "video"
        assert (s.label == "bonafide") == (s.pai == "")


# ----------------------------------------------------------------------------- OULU-NPU

OULU_FOLDERS = {
    "Train_files": range(1, 21),
    "Dev_files": range(21, 36),
    "Test_files": range(36, 56),
}


def oulu_tree(root: Path, users: dict[str, Iterable[int]]) -> Path:
    for folder, numbers in users.items():
        for u in numbers:
            for phone in range(1, 7):
                for session in range(1, 4):
                    for f in range(1, 6):
                        touch(root, f"{folder}/{phone}_{session}_{u:02d}_{f}.avi")
    return root


SMALL_OULU = {"Train_files": [1, 2], "Dev_files": [21], "Test_files": [36]}


def test_oulu_samples_fields_and_skipped(tmp_path: Path) -> None:
    root = oulu_tree(tmp_path, SMALL_OULU)
    touch(root, "Train_files/1_1_01_1.txt")  # eye annotation: neither sample nor skipped
    touch(root, "Train_files/notes.md")
    touch(root, "Train_files/1_1_01_6.avi")  # no file 6
    touch(root, "Train_files/7_1_01_1.avi")  # no phone 7
    touch(root, "Train_files/extra/1_1_01_1.avi")  # not where the layout puts videos
    touch(root, "Dev_files/2_3_22_4.AVI")  # upper-case extension is accepted
    touch(root, "Test_files/.DS_Store")  # hidden files are neither samples nor skipped
    (root / "Test_files" / "loop").symlink_to(root / "Test_files")  # listed once, no hang
    adapter = OuluNPU(root)
    samples = adapter.samples()
    assert len(samples) == 4 * 90 + 1
    assert_well_formed(samples, root)
    assert all(s.split == "" for s in samples)
    assert sorted(adapter.skipped) == [
        "Train_files/1_1_01_6.avi",
        "Train_files/7_1_01_1.avi",
        "Train_files/extra/1_1_01_1.avi",
        "Train_files/notes.md",
    ]
    by_id = {s.sample_id: s for s in samples}
    s = by_id["Test_files/3_2_36_5"]
    assert (s.label, s.pai, s.subject, s.session, s.device, s.domain) == (
        "attack",
        "replay",
        "user36",
        "session2",
        "phone3",
        "oulu-npu",
    )
    assert by_id["Train_files/1_1_01_1"].label == "bonafide"
    assert [by_id[f"Train_files/1_1_01_{f}"].pai for f in range(1, 6)] == [
        "",
        "print",
        "print",
        "replay",
        "replay",
    ]
    assert by_id["Dev_files/2_3_22_4"].pai == "replay"
    assert get_adapter("oulu-npu", root).name == "oulu-npu"


def test_oulu_protocol_rules(tmp_path: Path) -> None:
    adapter = OuluNPU(oulu_tree(tmp_path, SMALL_OULU))
    # per user: 6 phones x 3 sessions x 5 files = 90 videos
    p1 = adapter.protocol("1")
    assert totals(p1) == {"train": 2 * 60, "dev": 60, "test": 30}
    assert {s.session for s in p1 if s.split == "test"} == {"session3"}
    assert {s.session for s in p1 if s.split != "test"} == {"session1", "session2"}
    assert {s.split for s in p1 if s.subject == "user21"} == {"dev"}
    assert_disjoint_subjects(p1)

    p2 = adapter.protocol("2")
    assert totals(p2) == {"train": 2 * 54, "dev": 54, "test": 54}
    assert split_counts(p2)["test"] == {"bonafide": 18, "print": 18, "replay": 18}
    train_files = {s.sample_id[-1] for s in p2 if s.split == "train"}
    test_files = {s.sample_id[-1] for s in p2 if s.split == "test"}
    assert (train_files, test_files) == ({"1", "2", "4"}, {"1", "3", "5"})

    p3 = adapter.protocol("3_2")
    assert totals(p3) == {"train": 2 * 75, "dev": 75, "test": 15}
    assert {s.device for s in p3 if s.split == "test"} == {"phone2"}
    assert "phone2" not in {s.device for s in p3 if s.split != "test"}

    p4 = adapter.protocol("4_6")
    assert totals(p4) == {"train": 2 * 30, "dev": 30, "test": 3}
    test = [s for s in p4 if s.split == "test"]
    assert {(s.device, s.session) for s in test} == {("phone6", "session3")}
    assert sorted(s.sample_id for s in test) == [
        "Test_files/6_3_36_1",
        "Test_files/6_3_36_3",
        "Test_files/6_3_36_5",
    ]
    assert_disjoint_subjects(p4)


def test_oulu_official_lists(tmp_path: Path) -> None:
    root = oulu_tree(tmp_path, SMALL_OULU)
    lists = root / "Protocols" / "Protocol_3"
    lists.mkdir(parents=True)
    (lists / "Train_1.txt").write_text("+1,2_1_01_1\n-1,2_1_01_2\n\n-2,2_1_02_4\n")
    (lists / "Dev_1.txt").write_text("+1,2_1_21_1\r\n")
    (lists / "Test_1.txt").write_text("+1,1_3_36_1\n-2,1_3_36_5,\n")
    samples = OuluNPU(root).protocol("3_1")
    assert sorted((s.split, s.sample_id) for s in samples) == [
        ("dev", "Dev_files/2_1_21_1"),
        ("test", "Test_files/1_3_36_1"),
        ("test", "Test_files/1_3_36_5"),
        ("train", "Train_files/2_1_01_1"),
        ("train", "Train_files/2_1_01_2"),
        ("train", "Train_files/2_1_02_4"),
    ]
    # protocol 3_2 has no list files of its own: an incomplete set is an error
    (lists / "Train_2.txt").write_text("+1,2_1_01_1\n")
    with pytest.raises(ProtocolError) as err:
        OuluNPU(root).protocol("3_2")
    assert err.value.missing == [str(lists / "Dev_2.txt"), str(lists / "Test_2.txt")]
    # protocol 1 still follows the rule (no Protocol_1 folder)
    assert totals(OuluNPU(root).protocol("1")) == {"train": 120, "dev": 60, "test": 30}

    (lists / "Test_1.txt").write_text("+1,1_3_36_1\n+1,4_3_50_1\n")
    with pytest.raises(ProtocolError) as err:
        OuluNPU(root).protocol("3_1")
    assert err.value.missing == ["4_3_50_1.avi (listed in Protocols/Protocol_3/Test_1.txt)"]
    assert "4_3_50_1.avi" in str(err.value)

    (lists / "Test_1.txt").write_text("+1,1_3_36_2\n")
    with pytest.raises(InputError, match=r"Test_1\.txt:1: label code says bona fide"):
        OuluNPU(root).protocol("3_1")
    (lists / "Test_1.txt").write_text("1_3_36_2\n")
    with pytest.raises(InputError, match=r"Test_1\.txt:1: expected"):
        OuluNPU(root).protocol("3_1")
    (lists / "Test_1.txt").write_text("+1,2_1_01_1\n")
    with pytest.raises(InputError, match="also listed in"):
        OuluNPU(root).protocol("3_1")


def test_oulu_face_boxes(tmp_path: Path) -> None:
    root = oulu_tree(tmp_path, {"Train_files": [1], "Dev_files": [21], "Test_files": [36]})
    (root / "Train_files" / "1_1_01_1.txt").write_text(
        "0,100,200,160,200,\n1, 110 ,210,170,210 \n\n2,0,0,0,0\n"
    )
    (root / "Train_files" / "1_1_01_2.txt").write_text(
        "frame,x_reye,y_reye,x_leye,y_leye\n5,10,20,40,20\n"
    )
    (root / "Train_files" / "1_1_01_3.txt").write_text("0,1,2,3\n")
    adapter = OuluNPU(root)
    by_id = {s.sample_id: s for s in adapter.samples()}
    boxes = adapter.face_boxes(by_id["Train_files/1_1_01_1"])
    assert boxes is not None and sorted(boxes) == [0, 1]
    assert boxes[0] == pytest.approx((64.0, 137.6, 132.0, 156.0))
    assert boxes[1] == pytest.approx(box_from_eyes((110, 210), (170, 210)))
    assert adapter.face_boxes(by_id["Train_files/1_1_01_2"]) == {
        5: pytest.approx(box_from_eyes((10, 20), (40, 20)))
    }
    assert adapter.face_boxes(by_id["Train_files/1_1_01_4"]) is None
    with pytest.raises(InputError, match=r"1_1_01_3\.txt:1"):
        adapter.face_boxes(by_id["Train_files/1_1_01_3"])


def test_oulu_errors(tmp_path: Path) -> None:
    root = oulu_tree(tmp_path, {"Train_files": [1]})
    adapter = OuluNPU(root)
    with pytest.raises(ProtocolError) as err:
        adapter.protocol("1")
    assert err.value.missing == [str(root / "Dev_files"), str(root / "Test_files")]
    assert str(root / "Dev_files") in str(err.value)
    with pytest.raises(InputError, match="unknown protocol '5'"):
        adapter.protocol("5")
    with pytest.raises(InputError, match="not a directory"):
        OuluNPU(root / "nope")


def test_oulu_full_tree_published_counts(tmp_path: Path) -> None:
    adapter = OuluNPU(oulu_tree(tmp_path, OULU_FOLDERS))
    assert len(adapter.samples()) == 55 * 90 and adapter.skipped == []
    expected = {"1": (1200, 900, 600), "2": (1080, 810, 1080)}
    expected |= {f"3_{k}": (1500, 1125, 300) for k in range(1, 7)}
    expected |= {f"4_{k}": (600, 450, 60) for k in range(1, 7)}
    assert set(expected) == set(OuluNPU.protocols)
    for name, (train, dev, test) in expected.items():
        samples = adapter.protocol(name)
        assert totals(samples) == {"train": train, "dev": dev, "test": test}, name
        assert_disjoint_subjects(samples)
        if name == "1":
            assert split_counts(samples)["test"] == {"bonafide": 120, "print": 240, "replay": 240}


# ----------------------------------------------------------------------------- Replay-Attack

RA_SPLITS = {"train": range(1, 16), "devel": range(16, 31), "test": range(31, 51)}
RA_ATTACKS = (
    ("print", "highdef_photo"),
    ("mobile", "mobile_photo"),
    ("mobile", "mobile_video"),
    ("highdef", "highdef_photo"),
    ("highdef", "highdef_video"),
)


def replay_tree(root: Path, clients: dict[str, Iterable[int]]) -> Path:
    for folder, numbers in clients.items():
        for c in numbers:
            client = f"client{c:03d}"
            for light in ("adverse", "controlled"):
                for take in (1, 2):
                    touch(
                        root,
                        f"{folder}/real/{client}_session01_webcam_authenticate_{light}_{take}.mov",
                    )
                for support in ("fixed", "hand"):
                    for instrument, medium in RA_ATTACKS:
                        touch(
                            root,
                            f"{folder}/attack/{support}/attack_{instrument}_{client}_session01_"
                            f"{medium}_{light}.mov",
                        )
    return root


SMALL_RA = {"train": [1, 2], "devel": [3], "test": [4]}


def test_replay_samples_fields_and_skipped(tmp_path: Path) -> None:
    root = replay_tree(tmp_path, SMALL_RA)
    touch(root, "enroll/train/client001_session01_enroll_adverse_1.mov")
    touch(root, "train/enroll/client001_session01_enroll_adverse_1.mov")
    touch(root, "train/real/readme.txt")
    touch(root, "train/attack/tripod/attack_print_client001_session01_highdef_photo_adverse.mov")
    touch(root, "devel/attack/hand/attack_laser_client003_session01_laser_photo_adverse.mov")
    touch(root, "test/real/client004_session01_webcam_authenticate_adverse_3.MOV")
    adapter = ReplayAttack(root)
    samples = adapter.samples()
    assert len(samples) == 4 * 24 + 1
    assert_well_formed(samples, root)
    assert all(s.split == "" for s in samples)
    assert sorted(adapter.skipped) == [
        "devel/attack/hand/attack_laser_client003_session01_laser_photo_adverse.mov",
        "train/attack/tripod/attack_print_client001_session01_highdef_photo_adverse.mov",
        "train/real/readme.txt",
    ]
    by_id = {s.sample_id: s for s in samples}
    s = by_id["devel/attack/hand/attack_mobile_client003_session01_mobile_video_controlled"]
    assert (s.label, s.pai, s.subject, s.session, s.device, s.domain) == (
        "attack",
        "mobile",
        "client003",
        "controlled",
        "hand",
        "replay-attack",
    )
    s = by_id["train/real/client001_session01_webcam_authenticate_adverse_2"]
    assert (s.label, s.pai, s.subject, s.session, s.device) == (
        "bonafide",
        "",
        "client001",
        "adverse",
        "webcam",
    )
    assert by_id["test/real/client004_session01_webcam_authenticate_adverse_3"].label == "bonafide"
    assert sum(s.pai == "print" for s in samples) == 4 * 4
    assert sum(s.pai == "highdef" for s in samples) == 4 * 8


def test_replay_protocols(tmp_path: Path) -> None:
    adapter = ReplayAttack(replay_tree(tmp_path, SMALL_RA))
    grand = adapter.protocol("grandtest")
    assert totals(grand) == {"train": 48, "dev": 24, "test": 24}
    assert split_counts(grand)["dev"] == {"bonafide": 4, "print": 4, "mobile": 8, "highdef": 8}
    assert subjects_by_split(grand) == {
        "train": {"client001", "client002"},
        "dev": {"client003"},
        "test": {"client004"},
    }
    for species, per_client in (("print", 4), ("mobile", 8), ("highdef", 8)):
        samples = adapter.protocol(species)
        assert split_counts(samples)["test"] == {"bonafide": 4, species: per_client}
        assert {s.pai for s in samples if s.label == "attack"} == {species}
    for support in ("fixed", "hand"):
        samples = adapter.protocol(support)
        assert totals(samples) == {"train": 2 * 14, "dev": 14, "test": 14}
        assert {s.device for s in samples} == {"webcam", support}


def test_replay_face_boxes(tmp_path: Path) -> None:
    root = replay_tree(tmp_path, SMALL_RA)
    stem = "train/attack/fixed/attack_print_client001_session01_highdef_photo_adverse"
    face = root / "face-locations" / f"{stem}.face"
    face.parent.mkdir(parents=True)
    face.write_text("0 10 20 100 120\n1 0 0 0 0\n\n2 12 22 98 118\n")
    bad = (
        root
        / "face-locations"
        / "train/real/client001_session01_webcam_authenticate_adverse_1.face"
    )
    bad.parent.mkdir(parents=True)
    bad.write_text("0 10 20 100\n")
    adapter = ReplayAttack(root)
    by_id = {s.sample_id: s for s in adapter.samples()}
    assert adapter.face_boxes(by_id[stem]) == {0: (10.0, 20.0, 100.0, 120.0), 2: (12, 22, 98, 118)}
    other = "train/attack/hand/attack_print_client001_session01_highdef_photo_adverse"
    assert adapter.face_boxes(by_id[other]) is None
    with pytest.raises(InputError, match=r"adverse_1\.face:1: expected 'frame x y w h'"):
        adapter.face_boxes(by_id["train/real/client001_session01_webcam_authenticate_adverse_1"])


def test_replay_errors(tmp_path: Path) -> None:
    root = replay_tree(tmp_path, {"train": [1], "test": [2]})
    (root / "test" / "attack").rename(root / "test" / "attacks")
    adapter = ReplayAttack(root)
    with pytest.raises(ProtocolError) as err:
        adapter.protocol("print")
    assert err.value.missing == [
        str(root / "devel" / "attack"),
        str(root / "devel" / "real"),
        str(root / "test" / "attack"),
    ]
    assert str(root / "devel" / "real") in str(err.value)
    with pytest.raises(InputError, match="unknown protocol 'photo'"):
        adapter.protocol("photo")


def test_replay_full_tree_published_counts(tmp_path: Path) -> None:
    adapter = ReplayAttack(replay_tree(tmp_path, RA_SPLITS))
    assert len(adapter.samples()) == 50 * 24 and adapter.skipped == []
    grand = adapter.protocol("grandtest")
    assert totals(grand) == {"train": 360, "dev": 360, "test": 480}
    counts = split_counts(grand)
    assert counts["train"] == {"bonafide": 60, "print": 60, "mobile": 120, "highdef": 120}
    assert counts["test"] == {"bonafide": 80, "print": 80, "mobile": 160, "highdef": 160}
    expected = {
        "print": (120, 120, 160),
        "mobile": (180, 180, 240),
        "highdef": (180, 180, 240),
        "fixed": (210, 210, 280),
        "hand": (210, 210, 280),
    }
    assert set(expected) | {"grandtest"} == set(ReplayAttack.protocols)
    for name, (train, dev, test) in expected.items():
        samples = adapter.protocol(name)
        assert totals(samples) == {"train": train, "dev": dev, "test": test}, name
        assert_disjoint_subjects(samples)
    assert_disjoint_subjects(grand)


# ----------------------------------------------------------------------------- CASIA-FASD

CASIA_NAMES = ("1", "2", "HR_1", "3", "4", "HR_2", "5", "6", "HR_3", "7", "8", "HR_4")


def casia_tree(root: Path, train: Iterable[int], test: Iterable[int]) -> Path:
    for release, subjects in (("train_release", train), ("test_release", test)):
        for n in subjects:
            for name in CASIA_NAMES:
                touch(root, f"{release}/{n}/{name}.avi")
    return root


def test_casia_samples_fields_and_skipped(tmp_path: Path) -> None:
    root = casia_tree(tmp_path, range(1, 7), range(1, 3))
    touch(root, "train_release/1/9.avi")
    touch(root, "train_release/1/HR_5.avi")
    touch(root, "train_release/1/1.txt")
    touch(root, "train_release/extra/1.avi")
    touch(root, "train_release/1.avi")
    touch(root, "test_release/2/hr_4.AVI")  # case-insensitive name and extension
    adapter = CasiaFASD(root)
    samples = adapter.samples()
    assert len(samples) == 8 * 12 + 1
    assert_well_formed(samples, root)
    assert sorted(adapter.skipped) == [
        "train_release/1.avi",
        "train_release/1/1.txt",
        "train_release/1/9.avi",
        "train_release/1/HR_5.avi",
        "train_release/extra/1.avi",
    ]
    by_id = {s.sample_id: s for s in samples}
    expected = {
        "1": ("bonafide", "", "low"),
        "2": ("bonafide", "", "normal"),
        "HR_1": ("bonafide", "", "high"),
        "3": ("attack", "warped_photo", "low"),
        "4": ("attack", "warped_photo", "normal"),
        "HR_2": ("attack", "warped_photo", "high"),
        "5": ("attack", "cut_photo", "low"),
        "6": ("attack", "cut_photo", "normal"),
        "HR_3": ("attack", "cut_photo", "high"),
        "7": ("attack", "replay", "low"),
        "8": ("attack", "replay", "normal"),
        "HR_4": ("attack", "replay", "high"),
    }
    for name, fields in expected.items():
        s = by_id[f"test_release/1/{name}"]
        assert (s.label, s.pai, s.device) == fields, name
        assert (s.subject, s.domain, s.split) == ("test_1", "casia-fasd", "")
    assert by_id["train_release/1/1"].subject == "train_1"
    assert by_id["test_release/2/hr_4"].pai == "replay"


def test_casia_protocols(tmp_path: Path) -> None:
    adapter = CasiaFASD(casia_tree(tmp_path, range(1, 7), range(1, 3)))
    overall = adapter.protocol("overall")
    # carve_dev over train_1..train_6 (natural order): every 5th from the first
    assert subjects_by_split(overall) == {
        "train": {"train_2", "train_3", "train_4", "train_5"},
        "dev": {"train_1", "train_6"},
        "test": {"test_1", "test_2"},
    }
    assert totals(overall) == {"train": 48, "dev": 24, "test": 24}
    for quality in ("low", "normal", "high"):
        samples = adapter.protocol(quality)
        assert totals(samples) == {"train": 48, "dev": 24, "test": 8}, quality
        assert {s.device for s in samples if s.split == "test"} == {quality}
        assert {s.device for s in samples if s.split == "train"} == {"low", "normal", "high"}
    for name, species in (("warped", "warped_photo"), ("cut", "cut_photo"), ("video", "replay")):
        samples = adapter.protocol(name)
        assert split_counts(samples)["test"] == {"bonafide": 6, species: 6}, name
        assert totals(samples)["train"] == 48


def test_casia_errors(tmp_path: Path) -> None:
    root = casia_tree(tmp_path, range(1, 3), ())
    adapter = CasiaFASD(root)
    with pytest.raises(ProtocolError) as err:
        adapter.protocol("overall")
    assert err.value.missing == [str(root / "test_release")]
    assert "test_release" in str(err.value)
    with pytest.raises(InputError, match="unknown protocol 'print'"):
        adapter.protocol("print")
    assert adapter.face_boxes(adapter.samples()[0]) is None


def test_casia_full_tree_published_counts(tmp_path: Path) -> None:
    adapter = CasiaFASD(casia_tree(tmp_path, range(1, 21), range(1, 31)))
    samples = adapter.samples()
    assert len(samples) == 600 and adapter.skipped == []
    assert sum(s.subject.startswith("train_") for s in samples) == 240
    assert sum(s.subject.startswith("test_") for s in samples) == 360
    expected = {"overall": 360, "low": 120, "normal": 120, "high": 120}
    expected |= {"warped": 180, "cut": 180, "video": 180}
    assert set(expected) == set(CasiaFASD.protocols)
    for name, test in expected.items():
        split = adapter.protocol(name)
        # dev: 4 of the 20 training subjects (carve_dev), 12 videos each
        assert totals(split) == {"train": 192, "dev": 48, "test": test}, name
        assert_disjoint_subjects(split)
    assert split_counts(adapter.protocol("overall"))["test"] == {
        "bonafide": 90,
        "warped_photo": 90,
        "cut_photo": 90,
        "replay": 90,
    }


# ----------------------------------------------------------------------------- MSU-MFSD

MSU_TRAIN = (2, 3, 5, 6, 7, 8, 9, 11, 12, 21, 22, 34, 53, 54, 55)
MSU_TEST = (1, 13, 14, 23, 24, 26, 28, 29, 30, 32, 33, 35, 36, 37, 39, 42, 48, 49, 50, 51)


def msu_tree(root: Path, clients: Iterable[int]) -> Path:
    for c in clients:
        for device, ext in (("android", "mp4"), ("laptop", "mov")):
            touch(root, f"real/real_client{c:03d}_{device}_SD_scene01.{ext}")
            for species in ("printed_photo", "ipad_video", "iphone_video"):
                touch(root, f"attack/attack_client{c:03d}_{device}_SD_{species}_scene01.{ext}")
    return root


def write_lists(root: Path, train: Iterable[int], test: Iterable[int]) -> None:
    (root / "train_sub_list.txt").write_text("".join(f"{c:03d}\n" for c in train) + "\n")
    (root / "test_sub_list.txt").write_text("\n".join(str(c) for c in test) + "\n\n")


def test_msu_samples_fields_and_skipped(tmp_path: Path) -> None:
    root = msu_tree(tmp_path, (2, 3))
    touch(root, "real/attack_client002_android_SD_ipad_video_scene01.mp4")  # wrong folder
    touch(root, "attack/attack_client002_android_SD_scene01.mp4")  # attack without species
    touch(root, "attack/attack_client002_android_SD_ipad_video_scene01.avi")
    touch(root, "real/REAL_CLIENT003_LAPTOP_SD_SCENE01.MOV.bak")
    touch(root, "real/real_client009_android_SD_scene01.MP4")
    touch(root, "real/real_client002_android_SD_scene01.mov")  # same id as the .mp4: one kept
    adapter = MsuMFSD(root)
    samples = adapter.samples()
    assert len(samples) == 2 * 8 + 1
    assert_well_formed(samples, root)
    assert sorted(adapter.skipped) == [
        "attack/attack_client002_android_SD_ipad_video_scene01.avi",
        "attack/attack_client002_android_SD_scene01.mp4",
        "real/REAL_CLIENT003_LAPTOP_SD_SCENE01.MOV.bak",
        "real/attack_client002_android_SD_ipad_video_scene01.mp4",
        "real/real_client002_android_SD_scene01.mp4",
    ]
    by_id = {s.sample_id: s for s in samples}
    s = by_id["attack/attack_client003_laptop_SD_iphone_video_scene01"]
    assert (s.label, s.pai, s.subject, s.device, s.session, s.domain) == (
        "attack",
        "iphone_video",
        "client003",
        "laptop",
        "scene01",
        "msu-mfsd",
    )
    s = by_id["real/real_client002_android_SD_scene01"]
    assert (s.label, s.pai, s.subject, s.device) == ("bonafide", "", "client002", "android")
    assert by_id["real/real_client009_android_SD_scene01"].subject == "client009"
    assert {s.pai for s in samples} == {"", "printed_photo", "ipad_video", "iphone_video"}


def test_msu_protocol(tmp_path: Path) -> None:
    root = msu_tree(tmp_path, (2, 3, 5, 6, 7, 8, 1, 13, 99))
    write_lists(root, (2, 3, 5, 6, 7, 8), (1, 13))
    samples = MsuMFSD(root).protocol("grandtest")
    assert subjects_by_split(samples) == {
        "train": {"client003", "client005", "client006", "client007"},
        "dev": {"client002", "client008"},
        "test": {"client001", "client013"},
    }  # client099 is in neither list
    assert totals(samples) == {"train": 32, "dev": 16, "test": 16}
    assert split_counts(samples)["test"] == {
        "bonafide": 4,
        "printed_photo": 4,
        "ipad_video": 4,
        "iphone_video": 4,
    }


def test_msu_errors(tmp_path: Path) -> None:
    root = msu_tree(tmp_path, (2, 1))
    adapter = MsuMFSD(root)
    with pytest.raises(ProtocolError) as err:
        adapter.protocol("grandtest")
    assert err.value.missing == [str(root / "test_sub_list.txt"), str(root / "train_sub_list.txt")]
    assert "train_sub_list.txt" in str(err.value)

    write_lists(root, (2,), (1, 4))
    with pytest.raises(ProtocolError) as err:
        adapter.protocol("grandtest")
    assert err.value.missing == ["videos of client004 (listed in test_sub_list.txt line 2)"]

    write_lists(root, (2, 1), (1,))
    with pytest.raises(InputError, match="client001 are listed in both"):
        adapter.protocol("grandtest")
    (root / "train_sub_list.txt").write_text("2\nclient 3\n")
    with pytest.raises(InputError, match=r"train_sub_list\.txt:2: expected a client number"):
        adapter.protocol("grandtest")
    with pytest.raises(InputError, match="unknown protocol 'protocol1'"):
        adapter.protocol("protocol1")


def test_msu_full_tree_published_counts(tmp_path: Path) -> None:
    root = msu_tree(tmp_path, MSU_TRAIN + MSU_TEST)
    write_lists(root, MSU_TRAIN, MSU_TEST)
    adapter = MsuMFSD(root)
    assert len(adapter.samples()) == 280 and adapter.skipped == []
    samples = adapter.protocol("grandtest")
    counts = totals(samples)
    assert counts["train"] + counts["dev"] == 120  # 15 official training clients
    # dev: 3 of the 15 training clients (carve_dev), 8 videos each
    assert counts == {"train": 96, "dev": 24, "test": 160}
    assert len(subjects_by_split(samples)["test"]) == 20
    assert_disjoint_subjects(samples)
    assert MsuMFSD.protocols == ("grandtest",)
