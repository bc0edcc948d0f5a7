"""Check the SiW adapter against the official protocol lists, video id by video id.

The lists ship in Idiap's bob.db.siw package (GPLv3, not redistributed here):
fetch its sdist from PyPI and unpack it, then point ``--lists`` at
``bob/db/siw/lists``. A tree of empty files named like the release is built from
every id the lists name (``.mov``; ids ending in ``.m`` become ``<id>.mov``, as on
disk), the adapter reads it, and for every protocol its train + dev ids and its
test ids are compared with the lists' train + dev (``_60`` suffixes of protocol 1
removed: that is the frame limit) and eval ids.

    python benchmarks/verify_siw_lists.py --lists bob.db.siw-0.0.2/bob/db/siw/lists
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fasdistill.data.formats.siw import SiW


def read_ids(folder: Path) -> set[str]:
    ids = set()
    for name in ("for_real.lst", "for_attack.lst"):
        for line in (folder / name).read_text().splitlines():
            if line.strip():
                ids.add(line.split()[0].removesuffix("_60"))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=Path, required=True, help="bob/db/siw/lists")
    args = parser.parse_args()
    protocols = sorted(p.name.removeprefix("Protocol_") for p in args.lists.glob("Protocol_*"))
    official = {}
    for name in protocols:
        folder = args.lists / f"Protocol_{name}"
        official[name] = (
            read_ids(folder / "train") | read_ids(folder / "dev"),
            read_ids(folder / "eval"),
        )
    every = set().union(*(a | b for a, b in official.values()))
    print("| protocol | train + dev: lists / ours / same | test: lists / ours / same | live test |")
    print("|---|---|---|---|")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for video_id in every:
            path = root / f"{video_id}.mov"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        adapter = SiW(root)
        for name in protocols:
            samples = adapter.protocol(name)
            ours_fit = {s.sample_id for s in samples if s.split in ("train", "dev")}
            ours_test = {s.sample_id for s in samples if s.split == "test"}
            live = sum(1 for s in samples if s.split == "test" and s.label == "bonafide")
            lists_fit, lists_test = official[name]
            same = ours_fit == lists_fit and ours_test == lists_test
            failures += not same
            fit_same = "yes" if ours_fit == lists_fit else "NO"
            test_same = "yes" if ours_test == lists_test else "NO"
            print(
                f"| {name} | {len(lists_fit)} / {len(ours_fit)} / {fit_same} "
                f"| {len(lists_test)} / {len(ours_test)} / {test_same} | {live} |"
            )
            for label, extra in (
                ("only in ours", ours_test - lists_test),
                ("only in the lists", lists_test - ours_test),
            ):
                if extra:
                    print(f"    test {label}: {sorted(extra)[:5]} ({len(extra)})")
        print(f"\nskipped by the adapter: {len(adapter.skipped)}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
