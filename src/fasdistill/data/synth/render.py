"""SynthSpoof rendering: the frames and face boxes of one planned sample.

Every sample draws from its own random stream (``SampleSpec.seed_words``), so a
sample renders to the same pixels whatever the worker or the order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from fasdistill.data.synth.camera import SUPERSAMPLE
from fasdistill.data.synth.domains import DISPLAYS, DOMAINS, PRINT_MEDIA, SOURCE_CAMERA, Domain
from fasdistill.data.synth.faces import Identity, Light, Shot, render_face
from fasdistill.data.synth.media import Box, print_attack, replay_attack, room_background
from fasdistill.data.synth.sensors import NirCamera, Sensors
from fasdistill.data.synth.spec import SampleSpec, SynthConfig


@dataclass
class Rendered:
    """One sample's frames: 8-bit RGB, face boxes, and 8-bit depth and NIR when asked for."""

    frames: list[np.ndarray] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    depth: list[np.ndarray] = field(default_factory=list)
    ir: list[np.ndarray] = field(default_factory=list)

    def add(self, frame: np.ndarray, box: Box, sensors: tuple[np.ndarray, np.ndarray] | None):
        self.frames.append(frame)
        self.boxes.append(box)
        if sensors is not None:
            self.depth.append(sensors[0])
            self.ir.append(sensors[1])


def identity_for(config: SynthConfig, domain_index: int, subject_index: int) -> Identity:
    return Identity.sample(
        np.random.default_rng([config.seed, domain_index, subject_index, 104729])
    )


# ---------------------------------------------------------------------------- rendering


def _upsample(radiance: np.ndarray) -> np.ndarray:
    size = radiance.shape[0] * SUPERSAMPLE
    return cv2.resize(radiance, (size, size), interpolation=cv2.INTER_LINEAR)


def _scaled(box: Box, factor: float) -> Box:
    return box[0] * factor, box[1] * factor, box[2] * factor, box[3] * factor


def _head_motion(shot: Shot, t: float, phase: float, amplitude: float, blink: float | None) -> Shot:
    """A frame of a short clip: the head sways a little, eyes may blink."""
    angle = 2 * np.pi * t + phase
    eye_open = 0.1 if blink is not None and abs(t - blink) < 0.07 else 1.0
    return replace(
        shot,
        yaw=shot.yaw + amplitude * float(np.sin(angle)),
        pitch=shot.pitch + 0.4 * amplitude * float(np.sin(2 * angle)),
        centre=(shot.centre[0] + 0.01 * float(np.sin(angle)), shot.centre[1]),
        eye_open=eye_open,
    )


def _clip_shots(shot: Shot, frames: int, rng: np.random.Generator, rigid: bool) -> list[Shot]:
    if frames == 1:
        return [shot]
    phase = float(rng.uniform(0, 2 * np.pi))
    amplitude = float(rng.uniform(0.04, 0.1))
    blink = None if rigid or rng.random() < 0.4 else float(rng.uniform(0.2, 0.8))
    return [_head_motion(shot, f / frames, phase, amplitude, blink) for f in range(frames)]


