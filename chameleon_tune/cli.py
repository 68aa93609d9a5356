"""``chameleon``: the command line. Bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .evaluation.model_references import REFERENCES
from .model.pipeline import LAYOUTS, Pipeline
from .runner_cli import add_devices_command, add_runner_arguments, devices, runner_config_from_args
from .workloads import DEFAULT_WORKLOAD

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        sys.stderr.write(f"chameleon: error: {message}\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chameleon", description="Chameleon: fast auto-tuning of DNN operators on TVM.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tune = commands.add_parser("tune", help="tune one operator on this machine")
    tune.add_argument("--workload", default=DEFAULT_WORKLOAD, help=f"built-in workload (default {DEFAULT_WORKLOAD}; see `chameleon workloads`)")
    tune.add_argument("--strategy", default=None, help="search strategy (default: chameleon; see README)")
    tune.add_argument("--trials", type=int, default=200, help="measurement budget, resumed trials included (default 200)")
    tune.add_argument("--target", default="llvm", help="TVM target (default llvm: the host CPU, microarchitecture detected)")
    tune.add_argument("--work-dir", default=None, help="where records go; a rerun over it resumes (default: runs/<workload>-<strategy>-s<seed>)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--batch-size", type=int, default=64, help="configurations measured per iteration (default 64)")
    tune.add_argument("--early-stopping", type=int, default=None, help="stop after this many trials without a new best")
    _add_measure_arguments(tune)
    tune.add_argument("--export-cache", default=None, help="also write the measured trials as a Kernel Tuner cache file (.json or .json.gz) for `chameleon replay`")
    tune.add_argument("--warm-start", default=None, help="policy.pt of an earlier run to start the RL agent from")
    tune.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    add_runner_arguments(tune)

    compare = commands.add_parser("compare", help="strategies side by side on the same workloads, with plots and ratios")
    which = compare.add_mutually_exclusive_group(required=True)
    which.add_argument("--workload", help="comma-separated built-in workloads")
    which.add_argument("--suite", help="alexnet, vgg16, resnet18, mobilenet_v2 or paper (the first three)")
    compare.add_argument("--strategies", default="chameleon,sa,evolutionary,random", help="comma-separated (default chameleon,sa,evolutionary,random)")
    compare.add_argument("--trials", type=int, default=64, help="measurements per run (default 64)")
    compare.add_argument("--seeds", type=int, default=2, help="runs per strategy and workload (default 2)")
    compare.add_argument("--reference", default=None, help="strategy the ratios are against (default sa if compared, else the first)")
    compare.add_argument("--out", default="compare-report", help="directory for report.md, summary.json, plots and the runs (a rerun resumes)")
    compare.add_argument("--target", default="llvm", help="TVM target (default llvm: the host CPU)")
    compare.add_argument("--batch-size", type=int, default=16, help="configurations measured per iteration (default 16)")
    compare.add_argument(
        "--records", default=None, metavar="DIR",
        help="a record store (see `chameleon records`) that strategies named NAME+records learn from, beside NAME cold; "
             "read only: the comparison adds nothing to it",
    )  # fmt: skip
    _add_measure_arguments(compare)
    add_runner_arguments(compare)
    compare.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")

    replay = commands.add_parser("replay", help="run strategies on a recorded (Kernel Tuner cache) search space")
    replay.add_argument("file", help="Kernel Tuner cache file (.json or .json.gz)")
    replay.add_argument(
        "--strategies", default="chameleon,sa,random",
        help="comma-separated (default chameleon,sa,random); kt:NAME is Kernel Tuner's strategy NAME (kt:genetic_algorithm, "
        "kt:diff_evo, kt:pso, kt:simulated_annealing, kt:random_sample, kt:bayes_opt, ...; needs the kerneltuner extra)",
    )  # fmt: skip
    replay.add_argument("--budget", type=int, default=100, help="evaluations per run (default 100)")
    replay.add_argument("--seeds", type=int, default=3, help="runs per strategy (default 3)")
    replay.add_argument("--batch-size", type=int, default=16, help="evaluations per search iteration (default 16)")
    replay.add_argument("--out", default="replay-report", help="directory for report.md, summary.json and the plot")
    replay.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")

    model = commands.add_parser("tune-model", help="tune a whole PyTorch or ONNX model; export it compiled and verified")
    model.add_argument("--model", default="resnet18", help="built-in model (resnet18, resnet50, vgg16, alexnet, mobilenet_v2, bert_base_layer) or a .pt2 / .onnx file")
    model.add_argument("--strategy", default=None, help="search strategy for every task (default: chameleon)")
    model.add_argument(
        "--trials", type=int, default=None,
        help="budget over all tasks, resumed trials included (default: 40 a task; no limit under --time-budget alone)",
    )  # fmt: skip
    model.add_argument("--time-budget", type=_duration, default=None, metavar="DURATION", help="stop tuning after this long, e.g. 30m, 90s, 1h")
    model.add_argument(
        "--until", default=None, metavar="GOAL",
        help="stop tuning once a verified build is faster than a reference (onnxruntime, pytorch, torch.compile) or a latency (e.g. 8ms)",
    )  # fmt: skip
    model.add_argument("--no-fold-batch-norm", action="store_true", help="keep batch norm apart from the convolutions' weights")
    model.add_argument("--no-prepack", action="store_true", help="keep weights in their original layout (no layout rewrite)")
    model.add_argument(
        "--no-winograd", action="store_true",
        help="compute 3x3 stride-1 convolutions directly, not as Winograd F(4x4, 3x3) (faster kernels, 3x slower to tune)",
    )  # fmt: skip
    model.add_argument(
        "--no-fast-math", action="store_true",
        help="exact erf and exp (scalar library calls) in GELU and softmax, not TVM's vectorizable approximations",
    )  # fmt: skip
    model.add_argument(
        "--layout", choices=LAYOUTS, default=Pipeline.layout,
        help="the layout convolutions are tuned in (default NHWC: activations channel-last, weights HWIO)",
    )  # fmt: skip
    model.add_argument(
        "--no-shared-model", action="store_true",
        help="each task's cost model learns from its own measurements only (default: from every similar task's too)",
    )  # fmt: skip
    _add_records_arguments(model)
    model.add_argument("--target", default="llvm", help="TVM target (default llvm: the host CPU)")
    model.add_argument("--output", default=None, help="directory for records, model.so and report.md; a rerun resumes (default: runs/<model>-<strategy>-s<seed>)")
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--round-trials", type=int, default=16, help="trials a task gets per turn of the task scheduler (default 16)")
    model.add_argument(
        "--references", default=",".join(REFERENCES),
        help=f"runtimes the tuned model is timed against, besides the model's own (default {','.join(REFERENCES)})",
    )  # fmt: skip
    _add_measure_arguments(model, cache_flush=True)  # in a model, the other operators evict a kernel's weights
    add_runner_arguments(model)
    model.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")

    run = commands.add_parser("run", help="run a model exported by tune-model on random (or given) input")
    run.add_argument("dir", help="the --output directory of tune-model")
    run.add_argument("--input", default=None, help=".npy file with the input (default: random, of the recorded shape)")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")

    workloads = commands.add_parser("workloads", help="list the built-in workloads")
    workloads.add_argument("--json", action="store_true", help="print a JSON list")
    add_devices_command(commands)

    records = commands.add_parser("records", help="see and manage the record store tune-model learns from across runs")
    records.add_argument("action", nargs="?", default="list", choices=("list", "import", "clear"),
                         help="list (default): trials per target and workload; import DIR: add a tune or tune-model "
                              "work directory's trials; clear: remove the store's records (of --target-key only, if given)")  # fmt: skip
    records.add_argument("path", nargs="?", default=None, help="the work directory to import")
    records.add_argument("--records", default=None, metavar="DIR", help="the store (default: under the user's cache directory)")
    records.add_argument("--target-key", default=None, help="clear this target key's records only (as `list` names them)")
    records.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _add_records_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--records", default=None, metavar="DIR",
        help="record store: every trial is appended there, and tasks start from what earlier runs on this target "
             "measured (default: under the user's cache directory, see `chameleon records`)",
    )  # fmt: skip
    parser.add_argument("--no-records", action="store_true", help="use no record store: nothing is written outside --output")


def _records_dir(args) -> str | None:
    from .api import UsageError
    from .model.record_store import default_root

    if getattr(args, "no_records", False):
        if args.records:
            raise UsageError("--records and --no-records exclude each other")
        return None
    return args.records or default_root()


def _add_measure_arguments(parser: argparse.ArgumentParser, cache_flush: bool = False) -> None:
    from .measure.types import MeasureOptions

    d = MeasureOptions()
    parser.add_argument("--number", type=int, default=d.number, help=f"kernel calls per timed repeat (default {d.number})")
    parser.add_argument("--repeat", type=int, default=d.repeat, help=f"timed repeats per configuration, the fastest counts (default {d.repeat})")
    parser.add_argument("--min-repeat-ms", type=int, default=d.min_repeat_ms, help=f"shortest repeat: more calls for fast kernels (default {d.min_repeat_ms})")
    parser.add_argument(
        "--cache-flush", action=argparse.BooleanOptionalAction, default=cache_flush,
        help=f"time each call with its weights and outputs flushed from the CPU caches (default {'on' if cache_flush else 'off'})",
    )  # fmt: skip
    parser.add_argument("--build-timeout", type=float, default=d.build_timeout_s, help="seconds allowed to compile one configuration")
    parser.add_argument("--run-timeout", type=float, default=d.run_timeout_s, help="seconds allowed to check and time one configuration")
    parser.add_argument(
        "--no-priority", action="store_true",
        help="time kernels at normal scheduling priority (default: the highest permitted, so other work yields the cores)",
    )  # fmt: skip


def _measure_options(args):
    from .api import UsageError
    from .measure.types import MeasureOptions

    for name in ("number", "repeat"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    return MeasureOptions(
        number=args.number,
        repeat=args.repeat,
        min_repeat_ms=args.min_repeat_ms,
        enable_cpu_cache_flush=args.cache_flush,
        build_timeout_s=args.build_timeout,
        run_timeout_s=args.run_timeout,
        priority=not args.no_priority,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .api import UsageError

    try:
        if args.command == "workloads":
            return _workloads(args)
        if args.command == "replay":
            return _replay(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "tune-model":
            return _tune_model(args)
        if args.command == "run":
            return _run(args)
        if args.command == "devices":
            return devices(args)
        if args.command == "records":
            return _records(args)
        return _tune(args)
    except UsageError as exc:
        sys.stderr.write(f"chameleon: error: {exc}\n")
        return EXIT_USAGE


def _records(args) -> int:
    from .api import UsageError
    from .model import record_store

    root = _records_dir(args)
    if args.action == "import":
        if not args.path:
            raise UsageError("records import: name the work directory to import")
        try:
            key, added = record_store.import_work_dir(root, args.path)
        except record_store.RecordStoreError as exc:
            raise UsageError(str(exc)) from None
        result = {"records": root, "target_key": key, "imported": added}
        print(json.dumps(result) if args.json else f"imported {added} trials of {args.path} into {root} ({key})")
        return 0
    if args.path:
        raise UsageError(f"records {args.action} takes no directory")
    if args.action == "clear":
        removed = record_store.clear(root, args.target_key)
        print(json.dumps({"records": root, "cleared_target_keys": removed}) if args.json else f"cleared {removed} target key(s) in {root}")
        return 0
    rows = record_store.summary(root)
    if args.json:
        print(json.dumps({"records": root, "workloads": rows}))
        return 0
    print(f"record store {root}: {sum(r['trials'] for r in rows)} trials of {len(rows)} workloads")
    for key in sorted({r["target"] for r in rows}):
        mine = [r for r in rows if r["target"] == key]
        print(f"  {key}: {sum(r['trials'] for r in mine)} trials, {len(mine)} workloads")
        for r in sorted(mine, key=lambda r: -r["trials"]):
            print(
                f"    {r['workload']:<44} {r['trials']:>6} trials ({r['valid']} valid, {r['described']} described, {r['runs']} runs)"
            )
    return 0


def _workloads(args) -> int:
    from .workloads import list_workloads

    items = list_workloads()
    if args.json:
        print(json.dumps([w.to_dict() for w in items]))
        return 0
    print(f"{'name':<16} {'op':<8} {'shape':<34} {'GFLOP':>8}")
    for w in items:
        print(f"{w.name:<16} {w.op:<8} {w.shape_str:<34} {w.flops / 1e9:>8.3f}")
    return 0


def _replay(args) -> int:
    from .api import UsageError, check_strategies, check_writable
    from .evaluation.kt_strategy import KernelTunerError, check_kernel_tuner, is_kernel_tuner
    from .evaluation.replay import replay, write_report
    from .measure.replay import CacheFileError, load_cache

    strategies = [s for s in args.strategies.split(",") if s]
    ours = [s for s in strategies if not is_kernel_tuner(s)]
    if ours or not strategies:
        check_strategies(ours)
    if "evolutionary" in strategies:
        raise UsageError("evolutionary drives MetaSchedule and needs a TVM workload; it cannot replay a cache file")
    try:
        check_kernel_tuner(strategies)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if min(args.budget, args.seeds, args.batch_size) < 1:
        raise UsageError("--budget, --seeds and --batch-size must be at least 1")
    check_writable(args.out)
    try:
        cache = load_cache(args.file)
        summary = replay(cache, strategies, budget=args.budget, seeds=args.seeds, batch_size=args.batch_size)
    except (CacheFileError, KernelTunerError) as exc:
        raise UsageError(str(exc)) from None
    write_report(summary, args.out)
    width = max(12, *(len(name) for name in summary["strategies"]))
    for name, agg in summary["strategies"].items():
        reach = ", ".join(f"{level} {_count(agg[level]['evaluations_median'])}" for level in ("90%", "95%", "99%"))
        print(f"{name:<{width}} final {agg['final_fraction_median']:.3f} of optimum; median evaluations to {reach}")
    print(f"report     {os.path.join(args.out, 'report.md')}")
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    return 0


def _compare(args) -> int:
    from .evaluation.compare import compare

    options = _measure_options(args)
    runner = runner_config_from_args(args)
    try:
        summary = compare(
            [w for w in args.workload.split(",") if w] if args.workload else None,
            suite_name=args.suite,
            strategies=[s for s in args.strategies.split(",") if s],
            trials=args.trials,
            seeds=args.seeds,
            out=args.out,
            reference=args.reference,
            target=args.target,
            options=options,
            batch_size=args.batch_size,
            runner=runner,
            records=args.records,
        )
    except KeyboardInterrupt:
        sys.stderr.write(f"chameleon: interrupted; finished trials are recorded under {args.out}/runs (rerun to resume)\n")
        return 130
    print(f"reference  {summary['reference']}; geometric means over {len(summary['workloads'])} workload(s):")
    for strategy in summary["strategies"]:
        cells = [
            f"{label} {_ratio(summary[f'geomean_{key}'][strategy])}"
            for label, key in (("measurements", "measurement_ratio"), ("time", "time_ratio"), ("quality", "quality_ratio"), ("vs PyTorch", "vs_pytorch"))
        ]
        print(f"{strategy:<17} " + ", ".join(cells))
    noisy = sum(summary["noisy_trials"].values())
    if noisy or summary["pytorch_noisy"]:
        print(f"warning    the machine was busy: {noisy} trials disturbed, PyTorch timing disturbed on "
              f"{', '.join(summary['pytorch_noisy']) or 'no workload'}; see the report")  # fmt: skip
    print(f"report     {os.path.join(args.out, 'report.md')}")
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    return 0


def _count(value: float | None) -> str:
    return "not reached" if value is None else f"in {value:.0f}"


def _ratio(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.2f}x"


def _tune(args) -> int:
    from .api import DEFAULT_STRATEGY, UsageError, tune_workload

    strategy = args.strategy or DEFAULT_STRATEGY
    for name in ("trials", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    runner = runner_config_from_args(args)
    work_dir = args.work_dir or f"runs/{args.workload}-{strategy}-s{args.seed}"
    options = _measure_options(args)
    progress = _Progress(args.trials)
    try:
        result = tune_workload(
            args.workload,
            strategy,
            trials=args.trials,
            target=args.target,
            work_dir=work_dir,
            seed=args.seed,
            options=options,
            batch_size=args.batch_size,
            early_stopping=args.early_stopping,
            on_trial=progress.update,
            warm_start=args.warm_start,
            runner=runner,
        )
    except KeyboardInterrupt:
        progress.close()
        sys.stderr.write(f"chameleon: interrupted; every finished trial is recorded in {work_dir} (rerun to resume)\n")
        return 130
    progress.close()
    summary = result.to_json()
    summary["work_dir"] = work_dir
    if args.export_cache:
        _export(work_dir, args.export_cache, result)
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary))
    return 0


def _duration(text: str) -> float:
    """``30m``, ``90s``, ``1.5h`` or plain seconds, as seconds (argparse type)."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 90s or 1h") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be positive")
    return seconds


