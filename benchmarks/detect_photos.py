"""Do the face detectors find the faces in real photos, and how fast? One core.

Runs every detector on three public-domain photos shipped inside installed
packages (scikit-image's astronaut and cameraman, matplotlib's Grace Hopper)
and on the astronaut turned 30 degrees. Prints a table of the best face per
photo with its median time over repeats; ``--out`` also draws the boxes (one
row per photo, one column per detector) for checking by eye.

    python benchmarks/detect_photos.py [--repeats 20] [--out docs/img/detectors.png]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, as a preparation worker gets; set before numpy loads

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from matplotlib import cbook
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from rich.console import Console
from rich.table import Table
from skimage import data as skdata

from fasdistill.data.detect import DETECTORS, Detection, FaceDetector

ROTATION_DEG = 30.0


def photos() -> dict[str, np.ndarray]:
    """The test photos as BGR uint8 arrays, all from files inside installed packages."""
    grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    astronaut = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    h, w = astronaut.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), ROTATION_DEG, 1.0)
    rotated = cv2.warpAffine(astronaut, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return {
        "astronaut": astronaut,
        "camera": cv2.cvtColor(skdata.camera(), cv2.COLOR_GRAY2BGR),
        "grace_hopper": grace,
        f"astronaut rotated {ROTATION_DEG:g}°": rotated,
    }


def median_ms(detector: FaceDetector, image: np.ndarray, repeats: int) -> float:
    """Median wall time of one ``best`` call, model already built."""
    detector.best(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.best(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def draw(
    path: Path, images: dict[str, np.ndarray], found: dict[tuple[str, str], Detection | None]
) -> None:
    """One row per photo, one column per detector, the best box (and landmarks) drawn."""
    names = list(DETECTORS)
    fig = Figure(figsize=(3.2 * len(names), 3.4 * len(images)), layout="constrained")
    axes = fig.subplots(len(images), len(names), squeeze=False)
    for row, (photo, image) in enumerate(images.items()):
        for col, name in enumerate(names):
            ax = axes[row][col]
            ax.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            ax.set_xticks([])
            ax.set_yticks([])
            detection = found[photo, name]
            if detection is None:
                ax.set_title(f"{name}: no face", fontsize=9, color="tab:red")
                continue
            x, y, w, h = detection.box
            ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="lime", linewidth=2))
            if detection.landmarks:
                xs, ys = zip(*detection.landmarks, strict=True)
                ax.scatter(xs, ys, s=10, c="yellow", edgecolors="black", linewidths=0.4)
            ax.set_title(f"{name}: score {detection.score:.2f}", fontsize=9)
        axes[row][0].set_ylabel(photo, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


def smallest_faces(sizes: list[int]) -> Table:
    """Which face sizes, in pixels of each detector's input, its search still finds.

    The astronaut's face (about 105 px) on a 640 x 480 grey frame; ``min_face`` is set so
    the detector's input shows it at each size (YuNet and BlazeFace scale their input
    from it). A face counts as found when the best box's centre lies on it.
    """
    astronaut = photos()["astronaut"]
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 64:576] = astronaut[16:496]
    face = (170 + 64, 70 - 16, 275 + 64, 185 - 16)  # tests/test_detect.py's region, moved
    table = Table(
        title="Smallest faces found: the astronaut's 105 px face shown at N px at the input "
        "(score of the face found, '-' if not)",
        title_justify="left",
    )
    table.add_column("detector")
    for size in sizes:
        table.add_column(f"{size} px", justify="right")
    for name, cls in DETECTORS.items():
        detector = cls()
        if not hasattr(detector, "smallest_face") or name == "haar":
            continue
        cells = []
        for size in sizes:
            min_face = 105 * detector.smallest_face / size
            best = detector.best(frame, min_face)
            on_face = best is not None and face[0] <= best.center[0] <= face[2]
            on_face = on_face and face[1] <= best.center[1] <= face[3]
            cells.append(f"{best.score:.2f}" if on_face else "-")
        table.add_row(name, *cells)
    return table


def synth_found(root: Path) -> Table:
    """How many SynthSpoof images (a `fasdistill synth` folder) each detector finds a face
    in, per class: its drawn faces are not what detectors were trained on."""
    import csv

    with (root / "samples.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["media"] == "image"]
    classes = sorted({r["pai"] or "bonafide" for r in rows})
    table = Table(title=f"Faces found in {len(rows)} SynthSpoof images", title_justify="left")
    table.add_column("detector")
    for name in classes:
        table.add_column(name, justify="right")
    for name, cls in DETECTORS.items():
        detector = cls()
        found = dict.fromkeys(classes, 0)
        total = dict.fromkeys(classes, 0)
        for row in rows:
            label = row["pai"] or "bonafide"
            total[label] += 1
            found[label] += detector.best(cv2.imread(str(root / row["path"]))) is not None
        table.add_row(name, *(f"{found[c]} of {total[c]}" for c in classes))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per photo")
    parser.add_argument("--out", type=Path, help="write a PNG of the detections here")
    parser.add_argument(
        "--sizes",
        help="comma-separated face sizes (px at the detector's input): print which are found",
    )
    parser.add_argument("--synth", type=Path, help="count faces found in a SynthSpoof folder")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    if args.synth:
        Console().print(synth_found(args.synth))
        return
    if args.sizes:
        Console().print(smallest_faces([int(v) for v in args.sizes.split(",")]))
        return
    images = photos()
    detectors = {name: cls() for name, cls in DETECTORS.items()}
    table = Table(
        title=f"Face detectors on real photos: best face, median of {args.repeats} runs, one core",
        title_justify="left",
    )
    for column in ("photo", "detector", "size", "found", "faces", "box x, y, w, h", "score", "ms"):
        table.add_column(column, justify="left" if column in ("photo", "detector") else "right")
    found: dict[tuple[str, str], Detection | None] = {}
    for photo, image in images.items():
        for name, detector in detectors.items():
            faces = detector.detect(image)
            best = faces[0] if faces else None
            found[photo, name] = best
            ms = median_ms(detector, image, args.repeats)
            box = "" if best is None else ", ".join(f"{v:.0f}" for v in best.box)
            table.add_row(
                photo,
                name,
                f"{image.shape[1]}x{image.shape[0]}",
                "yes" if best is not None else "no",
                str(len(faces)),
                box,
                "" if best is None else f"{best.score:.2f}",
                f"{ms:.1f}",
            )
    Console().print(table)
    if args.out:
        draw(args.out, images, found)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
