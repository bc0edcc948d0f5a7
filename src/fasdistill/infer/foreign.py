"""Models from elsewhere, in any registered format: what their input and output mean.

A model from elsewhere (the one a team ships today, a vendor's) carries no
fasdistill metadata. A small YAML sidecar beside it (``model.onnx.yaml`` or
``model.yaml``; ``model.tflite.yaml``, ``model.pte.yaml``, ``model.param.yaml``)
states it with the keys a teacher from elsewhere takes in a recipe, plus the
operating point ``calibrate`` writes (docs/predict.md has the table)::

    format: tflite           # default: from the suffix (.onnx, .tflite, .pte, .param)
    input_size: 256
    colour_order: RGB        # or BGR
    mean: [0.5, 0.5, 0.5]    # on pixels scaled to [0, 1]
    std: [0.5, 0.5, 0.5]
    crop_scale: 1.5          # the face-box enlargement its crops were cut at
    output: map              # logits | probability | map (mean = live score)
    output_name: depth       # optional: which output (or output_index: 1)
    lower_is_live: false     # probability/map/score is P(attack): use 1 - it
    score: my_fas.score:live # optional: your function of every output -> P(bona fide)
    live_index: 0            # logits/probability: the bona fide column
    classes: [...]           # logits: class names, one of them bonafide
    threshold: 0.43          # optional: the decision threshold on P(bona fide)
    threshold_criterion: eer on 96 frame-level samples of crops/my_site
    threshold_level: frame   # frame | video

``swap``, ``predict`` and ``calibrate`` all read it through this module (it sits
below both the inference and the SWAP stages). The scorer converts our
preprocessed crops to the model's own preprocessing and its output to
P(bona fide), exactly as a teacher from elsewhere does
(:class:`fasdistill.distill.teachers.ForeignTeacher`). ``score`` imports the user's
own module, by their explicit choice; nothing from the model file is executed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError

from fasdistill.config import TeacherSpec, _format_errors
from fasdistill.data.loader import COLOUR_ORDER, MEAN, STD
from fasdistill.errors import InputError
from fasdistill.export.formats import Format, format_for, format_of_suffix
from fasdistill.export.onnx import METADATA_FORMAT, metadata_props

BINARY = ("bonafide", "attack")
THRESHOLD_KEYS = ("threshold", "threshold_criterion", "threshold_level")


class SidecarSpec(TeacherSpec):
    """A TeacherSpec plus the operating point a calibrated sidecar carries."""

    threshold: float | None = Field(None, allow_inf_nan=False)  # calibrate refuses [0, 1]-outsiders
    threshold_criterion: str | None = None
    threshold_level: Literal["frame", "video"] = "frame"
    # SWAP's weight axis, for formats whose parameters and MACs fasdistill cannot count
    params: int | None = Field(None, ge=1)
    macs: int | None = Field(None, ge=1)


SIDECAR_KEYS = set(SidecarSpec.model_fields) - {"path", "bn_train"}


def sidecar_for(path: Path) -> Path | None:
    """``model.onnx.yaml`` or ``model.yaml`` beside ``path``, if one exists."""
    for candidate in (path.with_name(path.name + ".yaml"), path.with_suffix(".yaml")):
        if candidate.is_file():
            return candidate
    return None


def read_sidecar_data(sidecar: Path) -> dict[str, Any]:
    """The sidecar's mapping, its keys checked (an unknown key is one line naming it)."""
    try:
        data = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise InputError(f"{sidecar}: not valid YAML{at}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{sidecar}: cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{sidecar}: expected a mapping of keys, got {type(data).__name__}")
    unknown = sorted(str(k) for k in set(data) - SIDECAR_KEYS)
    if unknown:
        raise InputError(
            f"{sidecar}: unknown key {unknown[0]!r}; known: {', '.join(sorted(SIDECAR_KEYS))}"
        )
    return data


def read_sidecar(path: Path, sidecar: Path) -> SidecarSpec:
    """The validated spec of ``path`` from ``sidecar``."""
    data = read_sidecar_data(sidecar)
    try:
        return SidecarSpec(path=str(path), **data)
    except ValidationError as error:
        raise InputError(_format_errors(error, str(sidecar))) from None


