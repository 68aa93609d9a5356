"""Why a recorded space is hard: its basins, a model-free climber, and what the cost model sees.

    python benchmarks/space_landscape.py [--seeds 20] [--budget 200] [--out FILE] [CACHE ...]

For each recorded space (by default the three of replay_strategies.py), from recorded
values only (nothing is timed):
- basins: from every configuration, steepest ascent over one-knob steps (the true values,
  every neighbour looked at); the share of starts that end at 95% of the optimum or above;
- a model-free multi-start climber, as a strategy would run it: measure a random start and
  all its neighbours, move to the best, restart at a random configuration at a local
  optimum; evaluations counted as replay counts them (unique configurations, failures
  included) up to the budget; the share of runs reaching 95% and the median final fraction;
- `chameleon` (replayed, ``--seeds`` seeds): in the runs that miss 95%, where the cost model
  trained on all the run's measurements ranks the configurations at 95% or above, among
  every configuration of the space (0: predicted best), and whether the run measured any
  configuration one step from one of them.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from chameleon_tune.cost_model import XGBoostCostModel
from chameleon_tune.database import History
from chameleon_tune.evaluation.replay import replay_run
from chameleon_tune.measure.replay import ReplayMeasurer, load_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACES = (
    os.path.join(ROOT, "..", "shared", "spaces", "convolution_A4000.json.gz"),
    os.path.join(ROOT, "..", "shared", "spaces", "convolution_W6600.json.gz"),
    os.path.join(ROOT, "benchmarks", "results", "matmul121_exhaustive.json.gz"),
)
LEVEL = 0.95


class Landscape:
    """Every configuration of a recorded space with its fraction of the optimum (0: failed)."""

    def __init__(self, path: str) -> None:
        self.cache = load_cache(path)
        measurer = ReplayMeasurer(self.cache)
        self.space = measurer.space
        self.configs = np.array(list(self.space.configurations()))
        self.keys = self.space.keys(self.configs)
        latency = np.array([r.latency_s if r.valid else np.inf for r in measurer.measure(self.configs)])
        self.fraction = dict(zip(self.keys, latency.min() / latency))
        self.neighbours = {key: [self.space.key(n) for n in self.space.neighbours(key)] for key in self.fraction}

    def uphill(self, key):
        """The best neighbour of ``key`` where it is better than ``key``, else None."""
        best = max(self.neighbours[key], key=self.fraction.__getitem__, default=None)
        return best if best is not None and self.fraction[best] > self.fraction[key] else None

    def ascent(self, key) -> tuple[float, int]:
        """Where steepest ascent from ``key`` stops: its fraction, and the steps taken."""
        steps = 0
        while (better := self.uphill(key)) is not None:
            key, steps = better, steps + 1
        return self.fraction[key], steps

    def climber(self, rng: np.random.Generator, budget: int) -> float:
        """The best fraction a model-free multi-start climber finds in ``budget`` evaluations."""
        keys = list(self.fraction)
        seen: set = set()

        def evaluate(key) -> None:
            if len(seen) < budget:
                seen.add(key)

        while len(seen) < budget:
            key = keys[rng.integers(len(keys))]
            evaluate(key)
            while len(seen) < budget:
                for n in self.neighbours[key]:
                    evaluate(n)
                better = self.uphill(key)
                if better is None or better not in seen:  # a local optimum, or the budget ran out first
                    break
                key = better
        return max(self.fraction[k] for k in seen)


def model_view(land: Landscape, seeds: int, budget: int) -> list[dict]:
    """`chameleon`'s runs that miss the level: the cost model's ranks of the configurations above it."""
    top = [k for k, f in land.fraction.items() if f >= LEVEL]
    near = {n for k in top for n in land.neighbours[k]}
    index = {k: i for i, k in enumerate(land.keys)}
    missed = []
    for seed in range(seeds):
        history = History(land.space)
        run = replay_run(land.cache, "chameleon", seed, budget, history=history)
        if run["reached"][f"{int(LEVEL * 100)}%"]["evaluations"] is not None:
            continue
        model = XGBoostCostModel(land.space, seed=seed)
        model.fit(history.configs, history.latencies)
        order = np.argsort(-model.predict(land.configs), kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        missed.append({
            "seed": seed,
            "final": run["fraction"][-1],
            "ranks_of_top": sorted(int(rank[index[k]]) for k in top),
            "measured_a_neighbour_of_top": bool(near & set(history.keys)),
        })  # fmt: skip
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("caches", nargs="*", default=SPACES)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--climber-runs", type=int, default=200)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "space_landscape.json"))
    args = parser.parse_args()
    results = {}
    for path in args.caches:
        land = Landscape(path)
        ends = np.array([land.ascent(k) for k in land.fraction])
        rng = np.random.default_rng(0)
        climbs = np.array([land.climber(rng, args.budget) for _ in range(args.climber_runs)])
        missed = model_view(land, args.seeds, args.budget)
        name = os.path.basename(path).split(".")[0]
        results[name] = {
            "configurations": len(land.fraction),
            f"at_{LEVEL}": int(sum(f >= LEVEL for f in land.fraction.values())),
            "ascent_starts_reaching": float(np.mean(ends[:, 0] >= LEVEL)),
            "ascent_steps_mean": float(ends[:, 1].mean()),
            "climber_runs_reaching": float(np.mean(climbs >= LEVEL)),
            "climber_final_median": float(np.median(climbs)),
            "chameleon_runs_missing": len(missed),
            "chameleon_missed": missed,
        }
        summary = {k: v for k, v in results[name].items() if k != "chameleon_missed"}
        median_rank = [int(np.median(m["ranks_of_top"])) for m in missed]
        near = sum(m["measured_a_neighbour_of_top"] for m in missed)
        print(f"{name}: {json.dumps(summary)}; missed runs: median rank of the top configurations {median_rank}, "
              f"{near} of {len(missed)} measured a neighbour of one", flush=True)  # fmt: skip
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
