"""Idiap Replay-Mobile: phone and tablet face PAD videos with print and matte-screen attacks.

Layout (as shipped)::

    ROOT/{train,devel,test}/real/client001_session02_authenticate_<mobile|tablet>_<light>.mov
    ROOT/{train,devel,test}/attack/attack_client001_session01_<print|mattescreen>_
        <fixed|hand>_<mobile|tablet>_<photo|video>_<light>.mov
    ROOT/enroll/{train,devel,test}/...              (enrolment videos: not used)
    ROOT/faceloc/rect/<same relative path>.face     (lines 'frame x y w h')

40 clients, 1,190 videos (Costa-Pazo et al., BIOSIG 2016). The split is the top
folder (``devel`` is dev); protocols only filter the attacks: ``grandtest`` keeps
every attack, ``print`` and ``mattescreen`` one instrument, and all keep every bona
fide ``authenticate`` video.

The shipped face locations are not read (a detector crops instead): they are in
the frame orientation of Idiap's own loader, which transposes every frame and
mirrors the phone videos (with exceptions for two tablet videos of client 8), not
in the orientation OpenCV decodes, and no video was at hand here to check a
mapping against.
"""

from __future__ import annotations

import re
from typing import ClassVar

from fasdistill.data.formats.base import Box, Sample
from fasdistill.data.formats.replay_attack import ReplayAttack

SPECIES = ("print", "mattescreen")
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

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """None: the shipped face locations are in another frame orientation (module docstring)."""
        return None
