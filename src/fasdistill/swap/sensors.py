"""The cost of sensors beyond the RGB camera, for models that read depth or near-infrared.

A multi-modal model's SWAP row is not comparable with an RGB model's on compute alone:
it also needs a depth camera (with its projector) or an NIR camera and its 850 nm
illuminator. Their power is not measured here; the figures below are public ones,
each labelled with where it was read, and the report says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PublicFigure:
    """A power figure someone published (not measured by fasdistill)."""

    value: str
    what: str
    source: str


@dataclass(frozen=True)
class Sensor:
    name: str
    figures: tuple[PublicFigure, ...]


SENSORS = {
    "depth": Sensor(
        "depth camera (active stereo, coded light or time of flight, with its projector)",
        (
            PublicFigure(
                "2 W",
                "budget per Intel RealSense D400 camera (the SR300 recorded CASIA-SURF, CeFA "
                "and WMCA), RealSense support engineer",
                "https://github.com/realsenseai/librealsense/issues/9917",
            ),
            PublicFigure(
                "3.5 W",
                "maximum, Intel RealSense D435, reseller's spec sheet",
                "https://docs.clearpathrobotics.com/docs_robots/accessories/sensors/cameras/realsense_d435",
            ),
            PublicFigure(
                "215 mW",
                "continuous ranging, ST VL53L8CX 8 x 8-zone time-of-flight sensor (phone "
                "class; 64 zones, not a depth image), third-party transcription of ST DS14161",
                "https://wiki.adom.inc/api/v1/pages/vl53l8cx/files/README.md",
            ),
        ),
    ),
    "ir": Sensor(
        "near-infrared camera with an 850 nm illuminator",
        (
            PublicFigure(
                "up to 1 W",
                "illumination LED (night vision) of a Luxonis OAK-D Pro camera",
                "https://docs.luxonis.com/hardware/platform/environmental-specifications/power-consumption.md",
            ),
            PublicFigure(
                "> 50 mW",
                "a mobile CMOS image sensor in normal mode (Samsung, ISSCC 2015)",
                "https://discovery.researcher.life/article/63-a-455ampx03bcw-15fps-alwayson-cmos-image-sensor-for-mobile-and-wearable-devices/33452f88e77e36749515b7f05b42376e",
            ),
        ),
    ),
}


def sensor_cost(modalities: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The extra sensors a model reading ``modalities`` needs, with public power figures."""
    extra = [m for m in modalities if m in SENSORS]
    return {
        "extra": [
            {"modality": m, "sensor": SENSORS[m].name}
            | {"figures": [asdict(f) for f in SENSORS[m].figures]}
            for m in extra
        ],
        "note": "public figures, not measured by fasdistill; the energy column counts "
        "the model's compute only",
    }


def sensor_lines(swap: dict[str, Any]) -> list[str]:
    """For each model that needs sensors beyond the RGB camera: what, then one line per
    public power figure (labelled as such: the energy column is the model's compute only)."""
    lines = []
    for m in swap["models"]:
        sensors = m.get("sensors")
        if not sensors:
            continue
        needs = " and ".join(f"a {extra['sensor']}" for extra in sensors["extra"])
        lines.append(
            f"{m['label']} reads {' + '.join(m['modalities'])}: besides the RGB camera it needs "
            f"{needs}. Their power is not in its energy column ({sensors['note']}):"
        )
        for extra in sensors["extra"]:
            for f in extra["figures"]:
                lines.append(
                    f"{m['label']}, {extra['modality']} sensor: {f['value']}, {f['what']} "
                    f"(public figure: {f['source']})"
                )
    return lines
