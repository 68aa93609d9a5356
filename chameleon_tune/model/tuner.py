"""Tune a whole model: import, extract tasks, spread the budget, compile, verify, report.

The output directory holds ``run.json`` (model, target, strategy), a work
directory per task under ``tasks/`` (history, knob space, MetaSchedule database,
policy), and, once the tuned model's output was checked, ``model.so``,
``model.json`` and ``report.md``. A rerun over it resumes: every trial the task
histories hold counts against the budget.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..api import (
    DEFAULT_STRATEGY,
    UsageError,
    _check_space,
    _claim_work_dir,
    _target,
    check_runner,
    check_strategies,
    check_writable,
    locked,
    make_search,
)
from ..database import History, HistoryError
from ..measure.types import MeasureOptions, RunnerConfig
from .build import (
    CompiledModel,
    TaskRow,
    applied_tasks,
    compile_model,
    export,
    max_abs_error,
    time_side_by_side,
    tolerance,
    verify,
    write_report,
)
from ..evaluation.model_curve import final_estimate, latency_curve, plot_curve, time_to_beat
from .importer import ModelError, load_model
from ..evaluation.model_references import REFERENCES, check_references
from .scheduler import GradientScheduler, ModelTask, SchedulerConfig, extract_tasks, fuse, warmup_trials

DEFAULT_MODEL = "resnet18"
DEFAULT_MODEL_TRIALS = 1000


@dataclass(frozen=True)
class ModelTuneResult:
    """The summary (the ``--json`` object) and the per-task table."""

    summary: dict
    tasks: list[TaskRow] = field(default_factory=list)

    def to_json(self) -> dict:
        return {**self.summary, "tasks": [t.to_json() for t in self.tasks]}


@dataclass
class _Task:
    """One task opened for tuning in its own work directory."""

    task: ModelTask
    work_dir: str
    tvm_space: object
    history: History
    measurer: object

    @property
    def exhausted(self) -> bool:
        return len(self.history) >= self.tvm_space.space.size


def tune_model(
    model: str = DEFAULT_MODEL,
    strategy: str = DEFAULT_STRATEGY,
    *,
    trials: int = DEFAULT_MODEL_TRIALS,
    output: str,
    target: str = "llvm",
    seed: int = 0,
    options: MeasureOptions = MeasureOptions(),
    round_trials: int = SchedulerConfig.round_trials,
    progress: bool = False,
    runner: RunnerConfig = RunnerConfig(),
    references: Sequence[str] = REFERENCES,
) -> ModelTuneResult:
    """Tune ``model`` (a built-in name, or a ``.pt2`` / ``.onnx`` file) into ``output``.

    ``trials`` is the budget over all tasks, resumed trials included; ``runner``
    says where kernels are measured (this machine, or RPC devices); the tuned
    model is timed against ``references`` (and the model's own runtime). Raises
    :class:`UsageError` for bad input and ``VerificationError`` when the tuned
    model's output does not match the reference (then nothing is exported).
    """
    if trials < 1 or round_trials < 1:
        raise UsageError("--trials and --round-trials must be at least 1")
    check_strategies([strategy])
    try:
        references = check_references(references)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    tvm_target = _target(target, runner.threads)
    check_runner(runner)
    threads = _use_threads(runner.threads)
    check_writable(output)
    try:
        imported = load_model(model, threads=threads)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    with locked(output, "output directory"):
        _claim_work_dir(output, {"model": imported.name, "target": str(tvm_target), "strategy": strategy})
        start = time.perf_counter()
        tasks, fused, resumed = _tune_tasks(
            imported, tvm_target, output, strategy, trials, seed, options, SchedulerConfig(round_trials=round_trials),
            progress, runner,
        )  # fmt: skip
        tuning_wall_s = time.perf_counter() - start
        return _build_and_report(imported, tvm_target, fused, tasks, references, {
            "model": imported.name, "strategy": strategy, "budget": trials, "resumed": resumed,
            "tuning_wall_s": tuning_wall_s, "target": str(tvm_target), "threads": threads, "seed": seed, "output": output,
        })  # fmt: skip


def _tune_tasks(imported, target, output, strategy, trials, seed, options, config, progress, runner):
    """Extract the tasks, spend the budget on them, re-time each task's best: ``(tasks, fused module, resumed)``."""
    from ..measure.tvm_measurer import make_builder, make_runner
    from ..tuner import retime_best

    fused = fuse(imported.mod, target)
    model_tasks = extract_tasks(fused, target)
    builder = make_builder(target, options, runner)
    measure_on = make_runner(target, options, runner)
    try:
        tasks = [_open(task, i, output, target, seed, options, builder, measure_on) for i, task in enumerate(model_tasks)]
        resumed = sum(len(t.history) for t in tasks)
        _spend(tasks, strategy, trials, seed, config, progress)
        for t in tasks:  # once, at the end: the record each task is compiled with is its fastest
            t.measurer.prepare()
            retime_best(t.measurer, t.history)
    finally:
        builder.close()
        measure_on.close()
    return tasks, fused, resumed


def _build_and_report(imported, target, fused, tasks: list[_Task], references, summary: dict) -> ModelTuneResult:
    """Compile with each task's best record, verify, time against the references, export, report."""
    from ..measure.runner import random_arguments
    from ..evaluation.model_references import prepare_references

    database = chosen_records(tasks, target)
    applied = applied_tasks(fused, target, database)
    rows = [_row(t, applied) for t in tasks]
    tuned_exe = compile_model(imported.mod, target, database)
    tuned, untuned = CompiledModel(tuned_exe), CompiledModel(compile_model(imported.mod, target))

    inputs = random_arguments(imported.inputs)
    expected = imported.reference(inputs)
    error = verify(tuned(inputs), expected, "the tuned model's")  # checked before anything is timed
    names = [imported.reference_name, *(n for n in references if n != imported.reference_name)]
    runs, notes = prepare_references(imported, names, summary["threads"], inputs, expected, verify)
    timings = time_side_by_side({"tuned": tuned.bind(inputs), "untuned": untuned.bind(inputs), **runs})
    tuned_s = timings["tuned"].seconds
    summary = {
        **summary,
        "trials": sum(r.trials for r in rows),
        "tuned_latency_s": tuned_s,
        "untuned_latency_s": timings["untuned"].seconds,
        "reference_latency_s": timings[imported.reference_name].seconds,
        "reference": imported.reference_name,
        "references": {name: timings[name].seconds for name in runs},
        "speedup": {name: timings[name].seconds / tuned_s for name in runs},
        "reference_notes": notes,
        "max_abs_error": error,
        "tolerance": tolerance(expected),
        "untuned_max_abs_error": max_abs_error(untuned(inputs), expected),
        "tasks_applied": sum(r.applied for r in rows),
        # Valid records that compile-time lookup missed would mean tuning went unused.
        "records_not_applied": [r.name for r in rows if r.valid and not r.applied],
        **noise_summary(tasks, timings),
    }
    output = summary["output"]
    summary.update(_curve(tasks, summary))
    manifest = {k: summary[k] for k in ("model", "reference", "max_abs_error", "tolerance", "target", "threads")}
    manifest["inputs"] = [{"shape": list(shape), "dtype": dtype} for shape, dtype in imported.inputs]
    summary["artifact"] = export(tuned_exe, output, manifest)
    summary["report"] = write_report(output, summary, rows)
    return ModelTuneResult(summary, rows)


def _curve(tasks: list[_Task], summary: dict) -> dict:
    """The estimated latency over tuning time, calibrated by the real build; when it first beat each
    reference; whether the final build did; and the plot."""
    weights = [t.task.weight for t in tasks]
    seconds, estimate = latency_curve(weights, [t.history for t in tasks])
    final = final_estimate(weights, [t.history.best() for t in tasks])
    calibration = summary["tuned_latency_s"] / final if final else None
    curve = estimate * calibration if calibration else np.array([])
    seconds = seconds if calibration else np.array([])
    return {
        "curve": {"seconds": seconds.tolist(), "latency_s": curve.tolist(), "calibration": calibration},
        "time_to_reference_s": time_to_beat(seconds, curve, summary["references"]),
        "beats": {name: summary["tuned_latency_s"] < ref for name, ref in summary["references"].items()},
        "curve_plot": plot_curve(
            summary["output"], summary["model"], seconds, curve, summary["references"], summary["tuned_latency_s"]
        ),
    }


def chosen_records(tasks: list[_Task], target):
    """A database with one record per task: its best trial (re-timed, see ``History.best``).

    MetaSchedule would pick a task's record by its raw timing, lucky ones included;
    this is the choice the tuner made.
    """
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.MemoryDatabase()
    for t in tasks:
        best = t.history.best()
        sch = t.tvm_space.schedule(np.asarray(best.config))[0] if best else None
        if sch is None:
            continue
        database.commit_tuning_record(
            ms.database.TuningRecord(
                trace=sch.trace,
                workload=database.commit_workload(t.tvm_space.mod),
                run_secs=[best.result.latency_s],
                target=target,
                args_info=ms.arg_info.ArgInfo.from_prim_func(t.tvm_space.mod["main"]),
            )
        )
    return database


def noise_summary(tasks: list[_Task], timings: dict) -> dict:
    """How much other work disturbed the measurements: trials, and the final timings."""
    seen = [t.history.interference_max for t in tasks if t.history.interference_max is not None]
    return {
        "noisy_trials": sum(len(t.history.noisy) for t in tasks),
        "interference_max": max(seen) if seen else None,
        "noisy_best": [t.task.name for t in tasks if (b := t.history.best()) is not None and b.result.noisy],
        "timing_interference": {name: timing.interference for name, timing in timings.items()},
        "timing_noisy": [name for name, timing in timings.items() if timing.noisy],
    }


def _use_threads(threads: int | None = None) -> int:
    """The thread count for TVM and the reference alike: ``threads`` if given.

    TVM's runtime halves the logical cores on x86 (it assumes hyper-threading),
    which on a 2-vCPU machine is one thread; we pin it to the physical cores
    unless ``TVM_NUM_THREADS`` says otherwise. Set before any TVM thread pool
    starts, so measurement workers (spawned later) inherit it too.
    """
    from ..tvm_space import _physical_cores

    threads = threads or int(os.environ.get("TVM_NUM_THREADS") or _physical_cores())
    os.environ["TVM_NUM_THREADS"] = str(threads)
    return threads


def _open(task: ModelTask, index: int, output: str, target, seed: int, options, builder, runner) -> _Task:
    import tvm_ffi

    from ..measure.tvm_measurer import TVMMeasurer
    from ..tvm_space import TVMSpace

    work_dir = os.path.join(output, "tasks", f"{index:02d}-{task.name}")
    # The structural hash is what the database is keyed on: a changed operator must not resume.
    _claim_work_dir(work_dir, {"task": task.name, "hash": str(tvm_ffi.structural_hash(task.mod))})
    tvm_space = TVMSpace(task.mod, target, seed=max(1, seed + 1))
    _check_space(os.path.join(work_dir, "space.json"), tvm_space.space)
    try:
        history = History(tvm_space.space, os.path.join(work_dir, "history.jsonl"))
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    measurer = TVMMeasurer(tvm_space, options, database_dir=work_dir, runner=runner, builder=builder)
    return _Task(task, work_dir, tvm_space, history, measurer)


def _spend(tasks: list[_Task], strategy: str, trials: int, seed: int, config: SchedulerConfig, progress: bool) -> None:
    """Give rounds of trials to the task the scheduler picks until the budget is spent.

    Each round opens the task's strategy afresh from its history, exactly as a
    rerun resumes: the cost model refits on every trial so far and the PPO
    policy reloads from the task's ``policy.pt``; the tuning loop is the same.
    """
    from ..search.base import TaskContext
    from ..tuner import tune

    config = replace(config, warmup_trials=warmup_trials(trials, len(tasks), config))
    scheduler = GradientScheduler([t.task.weight for t in tasks], config, [t.task.cost_estimate_s for t in tasks])
    finished = {i for i, t in enumerate(tasks) if t.exhausted}
    spent = sum(len(t.history) for t in tasks)
    bars = _Progress(trials, spent, enabled=progress)
    try:
        while spent < trials:
            curves = [np.minimum.accumulate(t.history.latencies) for t in tasks]
            index = scheduler.next_task(curves, finished)
            if index is None:
                break
            t = tasks[index]
            turn = scheduler.turn_trials(len(t.history))
            goal = len(t.history) + min(turn, trials - spent, t.tvm_space.space.size - len(t.history))
            bars.start(t.task.name, len(t.history), goal)
            t.measurer.prepare()  # the shared runner now checks against this task's reference
            context = TaskContext(
                t.tvm_space.space,
                t.history,
                seed=seed + len(t.history),
                tvm_space=t.tvm_space,
                is_valid=lambda config, space=t.tvm_space: space.schedule(config)[0] is not None,
                work_dir=t.work_dir,
            )
            tune(
                t.measurer, make_search(strategy, context), t.history, trials=goal, batch_size=turn,
                on_trial=bars.trial, retime_top=0,
            )  # fmt: skip
            if len(t.history) < goal or t.exhausted:
                finished.add(index)  # the strategy found nothing new to measure
            spent = sum(len(t.history) for t in tasks)
    finally:
        bars.close()


def _row(t: _Task, applied: set[str]) -> TaskRow:
    best = t.history.best()
    return TaskRow(
        name=t.task.name,
        weight=t.task.weight,
        trials=len(t.history),
        valid=sum(trial.result.valid for trial in t.history.trials),
        best_latency_s=best.result.latency_s if best else None,
        applied=t.task.name in applied,
    )


class _Progress:
    """Two bars on stderr: the whole budget, and the task being tuned."""

    def __init__(self, total: int, done: int, *, enabled: bool) -> None:
        from tqdm import tqdm

        self.enabled = enabled
        self.overall = tqdm(total=total, initial=done, desc="model", unit="trial", file=sys.stderr, disable=not enabled, dynamic_ncols=True)
        self.task = None
        self.best = None
        self.noisy = 0

    def start(self, name: str, done: int, goal: int) -> None:
        from tqdm import tqdm

        if self.task is not None:
            self.task.close()
        self.best = None
        self.task = tqdm(
            total=goal, initial=done, desc=name[:32], unit="trial", file=sys.stderr, position=1, leave=False,
            disable=not self.enabled, dynamic_ncols=True,
        )  # fmt: skip

    def trial(self, trial) -> None:
        from ..progress import progress_note

        if trial.result.valid and (self.best is None or trial.result.latency_s < self.best):
            self.best = trial.result.latency_s
        self.noisy += trial.result.noisy
        if self.best is not None:
            self.task.set_postfix_str(progress_note(self.best, self.noisy), refresh=False)
        self.task.update(1)
        self.overall.update(1)

    def close(self) -> None:
        if self.task is not None:
            self.task.close()
        self.overall.close()
