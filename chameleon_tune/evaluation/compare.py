"""`chameleon compare`: strategies side by side on the same workloads, seeds and settings.

Every (workload, strategy, seed) run tunes with identical measurement options
into its own work directory under ``OUT/runs``, so an interrupted comparison
resumes where it stopped. Strategy order alternates by seed so that machine
drift favours none. PyTorch's latency for each operator is measured in the same
run as the vendor reference.

Ratios are against a reference strategy (``sa``, AutoTVM's tuner, by default),
paired by seed: how many measurements (and how much tuning time) a strategy
needed to reach the reference's final best, against how many the reference
itself needed. Per workload the medians over seeds are compared, a seed that
never got there counting as infinitely many; when that median is infinite the
ratio is "not reached" (``None``), never a number.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass

import numpy as np

from ..api import DEFAULT_STRATEGY, UsageError, _target, check_runner, check_strategies, check_writable, locked, tune_workload
from ..database import History
from ..measure.interference import NOISY_CORES
from ..measure.types import MeasureOptions, RunnerConfig
from ..space import Space
from ..workloads import Workload, get_workload, suite
from .curves import fraction_of, median_cost, reached

DEFAULT_STRATEGIES = (DEFAULT_STRATEGY, "sa", "evolutionary", "random")
LEVELS = {"reference_best": 1.0, "95%_of_reference_best": 0.95}
RECORDS_SUFFIX = "+records"
"""``chameleon+records``: ``chameleon`` learning from the record store (``--records``)."""


@dataclass(frozen=True)
class Run:
    """The measured course of one (workload, strategy, seed) tuning run."""

    workload: str
    strategy: str
    seed: int
    latencies: np.ndarray
    """Per trial, in measurement order; ``inf`` for failed trials."""
    clock: np.ndarray
    """Seconds of tuning when each trial finished (see ``History.tuning_clock``)."""
    search_s: float
    wall_s: float
    noisy: int = 0
    """Valid trials timed while other work disturbed the machine."""

    @property
    def best_latency_s(self) -> float:
        return float(self.latencies.min()) if len(self.latencies) else math.inf


def resolve_workloads(workloads: list[str] | None, suite_name: str | None) -> list[Workload]:
    """Exactly one of a workload list and a suite name, checked (UsageError otherwise)."""
    if bool(workloads) == bool(suite_name):
        raise UsageError("give either --workload NAME[,NAME...] or --suite NAME")
    try:
        if suite_name:
            return suite(suite_name)
        return [get_workload(name) for name in workloads]
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def compare(
    workloads: list[str] | None = None,
    *,
    suite_name: str | None = None,
    strategies: list[str] = list(DEFAULT_STRATEGIES),
    trials: int = 64,
    seeds: int = 2,
    out: str = "compare-report",
    reference: str | None = None,
    target: str = "llvm",
    options: MeasureOptions = MeasureOptions(),
    batch_size: int = 16,
    progress: bool = True,
    runner: RunnerConfig = RunnerConfig(),
    records: str | None = None,
) -> dict:
    """Tune every workload with every strategy and seed; write the report; return the summary.

    ``reference`` defaults to ``sa`` when compared, else the first strategy. A strategy named
    ``NAME+records`` is ``NAME`` learning from the record store ``records`` (its cost model
    and first configurations, as in ``tune-model``; see ``api.tune_workload``), beside ``NAME``
    cold: what earlier runs are worth. The comparison reads the store and adds nothing to it,
    so its runs stay independent of each other.
    """
    chosen = resolve_workloads(workloads, suite_name)
    check_strategies([s.removesuffix(RECORDS_SUFFIX) for s in strategies])
    if any(s.endswith(RECORDS_SUFFIX) for s in strategies) != bool(records):
        raise UsageError(
            "--records DIR goes with strategies that learn from it, named NAME+records (e.g. chameleon+records)"
        )
    if len(set(strategies)) != len(strategies):
        raise UsageError("--strategies lists a strategy twice")
    reference = reference or ("sa" if "sa" in strategies else strategies[0])
    if reference not in strategies:
        raise UsageError(f"--reference {reference!r} is not among --strategies {','.join(strategies)}")
    if min(trials, seeds, batch_size) < 1:
        raise UsageError("--trials, --seeds and --batch-size must be at least 1")
    tvm_target = _target(target, runner.threads)
    check_runner(runner)
    check_writable(out)
    stored = _stored(records, str(tvm_target), options) if records else []
    from ..measure.tvm_measurer import Workers

    # One set of compiler and runner processes for every run: each set takes seconds to start.
    with locked(out, "comparison directory"), Workers.open(tvm_target, options, runner) as workers:
        return _compare(
            chosen, strategies, trials, seeds, out, reference, target, options, batch_size, progress, runner, workers, stored
        )  # fmt: skip


def _stored(records: str, target: str, options: MeasureOptions) -> list:
    """The record store's workloads for this target and timing mode; a store without any is a UsageError."""
    from ..model.record_store import RecordStore, target_key

    store = RecordStore(records, target_key(target, options.enable_cpu_cache_flush))
    workloads = store.load()
    if not workloads:
        raise UsageError(f"the record store {records!r} holds no records for {store.key} (see `chameleon records --records DIR`)")
    return workloads


