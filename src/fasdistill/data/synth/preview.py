"""Contact sheet: one row per domain, bona fide beside each attack species."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fasdistill.data.synth.generator import SynthConfig, plan
from fasdistill.data.synth.render import choose_instrument, render
from fasdistill.data.synth.sensors import mask_material
from fasdistill.utils.atomic import atomic_write_bytes


def contact_sheet(config: SynthConfig, path: str | os.PathLike[str], subject: int = 0) -> Path:
    """Render one subject per domain, every class, and save the sheet as PNG.

    Sets with depth and NIR show each cell as RGB | depth | NIR (masks name their material).
    """
    config.validate()
    specs = [s for s in plan(config) if s.subject_index == subject and s.index == 0]
    classes = ["bonafide", *config.species]
    rows = len(config.domains)
    width = 1 + len(config.sensors)
    fig = Figure(figsize=(2.1 * width * len(classes), 2.25 * rows + 0.4))
    FigureCanvasAgg(fig)
    for r, domain in enumerate(config.domains):
        for c, cls in enumerate(classes):
            spec = next(s for s in specs if s.domain == domain and (s.pai or "bonafide") == cls)
            out = render(spec, config, sensors=bool(config.sensors))
            tiles = [out.frames[0]]
            gap = np.full((config.size, max(2, config.size // 32), 3), 255, np.uint8)
            for name in config.sensors:
                tiles += [gap, np.repeat(getattr(out, name)[0][..., None], 3, axis=2)]
            ax = fig.add_subplot(rows, len(classes), r * len(classes) + c + 1)
            ax.imshow(np.hstack(tiles))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cls, fontsize=11)
            if c == 0:
                ax.set_ylabel(domain, fontsize=11)
            if cls in ("print", "replay"):
                ax.set_xlabel(choose_instrument(spec).replace("_", " "), fontsize=8)
            elif cls == "mask" and config.sensors:
                ax.set_xlabel(f"{mask_material(spec.seed_words)} mask", fontsize=8)
    shown = " | ".join(
        ("RGB", *(("depth", "NIR")[("depth", "ir").index(m)] for m in config.sensors))
    )
    fig.suptitle(
        f"SynthSpoof ({shown}), difficulty {config.difficulty:g}, {config.size} px, "
        f"seed {config.seed}",
        fontsize=11,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue())
