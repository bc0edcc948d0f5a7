"""``fasdistill recipes``: the built-in recipes, or one of them as YAML to copy and edit."""

from __future__ import annotations

import argparse
import sys


def add_recipes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recipes",
        help="list the built-in recipes (name, role, description), or print one as YAML",
        description="The recipes that ship with fasdistill. `--recipe NAME` (train, distill) "
        "accepts any of these names as well as a path to a YAML file; a file that exists "
        "wins over a built-in name. `fasdistill recipes NAME > my.yaml` gives a copy to edit.",
    )
    p.add_argument("name", nargs="?", help="print this recipe's YAML (a built-in name or a path)")
    p.set_defaults(handler=_run_recipes, stage="recipes")


def _run_recipes(args: argparse.Namespace) -> int:
    if args.name is not None:
        from fasdistill.config import resolve_recipe

        sys.stdout.write(resolve_recipe(args.name).read_text(encoding="utf-8"))
        return 0
    from fasdistill.recipes import recipe_catalogue

    rows = [("name", "role", "description")]
    rows += [(info.name, info.role, info.description) for info in recipe_catalogue()]
    name_width = max(len(row[0]) for row in rows)
    role_width = max(len(row[1]) for row in rows)
    for name, role, description in rows:  # one line per recipe, so it greps
        print(f"{name:<{name_width}}  {role:<{role_width}}  {description}".rstrip())
    print("\nuse: --recipe NAME (train, distill); fasdistill recipes NAME prints its YAML")
    return 0
