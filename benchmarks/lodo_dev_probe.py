"""Does a larger source-domain dev split steady the lodo threshold? Re-score finished runs.

A ``lodo_<domain>`` protocol fixes its threshold on the dev subjects of the source
domains (72 bona fide crops in kd_gain's setting) and applies it to the unseen
domain. This probe adds the source domains' test subjects (unused by the lodo
protocol: every crop of theirs is in the ``intra`` protocol's test split) to dev,
which doubles it, re-scores the finished runs of ``fasdistill study kd_gain_lodo_office`` with the
threshold fixed on that dev, and prints test ACER per method (mean ± std over seeds)
both ways, with the paired gain over ``scratch_dr``. Checkpoints are not re-selected:
it measures the threshold's share of the seed spread, not the selection's.

    python benchmarks/lodo_dev_probe.py --out runs/kd_gain_lodo_office --protocol lodo_office \\
        --methods scratch_dr,kd_dr_clean,pixel_dr_clean --seeds 0,1,2,3,4,5,6,7,8,9
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from fasdistill.study.table import mean_std as _mean_std


def doubled_dev_index(out: Path, protocol: str) -> Path:
    """``out/crops_<protocol>_dev2/index.csv``: the protocol's rows, plus the source
    domains' intra test crops as dev (crop paths absolute; both crop sets come from
    kd_gain's data preparation with the same settings)."""
    held_out = protocol.removeprefix("lodo_")
    rows: list[dict[str, str]] = []
    for name, extra in ((protocol, False), ("intra", True)):
        root = out / f"crops_{name}"
        with (root / "index.csv").open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields = list(reader.fieldnames or ())
            for row in reader:
                if extra and not (row["split"] == "test" and row["domain"] != held_out):
                    continue
                row["crop_path"] = str((root / row["crop_path"]).resolve())
                row["split"] = "dev" if extra else row["split"]
                rows.append(row)
    from fasdistill.utils.atomic import atomic_write_text

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(out / f"crops_{protocol}_dev2" / "index.csv", text.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the study's --out")
    parser.add_argument("--protocol", default="lodo_office")
    parser.add_argument("--methods", default="scratch_dr,kd_dr_clean,pixel_dr_clean")
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9")
    args = parser.parse_args()
    import torch

    from fasdistill.data.loader import read_crop_index
    from fasdistill.engine.evaluation import evaluate_checkpoint

    torch.set_num_threads(1)
    path = doubled_dev_index(args.out, args.protocol)
    index = read_crop_index(path)
    dev = index.split("dev")
    bona_fide = sum(r["label"] == "bonafide" for r in dev)
    seeds = [int(s) for s in args.seeds.split(",")]
    acer: dict[str, dict[str, list[float]]] = {}
    for method in args.methods.split(","):
        acer[method] = {"dev": [], "dev2": []}
        for seed in seeds:
            run = args.out / args.protocol / method / f"seed{seed}"
            report = evaluate_checkpoint(run / "checkpoints" / "best.pt", index)
            stored = json.loads((run / "result.json").read_text())
            acer[method]["dev"].append(stored["test"]["acer"])
            acer[method]["dev2"].append(float(report["test"]["acer"]))
    print(
        f"**{args.protocol}**, threshold on dev ({len(dev)} crops, {bona_fide} bona fide "
        f"with the source test subjects) vs the protocol's dev; {len(seeds)} seeds\n"
    )
    print("| student | test ACER %, protocol dev | test ACER %, doubled dev | paired gain (pts) |")
    print("|---|---|---|---|")
    base = acer.get("scratch_dr")
    for method, values in acer.items():
        gain = "-"
        if base is not None and method != "scratch_dr":
            gain = _mean_std([b - v for b, v in zip(base["dev2"], values["dev2"], strict=True)])
        print(f"| {method} | {_mean_std(values['dev'])} | {_mean_std(values['dev2'])} | {gain} |")


if __name__ == "__main__":
    main()
