"""Presentation attack instruments, simulated from the physics of each medium.

Each function takes the attacker's source material (a photo or video frame of
the victim, as a camera stored it) and returns the *scene radiance* the
attacked camera sees, at scene resolution, plus where the face lies in it. No
function adds a class-specific mark: every trace comes from how the medium
reproduces light (halftone dots, paper reflectance, sub-pixel emission,
backlight, glare, rigid smooth surfaces), and ``strength`` (1 - difficulty,
floored) scales how visible those traces are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from fasdistill.data.synth.camera import to_linear
from fasdistill.data.synth.faces import kelvin_to_rgb, pixel_grid, smooth_noise

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PrintMedium:
    """A printer and paper: photo paper (fine stochastic screen, gloss) or A4 (AM halftone)."""

    name: str
    screen: str  # "am" (rotated clustered dots) or "fm" (stochastic)
    cell: float  # halftone cell period in scene pixels (AM) or dot size (FM)
    white: float  # paper reflectance
    black: float  # darkest ink reflectance
    saturation: float  # gamut of the inks relative to the source
    gloss: float  # specular highlight strength
    fibre: float  # paper texture amplitude
    dot_visibility: float  # how much of the screen survives ink spread on this paper (0..1)


@dataclass(frozen=True)
class Display:
    """A screen replaying the victim: sub-pixel stripes, backlight, gamma, glare."""

    name: str
    pitch: float  # scene pixels per screen pixel
    gamma: float  # display gamma relative to the source encoding
    black: float  # backlight leakage (fraction of white)
    white_point: float  # kelvin
    brightness: float  # emitted radiance of full white, in scene light units
    reflectivity: float  # glare strength of the cover glass
    banding: float  # refresh/PWM banding amplitude


def _placement(
    size: int, src: int, zoom: float, angle: float, shift: tuple[float, float]
) -> np.ndarray:
    """Affine map from source-image pixels to scene pixels (zoom about the centre)."""
    scale = zoom * size / src
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    cx, cy = src / 2.0, src / 2.0
    tx = size / 2.0 + shift[0] * size - (c * cx - s * cy)
    ty = size / 2.0 + shift[1] * size - (s * cx + c * cy)
    return np.array([[c, -s, tx], [s, c, ty]], np.float32)


@dataclass(frozen=True)
class Placement:
    """Where a sheet or screen lies in one scene, so other sensors can see the same medium.

    ``warp`` moves any image of the medium (its near-infrared reflectance, a coordinate
    ramp) exactly as its RGB content was moved: bent like the sheet, then placed.
    """

    matrix: np.ndarray  # medium pixels -> scene pixels (2 x 3)
    scene_size: int
    bend: float  # the sheet's bow (0 for a flat screen)
    tilt: float
    covered: np.ndarray  # coverage of the medium in the scene, in [0, 1]
    frame: np.ndarray | None = None  # a screen's bezel coverage (None: no bezel)

    def warp(self, image: np.ndarray) -> np.ndarray:
        if self.bend:
            image = _bend(image, self.bend, self.tilt)
        size = self.scene_size
        return cv2.warpAffine(image, self.matrix, (size, size), flags=cv2.INTER_LINEAR)


def map_box(box: Box, matrix: np.ndarray) -> Box:
    """The axis-aligned box around ``box`` moved by an affine ``matrix``."""
    x, y, w, h = box
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], np.float32)
    moved = corners @ matrix.T
    x0, y0 = moved.min(axis=0)
    x1, y1 = moved.max(axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def _bend(image: np.ndarray, amount: float, tilt: float) -> np.ndarray:
    """Non-planar warp of a held sheet: a cylindrical bow plus a slight perspective."""
    h, w = image.shape[:2]
    ys, xs = pixel_grid(h, w)
    bow = amount * w * np.sin(np.pi * ys / h) * (xs / w - 0.5) * 0.15
    map_x = xs + bow + tilt * (ys - h / 2) * (xs / w - 0.5)
    map_y = ys + amount * h * 0.02 * np.sin(np.pi * xs / w)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _halftone(reflectance: np.ndarray, medium: PrintMedium, rng: np.random.Generator) -> np.ndarray:
    """Screen continuous-tone reflectance into ink dots (per C, M, Y channel)."""
    h, w = reflectance.shape[:2]
    ys, xs = pixel_grid(h, w)
    span = max(medium.white - medium.black, 1e-3)
    coverage = np.clip((medium.white - reflectance) / span, 0, 1)
    out = np.empty_like(reflectance)
    for ch, angle_deg in enumerate((15.0, 75.0, 0.0)):  # C, M, Y screen angles
        if medium.screen == "am":
            a = math.radians(angle_deg + rng.uniform(-3, 3))
            u = (math.cos(a) * xs + math.sin(a) * ys) / medium.cell
            v = (-math.sin(a) * xs + math.cos(a) * ys) / medium.cell
            threshold = 0.5 + 0.25 * (np.cos(2 * np.pi * u) + np.cos(2 * np.pi * v))
        else:
            noise = rng.random((h, w)).astype(np.float32)
            noise = cv2.GaussianBlur(noise, (0, 0), medium.cell * 0.5)
            lo, hi = np.percentile(noise, [1, 99])
            threshold = np.clip((noise - lo) / max(hi - lo, 1e-6), 0, 1)
        sharpness = 6.0 if medium.screen == "am" else 2.5  # stochastic dots are finer and softer
        ink = np.clip((coverage[..., ch] - threshold) * sharpness + 0.5, 0, 1)
        out[..., ch] = medium.white - span * ink
    return out


def print_attack(
    photo: np.ndarray,
    photo_box: Box,
    medium: PrintMedium,
    background: np.ndarray,
    light_rgb: np.ndarray,
    strength: float,
    motion: tuple[float, float, float],
    rng: np.random.Generator,
    bend: float,
    show_edge: bool,
) -> tuple[np.ndarray, Box, Placement]:
    """A printed photo held in front of the camera: scene radiance, face box and placement.

    ``photo`` is the attacker's 8-bit photo; ``background`` the lit scene behind
    the sheet (scene resolution); ``motion`` = (dx, dy, angle) of the hand.
    """
    size = background.shape[0]
    src = photo.shape[0]
    big = cv2.resize(photo, (size, size), interpolation=cv2.INTER_CUBIC)
    lin = to_linear(big)
    # Print tone reproduction: reduced dynamic range and gamut.
    grey = lin.mean(axis=2, keepdims=True)
    sat = 1.0 - (1.0 - medium.saturation) * strength
    lin = grey + (lin - grey) * sat
    reflectance = medium.black + (medium.white - medium.black) * np.clip(lin, 0, 1) ** (
        1 + 0.25 * strength
    )
    # Easier attacks use coarser screens (lower lines per inch): dots up to twice as large.
    dotted = _halftone(reflectance, replace(medium, cell=medium.cell * (1 + strength)), rng)
    mix = strength * medium.dot_visibility
    reflectance = mix * dotted + (1 - mix) * reflectance
    reflectance = cv2.GaussianBlur(reflectance, (0, 0), 0.5)  # ink bleed
    fibres = cv2.GaussianBlur(
        rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.8, sigmaY=2.5
    )
    reflectance *= (1.0 + medium.fibre * strength * fibres)[..., None]
    # A white margin, then the sheet bends in the hand.
    margin = int(size * 0.04)
    sheet = np.full((size + 2 * margin, size + 2 * margin, 3), medium.white, np.float32)
    sheet[margin:-margin, margin:-margin] = reflectance
    tilt = rng.uniform(-1, 1) * bend * strength * 0.05
    sheet = _bend(sheet, bend * strength, tilt)
    zoom = rng.uniform(0.86, 0.97) if show_edge else rng.uniform(1.05, 1.25)
    matrix = _placement(size, sheet.shape[0], zoom, motion[2], (motion[0], motion[1]))
    covered = cv2.warpAffine(np.ones(sheet.shape[:2], np.float32), matrix, (size, size))
    warped = cv2.warpAffine(sheet, matrix, (size, size), flags=cv2.INTER_LINEAR)
    # The sheet is lit by the room: uneven light across the bow, a specular glint.
    ys, xs = pixel_grid(size, size)
    ys, xs = ys / size, xs / size
    gradient = 1.0 + 0.15 * strength * (xs - 0.5) * rng.uniform(-1, 1) + 0.1 * strength * (ys - 0.5)
    radiance = warped * light_rgb * gradient[..., None]
    gx, gy = rng.uniform(0.2, 0.8, 2)
    glint = np.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * rng.uniform(0.04, 0.12) ** 2))
    radiance += (medium.gloss * strength * glint)[..., None] * light_rgb
    scene = background * (1 - covered[..., None]) + radiance * covered[..., None]
    photo_to_sheet = np.array([[size / src, 0, margin], [0, size / src, margin]], np.float32)
    box = map_box(map_box(photo_box, photo_to_sheet), matrix)
    return scene, box, Placement(matrix, size, bend * strength, tilt, covered)


def replay_attack(
    frame: np.ndarray,
    frame_box: Box,
    display: Display,
    background: np.ndarray,
    light_rgb: np.ndarray,
    strength: float,
    motion: tuple[float, float, float],
    rng: np.random.Generator,
    glare: tuple[float, float, float],
    show_bezel: bool,
) -> tuple[np.ndarray, Box, Placement]:
    """A screen replaying the victim's video frame: scene radiance, face box and placement.

    The frame is resampled onto the display's RGB sub-pixel stripes, so a camera
    recapturing it aliases the grid into moiré; ``glare`` = (x, y, radius) of a
    reflection on the cover glass.
    """
    size = background.shape[0]
    src = frame.shape[0]
    zoom = rng.uniform(0.82, 0.95) if show_bezel else rng.uniform(1.05, 1.2)
    matrix = _placement(size, src, zoom, motion[2], (motion[0], motion[1]))
    inverse = cv2.invertAffineTransform(matrix)
    ys, xs = pixel_grid(size, size)
    ys, xs = ys + 0.5, xs + 0.5
    # Screen coordinates of every scene pixel, in source pixels (= screen pixels scaled).
    sx = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    sy = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    # Each screen pixel shows the source colour at its centre, as three colour stripes.
    # Easier attacks use coarser screens (lower pixel density): pitch up to twice as large.
    pitch = display.pitch * (1 + strength)
    pitch_src = (zoom * size / src) / pitch  # screen pixels per source pixel
    u_screen = sx * pitch_src
    v_screen = sy * pitch_src
    cell_u = np.floor(u_screen)
    cell_v = np.floor(v_screen)
    sample_x = (cell_u + 0.5) / pitch_src
    sample_y = (cell_v + 0.5) / pitch_src
    linear = to_linear(frame)
    shown = cv2.remap(
        linear,
        sample_x.astype(np.float32),
        sample_y.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    # Display response: its own gamma, backlight leakage and white point.
    response = np.clip(shown, 0, 1) ** (1.0 + (display.gamma - 1.0) * strength)
    white = np.asarray(kelvin_to_rgb(6500 + (display.white_point - 6500) * strength), np.float32)
    black = display.black * (0.3 + 0.7 * strength)
    # A careful attacker dims the screen to the room: brightness follows the scene's
    # light level as strength falls.
    room_level = float(np.mean(light_rgb))
    brightness = display.brightness * (strength + (1 - strength) * room_level)
    emitted = brightness * (black + (1 - black) * response) * white
    # Sub-pixel stripes (R, G, B) and the black matrix between pixels.
    frac_u = u_screen - cell_u
    frac_v = v_screen - cell_v
    stripe = np.minimum((frac_u * 3).astype(np.int32), 2)
    mask = np.zeros((size, size, 3), np.float32)
    for ch in range(3):
        mask[..., ch] = (stripe == ch) * 3.0
    mask *= (frac_v < 0.88)[..., None] / 0.88
    emitted = emitted * (strength * mask + (1 - strength))
    # Refresh / PWM banding seen by a rolling shutter.
    period = rng.uniform(0.15, 0.4) * size
    bands = 1.0 + display.banding * strength * np.sin(
        2 * np.pi * ys / period + rng.uniform(0, 2 * np.pi)
    )
    emitted *= bands[..., None]
    # Cover glass reflects the room: a soft glare blob plus a faint mirrored background.
    gx, gy, gr = glare
    blob = np.exp(-((xs / size - gx) ** 2 + (ys / size - gy) ** 2) / (2 * gr**2))
    reflection = (
        display.reflectivity * strength * (blob[..., None] * light_rgb + 0.3 * background[:, ::-1])
    )
    emitted += reflection
    covered = cv2.warpAffine(np.ones((src, src), np.float32), matrix, (size, size))
    bezel = None
    if show_bezel:
        outer = cv2.warpAffine(
            np.ones((src, src), np.float32),
            _placement(size, src, zoom * 1.08, motion[2], (motion[0], motion[1])),
            (size, size),
        )
        bezel = np.clip(outer - covered, 0, 1)
        background = background * (1 - bezel[..., None]) + bezel[..., None] * 0.02 * light_rgb
    scene = background * (1 - covered[..., None]) + emitted * covered[..., None]
    return scene, map_box(frame_box, matrix), Placement(matrix, size, 0.0, 0.0, covered, bezel)


def room_background(size: int, light_rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The attack scene behind a sheet or screen: a lit, textured wall."""
    base = rng.uniform(0.15, 0.7, 3).astype(np.float32)
    wall = base * (1.0 + 0.2 * smooth_noise((size, size), 4, rng))[..., None]
    return wall * (light_rgb * 0.55 + 0.25)