def _tune_model(args) -> int:
    from .api import DEFAULT_STRATEGY
    from .model.build import VerificationError, disturbance_lines, goal_lines, latency_of, ratio_cell
    from .model.scheduler import SchedulerConfig
    from .model.transfer import Transfer
    from .model.tuner import tune_model

    strategy = args.strategy or DEFAULT_STRATEGY
    model_name = os.path.splitext(os.path.basename(args.model))[0]
    output = args.output or f"runs/{model_name}-{strategy}-s{args.seed}"
    options, runner = _measure_options(args), runner_config_from_args(args)
    try:
        result = tune_model(
            args.model, strategy, trials=args.trials, output=output, target=args.target, seed=args.seed,
            options=options, scheduler=SchedulerConfig(round_trials=args.round_trials), progress=True, runner=runner,
            references=args.references.split(","), time_budget_s=args.time_budget, until=args.until,
            pipeline=Pipeline(
                fold_batch_norm=not args.no_fold_batch_norm, prepack_weights=not args.no_prepack, winograd=not args.no_winograd,
                layout=args.layout, fast_math=not args.no_fast_math,
            ),
            transfer=Transfer(shared_cost_model=not args.no_shared_model), records=_records_dir(args),
        )  # fmt: skip
    except KeyboardInterrupt:
        sys.stderr.write(f"chameleon: interrupted; every finished trial is recorded in {output} (rerun to resume)\n")
        return 130
    except VerificationError as exc:
        sys.stderr.write(f"chameleon: error: {exc}\n")
        return 1
    s = result.summary
    print(f"model      {s['model']}  strategy {s['strategy']}  {s['threads']} threads")
    for t in result.tasks:
        best = "none valid" if t.best_latency_s is None else f"{t.best_latency_s * 1e3:.4f} ms"
        fallback = f"  ({s['fallbacks'][t.name]})" if t.name in s["fallbacks"] else ""
        print(f"  {t.name:<44} x{t.weight:<3} {t.trials:>5} trials  best {best}{fallback}")
    print(f"tuned      {s['tuned_latency_s'] * 1e3:.3f} ms (max abs error {s['max_abs_error']:.3g}, tolerance {s['tolerance']:.3g})")
    for name in ("untuned", *s["references"]):
        print(f"{name:<14} {latency_of(s, name) * 1e3:.3f} ms: tuned is {ratio_cell(s, name)} faster")
    for name, why in s["reference_notes"].items():
        print(f"{name:<14} not timed: {why}")
    for line in disturbance_lines(s)[:-1]:
        print(f"warning    {line.strip('*').removeprefix('Warning: ')}")
    for line in goal_lines(s)[:-1]:
        print(f"until      {line}")
    print(f"tuning     {s['trials']} trials ({s['resumed']} resumed) in {s['tuning_wall_s']:.1f} s; records applied to {s['tasks_applied']}/{len(result.tasks)} tasks")
    print(f"artifact   {s['artifact']}  (chameleon run {output})")
    if args.json:
        print(json.dumps(result.to_json()))
    return 0


