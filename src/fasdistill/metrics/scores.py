"""Score files: the contract between inference and evaluation.

A score file is a CSV with a header and one row per scored sample (a frame or
an image)::

    sample_id,video_id,subject,label,pai,score
    s1_v3_f000,s1_v3,s1,bonafide,,0.97
    s1_v7_f000,s1_v7,s1,attack,print,0.12

``label`` is ``bonafide`` or ``attack``; ``pai`` names the presentation attack
instrument species of an attack and is empty for bona fide rows; ``score`` is
the liveness score, where **higher means more likely bona fide**.
``sample_id``, ``label`` and ``score`` are required; ``video_id`` defaults to
the sample id, ``subject`` to the video id and an attack's ``pai`` to
``attack``, so score files written by other tools can be evaluated too.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fasdistill.errors import InputError
from fasdistill.utils.atomic import atomic_write_text

COLUMNS = ("sample_id", "video_id", "subject", "label", "pai", "score")
REQUIRED_COLUMNS = ("sample_id", "label", "score")
DEFAULT_PAI = "attack"
REDUCERS = ("mean", "median", "max", "min")

_BONAFIDE_WORDS = frozenset({"bonafide", "bona_fide", "bona-fide", "bona fide", "live", "real"})
_ATTACK_WORDS = frozenset({"attack", "spoof", "fake"})


def parse_label(text: str) -> bool | None:
    """Return True for a bona fide label, False for an attack, None if unknown."""
    word = text.strip().lower()
    if word in _BONAFIDE_WORDS:
        return True
    if word in _ATTACK_WORDS:
        return False
    return None


def _factorize(values: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map strings to integer codes in order of first appearance."""
    table: dict[str, int] = {}
    codes = np.fromiter((table.setdefault(v, len(table)) for v in values), np.int64, len(values))
    return codes, tuple(table)


