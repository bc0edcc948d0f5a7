"""SynthSpoof's depth and near-infrared (NIR) cameras, registered to the RGB camera.

Multi-modal FAS sets (CASIA-SURF, CeFA, WMCA) record each frame with an RGB
camera, an active depth camera and an NIR camera lit by an 850 nm illuminator
beside the lens. SynthSpoof renders the same scene for all three, pixel for
pixel, from one scene model:

- **Geometry.** A live head or a mask has a face's relief (the ellipsoid the RGB
  shading uses, with nose and eye sockets); a print is a sheet held in the hand,
  bowed as its RGB image is bent; a screen is a flat plane; behind them a wall.
- **NIR reflectance.** At 850 nm skin reflects about half the light whatever its
  visible tone; paper reflects most of it and dye inks almost none of it
  (carbon toner absorbs, so a laser print shows its dark areas); a screen emits no
  NIR, so only its cover glass's reflection of the illuminator shows; a mask
  has the reflectance of its material (paper, resin or silicone), not skin's.
- **Sensors.** The NIR image falls off with the square of distance from the
  illuminator and towards the corners, with shot and read noise and the
  room's own NIR (domain-dependent: daylight and tungsten have much, fluorescent
  tubes little), and auto-exposure metering the frame's centre. The depth camera
  has a working range (0.2-0.7 m), coarser resolution than
  RGB, noise growing with distance squared, holes at grazing angles, on
  specular glass, behind depth edges (the projector's shadow) and at random,
  and 8-bit quantisation (nearer = brighter, 0 = no measurement).

Each sample draws these from its own stream (``[*seed_words, 7]``), never from
the RGB stream, so asking for depth and NIR leaves the RGB bytes unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from fasdistill.data.synth.camera import to_linear
from fasdistill.data.synth.faces import (
    HEAD_HALF_DEPTH,
    HEAD_HALF_HEIGHT_M,
    Identity,
    Light,
    Shot,
    camera_distance,
    face_relief,
    pixel_grid,
    render_face,
)
from fasdistill.data.synth.media import Placement

SENSOR_STREAM = 7  # the extra seed word of a sample's depth/NIR random stream
PAPER_NIR = 0.85  # reflectance of white paper at 850 nm
# How much of the ink's visible darkness survives at 850 nm: dye inks are almost
# transparent there; laser toner is carbon and absorbs.
INK_NIR = {"photo_paper": 0.25, "a4_inkjet": 0.35, "a4_laser": 0.85}
SCREEN_NIR = 0.03  # cover glass, diffuse part (an LCD or OLED emits no NIR)
BEZEL_NIR = 0.08
WALL_NIR = 0.5


@dataclass(frozen=True)
class MaskMaterial:
    """A mask's surface in NIR: reflectance, pore-scale texture kept, specular sheen."""

    name: str
    reflectance: float
    texture: float
    sheen: float


MASK_MATERIALS = (
    MaskMaterial("paper", 0.80, 0.6, 0.0),
    MaskMaterial("resin", 0.30, 0.15, 0.6),
    MaskMaterial("silicone", 0.70, 0.25, 0.2),
)


