"""Simulated score sets with a known structure, for exercising the evaluation.

Scores follow a subject-clustered Gaussian model: each subject has a random
offset shared by all its videos, each video one shared by its frames, and each
PAI species its own mean. No model or data is involved: use these to test and
benchmark evaluation code, never as a result.
"""

from __future__ import annotations

import numpy as np

from fasdistill.metrics.scores import ScoreSet

DEFAULT_SPECIES = {"print": 1.6, "replay": 1.2}


def simulate_scores(
    n_subjects: int = 20,
    videos_per_class: int = 2,
    frames: int = 5,
    species: dict[str, float] | None = None,
    seed: int = 0,
    prefix: str = "",
) -> ScoreSet:
    """A score set whose bona fide mean lies ``species[name]`` std-devs above each attack's.

    Every subject has ``videos_per_class`` bona fide videos and as many of each
    species, each of ``frames`` frames.
    """
    separations = DEFAULT_SPECIES if species is None else species
    rng = np.random.default_rng(seed)
    classes = [("bonafide", "", 0.0)] + [
        ("attack", name, -gap) for name, gap in separations.items()
    ]
    per_video = videos_per_class * frames
    n = n_subjects * len(classes) * per_video
    subject_offset = rng.normal(0.0, 0.35, n_subjects)
    scores = np.empty(n)
    labels, pai, videos, subjects, ids = [], [], [], [], []
    i = 0
    for s in range(n_subjects):
        for label, name, mean in classes:
            for v in range(videos_per_class):
                video = f"{prefix}s{s:03d}_{name or 'bonafide'}_{v}"
                centre = mean + subject_offset[s] + rng.normal(0.0, 0.3)
                scores[i : i + frames] = centre + rng.normal(0.0, 0.5, frames)
                for f in range(frames):
                    labels.append(label)
                    pai.append(name)
                    videos.append(video)
                    subjects.append(f"{prefix}s{s:03d}")
                    ids.append(f"{video}_f{f:02d}")
                i += frames
    return ScoreSet.from_arrays(scores, labels, pai, videos, subjects, ids, source="<simulated>")
