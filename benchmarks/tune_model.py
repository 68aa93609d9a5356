"""A whole model tuned end to end, one run per strategy (and pipeline variant) at the same budget.

    python benchmarks/tune_model.py --model resnet18 --strategies chameleon,sa --trials 1000 \
        --out benchmarks/results/tune_model_resnet18.json
    python benchmarks/tune_model.py --model resnet18 --strategies chameleon --trials 400 \
        --variants default,no-prepack,no-fold,no-starts --out benchmarks/results/ablation_resnet18.json

Each run tunes into its own directory under ``--work-root`` (a rerun resumes
there), then its tuned model is verified and timed against the untuned TVM build
and the references (PyTorch eager, torch.compile, ONNX Runtime; same thread count) in
the same process. At the end all exported models and the references are timed again
in interleaved rounds (``side_by_side``): the ratios to quote.
``--variants`` (ablation): ``default``, ``no-prepack`` (weights in their original layout),
``no-fold`` (batch norm not folded), ``plain`` (neither), ``no-winograd`` (3x3 stride-1
convolutions computed directly, not as Winograd F(4x4, 3x3)), ``no-fast-math`` (exact erf
and exp in GELU and softmax), ``nchw`` (convolutions in NCHW / OIHW, not the default NHWC /
HWIO), ``no-starts`` (first turns from the strategy, not from a similar task's best), ``in-order-warmup`` (the allocation before issue 17:
a full first round for every task, in the model's order), ``no-sane-starts`` (no starting
configurations, and a task without a valid trial keeps TVM's unscheduled default), ``before-17``
(both), ``no-shared`` (each task's cost model learns
from its own measurements alone), ``no-policy`` (each task's PPO policy starts from random weights), ``warm`` (kernels timed with their arguments
left in cache, not flushed before each call), ``records`` (tasks learn from and start from
the record store ``--records``, each run from its own copy of it, to which its trials are
appended, so the runs of one invocation learn nothing from each other; every other variant
runs without a store, cold).
``--tasks-only`` lists the model's tuning tasks and weights without tuning.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import replace


def list_tasks(model: str) -> list[dict]:
    from chameleon_tune.model.importer import load_model
    from chameleon_tune.model.pipeline import Pipeline
    from chameleon_tune.model.transfer import Transfer
    from chameleon_tune.model.scheduler import extract_tasks
    from chameleon_tune.tvm_space import host_target

    target = host_target()
    pipeline = Pipeline()
    fused = pipeline.fuse(pipeline.prepare(load_model(model, threads=1).mod), target)
    return [{"name": t.name, "weight": t.weight} for t in extract_tasks(fused, target)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--strategies", default="chameleon,sa")
    parser.add_argument("--trials", type=int, default=None, help="budget (default: tune-model's, 40 a task)")
    parser.add_argument("--time-budget", type=float, default=None, help="seconds of tuning per run")
    parser.add_argument("--round-trials", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-root", default="runs/bench-tune-model")
    parser.add_argument("--out", default="benchmarks/results/tune_model_resnet18.json")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds of the exported models (default 7)")
    parser.add_argument("--variants", default="default", help=f"pipeline variants, comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--references", default="pytorch,torch.compile,onnxruntime")
    parser.add_argument("--tasks-only", action="store_true", help="print the tasks and weights, tune nothing")
    parser.add_argument("--records", default=None, help="the record store of the `records` variant (default: WORK_ROOT/records)")
    args = parser.parse_args()

    if args.tasks_only:
        print(json.dumps(list_tasks(args.model), indent=1))
        return

    from chameleon_tune import tune_model

    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": " ".join(sys.argv),
        "runs": [],
    }
    name = os.path.splitext(os.path.basename(args.model))[0]
    references = args.references.split(",")
    for variant in args.variants.split(","):
        for strategy in args.strategies.split(","):
            budget = f"n{args.trials}" if args.trials else f"t{args.time_budget:.0f}" if args.time_budget else "default"
            output = os.path.join(args.work_root, f"{name}-{strategy}-{variant}-{budget}-s{args.seed}")
            result = tune_model(
                args.model, strategy, trials=args.trials, output=output, seed=args.seed, progress=True,
                references=references, time_budget_s=args.time_budget, **variant_options(variant, args.round_trials),
                records=private_store(args.records or os.path.join(args.work_root, "records"), output)
                if variant == "records" else None,
            )  # fmt: skip
            report["runs"].append({"variant": variant, **result.to_json()})
            s = result.summary
            print(
                f"{strategy:<10} {variant:<10} tuned {s['tuned_latency_s'] * 1e3:.2f} ms, "
                + ", ".join(f"{n} {v * 1e3:.2f} ms" for n, v in s["references"].items())
                + f"; {s['trials']} trials in {s['tuning_wall_s']:.0f} s"
            )
            save(report, args.out)  # after every run: a later failure loses nothing
    report["side_by_side"] = side_by_side(args.model, [r["output"] for r in report["runs"]], args.rounds, references)
    print(json.dumps(report["side_by_side"], indent=1))
    save(report, args.out)


def private_store(records: str, output: str) -> str:
    """A copy of the record store ``records`` for the run in ``output``: the run appends its trials
    there, so the invocation's other runs (another strategy on the same model) do not learn from
    them. Copied once: a resumed run keeps its copy."""
    store = os.path.join(output, "record-store")
    if not os.path.isdir(store):
        if not os.path.isdir(records):
            raise SystemExit(f"error: no record store at {records}")
        shutil.copytree(records, store)
    return store


def side_by_side(model: str, directories: list[str], rounds: int, references: list[str]) -> dict:
    """Every exported model and the reference runtimes, timed in interleaved rounds in one process.

    Each strategy's own report times its model in its own phase of the run; on a
    noisy machine the ratio that counts is this one, measured turn by turn, with a
    1 s pause before each turn and every round watched for other work. Each
    model's output is checked against the reference first.
    """
    from chameleon_tune.evaluation.model_references import prepare_references
    from chameleon_tune.measure.runner import random_arguments
    from chameleon_tune.model.build import load_artifact, time_side_by_side, verify
    from chameleon_tune.model.importer import load_model
    from chameleon_tune.model.tuner import _use_threads

    threads = _use_threads()
    imported = load_model(model, threads=threads)
    inputs = random_arguments(imported.inputs)
    expected = imported.reference(inputs)
    names = [imported.reference_name, *(n for n in references if n != imported.reference_name)]
    contestants, _notes = prepare_references(imported, names, threads, inputs, expected, verify)
    for directory in directories:
        compiled, _manifest = load_artifact(directory)
        verify(compiled(inputs), expected, f"{directory}'s")
        contestants[os.path.basename(directory)] = compiled.bind(inputs)
    timings = time_side_by_side(contestants, rounds=rounds, round_s=0.5, pause_s=1.0)
    reference = timings[imported.reference_name].seconds
    return {
        "rounds": rounds,
        "reference": imported.reference_name,
        "latency_s": {name: t.seconds for name, t in timings.items()},
        "speedup_over_reference": {name: reference / t.seconds for name, t in timings.items()},
        "disturbed": [name for name, t in timings.items() if t.noisy],
        "timings": {name: t.to_json() for name, t in timings.items()},
    }


def _variants() -> dict[str, dict]:
    from chameleon_tune.measure.types import MeasureOptions
    from chameleon_tune.model.pipeline import Pipeline
    from chameleon_tune.model.scheduler import SchedulerConfig
    from chameleon_tune.model.transfer import Transfer

    return {
        "default": {},
        "records": {},  # the record store is passed per run
        "no-prepack": {"pipeline": Pipeline(prepack_weights=False)},
        "no-fold": {"pipeline": Pipeline(fold_batch_norm=False)},
        "no-winograd": {"pipeline": Pipeline(winograd=False)},
        "nchw": {"pipeline": Pipeline(layout="NCHW")},
        "no-fast-math": {"pipeline": Pipeline(fast_math=False)},
        "plain": {"pipeline": Pipeline(fold_batch_norm=False, prepack_weights=False)},
        "no-starts": {"transfer": Transfer(starting_configs=False)},
        # Issue 17's ablation: the allocation before it, and the sane starting schedules off.
        "in-order-warmup": {"scheduler": SchedulerConfig(ranked_warmup=False)},
        "no-sane-starts": {"transfer": Transfer(starting_configs=False), "scheduler": SchedulerConfig(sane_fallbacks=False)},
        "before-17": {
            "transfer": Transfer(starting_configs=False),
            "scheduler": SchedulerConfig(ranked_warmup=False, sane_fallbacks=False),
        },
        "no-shared": {"transfer": Transfer(shared_cost_model=False)},
        "no-policy": {"transfer": Transfer(policy=False)},
        "warm": {"options": MeasureOptions(enable_cpu_cache_flush=False)},
    }


VARIANTS = _variants()


def variant_options(variant: str, round_trials: int) -> dict:
    """``tune_model``'s keyword arguments for ``variant``, with the command's round size."""
    from chameleon_tune.model.scheduler import SchedulerConfig

    options = dict(VARIANTS[variant])
    options["scheduler"] = replace(options.get("scheduler", SchedulerConfig()), round_trials=round_trials)
    return options


def save(report: dict, path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