@dataclass(frozen=True)
class NirCamera:
    """An NIR camera beside an active 850 nm illuminator."""

    ambient: float  # the room's NIR relative to the illuminator at ``reference`` metres
    reference: float = 0.4
    target: float = 110.0  # auto-exposure: the metered centre's mean 8-bit level
    read_noise: float = 0.012
    shot_noise: float = 0.003
    blur: float = 0.7
    vignette: float = 0.35

    def capture(
        self, reflectance: np.ndarray, depth: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """8-bit NIR image of a scene's shaded reflectance at ``depth`` metres."""
        h, w = reflectance.shape
        ys, xs = pixel_grid(h, w)
        r2 = ((xs + 0.5) / w - 0.5) ** 2 + ((ys + 0.5) / h - 0.5) ** 2
        falloff = (self.reference / np.maximum(depth, 0.1)) ** 2 * (1 - self.vignette * 2 * r2)
        signal = reflectance * (falloff + self.ambient)
        signal = cv2.GaussianBlur(signal.astype(np.float32), (0, 0), self.blur)
        # Auto-exposure meters the centre of the frame (where the face is), within the
        # sensor's gain range; sensor noise is relative to the exposed signal.
        centre = signal[h // 4 : h - h // 4, w // 4 : w - w // 4]
        gain = np.clip(self.target / 255.0 / max(float(centre.mean()), 1e-4), 0.5, 4.0)
        signal = np.clip(signal * gain * rng.uniform(0.95, 1.05), 0, None)
        std = np.sqrt(self.shot_noise * signal + self.read_noise**2)
        signal = signal + std * rng.standard_normal(signal.shape, dtype=np.float32)
        return np.clip(signal * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class DepthCamera:
    """An active depth camera (structured light or stereo), stored as 8-bit depth."""

    near: float = 0.2  # metres at level 255
    far: float = 0.7  # metres at level 1; farther is no measurement (0)
    noise_at_reference: float = 0.0015  # metres (1 sigma) at 0.4 m, growing with distance^2
    dropout: float = 0.01  # random missing pixels
    shadow: int = 2  # pixels lost behind a depth edge (projector-camera baseline)
    edge: float = 0.04  # metres: a step this large casts a shadow
    resolution: float = 0.5  # depth pixels per RGB pixel (each side)

    def capture(
        self, depth: np.ndarray, reliability: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """8-bit depth image (0 = hole) of ``depth`` metres; ``reliability`` in [0, 1]."""
        h, w = depth.shape
        small = (max(1, round(w * self.resolution)), max(1, round(h * self.resolution)))
        d = cv2.resize(depth.astype(np.float32), small, interpolation=cv2.INTER_NEAREST)
        rel = cv2.resize(reliability.astype(np.float32), small, interpolation=cv2.INTER_AREA)
        sigma = self.noise_at_reference * (d / 0.4) ** 2
        d = d + sigma * rng.standard_normal(d.shape, dtype=np.float32)
        hole = (d < self.near) | (d > self.far)
        hole |= rng.random(d.shape) < np.clip((0.4 - rel) / 0.4, 0, 1)  # weak return
        hole |= rng.random(d.shape) < self.dropout
        step = np.zeros_like(hole)
        step[:, 1:] = (d[:, :-1] - d[:, 1:]) < -self.edge  # far surface right of a near one
        shade = max(1, round(self.shadow * self.resolution))
        for k in range(shade):
            hole[:, k:] |= step[:, : d.shape[1] - k]
        level = 1 + 254 * (self.far - d) / (self.far - self.near)
        out = np.where(hole, 0, np.clip(np.round(level), 1, 255)).astype(np.uint8)
        return cv2.resize(out, (w, h), interpolation=cv2.INTER_NEAREST)


DEPTH_CAMERA = DepthCamera()


@dataclass
class SensorScene:
    """What the depth and NIR cameras see of one frame, at output resolution."""

    depth: np.ndarray  # metres
    reflectance: np.ndarray  # NIR reflectance times the illuminator's shading
    reliability: np.ndarray  # 0..1, how well the depth camera gets a return


class Sensors:
    """One sample's depth and NIR rendering (its own random stream)."""

    def __init__(self, seed_words: tuple[int, ...], size: int, nir: NirCamera) -> None:
        self.rng = np.random.default_rng([*seed_words, SENSOR_STREAM])
        self.size = size
        self.nir = nir
        ys, xs = pixel_grid(size, size)
        distance = self.rng.uniform(0.8, 2.0)
        slope = self.rng.uniform(-0.15, 0.15, 2)
        self.wall = distance + slope[0] * (xs / size - 0.5) + slope[1] * (ys / size - 0.5)
        self.skin = float(self.rng.uniform(0.45, 0.6))
        self.material = MASK_MATERIALS[int(self.rng.integers(len(MASK_MATERIALS)))]
        self.medium_distance = float(self.rng.uniform(0.28, 0.45))
        self.medium_slope = self.rng.uniform(-0.08, 0.08, 2)
        self.hotspot = (*self.rng.uniform(0.25, 0.75, 2), *self.rng.uniform(0.05, 0.12, 1))
        self.hotspot_gain = float(self.rng.uniform(0.3, 1.0))

    # ------------------------------------------------------------------ scenes

    def person(self, identity: Identity, shot: Shot, mask: bool) -> SensorScene:
        """A live face, or a mask worn on one (the wearer's relief, the mask's material)."""
        size = self.size
        relief, facing = face_relief(identity, shot, size)
        centre = camera_distance(shot) + HEAD_HALF_DEPTH * HEAD_HALF_HEIGHT_M
        on_person = ~np.isnan(relief)
        depth = np.where(on_person, centre - np.nan_to_num(relief) * HEAD_HALF_HEIGHT_M, self.wall)
        albedo = self.material.reflectance if mask else self.skin
        grey = (albedo,) * 3
        nir_identity = replace(
            identity,
            skin=grey,
            hair=(0.2,) * 3,
            iris=(0.3,) * 3,
            lip_colour=(albedo * 0.9,) * 3,
            clothing=(0.45,) * 3,
        )
        nir_shot = replace(
            shot,
            light=Light((0.0, 0.0, 1.0), (1.0, 1.0, 1.0), 1.0, 0.15),
            background=((WALL_NIR,) * 3, (WALL_NIR,) * 3),
        )
        texture, sheen = (self.material.texture, self.material.sheen) if mask else (1.0, 0.0)
        shaded, _ = render_face(nir_identity, nir_shot, size, texture=texture, rigid_sheen=sheen)
        reliability = np.where(on_person, np.clip(facing * 2.0, 0, 1), 1.0)
        return SensorScene(depth, shaded.mean(axis=2), reliability.astype(np.float32))

    def printed(self, photo: np.ndarray, medium: str, placement: Placement) -> SensorScene:
        """A print: the sheet's NIR reflectance (paper, and what of the ink absorbs), bowed."""
        scene = placement.scene_size
        big = cv2.resize(photo, (scene, scene), interpolation=cv2.INTER_CUBIC)
        darkness = np.clip(1.0 - to_linear(big).mean(axis=2) / 0.5, 0, 1) ** 1.5
        reflectance = PAPER_NIR * (1.0 - INK_NIR.get(medium, 0.5) * darkness)
        margin = int(scene * 0.04)
        sheet = np.full((scene + 2 * margin,) * 2, PAPER_NIR, np.float32)
        sheet[margin:-margin, margin:-margin] = reflectance
        ramp = np.broadcast_to(np.linspace(0, 1, sheet.shape[1], dtype=np.float32), sheet.shape)
        across = self._shrink(placement.warp(np.ascontiguousarray(ramp)))
        covered = self._shrink(placement.covered)
        bow = 0.03 * placement.bend * (1.0 - (2.0 * across - 1.0) ** 2)
        plane = self._plane() - bow
        return self._compose(covered, plane, self._shrink(placement.warp(sheet)), 0.9)

    def screen(self, placement: Placement) -> SensorScene:
        """A replay: a flat screen that emits no NIR; its glass mirrors the illuminator."""
        size = self.size
        ys, xs = pixel_grid(size, size)
        gx, gy, radius = self.hotspot
        blob = np.exp(-((xs / size - gx) ** 2 + (ys / size - gy) ** 2) / (2 * radius**2))
        glass = SCREEN_NIR + self.hotspot_gain * blob
        covered = self._shrink(placement.covered)
        plane = self._plane()
        scene = self._compose(covered, plane, glass.astype(np.float32), 0.3)
        if placement.frame is not None:
            bezel = self._shrink(placement.frame)
            on = bezel > 0.5
            scene.depth[on] = plane[on]
            scene.reflectance = scene.reflectance * (1 - bezel) + BEZEL_NIR * bezel
            scene.reliability[on] = 0.8
        return scene

    # ------------------------------------------------------------------ capture

    def capture(self, scene: SensorScene) -> tuple[np.ndarray, np.ndarray]:
        """(8-bit depth, 8-bit NIR) images of one frame."""
        depth = DEPTH_CAMERA.capture(scene.depth, scene.reliability, self.rng)
        nir = self.nir.capture(scene.reflectance, scene.depth, self.rng)
        return depth, nir

    def _shrink(self, scene_image: np.ndarray) -> np.ndarray:
        return cv2.resize(scene_image, (self.size, self.size), interpolation=cv2.INTER_AREA)

    def _plane(self) -> np.ndarray:
        ys, xs = pixel_grid(self.size, self.size)
        sx, sy = self.medium_slope
        return (
            self.medium_distance + sx * (xs / self.size - 0.5) + sy * (ys / self.size - 0.5)
        ).astype(np.float32)

    def _compose(
        self, covered: np.ndarray, plane: np.ndarray, reflectance: np.ndarray, reliable: float
    ) -> SensorScene:
        on = covered > 0.5
        depth = np.where(on, plane, self.wall).astype(np.float32)
        wall_nir = WALL_NIR * 0.8  # the room light's share, as the face renderer's background
        mixed = reflectance * covered + wall_nir * (1 - covered)
        reliability = np.where(on, reliable, 1.0).astype(np.float32)
        return SensorScene(depth, mixed.astype(np.float32), reliability)


def mask_material(seed_words: tuple[int, ...]) -> str:
    """The material of a mask sample (from its sensor stream, as rendering draws it)."""
    return Sensors(seed_words, 8, NirCamera(0.0)).material.name
