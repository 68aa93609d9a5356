"""Foundation benchmark: measurement throughput against stock MetaSchedule, and `sa` on ResNet-18 L2.

    python benchmarks/foundation.py [--configs 32] [--trials 200] [--out benchmarks/results/foundation.json]

Part 1 measures the same random configurations of one workload through our
builder/runner and through MetaSchedule's LocalBuilder/LocalRunner, in one run,
and reports valid trials per minute of each. Part 2 tunes resnet18.L2 with `sa`
and times PyTorch (oneDNN) on the same layer in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from chameleon_tune.evaluation.reference import torch_latency_s
from workload_sample import random_sample


def ours(tvm_space, configs, options):
    from chameleon_tune.measure.tvm_measurer import TVMMeasurer

    measurer = TVMMeasurer(tvm_space, options)
    try:
        measurer.prepare()  # worker start-up and the reference build are one-off costs, reported apart
        start = time.perf_counter()
        results = measurer.measure(configs)
        wall = time.perf_counter() - start
    finally:
        measurer.close()
    return wall, [r.latency_s for r in results]


def stock(tvm_space, configs, options, builder_timeout_s):
    from tvm.s_tir import meta_schedule as ms

    schedules = [tvm_space.schedule(c)[0] for c in configs]
    args_info = ms.arg_info.ArgInfo.from_prim_func(tvm_space.mod["main"])
    builder = ms.builder.LocalBuilder(timeout_sec=builder_timeout_s)
    runner = ms.runner.LocalRunner(
        timeout_sec=builder_timeout_s,
        evaluator_config=ms.runner.EvaluatorConfig(
            number=options.number, repeat=options.repeat, min_repeat_ms=options.min_repeat_ms
        )
    )
    start = time.perf_counter()
    built = builder.build([ms.builder.BuilderInput(s.mod, tvm_space.target) for s in schedules])
    inputs = [
        ms.runner.RunnerInput(b.artifact_path, device_type="cpu", args_info=args_info)
        for b in built
        if b.error_msg is None
    ]
    latencies = [None] * len(configs)
    errors = {_last_line(b.error_msg) for b in built if b.error_msg}
    ok = [i for i, b in enumerate(built) if b.error_msg is None]
    for i, future in zip(ok, runner.run(inputs) if inputs else []):
        result = future.result()
        if result.error_msg is None:
            latencies[i] = float(np.median([float(s) for s in result.run_secs]))
        else:
            errors.add(_last_line(result.error_msg))
    wall = time.perf_counter() - start
    return wall, latencies, sorted(errors)


def _last_line(message: str) -> str:
    return message.strip().splitlines()[-1][:160]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", default="resnet18.L2")
    parser.add_argument("--configs", type=int, default=32)
    parser.add_argument("--stock-configs", type=int, default=16)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--skip-tuning", action="store_true", help="throughput part only")
    parser.add_argument("--out", default="benchmarks/results/foundation.json")
    args = parser.parse_args()

    from chameleon_tune.api import tune_workload
    from chameleon_tune.measure.types import MeasureOptions

    sample = random_sample(args.workload, args.configs)
    wl, tvm_space, configs = sample.workload, sample.tvm_space, sample.configs
    options = MeasureOptions()
    report = sample.report_header()

    our_wall, our_lat = ours(tvm_space, configs, options)
    stock_runs = {}
    # 30 s is MetaSchedule's default; 120 s leaves room for its 20-45 s worker start-up.
    # Its workers time out one by one, so the stock path gets a smaller sample.
    stock_configs = configs[: args.stock_configs]
    for timeout in (30, 120):
        wall, lat, errors = stock(tvm_space, stock_configs, options, timeout)
        stock_runs[f"timeout_{timeout}s"] = {
            "wall_s": wall,
            "valid": sum(v is not None for v in lat),
            "valid_per_min": 60 * sum(v is not None for v in lat) / wall,
            "errors": errors,
        }
        if stock_runs[f"timeout_{timeout}s"]["valid"]:
            both = [(a, b) for a, b in zip(our_lat, lat) if a and b]
            stock_runs[f"timeout_{timeout}s"]["median_latency_ratio_ours_over_stock"] = float(np.median([a / b for a, b in both]))
    report["throughput"] = {
        "configs": len(configs),
        "stock_configs": len(stock_configs),
        "ours": {"wall_s": our_wall, "valid": sum(v is not None for v in our_lat), "valid_per_min": 60 * sum(v is not None for v in our_lat) / our_wall},
        "stock_metaschedule": stock_runs,
    }
    print(json.dumps(report["throughput"], indent=1), flush=True)

    if args.skip_tuning:
        _write(args.out, report)
        return
    with tempfile.TemporaryDirectory() as work:
        result = tune_workload(wl.name, "sa", trials=args.trials, work_dir=work, seed=0, options=options)
    torch_s, _ = torch_latency_s(wl)
    report["sa"] = result.to_json()
    report["pytorch"] = {"latency_s": torch_s, "gflops": wl.flops / torch_s / 1e9}
    report["sa_over_pytorch_speed"] = torch_s / result.best_latency_s
    print(json.dumps({k: report[k] for k in ("sa", "pytorch", "sa_over_pytorch_speed")}, indent=1))
    _write(args.out, report)


def _write(path: str, report: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
