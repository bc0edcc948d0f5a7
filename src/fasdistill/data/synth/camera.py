"""One camera model for every class: optics, sensor, ISP and JPEG.

Scenes arrive as linear radiance at twice the output resolution, so content
finer than a sensor pixel (a screen's sub-pixels, a print's halftone dots) is
really there to be blurred, aliased into moiré or lost, as in a real recapture.
Bona fide faces and attacks pass through the same :class:`Camera`: sensor noise
and compression alone never separate the classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SUPERSAMPLE = 2  # scene pixels per output pixel


@dataclass(frozen=True)
class Camera:
    """A capture device; domains differ in these parameters."""

    exposure: float  # radiance-to-signal gain
    read_noise: float  # std of additive noise, in [0, 1] signal units
    shot_noise: float  # photon-noise scale: variance = shot_noise * signal
    white_balance_error: tuple[float, float, float]  # residual per-channel gains after AWB
    colour_matrix_strength: float  # cross-talk between channels
    saturation: float
    gamma: float  # tone curve exponent (1/2.2 ~ sRGB)
    defocus: float  # optical blur sigma in output pixels
    motion_blur: float  # max motion blur length in output pixels
    sharpen: float  # unsharp-mask amount of the ISP
    jpeg_quality: int

    def capture(self, radiance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Photograph a supersampled linear-RGB scene; returns an 8-bit RGB image."""
        img = radiance.astype(np.float32) * self.exposure * rng.uniform(0.9, 1.1)
        # Optics: defocus and hand motion blur the scene before sampling.
        sigma = self.defocus * SUPERSAMPLE * rng.uniform(0.7, 1.3)
        if sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        length = self.motion_blur * SUPERSAMPLE * rng.uniform(0.0, 1.0)
        if length >= 2:
            k = round(length) | 1
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2, :] = 1.0 / k
            centre = (k / 2 - 0.5, k / 2 - 0.5)
            rot = cv2.getRotationMatrix2D(centre, float(rng.uniform(0, 180)), 1.0)
            kernel = cv2.warpAffine(kernel, rot, (k, k))
            img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
        # Sensor: point-sample the scene (plus a pixel's fill factor) -> aliasing is real.
        h, w = img.shape[0] // SUPERSAMPLE, img.shape[1] // SUPERSAMPLE
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        # Bayer mosaic (RGGB), photon and read noise, then bilinear demosaicing.
        mosaic = np.empty((h, w), np.float32)
        mosaic[0::2, 0::2] = img[0::2, 0::2, 0]
        mosaic[0::2, 1::2] = img[0::2, 1::2, 1]
        mosaic[1::2, 0::2] = img[1::2, 0::2, 1]
        mosaic[1::2, 1::2] = img[1::2, 1::2, 2]
        mosaic = np.clip(mosaic, 0, None)
        noise_std = np.sqrt(self.shot_noise * mosaic + self.read_noise**2)
        mosaic = mosaic + noise_std * rng.standard_normal(mosaic.shape, dtype=np.float32)
        raw = np.clip(mosaic * 4095.0, 0, 4095).astype(np.uint16) * 16
        rgb = cv2.cvtColor(raw, cv2.COLOR_BayerBG2RGB).astype(np.float32) / 65535.0
        # ISP: white balance residual, colour matrix, saturation, tone curve, sharpening.
        rgb *= np.asarray(self.white_balance_error, np.float32)
        k = self.colour_matrix_strength
        matrix = np.array(
            [[1 + 2 * k, -k, -k], [-k, 1 + 2 * k, -k], [-k, -k, 1 + 2 * k]], np.float32
        )
        rgb = rgb @ matrix.T
        grey = rgb.mean(axis=2, keepdims=True)
        rgb = grey + (rgb - grey) * self.saturation
        rgb = np.clip(rgb, 0, 1) ** self.gamma
        if self.sharpen > 0:
            rgb = rgb + self.sharpen * (rgb - cv2.GaussianBlur(rgb, (0, 0), 1.0))
        out = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
        # In-camera JPEG: encode and decode, as the stored frame would be.
        ok, buffer = cv2.imencode(
            ".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        )
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a frame")
        return cv2.imdecode(buffer, cv2.IMREAD_COLOR)[..., ::-1].copy()


def to_linear(image: np.ndarray) -> np.ndarray:
    """8-bit display RGB back to approximately linear radiance in [0, 1]."""
    return (image.astype(np.float32) / 255.0) ** 2.2
