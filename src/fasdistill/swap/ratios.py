"""Every model against the reference: speed-ups, retention, energy, SWAP score, Pareto front.

Speed is compared two ways. The *same-runtime* speed-up (reference and model both in
ONNX Runtime, say) isolates the model; the *best-to-best* speed-up compares each
model in its own fastest CPU runtime, which is what a team shipping either would
see. The two differ a lot when a runtime handles one architecture badly (ncnn runs a
ResNet-18 5-6x slower than ONNX Runtime here), so both are reported and named.

A cell that is missing (an artifact that failed its parity gate, a runtime that
failed) leaves out exactly the ratios that need it, each with the reason.

A model's speed figure is its batch-1 median latency; a cascade's, whose time
depends on the face, is its mean over real test faces (:func:`speed_ms`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fasdistill.metrics.bootstrap import paired_acer_samples, unit_weights, weighted_auc
from fasdistill.metrics.scores import ScoreSet
from fasdistill.swap.options import AXES, SwapOptions

GPU_RUNTIMES = ("pytorch-cuda",)  # left out of "best runtime": a phone has no such GPU
BOOTSTRAP_RULE = (
    "paired percentile cluster bootstrap over subjects; resamples in which a model's ACER or "
    "AUC is undefined (a class absent) are dropped and counted; a ratio (retention, AUC ratio) "
    "gets no interval when the reference's ACER is 100 % (AUC 0) in any resample, since the "
    "ratio has no finite value there and dropping those resamples would bias it; the ACER "
    "difference is defined in every resample and always gets one"
)


def speed_ms(model: dict[str, Any], runtime: str, batch: int = 1) -> float:
    """The latency every speed figure of ``model`` uses: its median call, or for a
    cascade (``latency_statistic: "mean"``) its mean call over real test faces."""
    cell = model["latency"][runtime][f"batch{batch}"]
    return float(cell[f"{statistic(model)}_ms"])


def statistic(model: dict[str, Any]) -> str:
    """``median``, or ``mean`` for a model whose time depends on the face (a cascade)."""
    return str(model.get("latency_statistic", "median"))


def best_ms(best: dict[str, Any]) -> float:
    """The latency of a ``best_runtime`` entry (``median_ms``, or a cascade's ``mean_ms``)."""
    return float(best["mean_ms"] if "mean_ms" in best else best["median_ms"])


def best_runtime(model: dict[str, Any], int8: bool) -> dict[str, Any] | None:
    """The model's fastest CPU runtime by batch-1 median latency (fp32 only, or any);
    a cascade's by its mean (the entry then holds ``mean_ms``)."""
    pool = {
        runtime: speed_ms(model, runtime)
        for runtime in model["latency"]
        if runtime not in GPU_RUNTIMES and (int8 or not runtime.endswith("-int8"))
    }
    if not pool:
        return None
    fastest = min(pool, key=lambda r: (pool[r], r))
    return {"runtime": fastest, f"{statistic(model)}_ms": pool[fastest]}


def headline_runtime(models: list[dict[str, Any]], runtimes: tuple[str, ...]) -> tuple[str, str]:
    """The runtime of the main table, score and Pareto front, and why, if not the first asked.

    The first runtime asked for, unless a model lacks it: then the first one every
    model was measured in, so all models are still compared on one runtime.
    """
    first = runtimes[0]
    lacking = [m for m in models if first not in m["latency"]]
    if not lacking:
        return first, ""
    m = lacking[0]
    why = m.get("missing", {}).get(first, "not run in it")
    for runtime in runtimes[1:]:
        if all(runtime in m["latency"] for m in models):
            return runtime, (
                f"{first} is missing for {m['label']} ({why}); the main table, SWAP score and "
                f"Pareto front use {runtime}, the first runtime every model was measured in"
            )
    return first, (
        f"{first} is missing for {m['label']} ({why}) and no runtime was measured for every "
        "model; models without it have no SWAP score and are not on the Pareto front"
    )


def _interval(values: np.ndarray, alpha: float) -> list[float]:
    return [float(v) for v in np.quantile(values, [alpha, 1 - alpha])]


def retention(
    scores: ScoreSet,
    threshold: float,
    test: dict[str, float],
    ref_scores: ScoreSet,
    ref_threshold: float,
    ref_test: dict[str, float],
    options: SwapOptions,
) -> dict[str, Any]:
    """Retention, AUC ratio and ACER difference against the reference, with paired intervals.

    See :data:`BOOTSTRAP_RULE` for resamples in which a figure is undefined.
    """
    acer_s, acer_t = test["acer"], ref_test["acer"]
    out: dict[str, Any] = {
        "retention": (1 - acer_s) / (1 - acer_t) if acer_t < 1 else None,
        "auc_ratio": test["auc"] / ref_test["auc"] if ref_test["auc"] > 0 else None,
        "acer_difference": acer_s - acer_t,
    }
    if out["retention"] is None:
        out["retention_note"] = "undefined: the reference's test ACER is 100 %"
    if out["auc_ratio"] is None:
        out["auc_ratio_note"] = "undefined: the reference's test AUC is 0"
    if options.bootstrap == 0 or len(scores) != len(ref_scores):
        return out
    s_acer, t_acer = paired_acer_samples(
        scores, threshold, ref_scores, ref_threshold, n_resamples=options.bootstrap
    )
    weights = unit_weights(ref_scores, "subject", options.bootstrap)
    s_auc, t_auc = weighted_auc(scores, weights), weighted_auc(ref_scores, weights)
    defined = np.isfinite(s_acer) & np.isfinite(t_acer) & np.isfinite(s_auc) & np.isfinite(t_auc)
    kept = int(defined.sum())
    ref_acer_100 = int((t_acer[defined] >= 1).sum())
    ref_auc_0 = int((t_auc[defined] <= 0).sum())
    out["bootstrap"] = {
        "resamples": options.bootstrap,
        "unit": "subject",
        "undefined_dropped": options.bootstrap - kept,
        "reference_acer_100": ref_acer_100,
        "reference_auc_0": ref_auc_0,
        "rule": BOOTSTRAP_RULE,
    }
    if kept == 0:
        out["ci_note"] = "no resample had both classes: no intervals"
        return out
    alpha = (1 - options.confidence) / 2
    s_acer, t_acer, s_auc, t_auc = (v[defined] for v in (s_acer, t_acer, s_auc, t_auc))
    out["acer_difference_ci"] = _interval(s_acer - t_acer, alpha)
    for key, zeros, numerator, denominator, why in (
        ("retention", ref_acer_100, 1 - s_acer, 1 - t_acer, "ACER is 100 %"),
        ("auc_ratio", ref_auc_0, s_auc, t_auc, "AUC is 0"),
    ):
        if zeros:
            out[f"{key}_ci"] = None
            out[f"{key}_ci_note"] = (
                f"undefined: the reference's {why} in {zeros} of {kept} resamples; see the "
                "ACER difference's interval"
            )
        else:
            out[f"{key}_ci"] = _interval(numerator / denominator, alpha)
    return out


def _ratio_omitted(m: dict[str, Any], ref: dict[str, Any], runtime: str) -> str:
    """Why a same-runtime ratio of ``m`` on ``runtime`` cannot be given."""
    for who in (ref, m):
        if runtime in who.get("missing", {}):
            return f"{who['label']} x {runtime} left out"  # the reason is in "left_out"
        if runtime not in who["latency"]:
            reason = who.get("not_run", {}).get(runtime, "not run in it")
            return f"{who['label']} x {runtime}: {reason}"
    return f"{m['label']} x {runtime}: no energy figure"


def compare(
    models: list[dict[str, Any]],
    test_scores: dict[str, tuple[ScoreSet, float]],
    options: SwapOptions,
    headline: str,
) -> None:
    """Fill ``vs_reference``, ``best_runtime`` and the SWAP score of every model in place."""
    ref = models[0]
    ref_scores, ref_threshold = test_scores[ref["label"]]
    for m in models:
        m["best_runtime"] = {"fp32": best_runtime(m, False), "any": best_runtime(m, True)}
    for m in models:
        scores, threshold = test_scores[m["label"]]
        ratios: dict[str, Any] = {
            "accuracy": retention(
                scores, threshold, m["test"], ref_scores, ref_threshold, ref["test"], options
            ),
            "params_ratio": m["weight"]["params"] / ref["weight"]["params"],
            "macs_ratio": m["weight"]["macs"] / ref["weight"]["macs"],
        }
        omitted: dict[str, str] = {}
        for runtime in options.runtimes:
            both = all(runtime in who["latency"] and runtime in who["power"] for who in (m, ref))
            if not both:
                omitted[runtime] = _ratio_omitted(m, ref, runtime)
                continue
            lat_t = speed_ms(ref, runtime)
            lat_s = speed_ms(m, runtime)
            energy_t = ref["power"][runtime]["energy_j"]
            energy_s = m["power"][runtime]["energy_j"]
            ratios[runtime] = {"speedup": lat_t / lat_s, "energy_ratio": energy_s / energy_t}
            if statistic(m) == "mean":  # the same statistic on both sides, beside the headline
                mean_t = ref["latency"][runtime]["batch1"]["mean_ms"]
                ratios[runtime]["speedup_mean_to_mean"] = mean_t / lat_s
        best_to_best: dict[str, Any] = {}
        for kind in ("fp32", "any"):
            mine, theirs = m["best_runtime"][kind], ref["best_runtime"][kind]
            if mine is None or theirs is None:
                omitted[f"best_{kind}"] = "no CPU runtime measured for this model or the reference"
                continue
            best_to_best[kind] = {
                "speedup": best_ms(theirs) / best_ms(mine),
                "runtime": mine["runtime"],
                "reference_runtime": theirs["runtime"],
            }
        ratios["best_to_best"] = best_to_best
        if omitted:
            ratios["omitted"] = omitted
        m["vs_reference"] = ratios
        m["swap_score"], note = _score(ratios, options, headline)
        if note:
            m["swap_score_note"] = note


def _score(ratios: dict[str, Any], options: SwapOptions, runtime: str) -> tuple[float | None, str]:
    try:
        return swap_score(ratios, options, runtime), ""
    except KeyError as missing:
        return None, f"no SWAP score: {ratios.get('omitted', {}).get(runtime, missing)}"
    except ValueError as undefined:
        return None, f"no SWAP score: {undefined}"


def swap_score(ratios: dict[str, Any], options: SwapOptions, runtime: str | None = None) -> float:
    """Weighted geometric mean of the four gains over the reference (the reference scores 1).

    speed: speed-up on ``runtime`` (default: the first listed); weight: 1 / params
    ratio; accuracy: retention; power: 1 / energy ratio on the same runtime. Raises
    KeyError when ``runtime`` has no ratio, ValueError when a weighted gain is undefined.
    """
    runtime = runtime or options.runtimes[0]
    same = ratios[runtime] if any(options.score_weights.get(k) for k in ("speed", "power")) else {}
    gains = {
        "speed": same.get("speedup"),
        "weight": 1 / ratios["params_ratio"],
        "accuracy": ratios["accuracy"]["retention"],
        "power": 1 / same["energy_ratio"] if "energy_ratio" in same else None,
    }
    total = sum(options.score_weights.get(k, 0.0) for k in AXES)
    if total == 0:
        return 1.0
    log_sum = 0.0
    for axis in AXES:
        weight = options.score_weights.get(axis, 0.0)
        if weight == 0:
            continue
        if gains[axis] is None:
            raise ValueError(f"the {axis} gain is undefined")
        log_sum += weight * math.log(max(gains[axis], 1e-12))
    return math.exp(log_sum / total)


def pareto_front(models: list[dict[str, Any]], runtimes: tuple[str, ...]) -> list[str]:
    """Models no other model beats on test ACER, latency, energy and size all at once.

    Latency and energy are those of ``runtimes[0]`` (a cascade's latency its mean); a
    model not measured there is not on the front (``headline_runtime`` says why).
    """
    runtime = runtimes[0]

    def point(m: dict[str, Any]) -> tuple[float, ...]:
        return (
            m["test"]["acer"],
            speed_ms(m, runtime),
            m["power"][runtime]["energy_j"],
            float(m["weight"]["params"]),
        )

    points = {
        m["label"]: point(m)
        for m in models
        if runtime in m["latency"] and runtime in m.get("power", {})
    }
    front = []
    for label, p in points.items():
        dominated = any(
            all(o <= v for o, v in zip(q, p, strict=True)) and q != p
            for other, q in points.items()
            if other != label
        )
        if not dominated:
            front.append(label)
    return front
