"""The reference values behind the prediction quality gate (docs/predict.md).

Measures what ``QualityGate`` measures on scikit-image's astronaut photo, sharp,
blurred and under-exposed, and on every tenth image of a SynthSpoof set (crops cut
from its shipped face boxes), and how often each face detector finds a SynthSpoof
face.

    python benchmarks/quality_gate.py --synth runs/kd_gain/synth
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from fasdistill.data.crops import square_crop
from fasdistill.data.detect import get_detector
from fasdistill.infer.predict import QualityGate

ASTRONAUT_BOX = (178.0, 63.0, 89.0, 112.0)  # YuNet's box on the photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth", type=Path, required=True, help="a SynthSpoof directory")
    parser.add_argument("--scale", type=float, default=1.5)
    args = parser.parse_args()
    gate = QualityGate()
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    print("| astronaut | sharpness | brightness | clipped |\n|---|---|---|---|")
    variants = {"sharp": photo, "10 % exposure": (photo * 0.1).astype(np.uint8)}
    variants |= {f"blur sigma {s} px": cv2.GaussianBlur(photo, (0, 0), s) for s in (1, 2, 3, 4, 6)}
    for name, image in variants.items():
        m = gate.check(square_crop(image, ASTRONAUT_BOX, args.scale, gate.side))[1]
        print(f"| {name} | {m['sharpness']:.1f} | {m['brightness']:.1f} | {m['clipped']:.3f} |")
    images = sorted(args.synth.glob("media/**/*.png"))[::10]
    measures = []
    for path in images:
        with path.with_name(path.stem + ".boxes.csv").open(newline="") as handle:
            row = next(csv.DictReader(handle))
        box = tuple(float(row[k]) for k in ("x", "y", "w", "h"))
        crop = square_crop(cv2.imread(str(path)), box, args.scale, gate.side)
        measures.append(gate.check(crop)[1])
    print(f"\nSynthSpoof, {len(measures)} images: min / 1st percentile / median / max")
    for key in ("sharpness", "brightness", "clipped"):
        values = np.array([m[key] for m in measures])
        q = np.percentile(values, [0, 1, 50, 100])
        print(f"  {key}: " + " / ".join(f"{v:.3g}" for v in q))
    sample = images[:: max(1, len(images) // 20)][:20]
    for name in ("yunet", "haar"):
        detector = get_detector(name)
        found = sum(bool(detector.detect(cv2.imread(str(p)))) for p in sample)
        print(f"{name} finds a face in {found} of {len(sample)} SynthSpoof images")


if __name__ == "__main__":
    main()
