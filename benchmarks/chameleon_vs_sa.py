"""Chameleon against AutoTVM's `sa` on the paper's layers, same budget and seeds, one run.

    python benchmarks/chameleon_vs_sa.py --workloads alexnet.L5,vgg16.L1,resnet18.L2 \
        --strategies sa,chameleon --trials 150 --seeds 2 --out benchmarks/results/chameleon_vs_sa.json

For each layer and seed, strategies run back to back (their order alternating
by seed so machine drift favours neither). Reported per run: final best
GFLOPS, measurements and wall time to reach `sa`'s final best, wall time, and
the share of it spent searching (agent, cost model, sampling).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from reference import torch_latency_s  # noqa: E402


def reached_at(history: list[dict], target_latency: float) -> tuple[int | None, float | None]:
    """(measurements, seconds since the first trial started) when latency <= target first held."""
    if not history:
        return None, None
    t0 = history[0]["started"]
    for i, trial in enumerate(history, 1):
        if trial["latency_s"] is not None and trial["latency_s"] <= target_latency:
            return i, trial["finished"] - t0
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", default="alexnet.L5,vgg16.L1,resnet18.L2")
    parser.add_argument("--strategies", default="sa,chameleon")
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/chameleon_vs_sa.json")
    args = parser.parse_args()

    from chameleon_tune.api import tune_workload
    from chameleon_tune.workloads import get_workload

    strategies = args.strategies.split(",")
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": " ".join(sys.argv),
        "runs": [],
    }
    for name in args.workloads.split(","):
        wl = get_workload(name)
        for seed in range(args.seeds):
            order = strategies if seed % 2 == 0 else strategies[::-1]
            for strategy in order:
                with tempfile.TemporaryDirectory() as work:
                    result = tune_workload(name, strategy, trials=args.trials, work_dir=work, seed=seed)
                    with open(os.path.join(work, "history.jsonl")) as f:
                        history = [json.loads(line) for line in f]
                run = {"workload": name, "seed": seed, **result.to_json(), "history": history}
                run["search_share"] = result.search_s / result.wall_s
                report["runs"].append(run)
                print(f"{name} seed {seed} {strategy}: {result.best_gflops:.1f} GFLOPS, wall {result.wall_s:.0f} s, "
                      f"search {100 * run['search_share']:.1f}%", flush=True)
        report.setdefault("pytorch", {})[name] = {"latency_s": torch_latency_s(wl)}

    # Measurements / time each strategy needed to reach the reference's (sa) final best.
    for run in report["runs"]:
        ref = next(r for r in report["runs"] if r["workload"] == run["workload"] and r["seed"] == run["seed"] and r["strategy"] == strategies[0])
        run["to_reach_reference_best"] = dict(zip(("measurements", "seconds"), reached_at(run["history"], ref["best_latency_s"])))
    summary = {}
    for name in args.workloads.split(","):
        for strategy in strategies:
            runs = [r for r in report["runs"] if r["workload"] == name and r["strategy"] == strategy]
            reach = [r["to_reach_reference_best"]["measurements"] for r in runs]
            summary[f"{name}/{strategy}"] = {
                "best_gflops_median": float(np.median([r["best_gflops"] for r in runs])),
                "best_gflops_range": [min(r["best_gflops"] for r in runs), max(r["best_gflops"] for r in runs)],
                "measurements_to_reach_sa_best": reach,
                "wall_s_median": float(np.median([r["wall_s"] for r in runs])),
                "search_share_median": float(np.median([r["search_share"] for r in runs])),
                "pytorch_gflops": get_workload(name).flops / report["pytorch"][name]["latency_s"] / 1e9,
            }
    report["summary"] = summary
    print(json.dumps(summary, indent=1))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