@dataclass(frozen=True, eq=False)
class ScoreSet:
    """Labelled liveness scores of one split, held as flat arrays.

    Identifiers are stored as integer codes into the ``*_names`` tuples so that
    grouping a million rows stays vectorised.
    """

    scores: np.ndarray  # float64, finite; higher = more likely bona fide
    bonafide: np.ndarray  # bool
    pai: np.ndarray  # int64 code into pai_names, -1 for bona fide rows
    pai_names: tuple[str, ...]
    video: np.ndarray  # int64 code into video_names
    video_names: tuple[str, ...]
    subject: np.ndarray  # int64 code into subject_names
    subject_names: tuple[str, ...]
    sample_ids: tuple[str, ...]
    source: str = "<scores>"

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n_bonafide(self) -> int:
        return int(self.bonafide.sum())

    @property
    def n_attack(self) -> int:
        return len(self) - self.n_bonafide

    def pai_counts(self) -> dict[str, int]:
        """Number of attack samples per PAI species present in this set."""
        counts = np.bincount(self.pai[~self.bonafide], minlength=len(self.pai_names))
        return {name: int(c) for name, c in zip(self.pai_names, counts, strict=True) if c > 0}

    def require_both_classes(self) -> None:
        """Raise if the set cannot define error rates (no bona fide or no attack)."""
        if len(self) == 0:
            raise InputError(f"{self.source}: no scores (the file has a header but no rows)")
        if self.n_bonafide == 0:
            raise InputError(
                f"{self.source}: no bona fide samples; BPCER and every threshold "
                "criterion need both bona fide and attack rows"
            )
        if self.n_attack == 0:
            raise InputError(
                f"{self.source}: no attack samples; APCER and every threshold "
                "criterion need both bona fide and attack rows"
            )

    @classmethod
    def from_arrays(
        cls,
        scores: Sequence[float] | np.ndarray,
        labels: Sequence[str] | Sequence[bool] | np.ndarray,
        pai: Sequence[str] | None = None,
        video_ids: Sequence[str] | None = None,
        subjects: Sequence[str] | None = None,
        sample_ids: Sequence[str] | None = None,
        source: str = "<arrays>",
    ) -> ScoreSet:
        """Build a validated set from parallel sequences (the Python API's entry point).

        ``labels`` are booleans (True = bona fide) or label words; ``pai`` holds the
        species of each attack (ignored for bona fide rows, default ``attack``).
        """
        score_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
        n = score_arr.shape[0]
        label_list = list(labels)
        if len(label_list) != n:
            raise InputError(f"{source}: {n} scores but {len(label_list)} labels")
        if label_list and isinstance(label_list[0], (bool, np.bool_)):
            bona = np.asarray(label_list, dtype=bool)
        else:
            parsed = [parse_label(str(v)) for v in label_list]
            for i, value in enumerate(parsed):
                if value is None:
                    raise InputError(
                        f"{source}: sample {i}: unknown label {label_list[i]!r} "
                        "(use 'bonafide' or 'attack')"
                    )
            bona = np.asarray(parsed, dtype=bool)
        bad = np.flatnonzero(~np.isfinite(score_arr))
        if bad.size:
            raise InputError(f"{source}: sample {bad[0]}: score {score_arr[bad[0]]} is not finite")
        ids = [str(i) for i in range(n)] if sample_ids is None else [str(s) for s in sample_ids]
        videos = ids if video_ids is None else [str(v) or ids[i] for i, v in enumerate(video_ids)]
        subj = videos if subjects is None else [str(s) or videos[i] for i, s in enumerate(subjects)]
        species = [DEFAULT_PAI] * n if pai is None else [str(p) for p in pai]
        for name, seq in (("sample_ids", ids), ("video_ids", videos), ("subjects", subj)):
            if len(seq) != n:
                raise InputError(f"{source}: {n} scores but {len(seq)} {name}")
        if len(species) != n:
            raise InputError(f"{source}: {n} scores but {len(species)} pai values")
        return cls._build(score_arr, bona, species, videos, subj, ids, source)

    @classmethod
    def _build(
        cls,
        scores: np.ndarray,
        bona: np.ndarray,
        species: list[str],
        videos: list[str],
        subjects: list[str],
        ids: list[str],
        source: str,
    ) -> ScoreSet:
        attack_species = [s or DEFAULT_PAI for s, b in zip(species, bona, strict=True) if not b]
        pai_codes = np.full(scores.shape[0], -1, dtype=np.int64)
        attack_codes, pai_names = _factorize(attack_species)
        pai_codes[~bona] = attack_codes
        video_codes, video_names = _factorize(videos)
        subject_codes, subject_names = _factorize(subjects)
        return cls(
            scores=scores,
            bonafide=bona,
            pai=pai_codes,
            pai_names=pai_names,
            video=video_codes,
            video_names=video_names,
            subject=subject_codes,
            subject_names=subject_names,
            sample_ids=tuple(ids),
            source=source,
        )

    def to_video_level(self, reducer: str = "mean") -> ScoreSet:
        """One row per video whose score is ``reducer`` of its frame scores.

        Every frame of a video must share its label, PAI species and subject.
        """
        if reducer not in REDUCERS:
            raise InputError(f"unknown video reducer {reducer!r}; choose one of {REDUCERS}")
        # Group frames by video; sort by score inside groups only where the reducer needs it.
        if reducer == "median":
            order = np.lexsort((self.scores, self.video))
        else:
            order = np.argsort(self.video, kind="stable")
        vid_sorted = self.video[order]
        starts = np.flatnonzero(np.r_[True, vid_sorted[1:] != vid_sorted[:-1]])
        present = vid_sorted[starts]
        counts = np.diff(np.r_[starts, len(order)])
        for field, values in (
            ("label", self.bonafide),
            ("pai", self.pai),
            ("subject", self.subject),
        ):
            v = values[order]
            mismatch = np.flatnonzero(v != np.repeat(v[starts], counts))
            if mismatch.size:
                video = self.video_names[vid_sorted[mismatch[0]]]
                raise InputError(
                    f"{self.source}: video {video!r} mixes frames with different {field} "
                    "values; every frame of a video must share label, pai and subject"
                )
        sorted_scores = self.scores[order]
        if reducer == "mean":
            reduced = np.add.reduceat(sorted_scores, starts) / counts
        elif reducer == "max":
            reduced = np.maximum.reduceat(sorted_scores, starts)
        elif reducer == "min":
            reduced = np.minimum.reduceat(sorted_scores, starts)
        else:  # median of each score-sorted run
            lo = starts + (counts - 1) // 2
            hi = starts + counts // 2
            reduced = (sorted_scores[lo] + sorted_scores[hi]) / 2.0
        first_rows = order[starts]
        names = tuple(self.video_names[v] for v in present)
        return ScoreSet(
            scores=reduced,
            bonafide=self.bonafide[first_rows],
            pai=self.pai[first_rows],
            pai_names=self.pai_names,
            video=np.arange(len(names), dtype=np.int64),
            video_names=names,
            subject=self.subject[first_rows],
            subject_names=self.subject_names,
            sample_ids=names,
            source=f"{self.source} (video level, {reducer})",
        )