def _hand_motion(frames: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """Small drift and tremor of a hand-held sheet or screen."""
    start = rng.uniform(-0.03, 0.03, 2)
    steps = rng.normal(0, 0.004, (frames, 3)) * np.array([1, 1, 0.5])
    path = np.cumsum(steps, axis=0)
    angle0 = rng.uniform(-0.08, 0.08)
    return [(float(start[0] + p[0]), float(start[1] + p[1]), float(angle0 + p[2])) for p in path]


def render_sample(spec: SampleSpec, config: SynthConfig) -> tuple[list[np.ndarray], list[Box]]:
    """Render one sample's frames (8-bit RGB) and its face box per frame."""
    out = render(spec, config, sensors=False)
    return out.frames, out.boxes


def render(spec: SampleSpec, config: SynthConfig, sensors: bool = True) -> Rendered:
    """Render one sample: RGB frames and boxes, plus registered depth and NIR frames
    when ``sensors`` (from their own random stream: the RGB frames do not change)."""
    domain: Domain = DOMAINS[spec.domain]
    out = Rendered()
    sensor = (
        Sensors(spec.seed_words, config.size, NirCamera(domain.nir_ambient)) if sensors else None
    )
    rng = np.random.default_rng(list(spec.seed_words))
    identity = identity_for(config, spec.domain_index, spec.subject_index)
    size = config.size
    strength = config.strength
    light = Light.sample(
        rng, domain.colour_temperature * rng.uniform(0.9, 1.1), domain.light_intensity
    )
    light_rgb = np.asarray(light.colour, np.float32) * light.intensity
    cls = spec.pai or "bonafide"

    if cls in ("bonafide", "mask"):
        shot = Shot.sample(rng, light)
        rigid = cls == "mask"
        if rigid:  # a rigid mask holds one neutral expression
            shot = replace(shot, smile=0.0, mouth_open=0.0, brow_raise=0.0)
            paint = np.asarray(identity.skin) * (1 - 0.3 * strength) + 0.3 * strength * np.array(
                [0.75, 0.62, 0.55]
            )
            identity = replace(identity, skin=tuple(float(c) for c in paint), beard=0.0)
        for f_shot in _clip_shots(shot, config.frames, rng, rigid):
            texture = 1.0 - 0.85 * strength if rigid else 1.0
            sheen = 0.45 * strength if rigid else 0.0
            radiance, box = render_face(identity, f_shot, size, texture=texture, rigid_sheen=sheen)
            frame = domain.camera.capture(_upsample(radiance), rng)
            seen = sensor.capture(sensor.person(identity, f_shot, rigid)) if sensor else None
            out.add(frame, box, seen)
        return out

    # Attacks on the victim: the attacker's own capture first, under their light.
    source_rng = np.random.default_rng([*spec.seed_words, 1])
    source_light = Light.sample(source_rng, float(source_rng.uniform(4000, 6500)), 1.0)
    source_shot = Shot.sample(source_rng, source_light)
    # A harder attack starts from a sharper source: the attacker's photo or video has
    # 1x (difficulty 0) to 2x (difficulty 1) the output resolution, so recapture blur,
    # like every other trace, fades as difficulty grows.
    source_size = 2 * round(size * (1.0 + config.difficulty) / 2)
    background = room_background(size * SUPERSAMPLE, light_rgb, rng)
    motions = _hand_motion(config.frames, rng)
    medium_seed = int(rng.integers(2**31))
    if cls == "print":
        medium_name = choose_instrument(spec)
        medium = PRINT_MEDIA[medium_name]
        radiance, src_box = render_face(identity, source_shot, source_size)
        photo = SOURCE_CAMERA.capture(_upsample(radiance), source_rng)
        bend = float(rng.uniform(0.3, 1.0))
        show_edge = bool(rng.random() < 0.35 * strength + 0.05)
        for motion in motions:
            scene, box, placement = print_attack(
                photo,
                src_box,
                medium,
                background,
                light_rgb,
                strength,
                motion,
                np.random.default_rng(medium_seed),
                bend,
                show_edge,
            )
            frame = domain.camera.capture(scene, rng)
            seen = sensor.capture(sensor.printed(photo, medium_name, placement)) if sensor else None
            out.add(frame, _scaled(box, 1 / SUPERSAMPLE), seen)
        return out

    display = DISPLAYS[choose_instrument(spec)]
    glare = (
        float(rng.uniform(0.1, 0.9)),
        float(rng.uniform(0.1, 0.9)),
        float(rng.uniform(0.08, 0.25)),
    )
    show_bezel = bool(rng.random() < 0.35 * strength + 0.05)
    for f_shot, motion in zip(
        _clip_shots(source_shot, config.frames, source_rng, False), motions, strict=True
    ):
        radiance, src_box = render_face(identity, f_shot, source_size)
        video_frame = SOURCE_CAMERA.capture(_upsample(radiance), source_rng)
        scene, box, placement = replay_attack(
            video_frame,
            src_box,
            display,
            background,
            light_rgb,
            strength,
            motion,
            np.random.default_rng(medium_seed),
            glare,
            show_bezel,
        )
        frame = domain.camera.capture(scene, rng)
        seen = sensor.capture(sensor.screen(placement)) if sensor else None
        out.add(frame, _scaled(box, 1 / SUPERSAMPLE), seen)
    return out


def choose_instrument(spec: SampleSpec) -> str:
    """The print medium or display of an attack sample, from its own stream (re-derivable)."""
    if spec.pai not in ("print", "replay"):
        return spec.pai
    domain = DOMAINS[spec.domain]
    options = domain.print_media if spec.pai == "print" else domain.displays
    return options[int(np.random.default_rng([*spec.seed_words, 2]).integers(len(options)))]