def _run(args) -> int:
    import time

    import numpy as np

    from .api import UsageError
    from .measure.runner import random_arguments
    from .model.build import MANIFEST, load_artifact

    if not os.path.isfile(os.path.join(args.dir, MANIFEST)):
        raise UsageError(f"{args.dir!r} holds no exported model ({MANIFEST}); run tune-model first")
    model, manifest = load_artifact(args.dir)
    specs = [(tuple(i["shape"]), i["dtype"]) for i in manifest["inputs"]]
    if args.input is None:
        inputs = random_arguments(specs)
    else:
        try:
            inputs = [np.load(args.input)]
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {args.input!r} as a .npy array: {exc}") from None
        if [(a.shape, str(a.dtype)) for a in inputs] != specs:
            raise UsageError(f"input must be {specs}, got {[(a.shape, str(a.dtype)) for a in inputs]}")
    start = time.perf_counter()
    outputs = model(inputs)
    summary = {"model": manifest["model"], "seconds": time.perf_counter() - start, "outputs": [list(o.shape) for o in outputs]}
    print(f"model    {summary['model']}: {len(outputs)} output(s) of shape {summary['outputs']} in {summary['seconds'] * 1e3:.2f} ms")
    if args.json:
        print(json.dumps({**summary, "values": [o.tolist() for o in outputs]}))
    return 0


