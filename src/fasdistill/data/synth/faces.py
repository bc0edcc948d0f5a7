"""Procedural bona fide faces: identities from a seed, rendered under pose and light.

A face is a shaded head ellipsoid with layered features (ears, hair, eyes, brows,
nose, mouth, optional glasses and beard) drawn with anti-aliased implicit
shapes. The renderer returns *scene radiance* (linear RGB, roughly [0, 1]):
cameras, print media and screens in the other modules turn it into pixels.

An :class:`Identity` fixes everything that makes a person recognisable (face
shape, skin, hair, eyes...), so a subject looks the same across its samples;
:class:`Shot` holds what changes between captures (pose, expression, light,
background).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

_SKIN_LIGHT = np.array([0.86, 0.64, 0.52], np.float32)
_SKIN_DARK = np.array([0.26, 0.15, 0.10], np.float32)
_HAIR = np.array(
    [
        [0.03, 0.025, 0.02],  # black
        [0.12, 0.07, 0.04],  # dark brown
        [0.30, 0.18, 0.09],  # brown
        [0.62, 0.48, 0.26],  # blond
        [0.45, 0.16, 0.06],  # red
        [0.55, 0.55, 0.55],  # grey
    ],
    np.float32,
)
_IRIS = np.array(
    [[0.20, 0.11, 0.05], [0.10, 0.22, 0.38], [0.16, 0.26, 0.12], [0.30, 0.22, 0.10]], np.float32
)


@dataclass(frozen=True)
class Identity:
    """What stays the same for one subject across every capture."""

    face_width: float  # half-width of the head relative to its half-height
    jaw: float  # 0 round .. 1 square-ish (narrows the chin less)
    skin: tuple[float, float, float]
    skin_texture: float  # amplitude of pore-scale texture
    blotch_seed: int
    hair: tuple[float, float, float]
    hair_style: int  # 0 bald, 1 short, 2 medium, 3 long
    eye_spacing: float
    eye_size: float
    iris: tuple[float, float, float]
    brow_thickness: float
    brow_colour_mix: float
    nose_length: float
    nose_width: float
    mouth_width: float
    lip_colour: tuple[float, float, float]
    glasses: bool
    beard: float  # 0 none .. 1 full
    clothing: tuple[float, float, float]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Identity:
        tone = rng.beta(1.4, 1.4)
        skin = (1 - tone) * _SKIN_LIGHT + tone * _SKIN_DARK
        skin = np.clip(skin * rng.normal(1.0, 0.04, 3), 0.02, 1.0)
        hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2)
        lips = np.clip(skin * np.array([0.95, 0.62, 0.62]) * rng.uniform(0.8, 1.0), 0, 1)
        return cls(
            face_width=float(rng.uniform(0.70, 0.86)),
            jaw=float(rng.uniform(0.0, 1.0)),
            skin=tuple(float(c) for c in skin),
            skin_texture=float(rng.uniform(0.02, 0.045)),
            blotch_seed=int(rng.integers(2**31)),
            hair=tuple(float(c) for c in np.clip(hair, 0, 1)),
            hair_style=int(rng.choice(4, p=[0.08, 0.42, 0.25, 0.25])),
            eye_spacing=float(rng.uniform(0.34, 0.42)),
            eye_size=float(rng.uniform(0.85, 1.15)),
            iris=tuple(float(c) for c in _IRIS[rng.integers(len(_IRIS))]),
            brow_thickness=float(rng.uniform(0.030, 0.055)),
            brow_colour_mix=float(rng.uniform(0.5, 0.9)),
            nose_length=float(rng.uniform(0.22, 0.32)),
            nose_width=float(rng.uniform(0.10, 0.16)),
            mouth_width=float(rng.uniform(0.26, 0.36)),
            lip_colour=tuple(float(c) for c in lips),
            glasses=bool(rng.random() < 0.25),
            beard=float(rng.uniform(0.4, 1.0)) if rng.random() < 0.2 else 0.0,
            clothing=tuple(float(c) for c in rng.uniform(0.05, 0.7, 3)),
        )


@dataclass(frozen=True)
class Light:
    """A directional light plus ambient fill, in scene units."""

    direction: tuple[
        float, float, float
    ]  # unit vector towards the light (x right, y down, z to camera)
    colour: tuple[float, float, float]
    intensity: float
    ambient: float

    @classmethod
    def sample(cls, rng: np.random.Generator, colour_temperature: float, intensity: float) -> Light:
        azimuth = rng.uniform(-1.0, 1.0)
        elevation = rng.uniform(-0.7, 0.2)
        d = np.array([math.sin(azimuth), elevation, math.cos(azimuth) + 0.6])
        d /= np.linalg.norm(d)
        return cls(
            direction=tuple(float(x) for x in d),
            colour=kelvin_to_rgb(colour_temperature),
            intensity=float(intensity * rng.uniform(0.85, 1.15)),
            ambient=float(rng.uniform(0.25, 0.45)),
        )


@dataclass(frozen=True)
class Shot:
    """What changes between captures of one identity."""

    yaw: float  # radians, positive turns the face to the viewer's right
    pitch: float
    roll: float
    scale: float  # head half-height as a fraction of the image
    centre: tuple[float, float]  # head centre, fractions of the image
    smile: float  # -0.3 .. 1
    mouth_open: float  # 0 .. 1
    eye_open: float  # 0 closed .. 1 open
    brow_raise: float
    light: Light
    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    background_seed: int

    @classmethod
    def sample(cls, rng: np.random.Generator, light: Light) -> Shot:
        base = rng.uniform(0.15, 0.8, 3)
        return cls(
            yaw=float(rng.normal(0, 0.22)),
            pitch=float(rng.normal(0, 0.12)),
            roll=float(rng.normal(0, 0.08)),
            scale=float(rng.uniform(0.26, 0.32)),
            centre=(float(rng.uniform(0.45, 0.55)), float(rng.uniform(0.44, 0.52))),
            smile=float(rng.uniform(-0.3, 1.0)),
            mouth_open=float(rng.uniform(0, 0.4) if rng.random() < 0.3 else 0.0),
            eye_open=1.0,
            brow_raise=float(rng.normal(0, 0.3)),
            light=light,
            background=(
                tuple(float(c) for c in base),
                tuple(float(c) for c in np.clip(base * rng.uniform(0.5, 1.3, 3), 0, 1)),
            ),
            background_seed=int(rng.integers(2**31)),
        )


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Approximate linear RGB of a black body, normalised to green = 1."""
    t = kelvin / 100.0
    if t <= 66:
        r = 1.0
        g = max(0.0, 0.39008 * math.log(t) - 0.63184)
        b = 0.0 if t <= 19 else max(0.0, 0.54321 * math.log(t - 10) - 1.19625)
    else:
        r = 1.29294 * (t - 60) ** -0.1332
        g = 1.12989 * (t - 60) ** -0.0755
        b = 1.0
    rgb = np.array([r, g, b]) ** 2.2  # the fit is in sRGB-ish space
    rgb /= rgb[1]
    return tuple(float(c) for c in np.clip(rgb, 0.05, 3.0))


