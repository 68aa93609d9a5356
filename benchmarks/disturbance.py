"""Tuning beside other work: is the result still right, and does the report say when it is not?

The same tuning runs (one ResNet-18 layer; a whole model's ``tune-model``; fixed
seed and budget) on the quiet machine and beside CPU hogs (busy Python loops,
unpinned, one per core named). Afterwards, on the quiet machine, every run's
final best is re-timed side by side: the layer's best configurations in one
worker, interleaved; the exported models with PyTorch in one process, in
interleaved rounds. That gives, per condition, the quality of what tuning chose
and how far the reported numbers were from the truth, next to the warnings given.

    python benchmarks/disturbance.py --out benchmarks/results/disturbance.json

Run it alone on the machine: it makes its own disturbances.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from tune_model import save, side_by_side  # benchmarks/tune_model.py: run as a script, its folder is on the path

HOG = "import time\nt = time.time()\nwhile time.time() - t < 1800: pass\n"
# "quiet again": the same run twice on the quiet machine, for the spread that timing noise alone gives.
LAYER_CONDITIONS = [
    ("quiet", 0, []), ("hog x1", 1, []), ("hog x2", 2, []), ("hog x1, --no-priority", 1, ["--no-priority"]),
    ("quiet again", 0, []),
]
MODEL_CONDITIONS = [("quiet", 0, []), ("hog x1", 1, []), ("hog x2", 2, [])]


def chameleon(args: list[str], hogs: int) -> dict:
    """Run one CLI command beside ``hogs`` busy processes; its JSON summary and warning lines."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        time.sleep(1.0 if hogs else 0.0)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "chameleon_tune.cli", *args, "--json"], capture_output=True, text=True)
        wall = time.perf_counter() - start
    finally:
        for p in procs:
            p.kill()
            p.wait()
    time.sleep(2.0)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {out.stderr[-2000:]}")
    lines = out.stdout.strip().splitlines()
    return {"summary": json.loads(lines[-1]), "warnings": [line for line in lines if line.startswith("warning")], "wall_s": wall}


def layer_runs(args) -> list[dict]:
    runs = []
    for name, hogs, extra in LAYER_CONDITIONS:
        work_dir = os.path.join(args.work_root, f"layer-{name.replace(' ', '').replace(',', '-')}")
        result = chameleon(
            ["tune", "--workload", args.workload, "--trials", str(args.trials), "--batch-size", "16", "--seed", str(args.seed),
             "--work-dir", work_dir, *extra], hogs,
        )  # fmt: skip
        s = result["summary"]
        runs.append({"condition": name, **result, "best_config": s["best_config"], "reported_s": s["best_latency_s"]})
        print(f"layer  {name:<24} reported {s['best_latency_s'] * 1e3:.3f} ms, {s['noisy_trials']} noisy trials", flush=True)
    # The truth: every run's choice, re-timed side by side on the quiet machine.
    import numpy as np

    from chameleon_tune.measure.tvm_measurer import TVMMeasurer
    from chameleon_tune.tvm_space import TVMSpace, host_target
    from chameleon_tune.workloads import get_workload

    wl = get_workload(args.workload)
    measurer = TVMMeasurer(TVMSpace(wl.prim_func(), host_target(), seed=args.seed + 1), flops=wl.flops)
    try:
        configs = np.array([r["best_config"] for r in runs], dtype=np.int64)
        retimed = measurer.retime(configs, rounds=20)
    finally:
        measurer.close()
    for run, result in zip(runs, retimed):
        run["quiet_retimed_s"] = result.latency_s
        run["quiet_retime_noisy"] = result.noisy
    quiet = runs[0]["quiet_retimed_s"]
    for run in runs:
        run["quality_vs_quiet_run"] = quiet / run["quiet_retimed_s"]
        run["reported_vs_truth"] = run["reported_s"] / run["quiet_retimed_s"]
    return runs


def model_runs(args, report: dict) -> list[dict]:
    runs = []
    for name, hogs, extra in MODEL_CONDITIONS:
        output = os.path.join(args.work_root, f"model-{name.replace(' ', '')}")
        result = chameleon(
            ["tune-model", "--model", args.model, "--trials", str(args.model_trials), "--round-trials", "8",
             "--seed", str(args.seed), "--output", output, "--references", "pytorch", *extra], hogs,
        )  # fmt: skip
        s = result["summary"]
        runs.append({
            "condition": name, **result, "output": output,
            "reported_tuned_s": s["tuned_latency_s"], "reported_reference_s": s["reference_latency_s"],
            "reported_ratio": s["reference_latency_s"] / s["tuned_latency_s"], "timing_noisy": s["timing_noisy"],
        })  # fmt: skip
        print(f"model  {name:<24} reported {s['reference_latency_s'] / s['tuned_latency_s']:.2f}x {s['reference']}, "
              f"timing disturbed: {s['timing_noisy'] or 'no'}, {s['noisy_trials']} noisy trials", flush=True)  # fmt: skip
    quiet = side_by_side(args.model, [run["output"] for run in runs], rounds=7)
    latency, reference = quiet["latency_s"], quiet["latency_s"][quiet["reference"]]
    quiet_tuned = latency[os.path.basename(runs[0]["output"])]
    for run in runs:
        tuned = latency[os.path.basename(run["output"])]
        run["quiet_tuned_s"], run["quiet_reference_s"] = tuned, reference
        run["true_ratio"] = reference / tuned
        run["quality_vs_quiet_run"] = quiet_tuned / tuned
        run["ratio_error"] = run["reported_ratio"] / run["true_ratio"] - 1
    report["model_quiet_side_by_side"] = quiet
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="resnet18.L2")
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--model-trials", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-root", default="runs/disturbance")
    parser.add_argument("--out", default="benchmarks/results/disturbance.json")
    parser.add_argument("--skip-model", action="store_true", help="the layer runs only")
    args = parser.parse_args()
    if os.path.exists(args.work_root):
        raise SystemExit(f"{args.work_root} exists: the runs must start fresh (remove it or pass --work-root)")
    report = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpus": os.cpu_count(), "args": vars(args)}
    report["layer"] = layer_runs(args)
    save(report, args.out)
    if not args.skip_model:
        report["model"] = model_runs(args, report)
        save(report, args.out)
    print(json.dumps({k: [{kk: vv for kk, vv in r.items() if kk != "summary"} for r in v] for k, v in report.items() if k in ("layer", "model")}, indent=1))


if __name__ == "__main__":
    main()
