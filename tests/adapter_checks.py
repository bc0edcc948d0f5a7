"""Assertions shared by the dataset-adapter tests."""

from __future__ import annotations

from collections.abc import Iterable

from fasdistill.data.formats import Sample, split_counts


def totals(samples: Iterable[Sample]) -> dict[str, int]:
    """{split: number of samples}."""
    return {split: sum(per.values()) for split, per in split_counts(samples).items()}


def subjects_by_split(samples: Iterable[Sample]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in samples:
        out.setdefault(s.split, set()).add(s.subject)
    return out


def assert_disjoint_subjects(samples: list[Sample]) -> None:
    by_split = subjects_by_split(samples)
    splits = sorted(by_split)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert not by_split[a] & by_split[b], (a, b)