def read_scores(path: str | os.PathLike[str]) -> ScoreSet:
    """Read and validate a score file; errors name the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{p}: score file not found") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, expected a score CSV file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a UTF-8 text file ({exc.reason})") from None
    if not text.strip():
        raise InputError(f"{p}: empty file; expected a header {','.join(COLUMNS)} and rows")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader)]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"{p}: missing column(s) {', '.join(missing)} in header {header}; "
            f"expected {','.join(COLUMNS)}"
        )
    col = {name: header.index(name) for name in COLUMNS if name in header}
    width = len(header)
    ids: list[str] = []
    videos: list[str] = []
    subjects: list[str] = []
    species: list[str] = []
    scores: list[float] = []
    labels: list[bool] = []
    seen: dict[str, int] = {}
    i_id, i_label, i_score = col["sample_id"], col["label"], col["score"]
    i_video, i_subject, i_pai = col.get("video_id"), col.get("subject"), col.get("pai")
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            raise InputError(f"{p}: line {line}: {len(row)} fields, the header has {width}")
        sample_id = row[i_id].strip()
        if not sample_id:
            raise InputError(f"{p}: line {line}: empty sample_id")
        if sample_id in seen:
            raise InputError(
                f"{p}: line {line}: duplicate sample_id {sample_id!r} "
                f"(first on line {seen[sample_id]})"
            )
        seen[sample_id] = line
        label = parse_label(row[i_label])
        if label is None:
            raise InputError(
                f"{p}: line {line}: unknown label {row[i_label]!r}; use 'bonafide' or 'attack'"
            )
        raw_score = row[i_score].strip()
        try:
            score = float(raw_score)
        except ValueError:
            raise InputError(f"{p}: line {line}: score {raw_score!r} is not a number") from None
        if not math.isfinite(score):
            raise InputError(f"{p}: line {line}: score is {raw_score!r}; scores must be finite")
        pai = row[i_pai].strip() if i_pai is not None else ""
        if label and pai and pai.lower() not in _BONAFIDE_WORDS:
            raise InputError(
                f"{p}: line {line}: bona fide row has pai {pai!r}; leave pai empty for bona fide"
            )
        video = (row[i_video].strip() if i_video is not None else "") or sample_id
        subject = (row[i_subject].strip() if i_subject is not None else "") or video
        ids.append(sample_id)
        videos.append(video)
        subjects.append(subject)
        species.append("" if label else pai)
        scores.append(score)
        labels.append(label)
    return ScoreSet._build(
        np.asarray(scores, dtype=np.float64),
        np.asarray(labels, dtype=bool),
        species,
        videos,
        subjects,
        ids,
        str(p),
    )


def format_scores(scores: ScoreSet) -> str:
    """Render a set as score-file CSV text (``repr`` floats, so values round-trip)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i in range(len(scores)):
        bona = bool(scores.bonafide[i])
        writer.writerow(
            (
                scores.sample_ids[i],
                scores.video_names[scores.video[i]],
                scores.subject_names[scores.subject[i]],
                "bonafide" if bona else "attack",
                "" if bona else scores.pai_names[scores.pai[i]],
                repr(float(scores.scores[i])),
            )
        )
    return out.getvalue()


def write_scores(path: str | os.PathLike[str], scores: ScoreSet) -> Path:
    """Write a score file atomically."""
    return atomic_write_text(path, format_scores(scores))
