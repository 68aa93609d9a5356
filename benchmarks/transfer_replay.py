"""What `chameleon` learned on one recorded space, carried to another (issue 13): its search
policy, and its measurements for a shared cost model, against a cold start.

    python benchmarks/transfer_replay.py [--seeds 20] [--budget 200] [--priors none,16,64] \
        [--no-policy] [--out benchmarks/results/transfer_replay.json]

Every space is first tuned cold by `chameleon` (seed s, the budget, `chameleon replay`'s own
code): those runs are the cold baseline, and each leaves its PPO policy and its measurements
behind. Then each target space is tuned again with what its source's run of the same seed
left: its policy (`--warm-start`), for the two GPUs' caches of one convolution kernel into
each other (the same knobs, other hardware) and for the CPU matmul.121 space into each (other
knobs, another number of them: one policy fits any space); and, between the two GPUs'
spaces (compatible knobs), its measurements joining the target's cost model from the first
iteration (`related`, as `tune-model` shares them between a model's tasks), once for each
`--priors` value of the cost model's `transfer_prior` (how many of its own measurements a
task needs before they weigh as much as the other task's; `none`: equal weight throughout).
`--no-policy` leaves out the policy pairs and the matmul.121 space. Replay numbers
come from recorded times only, so load on the machine changes the wall time, not the result.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import tempfile
import time
from dataclasses import replace

from chameleon_tune.cost_model import CostModelConfig
from chameleon_tune.database import History
from chameleon_tune.evaluation.replay import aggregate, replay_run
from chameleon_tune.measure.replay import load_cache
from chameleon_tune.search.chameleon import CHAMELEON, POLICY_FILE, chameleon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACES = {
    "A4000": os.path.join(ROOT, "..", "shared", "spaces", "convolution_A4000.json.gz"),
    "W6600": os.path.join(ROOT, "..", "shared", "spaces", "convolution_W6600.json.gz"),
    "matmul.121": os.path.join(ROOT, "benchmarks", "results", "matmul121_exhaustive.json.gz"),
}
PAIRS = (("A4000", "W6600"), ("W6600", "A4000"), ("matmul.121", "A4000"), ("matmul.121", "W6600"))
MODEL_PAIRS = (("A4000", "W6600"), ("W6600", "A4000"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--priors", default="none", help="transfer_prior values for the measurement pairs, comma-separated")
    parser.add_argument("--no-policy", action="store_true", help="measurement pairs only")
    parser.add_argument("--out", default="benchmarks/results/transfer_replay.json")
    args = parser.parse_args()
    priors = [None if p == "none" else float(p) for p in args.priors.split(",")]

    needed = {name for pair in MODEL_PAIRS for name in pair} if args.no_policy else SPACES
    caches = {name: load_cache(path) for name, path in SPACES.items() if name in needed}
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "budget": args.budget,
        "seeds": args.seeds,
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as root:
        policies, measured = {}, {}
        for name, cache in caches.items():
            runs = []
            for seed in range(args.seeds):
                work_dir = os.path.join(root, name, str(seed))
                os.makedirs(work_dir)
                history = History(cache.space)
                runs.append(replay_run(cache, "chameleon", seed, args.budget, work_dir=work_dir, history=history))
                policies[name, seed] = os.path.join(work_dir, POLICY_FILE)
                measured[name, seed] = (history.space, history.configs, history.latencies)
            add(report, name, "cold", runs, args.budget)
        for source, target in () if args.no_policy else PAIRS:
            runs = [replay_run(caches[target], "chameleon", s, args.budget, warm_start=policies[source, s]) for s in range(args.seeds)]
            add(report, target, f"policy from {source}", runs, args.budget)
        for prior in priors:
            strategy = functools.partial(chameleon, config=replace(CHAMELEON, cost_model=CostModelConfig(transfer_prior=prior)))
            for source, target in MODEL_PAIRS:
                runs = [
                    replay_run(caches[target], strategy, s, args.budget, related=lambda s=s: [measured[source, s]])
                    for s in range(args.seeds)
                ]
                weighing = "equal weight" if prior is None else f"prior {prior:g}"
                add(report, target, f"measurements from {source}, {weighing}", runs, args.budget)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


def add(report: dict, space: str, start: str, runs: list[dict], budget: int) -> None:
    report["rows"].append({"space": space, "start": start, **aggregate(runs, budget)})
    print(_line(report["rows"][-1]), flush=True)


def _line(row: dict) -> str:
    to95 = row["95%"]["evaluations_median"]
    return (
        f"| {row['space']} | {row['start']} | {row['final_fraction_median']:.3f} | "
        f"{row['mean_fraction']['mean']:.3f} ± {row['mean_fraction']['sem']:.3f} | {row['95%']['reached_in']} | "
        f"{'not reached' if to95 is None else f'{to95:.0f}'} |"
    )


if __name__ == "__main__":
    main()
