"""Named capture domains: camera, lighting and the attack instruments found there.

Domains play the role of the separate datasets in cross-dataset FAS protocols
(O/C/I/M): a model trained on three must generalise to the fourth camera, light
and set of print media and screens.
"""

from __future__ import annotations

from dataclasses import dataclass

from fasdistill.data.synth.camera import Camera
from fasdistill.data.synth.media import Display, PrintMedium

SPECIES = ("print", "replay", "mask")

PRINT_MEDIA = {
    "photo_paper": PrintMedium(
        "photo_paper",
        "fm",
        cell=1.2,
        white=0.90,
        black=0.04,
        saturation=0.85,
        gloss=0.35,
        fibre=0.01,
        dot_visibility=0.12,
    ),
    "a4_laser": PrintMedium(
        "a4_laser",
        "am",
        cell=3.0,
        white=0.85,
        black=0.08,
        saturation=0.70,
        gloss=0.05,
        fibre=0.04,
        dot_visibility=1.0,
    ),
    "a4_inkjet": PrintMedium(
        "a4_inkjet",
        "am",
        cell=2.4,
        white=0.88,
        black=0.06,
        saturation=0.78,
        gloss=0.02,
        fibre=0.05,
        dot_visibility=0.7,
    ),
}

DISPLAYS = {
    "phone": Display(
        "phone",
        pitch=1.7,
        gamma=1.15,
        black=0.02,
        white_point=7000,
        brightness=1.1,
        reflectivity=0.25,
        banding=0.04,
    ),
    "tablet": Display(
        "tablet",
        pitch=2.4,
        gamma=1.10,
        black=0.03,
        white_point=7200,
        brightness=1.0,
        reflectivity=0.20,
        banding=0.06,
    ),
    "monitor": Display(
        "monitor",
        pitch=3.3,
        gamma=0.90,
        black=0.05,
        white_point=7800,
        brightness=0.9,
        reflectivity=0.12,
        banding=0.10,
    ),
}


@dataclass(frozen=True)
class Domain:
    """A capture setting: one camera, one kind of light, its own attack instruments."""

    name: str
    description: str
    camera: Camera
    colour_temperature: float  # kelvin of the main light
    light_intensity: float
    print_media: tuple[str, ...]
    displays: tuple[str, ...]
    # The room's near-infrared relative to the NIR camera's illuminator at 0.4 m:
    # daylight and tungsten lamps carry much, fluorescent tubes little.
    nir_ambient: float = 0.05


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain(
            "studio",
            "DSLR-like camera, daylight studio light, photo prints, tablet and monitor",
            Camera(
                exposure=1.0,
                read_noise=0.004,
                shot_noise=0.0006,
                white_balance_error=(1.0, 1.0, 1.0),
                colour_matrix_strength=0.05,
                saturation=1.05,
                gamma=1 / 2.2,
                defocus=0.4,
                motion_blur=0.5,
                sharpen=0.3,
                jpeg_quality=95,
            ),
            colour_temperature=5500,
            light_intensity=1.0,
            print_media=("photo_paper",),
            displays=("tablet", "monitor"),
            nir_ambient=0.1,
        ),
        Domain(
            "office",
            "webcam, cool fluorescent light, laser A4 prints, monitor and phone",
            Camera(
                exposure=0.9,
                read_noise=0.010,
                shot_noise=0.002,
                white_balance_error=(1.05, 1.0, 0.92),
                colour_matrix_strength=0.10,
                saturation=0.90,
                gamma=1 / 2.0,
                defocus=0.7,
                motion_blur=1.0,
                sharpen=0.5,
                jpeg_quality=80,
            ),
            colour_temperature=4000,
            light_intensity=0.9,
            print_media=("a4_laser",),
            displays=("monitor", "phone"),
            nir_ambient=0.02,
        ),
        Domain(
            "phone",
            "phone front camera, daylight, photo and inkjet prints, phone and tablet",
            Camera(
                exposure=1.1,
                read_noise=0.008,
                shot_noise=0.0015,
                white_balance_error=(0.95, 1.0, 1.05),
                colour_matrix_strength=0.15,
                saturation=1.15,
                gamma=1 / 2.4,
                defocus=0.5,
                motion_blur=1.5,
                sharpen=0.8,
                jpeg_quality=85,
            ),
            colour_temperature=6500,
            light_intensity=1.1,
            print_media=("photo_paper", "a4_inkjet"),
            displays=("phone", "tablet"),
            nir_ambient=0.15,
        ),
        Domain(
            "dim",
            "low light at high gain, warm tungsten lamp, inkjet prints, monitor",
            Camera(
                exposure=2.2,
                read_noise=0.020,
                shot_noise=0.004,
                white_balance_error=(1.1, 1.0, 0.85),
                colour_matrix_strength=0.08,
                saturation=0.85,
                gamma=1 / 2.2,
                defocus=1.0,
                motion_blur=2.0,
                sharpen=0.2,
                jpeg_quality=75,
            ),
            colour_temperature=3000,
            light_intensity=0.45,
            print_media=("a4_inkjet", "a4_laser"),
            displays=("monitor",),
            nir_ambient=0.25,
        ),
    )
}

# The attacker's own camera, which took the victim's photo or video.
SOURCE_CAMERA = Camera(
    exposure=1.0,
    read_noise=0.005,
    shot_noise=0.001,
    white_balance_error=(1.0, 1.0, 1.0),
    colour_matrix_strength=0.05,
    saturation=1.0,
    gamma=1 / 2.2,
    defocus=0.4,
    motion_blur=0.3,
    sharpen=0.3,
    jpeg_quality=90,
)
