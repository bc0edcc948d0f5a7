"""Models by name: registration, building, parameter and MAC counts, the models table.

A builder returns ``(backbone, head)`` for a number of classes and a dropout rate;
:func:`build_model` wraps them in a :class:`FASModel`, attaches requested aux heads
and initialises every weight the same way, so all models share one contract.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fasdistill.errors import InputError
from fasdistill.models.base import ROLES, FASModel, init_weights
from fasdistill.models.heads import make_aux_head
from fasdistill.models.multimodal import MultiModalBackbone, channel_count, check_modalities

Builder = Callable[..., tuple[nn.Module, nn.Module]]


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is: its name, role, default input side and builder.

    ``builder(num_classes=..., dropout=..., **kwargs)`` returns ``(backbone, head)``;
    the backbone exposes ``out_channels``. ``dropout`` is the classifier's default
    dropout (0 for models that must train bit-identically across process counts).
    """

    name: str
    role: str
    input_size: int
    description: str
    builder: Builder
    dropout: float = 0.2


_SPECS: dict[str, ModelSpec] = {}


def register(
    name: str, role: str, input_size: int, description: str, dropout: float = 0.2
) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under ``name``; registration order is table order."""
    if role not in ROLES:
        raise InputError(f"role for model {name!r} must be one of {', '.join(ROLES)}, got {role!r}")
    if input_size < 8:
        raise InputError(f"input_size for model {name!r} must be >= 8, got {input_size}")

    def decorate(builder: Builder) -> Builder:
        if name in _SPECS:
            raise InputError(f"model name {name!r} is already registered")
        _SPECS[name] = ModelSpec(name, role, input_size, description, builder, dropout)
        return builder

    return decorate


def model_specs() -> list[ModelSpec]:
    """Every registered model, in registration order."""
    return list(_SPECS.values())


def get_spec(name: str) -> ModelSpec:
    """The spec registered under ``name``; the error lists the valid names."""
    if name not in _SPECS:
        raise InputError(f"unknown model {name!r}; choose one of {', '.join(_SPECS)}")
    return _SPECS[name]


def build_model(
    name: str,
    num_classes: int = 2,
    aux: Sequence[str] = (),
    *,
    dropout: float | None = None,
    input_size: int | None = None,
    modalities: Sequence[str] = ("rgb",),
    fusion: str = "early",
    modality_dropout: float = 0.0,
    **kwargs: object,
) -> FASModel:
    """Build model ``name`` with ``num_classes`` outputs (class 0 = bona fide).

    ``aux`` names training-only heads (``"pixel"``, ``"fourier"``); ``dropout`` and
    ``input_size`` override the spec's defaults (``input_size`` is metadata: the
    intended square input, stored with checkpoints; any size runs). ``modalities``
    other than RGB alone wrap the backbone in a
    :class:`~fasdistill.models.multimodal.MultiModalBackbone` (``fusion``,
    ``modality_dropout``). Other keyword arguments go to the model's builder.
    """
    spec = get_spec(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise InputError(
            f"num_classes must be an int >= 2 (bonafide + at least one attack), got {num_classes!r}"
        )
    if isinstance(aux, str):
        aux = (aux,)
    if len(set(aux)) != len(aux):
        raise InputError(f"aux lists a head twice: {list(aux)}")
    dropout = spec.dropout if dropout is None else dropout
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"dropout must be in [0, 1), got {dropout}")
    input_size = spec.input_size if input_size is None else input_size
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 8:
        raise InputError(f"input_size must be an int >= 8, got {input_size!r}")
    try:
        inspect.signature(spec.builder).bind(num_classes=num_classes, dropout=dropout, **kwargs)
    except TypeError as exc:
        raise InputError(f"model {name!r}: bad keyword argument ({exc})") from exc
    backbone, head = spec.builder(num_classes=num_classes, dropout=dropout, **kwargs)
    modalities = check_modalities(modalities, f"model {name!r}: modalities")
    if modalities != ("rgb",):  # late fusion: one more backbone per further modality
        more = len(modalities) - 1 if fusion == "late" else 0
        backbones = [backbone] + [
            spec.builder(num_classes=num_classes, dropout=dropout, **kwargs)[0] for _ in range(more)
        ]
        backbone = MultiModalBackbone(backbones, modalities, fusion, modality_dropout)
    aux_heads = {aux_name: make_aux_head(aux_name, backbone.out_channels) for aux_name in aux}
    model = FASModel(
        backbone,
        head,
        aux_heads,
        name=name,
        role=spec.role,
        input_size=input_size,
        num_classes=num_classes,
        modalities=modalities,
    )
    init_weights(model)
    return model


def model_kwargs(meta: dict[str, object]) -> dict[str, object]:
    """The builder arguments a checkpoint's metadata (or a recipe's model section) records.

    SearchNet's architecture string ``arch``; a multi-modal model's ``modalities`` and
    ``fusion`` (and, from a recipe, ``modality_dropout``). RGB-only models record none.
    """
    out: dict[str, object] = {}
    if meta.get("arch") is not None:
        out["arch"] = meta["arch"]
    modalities = meta.get("modalities")
    if modalities is not None and list(modalities) != ["rgb"]:  # type: ignore[call-overload]
        out["modalities"] = list(modalities)  # type: ignore[call-overload]
        out["fusion"] = meta.get("fusion", "early")
        if meta.get("modality_dropout"):
            out["modality_dropout"] = meta["modality_dropout"]
    return out


def count_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``; shared ones count once."""
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of one forward on a (1, C, s, s) input (C: its modalities' channels).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (convs, matmuls; not
    norms, activations or pooling) in eval mode under ``no_grad``. For a
    :class:`FASModel` this is the deployable path, since ``forward`` skips aux heads.
    """
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise InputError(f"input_size must be a positive int, got {input_size!r}")
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    channels = channel_count(getattr(module, "modalities", ("rgb",)))
    x = torch.zeros(1, channels, input_size, input_size, device=device, dtype=dtype)
    was_training = module.training
    module.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            module(x)
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2


def models_table(names: Sequence[str] | None = None) -> list[dict[str, object]]:
    """One row per model: name, role, default input, deployable params, MACs, description.

    MACs are at the default input size; ``names`` restricts the table (default: all).
    Builds each model once (two classes), so big teachers take a second or two.
    """
    rows = []
    for spec in [get_spec(n) for n in names] if names is not None else model_specs():
        deployable = build_model(spec.name).deployable()
        rows.append(
            {
                "name": spec.name,
                "role": spec.role,
                "input_size": spec.input_size,
                "params": count_params(deployable),
                "macs": count_macs(deployable, spec.input_size),
                "description": spec.description,
            }
        )
    return rows