def _compare(
    chosen, strategies, trials, seeds, out, reference, target, options, batch_size, progress, runner, workers, stored
) -> dict:
    from .compare_report import Progress, write_report
    from .reference import torch_latency_s

    bar = Progress(len(chosen) * len(strategies) * seeds * trials, enabled=progress)
    runs: list[Run] = []
    pytorch_s: dict[str, float] = {}
    pytorch_interference: dict[str, float] = {}
    try:
        for workload in chosen:
            pytorch_s[workload.name], pytorch_interference[workload.name] = torch_latency_s(workload, runner.threads)
            for seed in range(seeds):
                for strategy in strategies if seed % 2 == 0 else strategies[::-1]:
                    bar.start_run(f"{workload.name} {strategy} seed {seed}", workload.flops)
                    learn_from = stored if strategy.endswith(RECORDS_SUFFIX) else ()
                    runs.append(_tune_or_load(
                        workload, strategy, seed, trials, out, target, options, batch_size, runner, workers, bar.update, learn_from
                    ))  # fmt: skip
                    bar.end_run(trials, len(runs))
    finally:
        bar.close()
    settings = {
        "trials": trials,
        "seeds": seeds,
        "batch_size": batch_size,
        "target": target,
        "measure_options": options.__dict__,
        "runner": runner.__dict__,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} cores",
    }
    settings["pytorch_interference"] = pytorch_interference
    if stored:
        settings["records"] = {"workloads": len(stored), "trials": int(sum(len(w.latencies) for w in stored))}
    summary = summarize(runs, {w.name: w.flops for w in chosen}, pytorch_s, reference, strategies, settings)
    write_report(summary, out)
    return summary


def _tune_or_load(
    workload, strategy, seed, trials, out, target, options, batch_size, runner, workers, on_trial, learn_from
) -> Run:
    """A finished run is read back; anything else is tuned (resuming what its directory holds)."""
    work_dir = os.path.join(out, "runs", workload.name, f"{strategy}-s{seed}")
    done_path = os.path.join(work_dir, "result.json")
    done = None
    if os.path.exists(done_path):
        with open(done_path) as f:
            done = json.load(f)
    if done is None or done["trials"] < trials:
        result = tune_workload(
            workload.name,
            strategy.removesuffix(RECORDS_SUFFIX),
            trials=trials,
            target=target,
            work_dir=work_dir,
            seed=seed,
            options=options,
            batch_size=batch_size,
            on_trial=on_trial,
            runner=runner,
            workers=workers,
            learn_from=learn_from,
        )
        done = result.to_json()
        with open(done_path, "w") as f:
            json.dump(done, f, indent=1)
    with open(os.path.join(work_dir, "space.json")) as f:
        history = History(Space.from_json(json.load(f)), os.path.join(work_dir, "history.jsonl"))
    # An earlier comparison may have spent a larger budget here: compare like with like.
    latencies, clock = history.latencies[:trials], history.tuning_clock()[:trials]
    noisy = sum(t.result.valid and t.result.noisy for t in history.trials[:trials])
    return Run(workload.name, strategy, seed, latencies, clock, done["search_s"], done["wall_s"], noisy)


