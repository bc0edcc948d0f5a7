"""CASIA-FASD: face PAD videos in three capture qualities with warped, cut and video attacks.

Layout (as shipped)::

    ROOT/train_release/<1..20>/{1..8,HR_1..HR_4}.avi
    ROOT/test_release/<1..30>/{1..8,HR_1..HR_4}.avi

Per subject: ``1, 2, HR_1`` bona fide, ``3, 4, HR_2`` warped photo, ``5, 6, HR_3``
cut photo, ``7, 8, HR_4`` video replay; odd numbers are low quality, even numbers
normal quality, ``HR_*`` high quality (Zhang et al., ICB 2012).
"""

from __future__ import annotations

import re
from typing import ClassVar

from fasdistill.data.formats.base import DatasetAdapter, Sample, carve_dev, list_files, split_ext

RELEASES = {"train": "train_release", "test": "test_release"}
QUALITIES = ("low", "normal", "high")
_ATTACKS = {"warped": "warped_photo", "cut": "cut_photo", "video": "replay"}
_NAME = re.compile(r"^(?:(hr)_([1-4])|([1-8]))$", flags=re.IGNORECASE)
_SPECIES = ("", "warped_photo", "cut_photo", "replay")  # by type index 0..3


def _parse(stem: str) -> tuple[str, str] | None:
    """(species, quality) of a CASIA file stem such as ``3`` or ``HR_2``; None otherwise."""
    m = _NAME.match(stem)
    if m is None:
        return None
    if m.group(1):
        return _SPECIES[int(m.group(2)) - 1], "high"
    number = int(m.group(3))
    return _SPECIES[(number - 1) // 2], "low" if number % 2 else "normal"


class CasiaFASD(DatasetAdapter):
    """CASIA-FASD adapter: protocols overall, low, normal, high, warped, cut, video.

    Samples: ``pai`` is ``warped_photo``, ``cut_photo`` or ``replay``; ``device``
    holds the capture quality (``low``, ``normal``, ``high``), the one acquisition
    factor CASIA varies besides the attack; ``subject`` is ``train_<n>`` or
    ``test_<n>`` because the two releases hold different people under the same
    folder numbers. CASIA has no dev split: dev is carved from the training subjects
    with :func:`carve_dev` (every 5th, 4 of 20), so train and dev never share a person.
    Protocols restrict only the test split (train/dev keep every quality and attack):
    ``low``/``normal``/``high`` keep test videos of that quality, ``warped``/``cut``/
    ``video`` keep the bona fide test videos plus that attack, ``overall`` keeps all.
    """

    name: ClassVar[str] = "casia-fasd"
    protocols: ClassVar[tuple[str, ...]] = ("overall", *QUALITIES, *_ATTACKS)
    default_protocol: ClassVar[str] = "overall"
    description: ClassVar[str] = "CASIA-FASD (50 subjects, 3 qualities, warped/cut/video attacks)"

    def samples(self) -> list[Sample]:
        """Every ``<release>/<n>/<name>.avi`` (other files go to ``skipped``)."""
        found: list[Sample] = []
        skipped: list[str] = []
        seen: set[str] = set()  # ids: "1.avi" next to "1.AVI" would clash
        for release in RELEASES.values():
            prefix = release.split("_")[0]
            for parts, path in list_files(self.root, release):
                rel = "/".join(parts)
                stem, ext = split_ext(parts[-1])
                parsed = _parse(stem) if ext.lower() == ".avi" else None
                sample_id = rel[: len(rel) - len(ext)]
                if parsed is None or len(parts) != 3 or not parts[1].isdigit() or sample_id in seen:
                    skipped.append(rel)
                    continue
                seen.add(sample_id)
                species, quality = parsed
                found.append(
                    Sample(
                        sample_id=sample_id,
                        path=path,
                        media="video",
                        label="attack" if species else "bonafide",
                        pai=species,
                        subject=f"{prefix}_{int(parts[1])}",
                        device=quality,
                        domain=self.name,
                    )
                )
        self.skipped = skipped
        return found

    def protocol(self, name: str) -> list[Sample]:
        """Train/dev from train_release (dev carved by subject), test from test_release."""
        self.check_protocol_name(name)
        self.require(name, (self.root / release for release in RELEASES.values()))
        samples = self.samples()
        train_subjects = {s.subject for s in samples if s.subject.startswith("train_")}
        dev_subjects = carve_dev(train_subjects)
        out = []
        for s in samples:
            if s.subject in train_subjects:
                out.append(s.with_split("dev" if s.subject in dev_subjects else "train"))
            elif _in_test(name, s):
                out.append(s.with_split("test"))
        return out


def _in_test(protocol: str, sample: Sample) -> bool:
    """Does a test_release video take part in ``protocol``?"""
    if protocol in QUALITIES:
        return sample.device == protocol
    if protocol in _ATTACKS:
        return sample.label == "bonafide" or sample.pai == _ATTACKS[protocol]
    return True
