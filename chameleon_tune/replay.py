"""`chameleon replay`: every strategy on a recorded space, seconds instead of hours.

Each (strategy, seed) run tunes a :class:`~chameleon_tune.measure.replay.ReplayMeasurer`
for ``budget`` evaluations. Since the file holds the whole space, its optimum
is known: reports give the fraction of the optimum reached after each
evaluation, and the evaluations and simulated time needed to reach 90%, 95%
and 99% of it.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .database import History
from .measure.replay import CacheFile, ReplayMeasurer
from .search.base import TaskContext, make_strategy
from .tuner import tune

LEVELS = (0.90, 0.95, 0.99)


def fraction_of_optimum(history: History, optimum: float) -> np.ndarray:
    """After each evaluation: optimum / best so far (1.0 = optimum found; 0 before any valid)."""
    best = np.minimum.accumulate(history.latencies)
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(best), optimum / best, 0.0)


def reached(fraction: np.ndarray, elapsed: np.ndarray, level: float) -> dict:
    """Evaluations and simulated seconds until ``fraction >= level`` (None: never)."""
    hits = np.flatnonzero(fraction >= level - 1e-12)
    if not len(hits):
        return {"evaluations": None, "simulated_s": None}
    return {"evaluations": int(hits[0]) + 1, "simulated_s": float(elapsed[hits[0]])}


def replay(cache: CacheFile, strategies: list[str], *, budget: int, seeds: int, batch_size: int = 16) -> dict:
    """Run each strategy for ``seeds`` seeds; the summary as a JSON-ready dict."""
    optimum = cache.optimum * cache.scale
    runs = []
    for strategy in strategies:
        for seed in range(seeds):
            measurer = ReplayMeasurer(cache)
            history = History(measurer.space)
            search = make_strategy(strategy, TaskContext(measurer.space, history, seed=seed))
            tune(measurer, search, history, trials=budget, batch_size=batch_size)
            fraction = fraction_of_optimum(history, optimum)
            elapsed = np.cumsum([t.result.build_s + t.result.run_s for t in history.trials])
            runs.append(
                {
                    "strategy": strategy,
                    "seed": seed,
                    "evaluations": len(history),
                    "fraction": fraction.tolist(),
                    "simulated_s": elapsed.tolist(),
                    "reached": {f"{int(level * 100)}%": reached(fraction, elapsed, level) for level in LEVELS},
                }
            )
    return {
        "kernel": cache.meta.get("kernel_name"),
        "device": cache.meta.get("device_name"),
        "space_size": cache.space.size,
        "recorded": len(cache.records),
        "optimum": optimum,
        "budget": budget,
        "seeds": seeds,
        "batch_size": batch_size,
        "runs": runs,
        "strategies": {s: _aggregate([r for r in runs if r["strategy"] == s]) for s in strategies},
    }


def _aggregate(runs: list[dict]) -> dict:
    out = {"final_fraction_median": float(np.median([r["fraction"][-1] if r["fraction"] else 0.0 for r in runs]))}
    for level in runs[0]["reached"]:
        hits = [r["reached"][level] for r in runs]
        done = [h for h in hits if h["evaluations"] is not None]
        out[level] = {
            "reached_in": f"{len(done)}/{len(hits)}",
            "evaluations_median": float(np.median([h["evaluations"] for h in done])) if done else None,
            "simulated_s_median": float(np.median([h["simulated_s"] for h in done])) if done else None,
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
        f"{summary['recorded']} recorded configurations of {summary['space_size']}; budget {summary['budget']} "
        f"evaluations; {summary['seeds']} seeds; optimum {summary['optimum']:.6g}.",
        "",
        "| strategy | final fraction of optimum (median) | "
        + " | ".join(f"to {level}: evaluations / simulated s (reached)" for level in ("90%", "95%", "99%"))
        + " |",
        "|---|---|" + "---|" * 3,
    ]
    for name, agg in summary["strategies"].items():
        cells = []
        for level in ("90%", "95%", "99%"):
            a = agg[level]
            cells.append("not reached" if a["evaluations_median"] is None else f"{a['evaluations_median']:.0f} / {a['simulated_s_median']:.1f} ({a['reached_in']})")
        lines.append(f"| {name} | {agg['final_fraction_median']:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "![fraction of optimum](fraction_of_optimum.png)", ""]
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))


def _plot(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in summary["strategies"]:
        curves = [r["fraction"] for r in summary["runs"] if r["strategy"] == name and r["fraction"]]
        length = min(len(c) for c in curves)
        data = np.array([c[:length] for c in curves])
        x = np.arange(1, length + 1)
        ax.plot(x, np.median(data, axis=0), label=name)
        ax.fill_between(x, data.min(axis=0), data.max(axis=0), alpha=0.2)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("fraction of optimum (optimum / best so far)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{summary['kernel'] or 'replay'}: median and range over {summary['seeds']} seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
