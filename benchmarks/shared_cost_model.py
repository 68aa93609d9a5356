"""Does a cost model learn across tasks? Leave one task out, on the measurements of real runs.

    python benchmarks/shared_cost_model.py runs/bench-models/resnet50-sa-default-t300-s0 ... \\
        --out benchmarks/results/shared_cost_model.json

For every task of every given ``tune-model`` work directory with enough valid trials, the
task's measured configurations are ranked by:

- ``random``: no model (the expected value of a random pick);
- ``own-16``: the task's own XGBoost model after its first 16 trials (what the search has at
  the start of its second round; the 16 are then left out of the ranking);
- ``shared-0``: a shared model trained only on the *other* tasks of the same run (same knobs,
  other extents): what a task knows before its first trial;
- ``shared-16``: the shared model plus the task's own first 16 trials.

Per task and ranker: the mean normalized throughput (task best = 1) of the ranker's top 5
(what the next round would measure first), and whether the task's best is in the ranker's
top 10%. No kernel is run: this reads recorded measurements only, so it needs no quiet
machine, and it is deterministic (seed 0).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
import time

import numpy as np

OWN = 16
TOP = 5
MIN_TRIALS = 32


def load_run(work_dir: str) -> list[dict]:
    """Every task of a ``tune-model`` work directory: name, space, configs, latencies (in order)."""
    from chameleon_tune.database import History
    from chameleon_tune.space import Space

    tasks = []
    for task_dir in sorted(glob.glob(os.path.join(work_dir, "tasks", "*"))):
        with open(os.path.join(task_dir, "space.json")) as f:
            space = Space.from_json(json.load(f))
        history = History(space, os.path.join(task_dir, "history.jsonl"))
        if len(history):
            name = os.path.basename(task_dir).split("-", 1)[1]
            tasks.append({"name": name, "space": space, "configs": history.configs, "latencies": history.latencies})
    return tasks


def evaluate(tasks: list[dict], seed: int = 0) -> list[dict]:
    from chameleon_tune.cost_model import XGBoostCostModel
    from chameleon_tune.model.transfer import compatible

    rows = []
    for k, task in enumerate(tasks):
        latencies = task["latencies"]
        if np.isfinite(latencies).sum() < MIN_TRIALS:
            continue
        space = task["space"]
        siblings = [(o["space"], o["configs"], o["latencies"]) for j, o in enumerate(tasks) if j != k and compatible(o["space"], space)]
        if not siblings:
            continue
        # Ranked: the trials after the first OWN, throughput relative to the task's best.
        held_configs, held_lat = task["configs"][OWN:], latencies[OWN:]
        throughput = np.where(np.isfinite(held_lat), 1.0 / held_lat, 0.0)
        score = throughput / np.where(np.isfinite(latencies), 1.0 / latencies, 0.0).max()
        best = int(np.argmax(score))
        own = (task["configs"][:OWN], latencies[:OWN])
        rankers = {
            "own-16": XGBoostCostModel(space, seed=seed),
            "shared-0": XGBoostCostModel(space, seed=seed, related=lambda s=siblings: s),
            "shared-16": XGBoostCostModel(space, seed=seed, related=lambda s=siblings: s),
        }
        rankers["own-16"].fit(*own)
        rankers["shared-0"].fit(np.zeros((0, space.n_knobs), dtype=np.int64), np.zeros(0))
        rankers["shared-16"].fit(*own)
        row = {"task": task["name"], "siblings": len(siblings), "ranked": len(held_lat),
               "random": {"top_mean": float(score.mean()), "best_in_top10": 0.1}}  # fmt: skip
        for name, model in rankers.items():
            order = np.argsort(-model.predict(held_configs), kind="stable")
            cut = max(1, len(order) // 10)
            row[name] = {"top_mean": float(score[order[:TOP]].mean()), "best_in_top10": float(best in order[:cut])}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dirs", nargs="+", help="tune-model --output directories")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(["benchmarks/shared_cost_model.py", *(argv or sys.argv[1:])]), "runs": {}}  # fmt: skip
    names = ("random", "own-16", "shared-0", "shared-16")
    print(f"{'run':<48} {'tasks':>5}  " + "  ".join(f"{n:>16}" for n in names))
    for work_dir in args.work_dirs:
        rows = evaluate(load_run(work_dir))
        report["runs"][work_dir] = rows
        if not rows:
            print(f"{os.path.basename(work_dir):<48} {0:>5}  (no task with {MIN_TRIALS} valid trials and a sibling)")
            continue
        cells = []
        for n in names:
            top = np.mean([r[n]["top_mean"] for r in rows])
            hit = np.mean([r[n]["best_in_top10"] for r in rows])
            cells.append(f"{top:>6.3f} / {hit:>6.0%}  ")
        print(f"{os.path.basename(work_dir):<48} {len(rows):>5}  " + "".join(cells))
    every = [row for rows in report["runs"].values() for row in rows]
    if every:
        cells = "".join(f"{np.mean([r[n]['top_mean'] for r in every]):>6.3f} / {np.mean([r[n]['best_in_top10'] for r in every]):>6.0%}  " for n in names)
        print(f"{'all runs':<48} {len(every):>5}  " + cells)
    print(f"(each cell: mean normalized throughput of the top {TOP} / share of tasks whose best is in the top 10%)")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
