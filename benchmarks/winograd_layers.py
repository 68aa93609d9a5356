"""Winograd against the direct convolution, one layer at a time, at the same number of trials.

    python benchmarks/winograd_layers.py --model resnet18 --trials 64 [--layout NCHW]

Extracts the model's tasks (NHWC by default) with and without ``Pipeline(winograd=True)``, pairs each
Winograd task with the direct task of the same layer (the same weight and epilogue), and
tunes both with ``chameleon`` for ``--trials`` each in this process, on one set of
measurement workers: best latency (cold cache, output checked) and wall time of each. Run
it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import time


def _layer(task) -> tuple:
    """What identifies a layer in either form: its input, its output and how many arguments
    (the residual of a fused add among them); the weights differ (transformed or not)."""
    from tvm.s_tir import meta_schedule as ms

    shapes = [tuple(int(d) for d in a.shape) for a in ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])]
    return task.weight, shapes[0], shapes[-1], len(shapes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", default="NHWC", choices=("NCHW", "NHWC"))
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    from chameleon_tune.api import make_search
    from chameleon_tune.database import History
    from chameleon_tune.measure.tvm_measurer import TVMMeasurer, Workers
    from chameleon_tune.measure.types import MeasureOptions
    from chameleon_tune.model.importer import load_model
    from chameleon_tune.model.pipeline import Pipeline
    from chameleon_tune.model.scheduler import extract_tasks
    from chameleon_tune.search.base import TaskContext
    from chameleon_tune.tuner import tune
    from chameleon_tune.tvm_space import TVMSpace, host_target

    target = host_target(2)
    prepared = Pipeline(layout=args.layout).prepare(load_model(args.model, threads=2).mod)  # the same with or without Winograd
    tasks = {w: extract_tasks(Pipeline(winograd=w, layout=args.layout).fuse(prepared, target), target) for w in (True, False)}
    direct = {_layer(t): t for t in tasks[False] if "conv2d" in t.name}
    pairs = [(w, direct[_layer(w)]) for w in tasks[True] if "winograd" in w.name and _layer(w) in direct]

    options = MeasureOptions(enable_cpu_cache_flush=True)
    results = []
    with Workers.open(target, options) as workers:
        for pair in pairs:
            row = {}
            for task in pair:
                space = TVMSpace(task.mod, target, seed=args.seed + 1)
                history = History(space.space, None)
                measurer = TVMMeasurer(space, options, workers=workers)
                search = make_search("chameleon", TaskContext(space.space, history, seed=args.seed, tvm_space=space))
                start = time.perf_counter()
                result = tune(measurer, search, history, trials=args.trials, batch_size=16)
                kind = "winograd" if "winograd" in task.name else "direct"
                row[kind] = {"task": task.name, "best_ms": result.best_latency_s * 1e3, "valid": result.valid, "wall_s": time.perf_counter() - start}
            results.append(row)
            w, d = row["winograd"], row["direct"]
            print(
                f"{d['task']:<36} direct {d['best_ms']:.3f} ms ({d['wall_s']:.0f} s)  "
                f"winograd {w['best_ms']:.3f} ms ({w['wall_s']:.0f} s)  {d['best_ms'] / w['best_ms']:.2f}x",
                flush=True,
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M"), "model": args.model, "layout": args.layout, "trials": args.trials, "layers": results}, f, indent=1)


if __name__ == "__main__":
    main()
