"""Build time of layout-rewritten (pre-packed) kernels: split as the model runs them, against
the whole ``main`` compiled beside its ``compute`` entry (the builder before 2026-12-02).

    python benchmarks/prepacked_build.py --model resnet50 --tasks 4 --configs 5

The same random configurations of the model's heaviest tasks are built both ways, one after
the other, in this process (no timing of kernels: compile time only; run it alone anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--tasks", type=int, default=4, help="the heaviest tasks by expected share")
    parser.add_argument("--configs", type=int, default=5, help="random configurations per task")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    from chameleon_tune.measure.builder import build_artifact
    from chameleon_tune.model.importer import load_model
    from chameleon_tune.model.pipeline import Pipeline
    from chameleon_tune.model.scheduler import extract_tasks
    from chameleon_tune.tvm_space import TVMSpace, host_target

    target = host_target(2)
    pipeline = Pipeline()
    tasks = extract_tasks(pipeline.fuse(pipeline.prepare(load_model(args.model, threads=2).mod), target), target)
    tasks.sort(key=lambda t: -t.weight * t.cost_estimate_s)
    rng, folder = np.random.default_rng(0), tempfile.mkdtemp()
    rows = []
    for task in tasks[: args.tasks]:
        space = TVMSpace(task.mod, target)
        for config in space.space.sample(rng, args.configs):
            sch = space.schedule(config)[0]
            if sch is None:
                continue
            start = time.perf_counter()
            build_artifact(sch.mod, str(target), os.path.join(folder, "split.so"))
            split_s = time.perf_counter() - start
            compute = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(sch.mod)["main"]
            both = tvm.IRModule({"main": sch.mod["main"], "compute": compute.with_attr("global_symbol", "compute")})
            start = time.perf_counter()
            tvm.compile(both, target=target).export_library(os.path.join(folder, "both.so"))
            rows.append({"task": task.name, "split_s": split_s, "main_and_compute_s": time.perf_counter() - start})
            print(f"{task.name:40s} split {split_s:.3f} s, main + compute {rows[-1]['main_and_compute_s']:.3f} s", flush=True)
    total = {k: sum(r[k] for r in rows) for k in ("split_s", "main_and_compute_s")}
    summary = {**total, "speedup": total["main_and_compute_s"] / total["split_s"], "builds": len(rows), "rows": rows}
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
