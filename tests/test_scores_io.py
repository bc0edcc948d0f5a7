"""Score files: round trip, defaults for foreign files, video level, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fasdistill.errors import InputError
from fasdistill.metrics.scores import ScoreSet, read_scores, write_scores
from fasdistill.metrics.simulate import simulate_scores

HEADER = "sample_id,video_id,subject,label,pai,score\n"


def write(tmp_path: Path, text: str, name: str = "scores.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_round_trip_is_exact(tmp_path: Path) -> None:
    original = simulate_scores(n_subjects=3, seed=4)
    path = write_scores(tmp_path / "s.csv", original)
    back = read_scores(path)
    assert np.array_equal(back.scores, original.scores)
    assert np.array_equal(back.bonafide, original.bonafide)
    assert back.sample_ids == original.sample_ids
    assert back.pai_counts() == original.pai_counts()
    assert [back.video_names[v] for v in back.video] == [
        original.video_names[v] for v in original.video
    ]


def test_minimal_columns_take_documented_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "score,label,sample_id\n0.9,live,a\n0.1,spoof,b\n")
    s = read_scores(path)
    assert s.bonafide.tolist() == [True, False]
    assert s.pai_names == ("attack",)
    assert s.video_names == ("a", "b") and s.subject_names == ("a", "b")


def test_video_level_reducers() -> None:
    s = ScoreSet.from_arrays(
        [0.1, 0.2, 0.9, 0.5, 0.4, 0.3],
        ["bonafide"] * 3 + ["attack"] * 3,
        ["", "", "", "print", "print", "print"],
        video_ids=["v1", "v1", "v1", "v2", "v2", "v2"],
    )
    assert s.to_video_level("mean").scores.tolist() == pytest.approx([0.4, 0.4])
    assert s.to_video_level("median").scores.tolist() == [0.2, 0.4]
    assert s.to_video_level("max").scores.tolist() == [0.9, 0.5]
    assert s.to_video_level("min").scores.tolist() == [0.1, 0.3]
    video = s.to_video_level()
    assert video.bonafide.tolist() == [True, False] and video.n_attack == 1


def test_video_mixing_labels_is_an_error() -> None:
    s = ScoreSet.from_arrays([0.1, 0.2], ["bonafide", "attack"], video_ids=["v", "v"])
    with pytest.raises(InputError, match="video 'v' mixes frames"):
        s.to_video_level()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("sample_id,label\na,bonafide\n", "missing column"),
        (HEADER + "a,v,s,bonafide,,0.5\nb,v2,s,attack,print,nan\n", "line 3: score is 'nan'"),
        (HEADER + "a,v,s,bonafide,,inf\n", "line 2: score is 'inf'"),
        (HEADER + "a,v,s,bonafide,,high\n", "line 2: score 'high' is not a number"),
        (HEADER + "a,v,s,genuine?,,0.5\n", "line 2: unknown label"),
        (HEADER + "a,v,s,1,,0.5\n", "line 2: unknown label '1'"),
        (
            HEADER + "a,v,s,bonafide,,0.5\na,v,s,attack,print,0.1\n",
            "line 3: duplicate sample_id 'a'",
        ),
        (HEADER + "a,v,s,bonafide,print,0.5\n", "line 2: bona fide row has pai 'print'"),
        (HEADER + "a,v,s,bonafide,0.5\n", "line 2: 5 fields"),
        (HEADER + ",v,s,bonafide,,0.5\n", "line 2: empty sample_id"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as info:
        read_scores(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_scores(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        read_scores(tmp_path)


def test_from_arrays_validates() -> None:
    with pytest.raises(InputError, match="not finite"):
        ScoreSet.from_arrays([0.1, float("nan")], ["bonafide", "attack"])
    with pytest.raises(InputError, match="2 scores but 1 labels"):
        ScoreSet.from_arrays([0.1, 0.2], ["bonafide"])
    with pytest.raises(InputError, match="unknown label 'x'"):
        ScoreSet.from_arrays([0.1], ["x"])


def test_written_files_get_normal_permissions(tmp_path: Path) -> None:
    import os

    path = write_scores(tmp_path / "s.csv", simulate_scores(n_subjects=3))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
