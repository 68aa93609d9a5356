"""Replay: our strategies against Kernel Tuner's own on recorded spaces, same budget, same counting.

    nice -n 19 python benchmarks/replay_strategies.py [--seeds 20] [--budget 200] \
        [--out benchmarks/results/replay_strategies] [CACHE ...]

By default the two Kernel Tuner caches of one convolution kernel measured on real GPUs
(../shared/spaces/) and our exhaustively measured matmul.121 space. Each is replayed
by `chameleon replay`'s own code, so Kernel Tuner's strategies (``kt:``) run in its
simulation mode on the same file and are counted and charged as ours are. Replay
results come from recorded times only: a busy machine changes the wall time, not
the numbers. Writes OUT/<space>/ (report.md, summary.json, the plot) and
OUT/summary.json (the aggregates), and prints one markdown table per space.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from chameleon_tune.evaluation.replay import replay, write_report
from chameleon_tune.measure.replay import load_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACES = (
    os.path.join(ROOT, "..", "shared", "spaces", "convolution_A4000.json.gz"),
    os.path.join(ROOT, "..", "shared", "spaces", "convolution_W6600.json.gz"),
    os.path.join(ROOT, "benchmarks", "results", "matmul121_exhaustive.json.gz"),
)
STRATEGIES = (
    "chameleon", "rl", "sa", "random",
    "kt:genetic_algorithm", "kt:diff_evo", "kt:pso", "kt:simulated_annealing", "kt:random_sample", "kt:bayes_opt",
)  # fmt: skip
GOAL_FRACTION = 0.99


def table(summary: dict) -> list[str]:
    lines = [
        "| strategy | final fraction of optimum (median) | mean fraction over the budget (± s.e.) | seeds reaching 95% | evaluations to 95% (median) | evaluations made (median) |",
        "|---|---|---|---|---|---|",
    ]
    for name, agg in summary["strategies"].items():
        to95 = agg["95%"]["evaluations_median"]
        lines.append(
            f"| {name} | {agg['final_fraction_median']:.3f} | {agg['mean_fraction']['mean']:.3f} ± {agg['mean_fraction']['sem']:.3f} | "
            f"{agg['95%']['reached_in']} | {'not reached' if to95 is None else f'{to95:.0f}'} | {agg['evaluations_median']:.0f} |"
        )
    return lines


def goal(summary: dict) -> dict:
    """The issue's goal for ``chameleon``, against the best Kernel Tuner strategy by mean fraction."""
    ours = summary["strategies"]["chameleon"]
    theirs = {name: agg for name, agg in summary["strategies"].items() if name.startswith("kt:")}
    best = max(theirs, key=lambda name: theirs[name]["mean_fraction"]["mean"])
    return {
        "best_kernel_tuner": best,
        "mean_fraction_vs_best": [ours["mean_fraction"]["mean"], theirs[best]["mean_fraction"]["mean"]],
        "final_median_vs_best": [ours["final_fraction_median"], theirs[best]["final_fraction_median"]],
        f"final_median_at_least_{GOAL_FRACTION}": ours["final_fraction_median"] >= GOAL_FRACTION,
        "seeds_reaching_95%": ours["95%"]["reached_in"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("caches", nargs="*", default=SPACES)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "replay_strategies"))
    args = parser.parse_args()

    results = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(), "spaces": {}}
    for path in args.caches:
        name = os.path.basename(path).split(".")[0]
        start = time.perf_counter()
        summary = replay(load_cache(path), list(STRATEGIES), budget=args.budget, seeds=args.seeds)
        write_report(summary, os.path.join(args.out, name))
        aggregates = {k: v for k, v in summary.items() if k != "runs"}
        results["spaces"][name] = {**aggregates, "goal": goal(summary), "wall_s": time.perf_counter() - start}
        print(f"\n### {name}: {summary['kernel']} on {summary['device']} ({summary['recorded']} of {summary['space_size']} recorded)\n")
        print("\n".join(table(summary)))
        print(f"\ngoal: {json.dumps(results['spaces'][name]['goal'])}; {results['spaces'][name]['wall_s']:.0f} s")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
