"""The built-in recipes, shipped inside the package so an installed fasdistill has them.

Each ``<name>.yaml`` here is a recipe that ``--recipe <name>`` accepts (see
:func:`fasdistill.config.resolve_recipe`); ``fasdistill recipes`` lists them with
the role read from the recipe itself and its one-line ``description``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fasdistill.config import BUILTIN_RECIPES, RunConfig, builtin_recipe_names, load_recipe
from fasdistill.models import get_spec

ROLES = ("teacher", "student", "distill")


@dataclass(frozen=True)
class RecipeInfo:
    """One built-in recipe: its name, what it trains, one line about it, its file."""

    name: str
    role: str
    description: str
    path: Path


def recipe_role(config: RunConfig) -> str:
    """``distill`` for a recipe with a ``distill:`` section, else its model's registered role."""
    if config.distill is not None:
        return "distill"
    return get_spec(config.model.name).role


def recipe_catalogue() -> list[RecipeInfo]:
    """Every built-in recipe, validated, in name order."""
    rows = []
    for name in builtin_recipe_names():
        path = BUILTIN_RECIPES / f"{name}.yaml"
        config = load_recipe(path)
        rows.append(RecipeInfo(name, recipe_role(config), config.description, path))
    return rows
