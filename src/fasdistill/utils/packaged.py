"""Files that ship inside the package and are named on the command line by their stem."""

from __future__ import annotations

import os
from pathlib import Path

from fasdistill.errors import InputError


def packaged_names(folder: Path) -> list[str]:
    """The stems of the YAML files in a packaged folder, sorted."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def resolve_packaged(value: str | os.PathLike[str], folder: Path, what: str, listing: str) -> Path:
    """A file from a path, or the packaged ``folder/<name>.yaml`` of a bare name.

    An existing file wins, so a local copy is never shadowed by a packaged one of the
    same name. ``what`` names the kind ("recipe", "study"); ``listing`` is the command
    that describes the packaged ones.
    """
    path = Path(value)
    if path.is_file():
        return path
    if len(path.parts) == 1 and path.suffix in ("", ".yaml", ".yml"):
        packaged = folder / f"{path.stem}.yaml"
        if packaged.is_file():
            return packaged
    raise InputError(
        f"{value}: no such {what} file and no built-in {what} of that name; built-in: "
        f"{', '.join(packaged_names(folder))} (`{listing}` describes them)"
    )
