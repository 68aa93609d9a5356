"""Measurement throughput over TVM RPC: the local runner against one and two loopback RPC servers.

    python benchmarks/rpc_throughput.py [--workload resnet18.L2] [--configs 64] [--servers 0,1,2]
                                        [--out benchmarks/results/rpc_throughput.json]

The same random configurations of one workload are measured in one run: built
here, then checked and timed by the local runner (``0``) or on N loopback
servers (``python -m tvm.exec.rpc_server``) behind a TVM RPC tracker. Reported
per setting: valid trials per minute, build and run seconds, and the median
latency of the same kernels relative to the local runner's. A warm-up trial
first takes the one-off start-up (worker processes, the reference) out of the
timing. Loopback servers share this machine's cores with the compiler and with
each other, so on a small machine the gain is bounded and timings interfere.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from contextlib import nullcontext

import numpy as np
from workload_sample import random_sample


def measure(tvm_space, warmup, configs, options, config, batch_size: int) -> tuple[dict, list]:
    from chameleon_tune.measure.tvm_measurer import TVMMeasurer, Workers

    with Workers.open(tvm_space.target, options, config) as workers, TVMMeasurer(tvm_space, options, workers=workers) as measurer:
        measurer.measure(warmup)
        build0, run0 = measurer.build_s, measurer.run_s
        start = time.perf_counter()
        results = []
        for i in range(0, len(configs), batch_size):
            results += measurer.measure(configs[i : i + batch_size])
        wall = time.perf_counter() - start
        build_s, run_s = measurer.build_s - build0, measurer.run_s - run0
    valid = sum(r.valid for r in results)
    summary = {
        "wall_s": wall,
        "build_s": build_s,
        "run_s": run_s,
        "valid": valid,
        "valid_per_min": 60 * valid / wall,
        "errors": dict(Counter(r.error for r in results if not r.valid)),
    }
    return summary, [r.latency_s for r in results]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", default="resnet18.L2")
    parser.add_argument("--configs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="configurations per measure() call (the tuner's default)")
    parser.add_argument("--servers", default="0,1,2", help="settings to run: 0 is the local runner, N>0 N loopback servers")
    parser.add_argument("--out", default="benchmarks/results/rpc_throughput.json")
    args = parser.parse_args()

    from chameleon_tune.measure.loopback import LoopbackDevices
    from chameleon_tune.measure.types import MeasureOptions, RunnerConfig
    from chameleon_tune.tvm_space import target_cores

    sample = random_sample(args.workload, args.configs)
    target, tvm_space, configs = sample.target, sample.tvm_space, sample.configs
    options = MeasureOptions()
    warmup = tvm_space.space.sample(np.random.default_rng(1), 1)
    report = {
        **sample.report_header(),
        "configs": len(configs),
        "batch_size": args.batch_size,
        "settings": {},
    }
    latencies = {}
    for n in (int(s) for s in args.servers.split(",")):
        name = f"rpc-{n}" if n else "local"
        # Servers time with the target's core count, as the local runner does.
        with LoopbackDevices(n, key="bench", num_threads=target_cores(target)) if n else nullcontext() as devices:
            config = RunnerConfig("rpc", devices.tracker, devices.key) if n else RunnerConfig()
            report["settings"][name], latencies[name] = measure(tvm_space, warmup, configs, options, config, args.batch_size)
        print(name, json.dumps(report["settings"][name]), flush=True)
    if "local" in latencies:
        for name, lat in latencies.items():
            both = [(a, b) for a, b in zip(lat, latencies["local"]) if a and b]
            if both:
                report["settings"][name]["median_latency_over_local"] = float(np.median([a / b for a, b in both]))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"{'setting':<8} {'valid':>5} {'wall s':>7} {'build s':>7} {'run s':>7} {'valid/min':>9} {'latency/local':>13}")
    for name, s in report["settings"].items():
        ratio = s.get("median_latency_over_local")
        print(
            f"{name:<8} {s['valid']:>5} {s['wall_s']:>7.1f} {s['build_s']:>7.1f} {s['run_s']:>7.1f}"
            f" {s['valid_per_min']:>9.1f} {ratio if ratio is not None else float('nan'):>13.3f}"
        )


if __name__ == "__main__":
    main()
