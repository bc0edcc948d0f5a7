"""``fasdistill search``: a SWAP-budgeted student search, resumable, chosen on dev only.

The steps, each kept in ``OUT`` so a rerun resumes where the last one stopped:

1. ``pool.json``: architectures drawn from the space (plus the ``include`` ones, e.g.
   swapnet), with parameters and MACs; those over ``max_params`` are dropped.
2. ``latency/``: the per-block table of the target runtime and thread count, fitted on
   ``lut_fit`` whole models and checked on ``lut_check`` others (``check.json``:
   the estimate's error). Every pool entry gets an estimated latency.
3. ``proxy/``: short distillation runs of ``candidates`` architectures spread over
   the estimated latencies (up to ``latency_margin`` x the budget), then ``refine``
   mutations of the best; each scored on dev.
4. ``full/``: the proxy's Pareto front (estimate vs proxy) and enough other candidates
   to reach ``check`` are trained with the full budget. The proxy's rank correlation
   with their dev ACER is measured (``rank.json``); a proxy that does not rank
   (below ``min_rank``) is replaced by the figure of the same short runs that ranks
   best, the front recomputed and its new points trained.
5. ``measured.json``: the fully trained ones timed whole, interleaved, on the runtime.
   The front of dev ACER against measured latency within the budget gives the final
   models, trained with every seed; the chosen one has the lowest mean dev ACER.
6. Only then ``final.json``: the final models and the teacher scored on test
   (threshold fixed on dev), and a SWAP report of the teacher against the chosen one.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fasdistill.errors import InputError
from fasdistill.search.latency import LatencyTable, check_runtime, check_table, fit_table
from fasdistill.search.report import markdown, write_swap
from fasdistill.search.settings import SearchConfig, point_id, split_point
from fasdistill.search.train import (
    PROXY_METRICS,
    TrainJob,
    candidate_overrides,
    proxy_value,
    run_jobs,
    spearman,
    test_figures,
)
from fasdistill.utils.atomic import atomic_write_json, atomic_write_text

Log = Callable[[str], None]


def _dir(point: str) -> str:
    return point.replace("@", "_") + "px"


class Search:
    """One search folder: its settings, inputs, and every step's record."""

    def __init__(
        self,
        config: SearchConfig,
        data: Path,
        teacher: Path,
        out: Path,
        parallel: int = 1,
        log: Log = print,
        table: Path | None = None,
    ) -> None:
        self.config, self.data, self.teacher = config, Path(data), Path(teacher)
        self.out, self.parallel, self.log = Path(out), parallel, log
        # A table may be shared by searches on one machine, runtime and thread count.
        self.table_path = table or self.out / "latency" / f"{config.runtime}-{config.threads}t.json"
        self.classes = 0
        # the recipe's warm-up (epochs), train crops and batch size (set by check_inputs)
        self.schedule: tuple[float, int, int] = (0.0, 1, 1)

    # ------------------------------------------------------------------ checks and records
    def check_inputs(self) -> None:
        """Index, teacher, runtime, recipe and the included points, before anything is written."""
        from fasdistill.config import load_recipe
        from fasdistill.data.loader import read_crop_index
        from fasdistill.engine.checkpoint import load_deployable_state
        from fasdistill.models.searchnet import parse_arch

        c = self.config
        index = read_crop_index(self.data)
        splits = {r["split"] for r in index.rows}
        if missing := {"train", "dev", "test"} - splits:
            raise InputError(f"{self.data}: no {sorted(missing)} crops; a search needs all three")
        self.classes = len(index.classes)
        meta = load_deployable_state(self.teacher)["meta"]
        if list(meta["classes"]) != list(index.classes):
            raise InputError(
                f"{self.teacher}: teacher classes {meta['classes']} differ from the data's "
                f"{list(index.classes)}"
            )
        check_runtime(c.runtime)
        for point in c.include:
            parse_arch(split_point(point)[0])
        arch, size = split_point(c.include[0]) if c.include else c.space.sample(random.Random(0))
        recipe = load_recipe(
            c.recipe, candidate_overrides(arch, size, c.steps, 0, self.teacher, c.overrides)
        )
        train_rows = sum(r["split"] == "train" for r in index.rows)
        self.schedule = (recipe.schedule.warmup_epochs, train_rows, recipe.data.batch_size)
        if c.max_latency_ms is None and c.max_params is None:
            self.log("no --max-latency-ms or --max-params: the search spans the whole space")

    def record_settings(self) -> None:
        """``search.json``: the settings and inputs; a rerun with others is refused."""
        path = self.out / "search.json"
        mine = {
            "config": self.config.model_dump(mode="json"),
            "data": str(self.data.resolve()),
            "teacher": str(self.teacher.resolve()),
        }
        if path.exists():
            theirs = json.loads(path.read_text())
            if theirs != mine:
                changed = sorted(k for k in mine if theirs.get(k) != mine[k])
                raise InputError(
                    f"{path}: this folder holds a search with other {', '.join(changed)}; "
                    "use another --out (or the same settings to resume)"
                )
            return
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, mine)

    def _cached(self, name: str, make: Callable[[], Any]) -> Any:
        path = self.out / name
        if path.exists():
            return json.loads(path.read_text())
        value = make()
        atomic_write_json(path, value)
        return value

    # ------------------------------------------------------------------ steps
    def pool(self) -> list[dict[str, Any]]:
        """Architectures drawn from the space (seeded) plus the included points, measured."""

        def make() -> list[dict[str, Any]]:
            rng = random.Random(self.config.seed)
            points = [split_point(p) for p in self.config.include]
            seen = set(points)
            tries = 0
            wanted = self.config.pool + len(points)
            while len(points) < wanted and tries < 50 * self.config.pool:
                tries += 1
                point = self.config.space.sample(rng)
                if point not in seen:
                    seen.add(point)
                    points.append(point)
            rows = [self._describe(arch, size) for arch, size in points]
            return [r for r in rows if self._within_params(r) or r["point"] in self.config.include]

        return self._cached("pool.json", make)

    def _describe(self, arch: str, size: int) -> dict[str, Any]:
        from fasdistill.models import build_model, count_params
        from fasdistill.models.searchnet import arch_macs

        model = build_model("searchnet", num_classes=self.classes, arch=arch).deployable()
        return {
            "point": point_id(arch, size),
            "arch": arch,
            "input_size": size,
            "params": count_params(model),
            "macs": arch_macs(arch, size, self.classes),
        }

    def _within_params(self, row: dict[str, Any]) -> bool:
        return self.config.max_params is None or row["params"] <= self.config.max_params

    def latency(self, pool: list[dict[str, Any]]) -> LatencyTable:
        """The runtime's block table for the pool, fitted and checked on whole models."""
        c = self.config
        table = LatencyTable(self.table_path, c.runtime, c.threads)
        table.build(
            [(r["arch"], r["input_size"]) for r in pool],
            self.classes,
            runs=c.lut_runs,
            log=self.log,
        )
        check_path = self.out / "latency" / "check.json"
        if not check_path.exists():
            ordered = sorted(
                pool, key=lambda r: table.raw_estimate(r["arch"], r["input_size"], self.classes)
            )
            picks = _spread(ordered, c.lut_fit + c.lut_check)
            if not table.fit["models"]:  # a shared table is fitted once, on its first search
                fit_table(
                    table,
                    [(r["arch"], r["input_size"]) for r in picks[::2][: c.lut_fit]],
                    self.classes,
                    c.timing_runs,
                    c.timing_seconds,
                )
            fit = table.fit
            self.log(
                f"latency fit: measured = sum of the table's entries + {fit['offset_ms']:.3f} ms"
            )
            fitted = {(m["arch"], m["input_size"]) for m in fit["models"]}
            check_rows = [r for r in picks if (r["arch"], r["input_size"]) not in fitted]
            check = check_table(
                table,
                [(r["arch"], r["input_size"]) for r in check_rows],
                self.classes,
                c.timing_runs,
                c.timing_seconds,
            )
            atomic_write_json(check_path, check)
            self.log(
                f"latency table check on {len(check_rows)} other models: median error "
                f"{100 * check['median_abs_error']:.1f} %, max {100 * check['max_abs_error']:.1f} %"
            )
        for row in pool:
            row["estimate_ms"] = table.estimate(row["arch"], row["input_size"], self.classes)
        return table

    def _eligible(self, row: dict[str, Any], margin: float) -> bool:
        budget = self.config.max_latency_ms
        return self._within_params(row) and (
            budget is None or row["estimate_ms"] <= budget * margin
        )

    def _jobs(
        self, rows: list[dict[str, Any]], steps: int, seeds: list[int] | None = None
    ) -> list[TrainJob]:
        """Proxy runs (``seeds`` None: the search's seed, ``proxy/<point>``) or full runs
        (``full/<point>/seed<k>``) of ``rows``."""
        c = self.config
        teacher = self.teacher.resolve()
        shrink = []  # a proxy run's schedule is the full run's, shrunk: the same share of warm-up
        if seeds is None:
            shrink = [f"schedule.warmup_epochs={proxy_warmup(*self.schedule, steps, c.steps):.6g}"]
        # proxies of the first length in proxy/, longer ones (after a failed check) beside
        proxy = "proxy" if steps == c.proxy_steps else f"proxy{steps}"
        return [
            TrainJob(
                r["point"] if seed is None else f"{r['point']}/seed{seed}",
                c.recipe,
                tuple(candidate_overrides(r["arch"], r["input_size"], steps,
                                          c.seed if seed is None else seed, teacher,
                                          [*c.overrides, *shrink])),
                str(self.data),
                str(self.out / proxy / _dir(r["point"])) if seed is None
                else str(self.out / "full" / _dir(r["point"]) / f"seed{seed}"),
            )
            for r in rows
            for seed in (seeds or [None])
        ]  # fmt: skip

    def proxies(self, pool: list[dict[str, Any]], table: LatencyTable) -> dict[str, dict]:
        """Round 1 spread over latency, round 2 mutations of the proxy front."""
        c = self.config
        by_point = {r["point"]: r for r in pool}
        eligible = sorted(
            (r for r in pool if self._eligible(r, c.latency_margin)), key=lambda r: r["estimate_ms"]
        )
        first = _spread(eligible, c.candidates)
        first += [by_point[p] for p in c.include if by_point[p] not in first]
        results = run_jobs(self._jobs(first, c.proxy_steps), self.parallel, self.log)
        rows = {r["point"]: r | {"proxy": results[r["point"]]["dev"]} for r in first}
        refine_path = self.out / "refine.json"
        if refine_path.exists():
            extra = json.loads(refine_path.read_text())
        else:
            rng = random.Random(c.seed + 1)
            front = pareto(
                list(rows.values()), "estimate_ms", lambda r: proxy_value(r["proxy"], c.proxy)
            )
            extra, tries = [], 0
            while len(extra) < c.refine and front and tries < 200 * max(1, c.refine):
                tries += 1
                parent = rng.choice(front)
                arch, size = c.space.mutate(parent["arch"], parent["input_size"], rng)
                point = point_id(arch, size)
                if point in rows or any(e["point"] == point for e in extra):
                    continue
                row = self._describe(arch, size)
                table.build([(arch, size)], self.classes, runs=c.lut_runs, log=self.log)
                row["estimate_ms"] = table.estimate(arch, size, self.classes)
                if self._eligible(row, c.latency_margin):
                    extra.append(row | {"parent": parent["point"]})
            atomic_write_json(refine_path, extra)
        results = run_jobs(self._jobs(extra, c.proxy_steps), self.parallel, self.log)
        rows |= {r["point"]: r | {"proxy": results[r["point"]]["dev"]} for r in extra}
        return rows

    def full_runs(
        self, rows: dict[str, dict]
    ) -> tuple[dict[str, dict], dict[str, dict], dict[str, Any]]:
        """Full-budget runs of the proxy front and others up to ``check``; the rank check.

        A proxy figure that does not rank is replaced by the figure of the same short
        runs that ranks best; when none ranks, the short runs are replaced by runs
        twice as long (up to ``escalate`` times, never beyond the full budget) and
        checked again. ``rank.json`` records every check. Returns the candidates (with
        the proxy figures finally used), the fully trained ones and the check's record.
        """
        c = self.config
        metric, steps = c.proxy, c.proxy_steps
        history: list[dict[str, Any]] = []
        trained: dict[str, dict] = {}
        doublings = 0
        while True:
            rho = self._rank_check(rows, metric, trained, history, steps)
            if rho[metric] >= c.min_rank or rho[metric] != rho[metric]:
                break  # ranks (nan: a constant side, nothing to judge)
            ranked = [m for m in PROXY_METRICS if rho[m] == rho[m]]
            best = max(ranked, key=lambda m: rho[m], default=metric)
            if best != metric and rho[best] > rho[metric]:
                self.log(f"proxy {metric} does not rank (< {c.min_rank}); replaced by {best}")
                metric = best
                continue
            if doublings >= c.escalate or steps >= c.steps:
                break  # nothing left to replace it with: said in rank.json
            doublings += 1
            steps = min(2 * steps, c.steps)
            self.log(f"no figure of the {history[-1]['proxy_steps']}-step proxy ranks; "
                     f"the proxy runs again with {steps} steps")  # fmt: skip
            results = run_jobs(self._jobs(list(rows.values()), steps), self.parallel, self.log)
            rows = {p: r | {"proxy": results[p]["dev"]} for p, r in rows.items()}
            metric = c.proxy
        final_rho = history[-1]["spearman"][metric]
        rank = {
            "initial": c.proxy,
            "used": metric,
            "replaced": metric != c.proxy or steps != c.proxy_steps,
            "proxy_steps": steps,
            "min_rank": c.min_rank,
            "ranks": final_rho is not None and final_rho >= c.min_rank,
            "history": history,
            "target": "dev ACER after the full budget (first seed)",
        }
        atomic_write_json(self.out / "rank.json", rank)
        for p, r in trained.items():
            r["proxy"] = rows[p]["proxy"]
        return rows, trained, rank

    def _rank_check(
        self,
        rows: dict[str, dict],
        metric: str,
        trained: dict[str, dict],
        history: list[dict[str, Any]],
        steps: int,
    ) -> dict[str, float]:
        """Train the proxy front (and others up to ``check``) in full; Spearman per figure."""
        c = self.config
        seed = c.seeds[0]
        front = pareto(
            list(rows.values()), "estimate_ms", lambda r, m=metric: proxy_value(r["proxy"], m)
        )
        within = [r for r in front if self._eligible(r, 1.0)] or front[:1]
        wanted = {r["point"]: r for r in _spread(within, c.front_max)}
        if len(trained) + len(set(wanted) - set(trained)) < c.check:
            by_proxy = sorted(rows.values(), key=lambda r, m=metric: proxy_value(r["proxy"], m))
            fill = [r for r in by_proxy if r["point"] not in wanted and r["point"] not in trained]
            need = c.check - len(trained) - len(set(wanted) - set(trained))
            wanted |= {r["point"]: r for r in _spread(fill, need)}
        new = [r for p, r in wanted.items() if p not in trained]
        results = run_jobs(self._jobs(new, c.steps, [seed]), self.parallel, self.log)
        for r in new:
            trained[r["point"]] = r | {"full": {seed: results[f"{r['point']}/seed{seed}"]["dev"]}}
        points = sorted(trained)
        target = [trained[p]["full"][seed]["acer"] for p in points]
        rho = {
            m: spearman([proxy_value(rows[p]["proxy"], m) for p in points], target)
            for m in PROXY_METRICS
        }
        # nan (a constant side: no ranking to judge) is written as null
        written = {m: None if v != v else v for m, v in rho.items()}
        history.append(
            {"proxy": metric, "proxy_steps": steps, "candidates": len(points), "spearman": written}
        )
        self.log(
            f"proxy rank check ({steps} steps) on {len(points)} fully trained: "
            + ", ".join(f"{m} {v:+.2f}" for m, v in rho.items())
            + f" (used: {metric})"
        )
        return rho

    def measure(self, trained: dict[str, dict]) -> dict[str, float]:
        """Whole-model latency (ms) of the fully trained points, interleaved, on the runtime."""
        from fasdistill.search.latency import time_archs

        path = self.out / "measured.json"
        measured = json.loads(path.read_text()) if path.exists() else {}
        todo = [p for p in trained if p not in measured]
        if todo:
            c = self.config
            points = [(trained[p]["arch"], trained[p]["input_size"]) for p in sorted(trained)]
            self.log(f"timing {len(points)} fully trained candidates whole on {c.runtime}")
            timed = time_archs(
                points, self.classes, c.runtime, c.threads, c.timing_runs, c.timing_seconds
            )
            measured = {point_id(*point): ms for point, ms in timed.items()}
            atomic_write_json(path, measured)
            self.log(f"timed: {min(measured.values()):.3f}-{max(measured.values()):.3f} ms")
        return measured

    def final(self, trained: dict[str, dict], measured: dict[str, float]) -> dict[str, Any]:
        """The dev front (full dev ACER vs measured latency) in budget, every seed; the choice."""
        c = self.config
        seed = c.seeds[0]
        for p, r in trained.items():
            r["latency_ms"] = measured[p]
        budget = [
            r
            for r in trained.values()
            if self._within_params(r)
            and (c.max_latency_ms is None or r["latency_ms"] <= c.max_latency_ms)
        ]
        if not budget:
            fastest = min(trained.values(), key=lambda r: r["latency_ms"])
            raise InputError(
                f"no fully trained candidate meets the budget (fastest: {fastest['point']} at "
                f"{fastest['latency_ms']:.3f} ms); raise --max-latency-ms or widen the space"
            )
        front = pareto(budget, "latency_ms", lambda r: r["full"][seed]["acer"])[: c.front_max]
        results = run_jobs(self._jobs(front, c.steps, c.seeds), self.parallel, self.log)
        for r in front:
            r["seeds"] = {s: results[f"{r['point']}/seed{s}"]["dev"] for s in c.seeds}
            r["dev_acer_mean"] = statistics.fmean(v["acer"] for v in r["seeds"].values())
        chosen = min(front, key=lambda r: (r["dev_acer_mean"], r["latency_ms"], r["point"]))
        best_seed = min(c.seeds, key=lambda s: (chosen["seeds"][s]["acer"], s))
        return {"front": front, "chosen": chosen["point"], "chosen_seed": best_seed}

    def checkpoint(self, point: str, seed: int) -> Path:
        return self.out / "full" / _dir(point) / f"seed{seed}" / "checkpoints" / "best.pt"

    def test(self, final: dict[str, Any]) -> dict[str, Any]:
        """After every choice: the final models (every seed) and the teacher on test."""

        def make() -> dict[str, Any]:
            teacher = test_figures(self.teacher, self.data)
            models = {}
            for r in final["front"]:
                runs = {
                    str(s): test_figures(self.checkpoint(r["point"], s), self.data)
                    for s in self.config.seeds
                }
                acers = [v["test"]["acer"] for v in runs.values()]
                retention = [(1 - a) / (1 - teacher["test"]["acer"]) for a in acers]
                models[r["point"]] = {
                    "seeds": runs,
                    "test_acer_mean": statistics.fmean(acers),
                    "test_acer_std": statistics.pstdev(acers),
                    "retention_mean": statistics.fmean(retention),
                }
            return {"teacher": teacher, "models": models}

        return self._cached("final.json", make)


