"""Adapters for SiW, CelebA-Spoof, user folders, SynthSpoof and the O/C/I/M cross-domain protocols.

Fake trees of empty placeholder files (real JSON, CSV and box text where the
adapter reads them; real small images where CelebA-Spoof reads a header) check
counts, labels, species, subjects, splits per protocol and errors, with exact numbers.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest

from adapter_checks import assert_disjoint_subjects, subjects_by_split, totals
from fasdistill.data.formats import ProtocolError, Sample, get_adapter, split_counts
from fasdistill.data.formats.base import box_from_eyes
from fasdistill.data.formats.celeba_spoof import CelebASpoof, image_size
from fasdistill.data.formats.cross_domain import CrossDomain
from fasdistill.data.formats.folder import FolderDataset, hash_split
from fasdistill.data.formats.siw import SiW, parse_code
from fasdistill.data.formats.synthspoof import SynthSpoofDataset
from fasdistill.data.synth import SynthConfig, generate
from fasdistill.errors import InputError


def touch(root: Path, rel: str, text: str = "") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def assert_well_formed(samples: list[Sample]) -> None:
    ids = [s.sample_id for s in samples]
    assert len(ids) == len(set(ids))
    for s in samples:
        assert Path(s.path).is_absolute() and Path(s.path).is_file(), s.path
        assert (s.label == "bonafide") == (s.pai == "")


# ----------------------------------------------------------------------------- SiW

SIW_TRAIN = ("001", "002", "003")  # carve_dev -> 001 is dev
SIW_TEST = ("090", "091")


def siw_tree(root: Path, parts: tuple[str, ...] = ("Train", "Test")) -> Path:
    """Per subject: 2 live, 2 print (media 1-2), 4 replay (media 1-4) videos."""
    for part in parts:
        for sub in SIW_TRAIN if part == "Train" else SIW_TEST:
            touch(root, f"{part}/live/{sub}/{sub}-1-1-1-1.mov")
            touch(root, f"{part}/live/{sub}/{sub}-2-1-1-2.mov")
            for medium in (1, 2):
                touch(root, f"{part}/spoof/{sub}/{sub}-1-2-{medium}-1.mov")
            for medium in (1, 2, 3, 4):
                touch(root, f"{part}/spoof/{sub}/{sub}-2-3-{medium}-3.mov")
    if "Train" in parts:
        touch(root, "Train/live/001/001-1-1-1-1.face", "10 10 50 50\n")  # annotation
        touch(root, "Train/live/001/notes.txt")
        touch(root, "Train/spoof/001/001-1-3-5-1.mov")  # replay medium 5 does not exist
        touch(root, "Train/live/002/001-1-1-1-2.mov")  # subject folder mismatch
        touch(root, "Train/spoof/001/001-1-1-1-3.mov")  # live code in spoof/
    return root


def test_siw_samples_fields_and_skipped(tmp_path: Path) -> None:
    siw = get_adapter("siw", siw_tree(tmp_path))
    assert isinstance(siw, SiW)
    samples = siw.samples()
    assert len(samples) == 5 * 8
    assert_well_formed(samples)
    assert Counter(s.pai for s in samples) == {"": 10, "print": 10, "replay": 20}
    assert {s.split for s in samples} == {""}
    by_id = {s.sample_id: s for s in samples}
    s = by_id["Train/spoof/002/002-2-3-4-3"]
    assert (s.label, s.pai, s.subject, s.device, s.session) == (
        "attack",
        "replay",
        "002",
        "sensor2",
        "session3",
    )
    assert s.path == str(tmp_path / "Train/spoof/002/002-2-3-4-3.mov")
    code = parse_code(s.sample_id)
    assert code is not None and (code.medium, code.type, code.sensor) == (4, 3, 2)
    assert siw.skipped == [
        "Train/live/001/notes.txt",
        "Train/live/002/001-1-1-1-2.mov",
        "Train/spoof/001/001-1-1-1-3.mov",
        "Train/spoof/001/001-1-3-5-1.mov",
    ]


def test_siw_protocol_1_limits_training_frames(tmp_path: Path) -> None:
    p1 = SiW(siw_tree(tmp_path)).protocol("1")
    assert totals(p1) == {"train": 16, "dev": 8, "test": 16}
    assert subjects_by_split(p1) == {
        "train": {"002", "003"},
        "dev": {"001"},
        "test": set(SIW_TEST),
    }
    assert {s.frame_limit for s in p1 if s.split in ("train", "dev")} == {60}
    assert {s.frame_limit for s in p1 if s.split == "test"} == {None}
    assert all(s.sample_id.startswith("Test/") == (s.split == "test") for s in p1)


@pytest.mark.parametrize(
    ("name", "train", "dev", "test"),
    [
        ("2_1", {"": 4, "replay": 6}, {"": 2, "replay": 3}, {"": 4, "replay": 2}),
        ("2_3", {"": 4, "replay": 6}, {"": 2, "replay": 3}, {"": 4, "replay": 2}),
        ("3_1", {"": 4, "print": 4}, {"": 2, "print": 2}, {"": 4, "replay": 8}),
        ("3_2", {"": 4, "replay": 8}, {"": 2, "replay": 4}, {"": 4, "print": 4}),
    ],
)
def test_siw_protocols_2_and_3(
    tmp_path: Path, name: str, train: dict[str, int], dev: dict[str, int], test: dict[str, int]
) -> None:
    samples = SiW(siw_tree(tmp_path)).protocol(name)
    per_split = {
        split: Counter(s.pai for s in samples if s.split == split)
        for split in ("train", "dev", "test")
    }
    assert per_split == {"train": train, "dev": dev, "test": test}
    assert_disjoint_subjects(samples)
    assert {s.frame_limit for s in samples} == {None}
    if name.startswith("2_"):
        k = int(name[2:])
        for s in samples:
            code = parse_code(s.sample_id)
            assert code is not None
            if s.pai == "replay":
                assert (code.medium == k) == (s.split == "test"), s.sample_id


def test_siw_live_test_videos_named_with_an_extra_m_are_kept(tmp_path: Path) -> None:
    """The 16 sensor-2 live test videos of subjects 153, 154, 158 and 161 are <code>.m.mov."""
    names = [
        f"Test/live/{sub}/{sub}-2-1-{medium}-{session}.m"
        for sub in ("153", "154", "158", "161")
        for medium in (1, 2)
        for session in (1, 2)
    ]
    root = siw_tree(tmp_path)
    for name in names:
        touch(root, f"{name}.mov")
    siw = SiW(root)
    for protocol in ("1", "2_1", "3_1"):
        test = {s.sample_id for s in siw.protocol(protocol) if s.split == "test"}
        assert set(names) <= test, protocol  # ids as the official lists write them
    assert not [p for p in siw.skipped if ".m." in p]
    sample = next(s for s in siw.samples() if s.sample_id == names[0])
    assert sample.label == "bonafide" and sample.device == "sensor2" and sample.subject == "153"
    assert parse_code(names[0]) == parse_code("153-2-1-1-1")


def test_siw_errors(tmp_path: Path) -> None:
    siw = SiW(siw_tree(tmp_path / "a", parts=("Train",)))
    with pytest.raises(ProtocolError) as err:
        siw.protocol("1")
    assert err.value.missing == [str(tmp_path / "a" / "Test")]
    with pytest.raises(InputError, match="unknown protocol '2_5'"):
        siw.protocol("2_5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither Train/ nor Test/"):
        SiW(tmp_path / "empty").samples()


# ----------------------------------------------------------------------------- CelebA-Spoof


def labels(spoof_type: int, liveness: int | None = None) -> list[int]:
    out = [0] * 44
    out[40] = spoof_type
    out[43] = int(spoof_type != 0) if liveness is None else liveness
    return out


CELEBA_TRAIN = {
    "Data/train/10001/live/000001.jpg": labels(0),
    "Data/train/10001/spoof/000002.png": labels(1),
    "Data/train/10002/live/000003.jpg": labels(0),
    "Data/train/10002/spoof/000004.jpg": labels(10),
    "Data/train/10003/spoof/000005.jpg": labels(8),
}
CELEBA_TEST = {
    "Data/test/20001/live/000010.jpg": labels(0),
    "Data/test/20001/spoof/000011.jpg": labels(9),
}


def celeba_tree(root: Path, train: dict[str, list[int]] | None = None) -> Path:
    train = CELEBA_TRAIN if train is None else train
    for name, entries in (("train", train), ("test", CELEBA_TEST)):
        touch(root, f"metas/intra_test/{name}_label.json", json.dumps(entries))
        for key in entries:
            touch(root, key)
            touch(root, key.rsplit(".", 1)[0] + "_BB.txt", "56 28 112 84 0.99\n")
    touch(root, "Data/train/10001/live/extra.jpg")  # on disk, in no label file
    return root


def test_celeba_spoof_labels_species_and_intra(tmp_path: Path) -> None:
    celeba = get_adapter("celeba-spoof", celeba_tree(tmp_path))
    assert isinstance(celeba, CelebASpoof)
    samples = celeba.samples()
    assert_well_formed(samples)
    assert len(samples) == 7
    assert {s.media for s in samples} == {"image"}
    by_id = {s.sample_id: s for s in samples}
    s = by_id["Data/train/10001/spoof/000002"]
    assert (s.label, s.pai, s.subject, s.split) == ("attack", "photo", "10001", "")
    assert by_id["Data/train/10002/spoof/000004"].pai == "3d_mask"
    assert celeba.skipped == ["Data/train/10001/live/extra.jpg"]
    intra = celeba.protocol("intra")
    assert split_counts(intra) == {
        "dev": {"bonafide": 1, "photo": 1},
        "train": {"bonafide": 1, "3d_mask": 1, "pad": 1},
        "test": {"bonafide": 1, "phone": 1},
    }
    assert subjects_by_split(intra) == {
        "train": {"10002", "10003"},
        "dev": {"10001"},
        "test": {"20001"},
    }


def test_celeba_spoof_box_scaled_from_header(tmp_path: Path) -> None:
    root = celeba_tree(tmp_path)
    jpg = root / "Data/train/10001/live/000001.jpg"
    png = root / "Data/train/10001/spoof/000002.png"
    assert cv2.imwrite(str(jpg), np.zeros((336, 448, 3), np.uint8))  # 448 wide, 336 high
    assert cv2.imwrite(str(png), np.zeros((224, 112, 3), np.uint8))
    assert image_size(jpg) == (448, 336)
    assert image_size(png) == (112, 224)
    celeba = CelebASpoof(root)
    by_id = {s.sample_id: s for s in celeba.samples()}
    assert celeba.face_boxes(by_id["Data/train/10001/live/000001"]) == {
        0: (112.0, 42.0, 224.0, 126.0)
    }
    assert celeba.face_boxes(by_id["Data/train/10001/spoof/000002"]) == {
        0: (28.0, 28.0, 56.0, 84.0)
    }
    (root / "Data/test/20001/live/000010_BB.txt").unlink()
    assert celeba.face_boxes(by_id["Data/test/20001/live/000010"]) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Data/train/10001/live/000001.jpg", labels(1, liveness=0)),  # index 40 vs 43
        ("Data/train/10001/live/000001.jpg", labels(2)),  # spoof label in live/
        ("Data/train/10001/spoof/000002.png", labels(0)),  # live label in spoof/
    ],
)
def test_celeba_spoof_contradiction_names_key(tmp_path: Path, key: str, value: list[int]) -> None:
    root = celeba_tree(tmp_path, {**CELEBA_TRAIN, key: value})
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        CelebASpoof(root).protocol("intra")


def test_celeba_spoof_missing_files(tmp_path: Path) -> None:
    root = celeba_tree(tmp_path)
    (root / "Data/train/10002/live/000003.jpg").unlink()
    (root / "Data/test/20001/spoof/000011.jpg").unlink()
    with pytest.raises(ProtocolError) as err:
        CelebASpoof(root).protocol("intra")
    assert err.value.missing == [
        str(root / "Data/test/20001/spoof/000011.jpg"),
        str(root / "Data/train/10002/live/000003.jpg"),
    ]
    (root / "metas/intra_test/test_label.json").unlink()
    with pytest.raises(ProtocolError, match=r"test_label\.json"):
        CelebASpoof(root).samples()
    with pytest.raises(InputError, match="unknown protocol 'inter'"):
        CelebASpoof(root).protocol("inter")


# ----------------------------------------------------------------------------- folder

# Subject hashes (CRC-32 mod 10): alice 5, bob 4 -> train; mallory 6 -> dev; dave 8, judy 9 -> test.
FOLDER_FILES = (
    "bonafide/alice/img1.jpg",
    "bonafide/alice/sub/img2.png",
    "bonafide/bob.jpg",
    "bonafide/mallory/v.mp4",
    "bonafide/dave/d.jpg",
    "attack/print/alice/p1.jpg",
    "attack/print/bob/b.jpg",
    "attack/replay/mallory/x.jpg",
    "attack/replay/dave/r.mov",
)


def folder_tree(root: Path) -> Path:
    for rel in FOLDER_FILES:
        touch(root, rel)
    touch(root, "bonafide/alice/img1.box", "10 20 30 40\n")
    touch(root, "bonafide/mallory/v.box", "0 1 2 3 4\n\n5 6 7 8 9\n")
    touch(root, "bonafide/alice/orphan.box", "1 2 3 4\n")
    touch(root, "bonafide/alice/notes.txt")
    touch(root, "attack/loose.jpg")  # no species folder
    touch(root, "README.md")
    return root


def test_folder_samples_subjects_and_boxes(tmp_path: Path) -> None:
    folder = get_adapter("folder", folder_tree(tmp_path))
    assert isinstance(folder, FolderDataset)
    samples = folder.samples()
    assert_well_formed(samples)
    assert sorted(s.sample_id for s in samples) == sorted(FOLDER_FILES)
    by_id = {s.sample_id: s for s in samples}
    assert by_id["bonafide/alice/sub/img2.png"].subject == "alice"
    assert by_id["bonafide/bob.jpg"].subject == "bob"
    assert (by_id["attack/replay/dave/r.mov"].pai, by_id["attack/replay/dave/r.mov"].media) == (
        "replay",
        "video",
    )
    assert Counter(s.pai for s in samples) == {"": 5, "print": 2, "replay": 2}
    assert folder.skipped == [
        "README.md",
        "attack/loose.jpg",
        "bonafide/alice/notes.txt",
        "bonafide/alice/orphan.box",
    ]
    assert folder.face_boxes(by_id["bonafide/alice/img1.jpg"]) == {0: (10.0, 20.0, 30.0, 40.0)}
    assert folder.face_boxes(by_id["bonafide/mallory/v.mp4"]) == {
        0: (1.0, 2.0, 3.0, 4.0),
        5: (6.0, 7.0, 8.0, 9.0),
    }
    assert folder.face_boxes(by_id["bonafide/bob.jpg"]) is None
    touch(tmp_path, "bonafide/bob.box", "1 2 3\n")
    with pytest.raises(InputError, match=r"bob\.box:1"):
        folder.face_boxes(by_id["bonafide/bob.jpg"])


def test_folder_subject_hash_splits_are_stable(tmp_path: Path) -> None:
    root = folder_tree(tmp_path)
    before = FolderDataset(root).protocol("default")
    assert subjects_by_split(before) == {
        "train": {"alice", "bob"},
        "dev": {"mallory"},
        "test": {"dave"},
    }
    assert totals(before) == {"train": 5, "dev": 2, "test": 2}
    touch(root, "bonafide/judy/j.jpg")
    after = FolderDataset(root).protocol("default")
    assert hash_split("judy") == "test"
    assert {s.sample_id: s.split for s in before}.items() < {
        s.sample_id: s.split for s in after
    }.items()
    assert totals(after) == {"train": 5, "dev": 2, "test": 3}


def test_folder_splits_csv(tmp_path: Path) -> None:
    root = folder_tree(tmp_path)
    rows = "".join(f"{p},{'test' if 'alice' in p else 'train'}\n" for p in FOLDER_FILES)
    touch(root, "splits.csv", "path,split\n" + rows)
    by_path = FolderDataset(root).protocol("default")
    assert totals(by_path) == {"train": 6, "test": 3}
    assert subjects_by_split(by_path)["test"] == {"alice"}
    touch(root, "splits.csv", "subject,split\nalice,dev\nbob,dev\nmallory,train\ndave,test\n")
    by_subject = FolderDataset(root).protocol("default")
    assert totals(by_subject) == {"dev": 5, "train": 2, "test": 2}
    touch(root, "splits.csv", "subject,split\nalice,dev\nbob,dev\nmallory,train\n")
    with pytest.raises(InputError, match=r"2 media file\(s\) have no split"):
        FolderDataset(root).protocol("default")
    touch(root, "splits.csv", "path,split\n" + rows + "bonafide/gone.jpg,dev\n")
    with pytest.raises(ProtocolError) as err:
        FolderDataset(root).protocol("default")
    assert err.value.missing == [str(root / "bonafide/gone.jpg")]
    touch(root, "splits.csv", "path,split\nbonafide/bob.jpg,val\n")
    with pytest.raises(InputError, match=r"splits\.csv:2: split 'val'"):
        FolderDataset(root).protocol("default")


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is empty"):
        FolderDataset(tmp_path / "empty").samples()
    touch(tmp_path, "only_bona/bonafide/a.jpg")
    with pytest.raises(InputError, match="no attack/ folder"):
        FolderDataset(tmp_path / "only_bona").samples()
    touch(tmp_path, "two/bonafide/alice/a.jpg")
    touch(tmp_path, "two/attack/print/bob/b.jpg")
    with pytest.raises(InputError, match="no subject falls in split"):
        FolderDataset(tmp_path / "two").protocol("default")
    with pytest.raises(InputError, match="unknown protocol 'intra'"):
        FolderDataset(tmp_path / "two").protocol("intra")


# ----------------------------------------------------------------------------- SynthSpoof


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("formats_b") / "s"
    generate(out, SynthConfig(subjects=3, samples=1, size=48, domains=("studio", "office")), 1)
    return out


def test_synthspoof_records_and_protocols(synth_set: Path) -> None:
    synth = get_adapter("synthspoof", synth_set)
    assert isinstance(synth, SynthSpoofDataset)
    assert SynthSpoofDataset.protocols == ("intra",)
    assert synth.protocols == ("intra", "lodo_office", "lodo_studio")
    samples = synth.samples()
    assert_well_formed(samples)
    assert len(samples) == 2 * 3 * 4
    assert Counter(s.pai for s in samples) == {"": 6, "print": 6, "replay": 6, "mask": 6}
    assert {s.domain for s in samples} == {"studio", "office"}
    assert {s.device for s in samples if s.pai == "mask"} == {"mask"}
    assert {s.device for s in samples if s.pai == ""} == {""}
    assert {s.device for s in samples if s.pai == "print"} <= {"photo_paper", "a4_laser"}
    intra = synth.protocol("intra")
    assert totals(intra) == {"train": 8, "dev": 8, "test": 8}
    assert_disjoint_subjects(intra)
    lodo = synth.protocol("lodo_studio")
    assert totals(lodo) == {"train": 4, "dev": 4, "test": 12}  # all of studio is test
    assert {(s.domain, s.split) for s in lodo} == {
        ("office", "train"),
        ("office", "dev"),
        ("studio", "test"),
    }
    with pytest.raises(InputError, match="unknown protocol 'lodo_dim'"):
        synth.protocol("lodo_dim")


def test_synthspoof_boxes_match_index(synth_set: Path) -> None:
    synth = SynthSpoofDataset(synth_set)
    with (synth_set / "samples.csv").open(newline="") as handle:
        rows = {r["sample_id"]: r for r in csv.DictReader(handle)}
    for s in synth.samples():
        boxes = synth.face_boxes(s)
        row = rows[s.sample_id]
        expected = tuple(float(row[k]) for k in ("box_x", "box_y", "box_w", "box_h"))
        assert boxes == {0: expected}
    assert synth.skipped == []


def test_synthspoof_errors(synth_set: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(synth_set, copy)
    touch(copy, "media/studio/stray.png")
    media = copy / "media/office/office_s0000/office_s0000_replay_0.png"
    media.unlink()
    with pytest.raises(ProtocolError) as err:
        SynthSpoofDataset(copy).protocol("intra")
    assert err.value.missing == [str(media)]
    touch(copy, media.relative_to(copy).as_posix())
    synth = SynthSpoofDataset(copy)
    assert len(synth.protocol("intra")) == 24
    assert synth.skipped == ["media/studio/stray.png"]
    (copy / "samples.csv").unlink()
    with pytest.raises(ProtocolError, match=r"samples\.csv"):
        SynthSpoofDataset(copy).samples()


# ----------------------------------------------------------------------------- cross-domain


def oci_m_trees(base: Path) -> dict[str, Path]:
    """The four source trees; per dataset the train/dev/test counts noted below."""
    oulu = base / "oulu"  # Train_files 5, Dev_files 2, Test_files 3 (1 bona fide)
    for rel in ("1_1_01_1", "1_1_01_2", "1_1_01_4", "2_2_02_1", "2_2_02_3"):
        touch(oulu, f"Train_files/{rel}.avi")
    touch(oulu, "Train_files/1_1_01_1.txt", "0,10,20,30,20\n")
    for rel in ("1_1_21_1", "1_1_21_5"):
        touch(oulu, f"Dev_files/{rel}.avi")
    for rel in ("3_3_36_1", "3_3_36_2", "3_3_36_4"):
        touch(oulu, f"Test_files/{rel}.avi")
    casia = base / "casia"  # train_release: subject 1 (carved to dev) 3, subject 2 2; test 3
    for rel in ("1/1", "1/3", "1/HR_4", "2/2", "2/5"):
        touch(casia, f"train_release/{rel}.avi")
    for rel in ("1/1", "1/7", "2/HR_1"):
        touch(casia, f"test_release/{rel}.avi")
    idiap = base / "idiap"  # train 3, devel 2, test 2
    for split, client, attack in (
        ("train", "001", "fixed/attack_print_client001_session01_highdef_photo_adverse"),
        ("devel", "003", "hand/attack_highdef_client003_session01_highdef_video_controlled"),
        ("test", "009", "fixed/attack_print_client009_session01_highdef_photo_adverse"),
    ):
        touch(idiap, f"{split}/real/client{client}_session01_webcam_authenticate_adverse_1.mov")
        touch(idiap, f"{split}/attack/{attack}.mov")
    touch(idiap, "train/attack/hand/attack_mobile_client002_session01_mobile_video_adverse.mov")
    msu = base / "msu"  # train clients 002 (carved to dev, 3), 003 (2); test client 001 (3)
    for rel in (
        "real/real_client002_android_SD_scene01.mp4",
        "real/real_client002_laptop_SD_scene01.mov",
        "attack/attack_client002_android_SD_printed_photo_scene01.mp4",
        "real/real_client003_laptop_SD_scene01.mov",
        "attack/attack_client003_laptop_SD_ipad_video_scene01.mov",
        "real/real_client001_android_SD_scene01.mp4",
        "attack/attack_client001_android_SD_iphone_video_scene01.mp4",
        "attack/attack_client001_laptop_SD_printed_photo_scene01.mov",
    ):
        touch(msu, rel)
    touch(msu, "train_sub_list.txt", "002\n003\n")
    touch(msu, "test_sub_list.txt", "001\n")
    return {"oulu-npu": oulu, "casia-fasd": casia, "replay-attack": idiap, "msu-mfsd": msu}


def mapping(roots: dict[str, Path]) -> str:
    return ",".join(f"{name}={path}" for name, path in roots.items())


def by_domain_split(samples: Iterable[Sample]) -> dict[tuple[str, str], int]:
    return dict(Counter((s.domain, s.split) for s in samples))


def test_cross_domain_protocols(tmp_path: Path) -> None:
    roots = oci_m_trees(tmp_path)
    cd = get_adapter("cross-domain", mapping(roots))
    assert isinstance(cd, CrossDomain)
    assert cd.roots == roots
    every = cd.samples()
    assert len(every) == 10 + 8 + 7 + 8
    assert {s.split for s in every} == {""}
    oci_m = cd.protocol("OCI-M")
    assert by_domain_split(oci_m) == {
        ("oulu-npu", "train"): 5,
        ("oulu-npu", "dev"): 2,
        ("casia-fasd", "train"): 2,
        ("casia-fasd", "dev"): 3,
        ("replay-attack", "train"): 3,
        ("replay-attack", "dev"): 2,
        ("msu-mfsd", "test"): 3,
    }
    assert Counter(s.label for s in oci_m if s.split == "test") == {"bonafide": 1, "attack": 2}
    icm_o = cd.protocol("ICM-O")
    assert by_domain_split(icm_o) == {
        ("casia-fasd", "train"): 2,
        ("casia-fasd", "dev"): 3,
        ("replay-attack", "train"): 3,
        ("replay-attack", "dev"): 2,
        ("msu-mfsd", "train"): 2,
        ("msu-mfsd", "dev"): 3,
        ("oulu-npu", "test"): 3,
    }
    for protocol in (oci_m, icm_o, cd.protocol("OMI-C"), cd.protocol("OCM-I")):
        assert_well_formed(protocol)
        assert_disjoint_subjects(protocol)
        for s in protocol:
            assert s.sample_id.startswith(f"{s.domain}/") and s.subject.startswith(f"{s.domain}/")
    assert totals(cd.protocol("OMI-C")) == {"train": 10, "dev": 7, "test": 3}
    assert totals(cd.protocol("OCM-I")) == {"train": 9, "dev": 8, "test": 2}
    sample = next(s for s in oci_m if s.sample_id == "oulu-npu/Train_files/1_1_01_1")
    assert cd.face_boxes(sample) == {0: box_from_eyes((10.0, 20.0), (30.0, 20.0))}


def test_cross_domain_root_errors(tmp_path: Path) -> None:
    roots = oci_m_trees(tmp_path)
    partial = {k: v for k, v in roots.items() if k != "msu-mfsd"}
    cd = CrossDomain(mapping(partial))
    assert len(cd.samples()) == 10 + 8 + 7
    with pytest.raises(InputError, match="needs msu-mfsd: add msu-mfsd=PATH"):
        cd.protocol("OCI-M")
    with pytest.raises(InputError, match="unknown protocol 'OCIM'"):
        cd.protocol("OCIM")
    with pytest.raises(InputError, match="not name=PATH"):
        CrossDomain(str(roots["oulu-npu"]))
    with pytest.raises(InputError, match="unknown dataset 'siw'"):
        CrossDomain(f"siw={tmp_path}")
    with pytest.raises(InputError, match="not a directory"):
        CrossDomain(f"msu-mfsd={tmp_path / 'nowhere'}")
    (roots["casia-fasd"] / "test_release").rename(tmp_path / "moved")
    with pytest.raises(ProtocolError) as err:
        CrossDomain(mapping(roots)).protocol("OMI-C")
    assert err.value.missing == [str(roots["casia-fasd"] / "test_release")]
