"""What SynthSpoof renders: the generation settings and one sample's specification.

Both the planner (:mod:`~fasdistill.data.synth.generator`) and the renderer
(:mod:`~fasdistill.data.synth.render`) read these, so they live below both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fasdistill.data.synth.domains import DOMAINS, SPECIES
from fasdistill.errors import InputError


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a SynthSpoof set (same config -> same bytes)."""

    subjects: int = 40  # per domain
    samples: int = 2  # per class (bona fide and each species) per subject
    frames: int = 1  # 1 = still images (PNG); 2+ = videos (FFV1 AVI)
    size: int = 128
    domains: tuple[str, ...] = tuple(DOMAINS)
    species: tuple[str, ...] = SPECIES
    difficulty: float = 0.5
    seed: int = 0
    # Sensors recorded: "rgb" always; "depth" and "ir" add registered frames beside it.
    modalities: tuple[str, ...] = ("rgb",)

    def validate(self) -> None:
        if self.subjects < 3:
            raise InputError(
                f"--subjects must be >= 3 (train, dev and test each need one), got {self.subjects}"
            )
        if self.samples < 1:
            raise InputError(f"--samples must be >= 1, got {self.samples}")
        if not 1 <= self.frames <= 64:
            raise InputError(f"--frames must be between 1 and 64, got {self.frames}")
        if not 32 <= self.size <= 1024 or self.size % 2:
            raise InputError(
                f"--size must be an even number of pixels in [32, 1024], got {self.size}"
            )
        if not 0.0 <= self.difficulty <= 1.0:
            raise InputError(f"--difficulty must lie in [0, 1], got {self.difficulty}")
        if self.seed < 0:
            raise InputError(f"--seed must be >= 0, got {self.seed}")
        if not self.domains:
            raise InputError("--domains is empty; choose from " + ", ".join(DOMAINS))
        unknown = [d for d in self.domains if d not in DOMAINS]
        if unknown:
            raise InputError(
                f"unknown domain(s) {', '.join(unknown)}; choose from {', '.join(DOMAINS)}"
            )
        if len(set(self.domains)) != len(self.domains):
            raise InputError(f"--domains lists a domain twice: {', '.join(self.domains)}")
        if "rgb" not in self.modalities or any(
            m not in ("rgb", "depth", "ir") for m in self.modalities
        ):
            raise InputError(
                f"--modalities must list rgb and optionally depth and ir, got "
                f"{','.join(self.modalities) or 'nothing'}"
            )
        if len(set(self.modalities)) != len(self.modalities):
            raise InputError(f"--modalities lists one twice: {','.join(self.modalities)}")
        bad = [s for s in self.species if s not in SPECIES]
        if bad or not self.species:
            raise InputError(f"unknown or empty species {bad}; choose from {', '.join(SPECIES)}")

    @property
    def strength(self) -> float:
        """Artefact strength: 1 at difficulty 0, 0.1 at difficulty 1 (never fully invisible)."""
        return 1.0 - 0.9 * self.difficulty

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["domains"] = list(self.domains)
        data["species"] = list(self.species)
        # Written only when depth or NIR are asked for, so RGB-only sets keep the
        # manifest (and resume check) they had before modalities existed.
        if self.modalities == ("rgb",):
            del data["modalities"]
        else:
            data["modalities"] = list(self.modalities)
        return data

    @property
    def sensors(self) -> tuple[str, ...]:
        """The modalities stored beside the RGB media (depth, ir), in canonical order."""
        return tuple(m for m in ("depth", "ir") if m in self.modalities)


@dataclass(frozen=True)
class SampleSpec:
    """One sample to render: who, what class, where, and its random stream."""

    sample_id: str
    domain: str
    domain_index: int
    subject_index: int
    subject: str
    split: str
    label: str
    pai: str
    class_index: int
    index: int
    relpath: str
    seed_words: tuple[int, ...]  # (seed, domain, subject, class, index)