def proxy_warmup(
    warmup_epochs: float, train_rows: int, batch_size: int, proxy_steps: int, steps: int
) -> float:
    """The warm-up (in epochs) that gives a ``proxy_steps`` run the full run's share of it.

    A run is whole epochs of ``train_rows // batch_size`` steps, raised to reach its
    step budget; the recipe's warm-up is counted in epochs. Left as it is, one epoch of
    warm-up fills a short proxy run entirely: the learning rate only climbs and never
    decays, and the proxy ranks nothing. Shrunk by the ratio of planned steps, the
    proxy follows the same curve as the full run, compressed.
    """
    per_epoch = max(1, train_rows // batch_size) if train_rows >= batch_size else 1
    proxy_total = math.ceil(proxy_steps / per_epoch) * per_epoch
    full_total = math.ceil(steps / per_epoch) * per_epoch
    return warmup_epochs * proxy_total / full_total


def pareto(rows: list[dict[str, Any]], cost: str, error: Callable[[dict], float]) -> list[dict]:
    """The rows no other row beats on both ``cost`` and ``error`` (lower is better), by cost."""
    ordered = sorted(rows, key=lambda r: (r[cost], error(r), r["point"]))
    front, best = [], float("inf")
    for row in ordered:
        if error(row) < best:
            front.append(row)
            best = error(row)
    return front


def _spread(rows: list[Any], count: int) -> list[Any]:
    """``count`` rows evenly spaced through an ordered list (all of them if fewer)."""
    if count >= len(rows):
        return list(rows)
    if count <= 0:
        return []
    if count == 1:
        return [rows[0]]
    step = (len(rows) - 1) / (count - 1)
    picks = sorted({round(i * step) for i in range(count)})
    return [rows[i] for i in picks]


def run_search(
    config: SearchConfig,
    data: Path,
    teacher: Path,
    out: Path,
    parallel: int = 1,
    swap_runtimes: tuple[str, ...] | None = (),
    log: Log = print,
    table: Path | None = None,
) -> dict[str, Any]:
    """Every step of the search (see the module docstring); returns ``result.json``'s content.

    ``swap_runtimes``: the SWAP report's runtimes (empty: the search's runtime; None: no report).
    """
    search = Search(config, data, teacher, out, parallel, log, table)
    search.check_inputs()
    search.record_settings()
    pool = search.pool()
    log(f"pool: {len(pool)} architectures within the parameter budget")
    table = search.latency(pool)
    rows = search.proxies(pool, table)
    rows, trained, rank = search.full_runs(rows)
    measured = search.measure(trained)
    final = search.final(trained, measured)
    tested = search.test(final)
    chosen = final["chosen"]
    result = {
        "runtime": config.runtime,
        "threads": config.threads,
        "budget": {"max_latency_ms": config.max_latency_ms, "max_params": config.max_params},
        "latency_check": json.loads((out / "latency" / "check.json").read_text()),
        "proxy": rank,
        "candidates": list(rows.values()),
        "trained": list(trained.values()),
        "front": final["front"],
        "chosen": chosen,
        "chosen_seed": final["chosen_seed"],
        "checkpoint": str(search.checkpoint(chosen, final["chosen_seed"])),
        "test": tested,
    }
    atomic_write_json(out / "result.json", result)
    atomic_write_text(out / "search.md", markdown(result))
    if swap_runtimes is not None:
        runtimes = swap_runtimes or (config.runtime,)
        write_swap(out, search.teacher, search.data, result, runtimes, config.threads, log)
    return result
