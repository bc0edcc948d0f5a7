"""SynthSpoof generation: plan, write, resume (each sample is rendered in render.py).

On-disk layout (documented in docs/synthspoof.md)::

    DIR/synthspoof.json                 config, version, domains, counts
    DIR/samples.csv                     one row per sample (labels, subject, domain, split, box)
    DIR/media/<domain>/<subject>/<sample_id>.png|.avi
    DIR/media/<domain>/<subject>/<sample_id>.boxes.csv   frame,x,y,w,h
    DIR/protocols/intra.csv             sample_id,split (disjoint subjects)
    DIR/protocols/lodo_<domain>.csv     leave-one-domain-out: train/dev elsewhere, test on <domain>

Every sample has its own random stream derived from (seed, domain, subject,
class, index), so the output does not depend on worker count or order, and a
resumed run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fasdistill import __version__
from fasdistill.data.synth.domains import DOMAINS, SPECIES
from fasdistill.data.synth.media import Box
from fasdistill.data.synth.render import choose_instrument, render
from fasdistill.data.synth.spec import SampleSpec, SynthConfig
from fasdistill.errors import InputError
from fasdistill.utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from fasdistill.utils.workers import default_workers

FORMAT_VERSION = 1
CLASSES = ("bonafide", *SPECIES)
SAMPLE_COLUMNS = (
    "sample_id",
    "path",
    "media",
    "frames",
    "label",
    "pai",
    "instrument",
    "subject",
    "domain",
    "split",
    "box_x",
    "box_y",
    "box_w",
    "box_h",
    "boxes_path",
)
# Per extra modality (sets made with --modalities rgb,depth,ir): its media file's path.
MODALITY_COLUMNS = {"depth": "depth_path", "ir": "ir_path"}


def subject_splits(n: int, seed: int, domain_index: int) -> list[str]:
    """Assign n subjects to train/dev/test (60/20/20, at least one each), seeded."""
    n_dev = max(1, round(0.2 * n))
    n_test = max(1, round(0.2 * n))
    labels = ["train"] * (n - n_dev - n_test) + ["dev"] * n_dev + ["test"] * n_test
    order = np.random.default_rng([seed, domain_index, 7919]).permutation(n)
    out = [""] * n
    for position, subject in enumerate(order):
        out[subject] = labels[position]
    return out


def plan(config: SynthConfig) -> list[SampleSpec]:
    """Every sample of the set, in a fixed order."""
    specs = []
    ext = "png" if config.frames == 1 else "avi"
    for domain in config.domains:
        d_index = list(DOMAINS).index(domain)
        splits = subject_splits(config.subjects, config.seed, d_index)
        for s in range(config.subjects):
            subject = f"{domain}_s{s:04d}"
            for cls in ("bonafide", *config.species):
                c_index = CLASSES.index(cls)
                for k in range(config.samples):
                    sample_id = f"{subject}_{cls}_{k}"
                    specs.append(
                        SampleSpec(
                            sample_id=sample_id,
                            domain=domain,
                            domain_index=d_index,
                            subject_index=s,
                            subject=subject,
                            split=splits[s],
                            label="bonafide" if cls == "bonafide" else "attack",
                            pai="" if cls == "bonafide" else cls,
                            class_index=c_index,
                            index=k,
                            relpath=f"media/{domain}/{subject}/{sample_id}.{ext}",
                            seed_words=(config.seed, d_index, s, c_index, k),
                        )
                    )
    return specs


# ---------------------------------------------------------------------------- writing


def _encode_video(frames: list[np.ndarray], path: Path) -> None:
    """Write BGR (or single-channel) frames as a lossless FFV1 AVI via a temporary file."""
    h, w = frames[0].shape[:2]
    colour = frames[0].ndim == 3
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".avi", dir=path.parent)
    os.close(fd)
    try:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (w, h), colour)
        if not writer.isOpened():
            raise RuntimeError("OpenCV cannot write FFV1 AVI video on this machine")
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))
        writer.release()
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_sample(spec: SampleSpec, config: SynthConfig, root: str) -> str:
    """Render and store one sample; the RGB media file appears last, so it marks completion.

    Depth and NIR frames (when asked for) are stored beside it, registered pixel for
    pixel: ``<id>.depth.png`` / ``<id>.ir.png`` (or ``.avi``), 8-bit single channel.
    """
    media = Path(root) / spec.relpath
    media.parent.mkdir(parents=True, exist_ok=True)
    rendered = render(spec, config, sensors=bool(config.sensors))
    lines = ["frame,x,y,w,h"] + [
        f"{i},{b[0]:.1f},{b[1]:.1f},{b[2]:.1f},{b[3]:.1f}" for i, b in enumerate(rendered.boxes)
    ]
    atomic_write_text(_boxes_path(media), "\n".join(lines) + "\n")
    for name in config.sensors:
        _write_frames(getattr(rendered, name), modality_path(media, name), spec)
    _write_frames([f[..., ::-1] for f in rendered.frames], media, spec)
    return spec.sample_id


def modality_path(media: Path, modality: str) -> Path:
    """Where a sample's ``modality`` frames lie beside its RGB media file."""
    return media.with_name(f"{media.stem}.{modality}{media.suffix}")


def _write_frames(frames: list[np.ndarray], path: Path, spec: SampleSpec) -> None:
    """One PNG (a still) or a lossless FFV1 video of 8-bit BGR or single-channel frames."""
    if len(frames) == 1:
        ok, png = cv2.imencode(".png", frames[0])
        if not ok:
            raise RuntimeError(f"OpenCV could not PNG-encode {spec.sample_id}")
        atomic_write_bytes(path, png.tobytes())
    else:
        _encode_video(frames, path)


