"""A sidecar's ``score: module:function``: the user's own function of a model's outputs.

Some models from elsewhere score by combining outputs (tree-routing FAS models, a
depth map gated by a classifier). The sidecar (or recipe) names a Python function
``f(outputs: list[np.ndarray]) -> np.ndarray`` that returns P(bona fide), one value
in [0, 1] per image. It is imported with :mod:`importlib` from the user's own
module (on ``PYTHONPATH``, or installed), like a plugin: it runs because the user
named it, with their rights. Nothing from the model file itself is ever executed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from fasdistill.errors import InputError
from fasdistill.utils.text import one_line

ScoreFunction = Callable[[list[np.ndarray]], np.ndarray]


def load_score_function(target: str, where: str) -> ScoreFunction:
    """Import ``module:function``; every mistake is one line naming the ``score`` field."""
    module_name, colon, name = target.partition(":")
    if not colon or not module_name or not name:
        raise InputError(
            f"{where}: score: {target!r} is not module:function (e.g. my_models.fas:score)"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - a user module may raise anything on import
        raise InputError(
            f"{where}: score: cannot import module {module_name!r} "
            f"({type(error).__name__}: {one_line(error)}); put it on PYTHONPATH"
        ) from None
    function = getattr(module, name, None)
    if function is None:
        raise InputError(f"{where}: score: module {module_name!r} has no {name!r}")
    if not callable(function):
        raise InputError(f"{where}: score: {target} is a {type(function).__name__}, not a function")
    return function


def checked_score(
    function: ScoreFunction, outputs: list[np.ndarray], n: int, target: str, where: str
) -> np.ndarray:
    """``function(outputs)`` as float32 (n,), checked: one finite value in [0, 1] per image."""
    try:
        result = function(outputs)
    except Exception as error:  # noqa: BLE001 - the user's code may raise anything
        raise InputError(
            f"{where}: score: {target} raised {type(error).__name__}: {one_line(error)}"
        ) from None
    try:
        values = np.asarray(result, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(
            f"{where}: score: {target} returned a {type(result).__name__}, not an array of numbers"
        ) from None
    if values.shape not in ((n,), (n, 1)):
        raise InputError(
            f"{where}: score: {target} returned shape {values.shape} for {n} images; return "
            f"one P(bona fide) per image, shape ({n},)"
        )
    values = values.reshape(n)
    if not np.isfinite(values).all():
        raise InputError(f"{where}: score: {target} returned NaN or inf on a test batch")
    low, high = float(values.min()), float(values.max())
    if low < -1e-6 or high > 1.0 + 1e-6:
        raise InputError(
            f"{where}: score: {target} returned values from {low:.3g} to {high:.3g}, outside "
            "[0, 1]; return P(bona fide)"
        )
    return np.clip(values, 0.0, 1.0)
