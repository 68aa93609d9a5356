"""`chameleon replay`: every strategy on a recorded space, seconds instead of hours.

Each (strategy, seed) run tunes a :class:`~chameleon_tune.measure.replay.ReplayMeasurer`
for ``budget`` evaluations; ``kt:NAME`` is Kernel Tuner's own strategy NAME
(:mod:`.kt_strategy`), counted and charged the same way. Since the file holds the
whole space, its optimum is known: reports give the fraction of the optimum
reached after each evaluation, and the evaluations and simulated time needed to
reach 90%, 95% and 99% of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np

from ..database import History
from ..measure.replay import CacheFile, ReplayMeasurer
from ..search.base import Strategy, TaskContext, make_strategy
from ..tuner import tune
from .curves import fraction_of, mean_and_sem, mean_fraction, median_cost, reached
from .kt_strategy import KernelTunerStrategy, is_kernel_tuner
from .plots import band_name, median_band, pyplot

LEVELS = (0.90, 0.95, 0.99)


def replay(cache: CacheFile, strategies: list[str], *, budget: int, seeds: int, batch_size: int = 16) -> dict:
    """Run each strategy for ``seeds`` seeds; the summary as a JSON-ready dict."""
    runs = [replay_run(cache, strategy, seed, budget, batch_size) for strategy in strategies for seed in range(seeds)]
    return {
        "kernel": cache.meta.get("kernel_name"),
        "device": cache.meta.get("device_name"),
        "space_size": cache.space.size,
        "recorded": len(cache.records),
        "optimum": cache.optimum * cache.scale,
        "budget": budget,
        "seeds": seeds,
        "batch_size": batch_size,
        "runs": runs,
        "strategies": {s: aggregate([r for r in runs if r["strategy"] == s], budget) for s in strategies},
    }


def replay_run(
    cache: CacheFile, strategy: str | Callable[[TaskContext], Strategy], seed: int, budget: int, batch_size: int = 16, *,
    work_dir: str | None = None, warm_start: str | None = None, related=None, history: History | None = None,
) -> dict:  # fmt: skip
    """One strategy (a registered name, or a function making one for an experiment), one seed:
    the fraction of the optimum after each evaluation, and when it reached each of ``LEVELS``.
    ``work_dir`` keeps what the strategy saves (its policy); ``warm_start`` is a saved policy to
    start from; ``related``, other spaces' measurements for a shared cost model
    (``TaskContext.related``); ``history``, an empty one to keep the measurements in."""
    measurer = ReplayMeasurer(cache)
    history = History(measurer.space) if history is None else history
    task = TaskContext(measurer.space, history, seed=seed, work_dir=work_dir, warm_start=warm_start, related=related)
    search = strategy(task) if callable(strategy) else _strategy(strategy, task, cache, budget)
    tune(measurer, search, history, trials=budget, batch_size=batch_size)
    fraction = fraction_of(history.latencies, cache.optimum * cache.scale)
    elapsed = np.cumsum([t.result.build_s + t.result.run_s for t in history.trials])
    return {
        "strategy": strategy if isinstance(strategy, str) else "custom",
        "seed": seed,
        "evaluations": len(history),
        "fraction": fraction.tolist(),
        "simulated_s": elapsed.tolist(),
        "reached": {
            f"{int(level * 100)}%": dict(zip(("evaluations", "simulated_s"), reached(fraction, elapsed, level))) for level in LEVELS
        },
    }


def _strategy(name: str, task: TaskContext, cache: CacheFile, budget: int) -> Strategy:
    if is_kernel_tuner(name):
        return KernelTunerStrategy(name, task, cache, budget)
    return make_strategy(name, task)


def aggregate(runs: list[dict], budget: int) -> dict:
    """Over seeds: median final fraction, mean fraction with its standard error, and per level
    how many seeds reached it and at what median cost."""
    mean, sem = mean_and_sem([mean_fraction(r["fraction"], budget) for r in runs])
    out = {
        "final_fraction_median": float(np.median([r["fraction"][-1] if r["fraction"] else 0.0 for r in runs])),
        "mean_fraction": {"mean": mean, "sem": sem},
        # below the budget where a strategy stops by itself (or the space runs out)
        "evaluations_median": float(np.median([r["evaluations"] for r in runs])),
    }
    for level in runs[0]["reached"]:
        hits = [r["reached"][level] for r in runs]
        out[level] = {
            "reached_in": f"{sum(h['evaluations'] is not None for h in hits)}/{len(hits)}",
            "evaluations_median": median_cost([h["evaluations"] for h in hits]),
            "simulated_s_median": median_cost([h["simulated_s"] for h in hits]),
        }
    return out


def write_report(summary: dict, out_dir: str) -> None:
    """``summary.json``, ``report.md`` and ``fraction_of_optimum.png`` in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    _plot(summary, os.path.join(out_dir, "fraction_of_optimum.png"))
    lines = [
        f"# Replay of {summary['kernel'] or 'a recorded space'} ({summary['device'] or 'unknown device'})",
        "",
        f"{summary['recorded']} recorded configurations of {summary['space_size']} in the parameter product (the "
        f"others are outside the space, as in Kernel Tuner); budget {summary['budget']} "
        f"evaluations; {summary['seeds']} seeds; optimum {summary['optimum']:.6g}.",
        "Medians over seeds, a seed that never reached a level counting as infinitely costly "
        "(so *not reached* when most seeds missed it); (k/n): seeds that reached it. "
        "*Mean fraction*: the best-so-far fraction of the optimum averaged over the budget (area under "
        "the curve), mean over seeds with its standard error; steadier than *reached* when only a few "
        "configurations are near the optimum. *Evaluations*: how many a run made (median), fewer than the "
        "budget where a strategy stops by itself; `kt:` strategies are Kernel Tuner's own, counted the same way.",
        "",
        "| strategy | final fraction of optimum (median) | mean fraction (± s.e.) | evaluations | "
        + " | ".join(f"to {level}: evaluations / simulated s (reached)" for level in ("90%", "95%", "99%"))
        + " |",
        "|---|---|---|---|" + "---|" * 3,
    ]
    for name, agg in summary["strategies"].items():
        cells = []
        for level in ("90%", "95%", "99%"):
            a = agg[level]
            cost = "not reached" if a["evaluations_median"] is None else f"{a['evaluations_median']:.0f} / {a['simulated_s_median']:.1f}"
            cells.append(f"{cost} ({a['reached_in']})")
        area = agg["mean_fraction"]
        lines.append(
            f"| {name} | {agg['final_fraction_median']:.3f} | {area['mean']:.3f} ± {area['sem']:.3f} | {agg['evaluations_median']:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", "![fraction of optimum](fraction_of_optimum.png)", ""]
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))


def _plot(summary: dict, path: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, name in enumerate(summary["strategies"]):
        curves = [r["fraction"] for r in summary["runs"] if r["strategy"] == name and r["fraction"]]
        length = min(len(c) for c in curves)
        # Line styles keep strategies that coincide (e.g. chameleon and rl+as without synthesis events) visible.
        style = ("-", "--", "-.", ":")[i % 4]
        median_band(ax, np.arange(1, length + 1), np.array([c[:length] for c in curves]), name, linestyle=style)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("fraction of optimum (optimum / best so far)")
    ax.set_ylim(0, 1.02)
    where = f"{summary['kernel'] or 'replay'}" + (f" on {summary['device']}" if summary["device"] else "")
    ax.set_title(f"{where}: median and {band_name(summary['seeds'])} over {summary['seeds']} seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