def foreign_spec(path: Path) -> tuple[TeacherSpec, str]:
    """The preprocessing and output meaning of ``path`` and where they came from.

    A sidecar wins over metadata (it is what the user wrote for this file); an
    export of ours without a sidecar is described by its own metadata.
    """
    if not path.is_file():
        raise InputError(f"{path}: model not found")
    sidecar = sidecar_for(path)
    if sidecar is not None:
        return read_sidecar(path, sidecar), str(sidecar)
    entry = format_of_suffix(path)
    if entry is not None and not entry.sidecar:  # metadata inside the file: ONNX
        props = metadata_props(path)
        if props.get("fasdistill_format") == METADATA_FORMAT:
            return (
                TeacherSpec(
                    path=str(path),
                    input_size=json.loads(props["input_size"]),
                    colour_order=json.loads(props["colour_order"]),
                    mean=json.loads(props["mean"]),
                    std=json.loads(props["std"]),
                    crop_scale=json.loads(props["crop_scale"]),
                    output="probability",
                    output_name="score",
                ),
                "fasdistill metadata",
            )
    raise InputError(no_sidecar_message(path, entry))


def no_sidecar_message(path: Path, entry: Format | None = None) -> str:
    """What a model file without our metadata lacks: our sidecar, or a YAML one."""
    yaml_sidecar = (
        f"a sidecar {path.name}.yaml stating input_size, colour_order, mean, std, crop_scale "
        "and output"
    )
    if entry is not None and entry.sidecar:
        json_sidecar = path.with_name(path.name + ".json").name
        return (
            f"{path}: its metadata sidecar {json_sidecar} is missing (a model from elsewhere "
            f"needs {yaml_sidecar})"
        )
    what = "a model"
    if entry is not None:
        what = f"a{'n' if entry.label[0] in 'AEIOU' else ''} {entry.label} model"
    return f"{path}: {what} without fasdistill metadata needs {yaml_sidecar}"


def foreign_meta(path: Path, spec: SidecarSpec, sidecar: Path) -> dict[str, Any]:
    """The metadata prediction and calibration need, for a model described by ``sidecar``.

    ``colour_order``, ``mean`` and ``std`` are those of the scorer's input (the crop
    loader's): the scorer converts them to the model's own, which the sidecar states.
    """
    if spec.crop_scale is None:
        raise InputError(
            f"{sidecar}: crop_scale: missing; state the face-box enlargement the model's "
            "crops were cut at (predict and calibrate cut faces at it)"
        )
    entry = format_for(path, spec.format, str(sidecar))
    size = spec.input_size
    if size is None:
        input_shape = entry.input_shape(path)
        static = [d for d in input_shape[2:] if isinstance(d, int) and d > 0]
        if len(static) != 2 or static[0] != static[1]:
            raise InputError(
                f"{sidecar}: input_size: missing, and the model's input {input_shape} has no "
                "fixed square size; state input_size"
            )
        size = static[0]
    classes = list(BINARY)
    if spec.output == "logits" and spec.classes is not None:
        if "bonafide" not in spec.classes:
            raise InputError(
                f"{sidecar}: classes: {list(spec.classes)} has no 'bonafide'; name the live "
                "class bonafide"
            )
        classes = ["bonafide", *(c for c in spec.classes if c != "bonafide")]
    return {
        "model": path.name,
        "role": "foreign",
        "input_size": int(size),
        "crop_scale": float(spec.crop_scale),
        "colour_order": COLOUR_ORDER,
        "mean": list(MEAN),
        "std": list(STD),
        "classes": classes,
        "threshold": spec.threshold,
        "threshold_criterion": spec.threshold_criterion,
        "threshold_level": spec.threshold_level,
        "sidecar": str(sidecar),
        "format": entry.name,
    }


def foreign_scorer(
    path: Path, classes: tuple[str, ...], threads: int = 1
) -> Callable[[np.ndarray], np.ndarray]:
    """P(bona fide) of our preprocessed crops through the model's own preprocessing."""
    import torch

    from fasdistill.distill.teachers import ForeignTeacher
    from fasdistill.models import bonafide_score

    spec, source = foreign_spec(path)
    # Run once on a dummy batch as it loads: a sidecar field the model contradicts
    # (input_size, live_index, output, classes) is one line naming the sidecar.
    teacher = ForeignTeacher(spec, path, classes, where=source, threads=threads)

    def score(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.asarray(images, np.float32))
        return bonafide_score(teacher.outputs(batch)["logits"]).numpy()

    return score


def write_calibrated_sidecar(sidecar: Path, target: Path, new: dict[str, Any]) -> None:
    """``sidecar``'s keys with ``new`` (threshold keys) written to ``target``."""
    data = read_sidecar_data(sidecar) | {k: new[k] for k in THRESHOLD_KEYS if k in new}
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    target.write_text(text, encoding="utf-8")