@functools.lru_cache(maxsize=8)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every pixel as float32 (cached, read-only)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


def smooth_noise(size: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise in [-1, 1]: a random ``cells`` grid upsampled smoothly."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


class _Canvas:
    """Image plus face-space coordinates for drawing anti-aliased implicit shapes."""

    def __init__(self, size: int, shot: Shot, identity: Identity) -> None:
        self.size = size
        ys, xs = pixel_grid(size, size)
        ys, xs = ys + 0.5, xs + 0.5
        half_h = shot.scale * size
        cx, cy = shot.centre[0] * size, shot.centre[1] * size
        cos_r, sin_r = math.cos(shot.roll), math.sin(shot.roll)
        dx, dy = xs - cx, ys - cy
        # Rotate image coordinates into the (rolled) face frame, unit = head half-height.
        self.u = (cos_r * dx + sin_r * dy) / half_h
        self.v = (-sin_r * dx + cos_r * dy) / half_h
        self.px = 1.0 / half_h  # one pixel in face units
        self.img = np.zeros((size, size, 3), np.float32)
        self.centre = (cx, cy)
        self.half_h = half_h
        self._rot = (cos_r, sin_r)

    def _window(self, cx: float, cy: float, radius: float) -> tuple[slice, slice]:
        """Image rows/columns that can hold a shape of ``radius`` (face units) around (cx, cy)."""
        cos_r, sin_r = self._rot
        x = self.centre[0] + self.half_h * (cos_r * cx - sin_r * cy)
        y = self.centre[1] + self.half_h * (sin_r * cx + cos_r * cy)
        r = radius * self.half_h + 2.0
        rows = slice(max(0, int(y - r)), max(0, min(self.size, int(y + r) + 2)))
        cols = slice(max(0, int(x - r)), max(0, min(self.size, int(x + r) + 2)))
        return rows, cols

    def ellipse(self, cx: float, cy: float, a: float, b: float, angle: float = 0.0) -> np.ndarray:
        """Coverage in [0, 1] of an ellipse (face units), anti-aliased over a pixel.

        Only the ellipse's bounding window is evaluated; the rest stays zero.
        """
        out = np.zeros((self.size, self.size), np.float32)
        # The anti-aliasing ramp is scaled by the minor axis, so it reaches
        # max(a, b) * (1 + 0.5 px / min(a, b)) along the major one.
        win = self._window(cx, cy, max(a, b) * (1.0 + 0.5 * self.px / min(a, b)))
        du, dv = self.u[win] - cx, self.v[win] - cy
        if angle:
            c, s = math.cos(angle), math.sin(angle)
            du, dv = c * du + s * dv, -s * du + c * dv
        r = np.sqrt((du / a) ** 2 + (dv / b) ** 2)
        out[win] = np.clip((1.0 - r) * min(a, b) / self.px + 0.5, 0.0, 1.0)
        return out

    def paint(self, alpha: np.ndarray, colour: np.ndarray | tuple[float, ...]) -> None:
        """Blend ``colour`` (RGB or a per-pixel image) over the canvas where ``alpha`` > 0."""
        rows = np.flatnonzero(alpha.any(axis=1))
        cols = np.flatnonzero(alpha.any(axis=0))
        if rows.size == 0:
            return
        win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        colour = np.asarray(colour, np.float32)
        if colour.ndim == 3:
            colour = colour[win]
        a = alpha[win][..., None]
        region = self.img[win]
        region *= 1.0 - a
        region += a * colour


def _project(identity: Identity, shot: Shot, fx: float, fy: float) -> tuple[float, float, float]:
    """Face-surface point (fx, fy) to image-plane face units under yaw/pitch: x, y, x-scale."""
    w = identity.face_width
    nx = fx / w
    z = math.sqrt(max(0.05, 1.0 - 0.8 * nx * nx - 0.5 * fy * fy))
    x = fx * math.cos(shot.yaw) + z * w * math.sin(shot.yaw)
    y = fy * math.cos(shot.pitch) + z * math.sin(shot.pitch) * 0.9
    theta = math.asin(max(-0.95, min(0.95, nx))) + shot.yaw
    scale = max(0.15, math.cos(theta)) / max(0.3, math.cos(math.asin(max(-0.95, min(0.95, nx)))))
    return x, y, scale


def _head(
    cv: _Canvas, identity: Identity, yaw_shift: float, pitch_shift: float
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The head ellipsoid, narrower at the jaw: its centre offset, coverage and the
    surface normal (nu, nv, nz) the shading and the depth relief both use."""
    w = identity.face_width
    hx = yaw_shift * 0.25
    v_rel = cv.v - pitch_shift * 0.2
    jaw_narrow = 1.0 - np.clip(v_rel - 0.25, 0, None) * (0.55 - 0.3 * identity.jaw)
    head = cv.ellipse(hx, pitch_shift * 0.2, w, 1.0) * (
        np.clip((1.0 - np.abs(cv.u - hx) / (w * jaw_narrow)) / cv.px * 0.02 + 0.5, 0, 1)
    )
    nu = np.clip((cv.u - hx - yaw_shift * 0.6) / w, -1, 1)
    nv = np.clip(v_rel, -1, 1)
    nz = np.sqrt(np.clip(1.0 - 0.85 * nu**2 - 0.6 * nv**2, 0.02, None))
    return hx, head, nu, nv, nz


def render_face(
    identity: Identity, shot: Shot, size: int, texture: float = 1.0, rigid_sheen: float = 0.0
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Render ``identity`` under ``shot`` as ``size`` x ``size`` linear RGB radiance.

    ``texture`` scales skin micro-texture (a mask's smooth surface uses < 1);
    ``rigid_sheen`` adds the specular lobe of a plastic or resin surface.
    Returns the image and the face box (x, y, w, h) in pixels.
    """
    rng = np.random.default_rng(identity.blotch_seed)
    bg_rng = np.random.default_rng(shot.background_seed)
    cv = _Canvas(size, shot, identity)
    light = np.asarray(shot.light.colour, np.float32) * shot.light.intensity
    ldir = np.asarray(shot.light.direction, np.float32)
    skin = np.asarray(identity.skin, np.float32)
    hair = np.asarray(identity.hair, np.float32)
    w = identity.face_width

    # Background: a lit two-colour gradient with soft blobs and a few straight edges.
    c0, c1 = (np.asarray(c, np.float32) for c in shot.background)
    t = (
        np.linspace(0, 1, size, dtype=np.float32)[:, None] * 0.7
        + np.linspace(0, 1, size, dtype=np.float32)[None, :] * 0.3
    )
    bg = c0 * (1 - t[..., None]) + c1 * t[..., None]
    bg *= 1.0 + 0.18 * smooth_noise((size, size), 5, bg_rng)[..., None]
    for _ in range(bg_rng.integers(0, 3)):
        x0 = int(bg_rng.uniform(0, size))
        bg[:, x0 : x0 + max(1, size // 40)] *= bg_rng.uniform(0.6, 1.3)
    cv.img[:] = bg * (light * 0.55 + 0.25)

    yaw_shift = math.sin(shot.yaw) * w * 0.55
    pitch_shift = math.sin(shot.pitch) * 0.4
    # Shoulders and neck.
    cv.paint(
        cv.ellipse(yaw_shift * 0.3, 1.75, 1.55, 0.75),
        np.asarray(identity.clothing) * (light * 0.7 + 0.15),
    )
    neck = cv.ellipse(yaw_shift * 0.5, 1.0, w * 0.55, 0.6)
    cv.paint(neck, skin * (light * 0.45 + 0.12))
    # Long hair falls behind the head.
    if identity.hair_style == 3:
        cv.paint(cv.ellipse(yaw_shift * 0.2, 0.25, w * 1.35, 1.25), hair * (light * 0.5 + 0.2))
    elif identity.hair_style == 2:
        cv.paint(cv.ellipse(yaw_shift * 0.2, -0.1, w * 1.2, 1.05), hair * (light * 0.5 + 0.2))
    # Ears, partly hidden when the head turns.
    for side in (-1, 1):
        ex = side * w * math.cos(shot.yaw) * 0.98 + yaw_shift * 0.2
        visible = max(0.25, 1.0 - side * math.sin(shot.yaw) * 1.8)
        cv.paint(
            cv.ellipse(ex, 0.05 + pitch_shift * 0.3, 0.11 * visible, 0.2),
            skin * (light * 0.55 + 0.2),
        )

    # Head: a shaded ellipsoid, narrower at the jaw.
    hx, head, nu, nv, nz = _head(cv, identity, yaw_shift, pitch_shift)
    diffuse = np.clip(nu * ldir[0] + nv * ldir[1] + nz * ldir[2], 0, None)
    shading = shot.light.ambient + (1 - shot.light.ambient) * diffuse
    pores = cv2.GaussianBlur(rng.normal(0, 1.6, (size, size)).astype(np.float32), (0, 0), 0.7)
    texture_map = 1.0 + identity.skin_texture * texture * pores
    texture_map *= 1.0 + 0.06 * texture * smooth_noise((size, size), 9, rng)
    cheeks = 0.06 * (
        cv.ellipse(hx - 0.42 * w, 0.25, 0.25, 0.18) + cv.ellipse(hx + 0.42 * w, 0.25, 0.25, 0.18)
    )
    albedo = (
        skin
        * texture_map[..., None]
        * (1 + cheeks[..., None] * np.array([0.5, -0.2, -0.2], np.float32))
    )
    face_rgb = albedo * shading[..., None] * light
    if rigid_sheen > 0:
        half = ldir + np.array([0, 0, 1], np.float32)
        half /= np.linalg.norm(half)
        spec = np.clip(nu * half[0] + nv * half[1] + nz * half[2], 0, None) ** 18
        face_rgb = face_rgb + rigid_sheen * spec[..., None] * light
    cv.paint(head, face_rgb)

    # Hair on top of the head.
    if identity.hair_style >= 1:
        cap = cv.ellipse(hx, -0.55 + pitch_shift * 0.3, w * 1.04, 0.62) * np.clip(
            (-(cv.v - pitch_shift * 0.3) - 0.38 + 0.1 * np.cos(cv.u * 9)) / cv.px * 0.05, 0, 1
        )
        strands = 1.0 + 0.25 * np.sin(cv.u * 70 + smooth_noise((size, size), 6, rng) * 4)
        cv.paint(
            cap, hair[None, None] * strands[..., None] * (light * 0.55 + 0.15) * shading[..., None]
        )

    # Eyes and brows.
    eye_y = -0.08
    for side in (-1, 1):
        x, y, sx = _project(identity, shot, side * identity.eye_spacing * w * 1.05, eye_y)
        x += hx
        a = 0.125 * identity.eye_size * sx
        b = 0.06 * identity.eye_size * max(0.08, shot.eye_open)
        socket = cv.ellipse(x, y - 0.01, a * 1.5, 0.1)
        cv.paint(socket * 0.35, skin * 0.55 * light * (shading[..., None] * 0.6 + 0.2))
        eye = cv.ellipse(x, y, a, b)
        cv.paint(eye, np.array([0.78, 0.76, 0.72], np.float32) * light * 0.85)
        if shot.eye_open > 0.2:
            iris = (
                cv.ellipse(
                    x + shot.yaw * 0.02,
                    y,
                    0.055 * identity.eye_size * sx,
                    0.055 * identity.eye_size,
                )
                * eye
            )
            cv.paint(iris, np.asarray(identity.iris) * light)
            cv.paint(
                cv.ellipse(x + shot.yaw * 0.02, y, 0.018 * sx, 0.018) * eye, (0.01, 0.01, 0.01)
            )
            cv.paint(cv.ellipse(x + 0.015, y - 0.015, 0.008, 0.008) * eye, light * 0.9)
        lid = cv.ellipse(x, y - b * 0.6, a * 1.05, b * 0.55) * (1 - eye) * socket
        cv.paint(lid * 0.8, skin * 0.5 * light)
        brow_y = y - 0.14 - 0.04 * shot.brow_raise
        brow = cv.ellipse(x, brow_y, a * 1.35, identity.brow_thickness, angle=-side * 0.12)
        brow_colour = hair * identity.brow_colour_mix + skin * 0.3 * (1 - identity.brow_colour_mix)
        cv.paint(brow * 0.9, brow_colour * light * 0.8)

    # Nose: a shadowed side, a lit ridge and two nostrils.
    nx, ny, nsx = _project(identity, shot, 0.0, 0.12)
    nx += hx
    side = 1.0 if ldir[0] < 0 else -1.0
    shadow = cv.ellipse(
        nx + side * identity.nose_width * 0.45 * nsx, ny, 0.03, identity.nose_length * 0.55
    )
    cv.paint(shadow * 0.35, skin * 0.35 * light)
    ridge = cv.ellipse(nx - side * 0.01, ny - 0.02, 0.02, identity.nose_length * 0.45)
    cv.paint(ridge * 0.25, skin * light * 1.25)
    tip_y = ny + identity.nose_length * 0.5
    for s in (-1, 1):
        cv.paint(
            cv.ellipse(nx + s * identity.nose_width * 0.35 * nsx, tip_y, 0.032 * nsx, 0.016) * 0.8,
            skin * 0.22 * light,
        )

    # Beard below the mouth line.
    mx, my, msx = _project(identity, shot, 0.0, 0.45)
    mx += hx
    if identity.beard > 0:
        lower = np.clip((cv.v - (my - 0.12)) / cv.px * 0.05, 0, 1) * head
        stubble = 0.6 + 0.4 * rng.random((size, size)).astype(np.float32)
        cv.paint(lower * identity.beard * 0.85 * stubble, hair * light * 0.6 * shading[..., None])

    # Mouth: lips curved by the smile, a dark gap when open.
    a = identity.mouth_width * 0.5 * msx
    curve = shot.smile * 0.06 * ((cv.u - mx) / max(a, 1e-3)) ** 2
    lips = cv.ellipse(mx, my, a, 0.045 + 0.05 * shot.mouth_open)
    lips = np.clip(
        lips * (1.0 - np.abs(cv.v - my + curve) / (0.06 + 0.06 * shot.mouth_open)) * 3, 0, 1
    )
    cv.paint(lips, np.asarray(identity.lip_colour) * light * (shading[..., None] * 0.8 + 0.2))
    gap = cv.ellipse(mx, my - curve.mean() * 0.0, a * 0.8, 0.006 + 0.045 * shot.mouth_open)
    gap = gap * np.clip(1.0 - np.abs(cv.v - my + curve) / (0.01 + 0.04 * shot.mouth_open), 0, 1)
    cv.paint(gap * 0.9, (0.05, 0.02, 0.02))

    # Glasses: two rims and a bridge, faintly tinted lenses.
    if identity.glasses:
        for sgn in (-1, 1):
            x, y, sx = _project(identity, shot, sgn * identity.eye_spacing * w * 1.05, eye_y)
            x += hx
            outer = cv.ellipse(x, y, 0.17 * sx, 0.12)
            inner = cv.ellipse(x, y, 0.15 * sx, 0.10)
            cv.paint(inner * 0.12, np.array([0.5, 0.6, 0.7], np.float32) * light)
            cv.paint(np.clip(outer - inner, 0, 1), (0.04, 0.04, 0.05))
        lx, ly, _ = _project(identity, shot, 0.0, eye_y - 0.03)
        cv.paint(cv.ellipse(lx + hx, ly, 0.1, 0.012), (0.04, 0.04, 0.05))

    box_w = 2 * w * cv.half_h * 1.05
    box_h = 2.1 * cv.half_h
    cx, cy = cv.centre
    box = (cx - box_w / 2 + hx * cv.half_h, cy - 0.95 * cv.half_h, box_w, box_h)
    return np.clip(cv.img, 0.0, 4.0), box


HEAD_HALF_HEIGHT_M = 0.12  # metres: the physical size behind ``Shot.scale``
HEAD_HALF_DEPTH = 0.75  # the head's half-depth in half-heights (about 9 cm)


def face_relief(identity: Identity, shot: Shot, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The person's surface towards the camera, registered to :func:`render_face`.

    Returns ``relief`` (how far each pixel's surface lies in front of the head's
    centre plane, in head half-heights; NaN on the background) and ``facing`` (the
    cosine between the surface normal and the view ray: low at grazing angles,
    where active depth sensors lose the return). The head is the same ellipsoid
    the shading uses, with a nose and eye sockets; neck, hair and shoulders lie
    behind it.
    """
    cv = _Canvas(size, shot, identity)
    w = identity.face_width
    yaw_shift = math.sin(shot.yaw) * w * 0.55
    pitch_shift = math.sin(shot.pitch) * 0.4
    relief = np.full((size, size), np.nan, np.float32)
    facing = np.zeros((size, size), np.float32)

    def put(cover: np.ndarray, height: np.ndarray | float, normal_z: np.ndarray | float) -> None:
        inside = cover > 0.5
        height = np.broadcast_to(np.asarray(height, np.float32), cover.shape)
        normal_z = np.broadcast_to(np.asarray(normal_z, np.float32), cover.shape)
        nearer = inside & ~(relief >= height)  # NaN (background) compares False
        relief[nearer] = height[nearer]
        facing[nearer] = normal_z[nearer]

    put(cv.ellipse(yaw_shift * 0.3, 1.75, 1.55, 0.75), -1.0, 0.8)  # shoulders
    put(cv.ellipse(yaw_shift * 0.5, 1.0, w * 0.55, 0.6), -0.25, 0.9)  # neck
    if identity.hair_style >= 2:
        put(cv.ellipse(yaw_shift * 0.2, 0.1, w * 1.3, 1.15), -0.5, 0.6)  # hair behind the head
    hx, head, _, _, nz = _head(cv, identity, yaw_shift, pitch_shift)
    height = HEAD_HALF_DEPTH * nz
    nx, ny, _ = _project(identity, shot, 0.0, 0.12)
    nose = np.exp(
        -(((cv.u - nx - hx) / (identity.nose_width * 0.7)) ** 2)
        - ((cv.v - ny - 0.04) / (identity.nose_length * 0.6)) ** 2
    )
    height = height + 0.2 * nose
    for side in (-1, 1):
        ex, ey, _ = _project(identity, shot, side * identity.eye_spacing * w * 1.05, -0.08)
        socket = np.exp(-(((cv.u - ex - hx) / 0.13) ** 2) - ((cv.v - ey) / 0.08) ** 2)
        height = height - 0.05 * socket
    put(head, height, nz)
    return relief, facing


def camera_distance(shot: Shot, focal: float = 0.9) -> float:
    """Metres from the camera to the head's centre plane (``focal`` in image widths)."""
    return focal * HEAD_HALF_HEIGHT_M / shot.scale
