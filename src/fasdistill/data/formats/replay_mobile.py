"""Idiap Replay-Mobile: phone and tablet face PAD videos with print and matte-screen attacks.

Layout (as shipped)::

    ROOT/{train,devel,test}/real/client001_session02_authenticate_<mobile|tablet>_<light>.mov
    ROOT/{train,devel,test}/attack/attack_client001_session01_<print|mattescreen>_
        <fixed|hand>_<mobile|tablet>_<photo|video>_<light>.mov
    ROOT/enroll/{train,devel,test}/...              (enrolment videos: not used)
    ROOT/faceloc/rect/<same relative path>.face     (one line 'x y w h' per frame)

40 clients, 1,190 videos (Costa-Pazo et al., BIOSIG 2016). The split is the top
folder (``devel`` is dev); protocols only filter the attacks: ``grandtest`` keeps
every attack, ``print`` and ``mattescreen`` one instrument, and all keep every bona
fide ``authenticate`` video.

**Face locations.** The shipped boxes refer to the frames of Idiap's loaders
(bob.db.replaymobile, bob.bio.face), not to the frames a player shows. Those
loaders ignore the rotation metadata: they transpose each stored 1280 x 720 frame
to 720 x 1280 and flip the phone videos (and two tablet videos of client 8, whose
boxes they flip with them) upside down. Their frames hold upright faces (the boxes
were found on them). A transposed and flipped frame is a rotation of the stored
one, so for phone videos it is the upright frame OpenCV decodes with the metadata
applied; a transposed frame is a rotation mirrored left-right, so for tablet
videos the upright frame is its mirror image. Hence, in upright frames, phone
boxes (and those two) are used as the loaders end with them and tablet boxes
mirrored left-right (:func:`upright_box`). No video of the release was at hand to
check this on pixels: ``benchmarks/verify_replay_mobile_boxes.py ROOT`` checks it
on a copy (shipped boxes against YuNet's), and ``prepare`` uses a box only on a
frame of the size it refers to (720 x 1280), else the detector (``--boxes auto``)
or status ``annotation_frame_mismatch``.
"""

from __future__ import annotations

import re
from typing import ClassVar

from fasdistill.data.formats.base import Box, Sample
from fasdistill.data.formats.replay_attack import ReplayAttack

SPECIES = ("print", "mattescreen")
FRAME_SIZE = (720, 1280)  # (width, height) of every upright Replay-Mobile frame
# Tablet videos the first loader flips like the phone videos (and their boxes with them).
FLIPPED_TABLET = (
    "client008_session02_authenticate_tablet_adverse",
    "client008_session02_authenticate_tablet_controlled",
)
_REAL = re.compile(
    r"^(client\d+)_session\d+_authenticate_(mobile|tablet)_"
    r"(lighton|lightoff|controlled|adverse|direct|lateral|diffuse)$"
)
_ATTACK = re.compile(
    r"^attack_(client\d+)_session\d+_(print|mattescreen)_(fixed|hand)_(mobile|tablet)_"
    r"(photo|video)_(lighton|lightoff)$"
)


class ReplayMobile(ReplayAttack):
    """Replay-Mobile adapter: protocols grandtest, print, mattescreen.

    The sibling of Replay-Attack (same split folders, same scan); its own names.
    Samples: ``pai`` the attack instrument (``print``, ``mattescreen``), ``device``
    the capturing device (``mobile`` or ``tablet``), ``session`` the lighting,
    ``subject`` ``clientNNN``. Enrolment videos are excluded.
    """

    name: ClassVar[str] = "replay-mobile"
    protocols: ClassVar[tuple[str, ...]] = ("grandtest", *SPECIES)
    default_protocol: ClassVar[str] = "grandtest"
    description: ClassVar[str] = "Idiap Replay-Mobile (40 clients, phone/tablet, print/screen)"

    @staticmethod
    def _fields(folders: tuple[str, ...], stem: str) -> tuple[str, str, str, str, str] | None:
        """(label, pai, subject, session, device) of a video in ``<split>/<folders>/``, or None."""
        if folders == ("real",):
            m = _REAL.match(stem)
            return None if m is None else ("bonafide", "", m.group(1), m.group(3), m.group(2))
        if folders == ("attack",):
            m = _ATTACK.match(stem)
            return None if m is None else ("attack", m.group(2), m.group(1), m.group(6), m.group(4))
        return None

    @staticmethod
    def _keeps(protocol: str, attack: Sample) -> bool:
        return protocol in ("grandtest", attack.pai)

    face_folder: ClassVar[str] = "faceloc/rect"
    implicit_frames: ClassVar[bool] = True  # the release's lines are 'x y w h', one per frame

    @staticmethod
    def _frame_box(sample: Sample, box: Box) -> Box:
        return upright_box(sample, box)

    def annotation_frame_size(self, sample: Sample) -> tuple[int, int] | None:
        """The shipped boxes refer to upright 720 x 1280 frames."""
        return FRAME_SIZE


def flipped_tablet(sample: Sample) -> bool:
    """Whether ``sample`` is one of the two tablet videos Idiap's loaders flip like phones'."""
    return sample.sample_id.rsplit("/", 1)[-1] in FLIPPED_TABLET


def upright_box(sample: Sample, box: Box) -> Box:
    """A shipped box (Idiap loader frames) in the upright frame (module docstring)."""
    x, y, w, h = box
    width, height = FRAME_SIZE
    if flipped_tablet(sample):
        return (x, height - (y + h), w, h)  # the first loader flips these boxes with the frames
    if sample.device == "tablet":
        return (width - (x + w), y, w, h)
    return (x, y, w, h)
