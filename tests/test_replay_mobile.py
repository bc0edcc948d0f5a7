"""Replay-Mobile: the release's file names give exactly the published split sizes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from adapter_checks import assert_disjoint_subjects
from fasdistill.data.formats import ProtocolError, get_adapter
from fasdistill.data.formats.replay_mobile import ReplayMobile

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