def _boxes_path(media: Path) -> Path:
    return media.with_name(media.stem + ".boxes.csv")


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _write_task(args: tuple[SampleSpec, SynthConfig, str]) -> str:
    return _write_sample(*args)


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def _remove_stale_temporaries(root: Path) -> None:
    """Delete half-written files a killed run left (hidden ``.<name>.*`` temporaries)."""
    for path in root.rglob(".*"):
        if path.is_file() and (path.name.endswith(".tmp") or path.suffix == ".avi"):
            path.unlink()


def _manifest(config: SynthConfig) -> dict[str, object]:
    return {
        "format": "synthspoof",
        "format_version": FORMAT_VERSION,
        "config": config.to_json(),
        "generator": f"fasdistill {__version__}",
        "classes": ["bonafide", *config.species],
        "domains": {d: DOMAINS[d].description for d in config.domains},
        "score_convention": "labels: bonafide | attack; pai names the attack species",
    }


def generate(
    out: str | os.PathLike[str],
    config: SynthConfig,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Generate (or resume) a SynthSpoof set in ``out``; returns the samples.csv path.

    Samples already on disk from an interrupted run with the same config are
    kept; a directory holding a different config is refused.
    """
    config.validate()
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InputError(f"--out {root}: exists and is not a directory")
    manifest_path = root / "synthspoof.json"
    manifest = _manifest(config)
    if manifest_path.exists():
        try:
            previous = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(
                f"{manifest_path}: unreadable ({exc}); remove it or use a new --out"
            ) from None
        if (
            previous.get("config") != manifest["config"]
            or previous.get("format_version") != FORMAT_VERSION
        ):
            raise InputError(
                f"{root} holds a SynthSpoof set made with other settings "
                f"({previous.get('config')}); use a new --out or the same arguments to resume"
            )
    elif root.exists() and any(root.iterdir()):
        raise InputError(f"--out {root}: directory is not empty and holds no SynthSpoof set")
    _check_writable(root)
    _remove_stale_temporaries(root)
    atomic_write_json(manifest_path, {**manifest, "complete": False})
    specs = plan(config)
    todo = [s for s in specs if not (root / s.relpath).exists()]
    done = len(specs) - len(todo)
    if progress:
        progress(done, len(specs))
    workers = default_workers() if workers is None else max(1, workers)
    tasks = [(s, config, str(root)) for s in todo]
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            _write_task(task)
            done += 1
            if progress:
                progress(done, len(specs))
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            for _ in pool.imap_unordered(_write_task, tasks, chunksize=4):
                done += 1
                if progress:
                    progress(done, len(specs))
    samples_path = _write_index(root, config, specs)
    atomic_write_json(manifest_path, {**manifest, "complete": True, "counts": _counts(specs)})
    return samples_path


def _counts(specs: list[SampleSpec]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for s in specs:
        per = counts.setdefault(s.split, {})
        key = s.pai or "bonafide"
        per[key] = per.get(key, 0) + 1
    return counts


def _read_boxes(path: Path) -> list[Box]:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return [(float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"])) for r in rows]


def _write_index(root: Path, config: SynthConfig, specs: list[SampleSpec]) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    extra = [MODALITY_COLUMNS[m] for m in config.sensors]
    writer.writerow([*SAMPLE_COLUMNS, *extra])
    for s in specs:
        media = root / s.relpath
        boxes = _read_boxes(_boxes_path(media))
        x, y, w, h = boxes[0]
        writer.writerow(
            [
                s.sample_id,
                s.relpath,
                "image" if config.frames == 1 else "video",
                config.frames,
                s.label,
                s.pai,
                choose_instrument(s),
                s.subject,
                s.domain,
                s.split,
                f"{x:.1f}",
                f"{y:.1f}",
                f"{w:.1f}",
                f"{h:.1f}",
                str(_boxes_path(Path(s.relpath))),
                *(str(modality_path(Path(s.relpath), m)) for m in config.sensors),
            ]
        )
    samples = atomic_write_text(root / "samples.csv", out.getvalue())
    for name, rows in protocols(specs, config).items():
        text = "sample_id,split\n" + "".join(f"{sid},{split}\n" for sid, split in rows)
        atomic_write_text(root / "protocols" / f"{name}.csv", text)
    return samples


def protocols(specs: list[SampleSpec], config: SynthConfig) -> dict[str, list[tuple[str, str]]]:
    """Protocol manifests: ``intra`` (all domains, disjoint subjects) and leave-one-domain-out,
    which tests on every sample of the held-out domain (none is seen before; docs/synthspoof.md).
    """
    out: dict[str, list[tuple[str, str]]] = {"intra": [(s.sample_id, s.split) for s in specs]}
    if len(config.domains) >= 2:
        for held_out in config.domains:
            rows = []
            for s in specs:
                if s.domain == held_out:
                    rows.append((s.sample_id, "test"))
                elif s.split in ("train", "dev"):
                    rows.append((s.sample_id, s.split))
            out[f"lodo_{held_out}"] = rows
    return out


def iter_samples(root: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """Rows of a generated set's samples.csv."""
    path = Path(root) / "samples.csv"
    if not path.exists():
        raise InputError(f"{path}: not found; is {root} a complete SynthSpoof set?")
    with path.open(newline="") as handle:
        yield from csv.DictReader(handle)