def summarize(
    runs: list[Run],
    flops: dict[str, float],
    pytorch_s: dict[str, float],
    reference: str,
    strategies: list[str],
    settings: dict | None = None,
) -> dict:
    """Every number of the report, JSON-ready, from the runs alone (no TVM needed)."""
    per_workload = {}
    for name in flops:
        by = {s: sorted((r for r in runs if r.workload == name and r.strategy == s), key=lambda r: r.seed) for s in strategies}
        per_workload[name] = _workload_summary(by, flops[name], pytorch_s.get(name), reference)
    summary = {
        "reference": reference,
        "strategies": strategies,
        "workloads": list(flops),
        **(settings or {}),
    }
    for ratio in ("measurement_ratio", "time_ratio", "quality_ratio", "vs_pytorch"):
        values = {s: [w["strategies"][s][ratio] for w in per_workload.values()] for s in strategies}
        summary[f"geomean_{ratio}"] = {s: _geomean([v for v in vals if v is not None]) for s, vals in values.items()}
        summary[f"{ratio}_defined_for"] = {s: f"{sum(v is not None for v in vals)}/{len(vals)}" for s, vals in values.items()}
    summary["per_workload"] = per_workload
    summary["noisy_trials"] = {s: sum(r.noisy for r in runs if r.strategy == s) for s in strategies}
    summary["pytorch_noisy"] = [w for w, cores in summary.get("pytorch_interference", {}).items() if cores >= NOISY_CORES]
    summary["runs"] = [
        {
            "workload": r.workload,
            "strategy": r.strategy,
            "seed": r.seed,
            "best_latency_s": r.best_latency_s if math.isfinite(r.best_latency_s) else None,
            "search_s": r.search_s,
            "wall_s": r.wall_s,
            "noisy_trials": r.noisy,
            "latencies_s": [v if math.isfinite(v) else None for v in r.latencies.tolist()],
            "clock_s": r.clock.tolist(),
        }
        for r in runs
    ]
    return summary


def _workload_summary(by: dict[str, list[Run]], flops: float, pytorch_s: float | None, reference: str) -> dict:
    ref_runs = by[reference]
    # The reference's own cost to reach its final best, seed by seed.
    own = [_reach(r, r.best_latency_s) for r in ref_runs]
    ref_cost = (median_cost([n for n, _ in own]), median_cost([t for _, t in own]))
    ref_gflops = _median([_gflops(flops, r.best_latency_s) for r in ref_runs])
    out = {
        "flops": flops,
        "pytorch_latency_s": pytorch_s,
        "pytorch_gflops": _gflops(flops, pytorch_s) if pytorch_s else None,
        "strategies": {},
    }
    for strategy, runs in by.items():
        gflops = [_gflops(flops, r.best_latency_s) for r in runs]
        entry = {
            "best_gflops_median": _median(gflops),
            "best_gflops_range": [min(gflops), max(gflops)],
            "best_latency_s_median": _median([r.best_latency_s for r in runs]),
            "search_share_median": _median([r.search_s / r.wall_s if r.wall_s else 0.0 for r in runs]),
            "wall_s_median": _median([r.wall_s for r in runs]),
        }
        for label, level in LEVELS.items():
            # Paired by seed: this strategy's run against the reference's run of the same seed.
            hits = [_reach(r, ref.best_latency_s, level) for r, ref in zip(runs, ref_runs)]
            entry[f"to_{label}"] = {
                "measurements_median": median_cost([n for n, _ in hits]),
                "wall_s_median": median_cost([t for _, t in hits]),
                "reached": f"{sum(n is not None for n, _ in hits)}/{len(hits)}",
            }
        to_best = entry["to_reference_best"]
        entry["measurement_ratio"] = _ratio(ref_cost[0], to_best["measurements_median"])
        entry["time_ratio"] = _ratio(ref_cost[1], to_best["wall_s_median"])
        entry["quality_ratio"] = _ratio(entry["best_gflops_median"], ref_gflops)
        entry["vs_pytorch"] = _ratio(entry["best_gflops_median"], out["pytorch_gflops"])
        out["strategies"][strategy] = entry
    return out


def _reach(run: Run, target_s: float, level: float = 1.0) -> tuple[int | None, float | None]:
    """When ``run`` first came within ``level`` of ``target_s`` (a reference with no valid trial: never)."""
    if not math.isfinite(target_s):
        return None, None
    return reached(fraction_of(run.latencies, target_s), run.clock, level)


def _gflops(flops: float, latency_s: float) -> float:
    return flops / latency_s / 1e9 if latency_s and math.isfinite(latency_s) else 0.0


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _geomean(values: list[float]) -> float | None:
    if not values:
        return None
    if min(values) <= 0:  # a strategy that found nothing valid somewhere
        return 0.0
    return float(np.exp(np.mean(np.log(values))))