def _export(work_dir: str, path: str, result) -> None:
    from .api import UsageError
    from .database import History
    from .measure.replay import export_cache
    from .space import Space

    with open(os.path.join(work_dir, "space.json")) as f:
        space = Space.from_json(json.load(f))
    with open(os.path.join(work_dir, "run.json")) as f:
        target = json.loads(json.load(f)["target"])
    device = f"{target['kind']} {target.get('mcpu', '')}, {target.get('num-cores', '?')} cores".replace(" ,", ",")
    history = History(space, os.path.join(work_dir, "history.jsonl"))
    try:
        export_cache(space, history.trials, path, kernel_name=result.extra.get("workload"), device_name=device)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


class _Progress:
    """A progress bar over trials with the best latency so far and disturbed timings (on stderr)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar = None
        self.best = None
        self.noisy = 0

    def update(self, trial) -> None:
        from tqdm import tqdm

        from .progress import progress_note

        if self.bar is None:
            self.bar = tqdm(total=self.total, desc="tuning", unit="trial", file=sys.stderr, dynamic_ncols=True)
        if trial.result.valid and (self.best is None or trial.result.latency_s < self.best):
            self.best = trial.result.latency_s
        self.noisy += trial.result.noisy
        if self.best is not None:
            self.bar.set_postfix_str(progress_note(self.best, self.noisy), refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_summary(s: dict) -> None:
    best = "none valid"
    if s["best_latency_s"] is not None:
        gflops = f" = {s['best_gflops']:.1f} GFLOPS" if s["best_gflops"] else ""
        best = f"{s['best_latency_s'] * 1e3:.4f} ms{gflops}"
    errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "none"
    print(f"workload   {s['workload']}  strategy {s['strategy']}")
    print(f"best       {best}")
    print(f"trials     {s['trials']} ({s['resumed']} resumed): {s['valid']} valid, failed: {errors}")
    print(
        f"wall time  {s['wall_s']:.1f} s = search {s['search_s']:.1f} s + build {s['build_s']:.1f} s"
        f" + run {s['run_s']:.1f} s + setup/other {s['wall_s'] - s['search_s'] - s['build_s'] - s['run_s']:.1f} s"
        f" (re-timing the best {s['retime_s']:.1f} s)"
    )
    if s["noisy_trials"]:
        print(
            f"warning    {s['noisy_trials']} trials timed while other work took up to {s['interference_max']:.1f} cores"
            + (" (the best among them: its latency is suspect)" if s["best_noisy"] else "")
            + "; tune on a quiet machine or use --threads"
        )
    print(f"records    {s['work_dir']}")


if __name__ == "__main__":
    sys.exit(main())
