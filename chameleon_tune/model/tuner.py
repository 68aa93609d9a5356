"""Tune a whole model: import, extract tasks, spread the budget, compile, verify, report.

The output directory holds ``run.json`` (model, target, strategy), a work
directory per task under ``tasks/`` (history, knob space, MetaSchedule database,
policy), and, once the tuned model's output was checked, ``model.so``,
``model.json`` and ``report.md``. A rerun over it resumes: every trial the task
histories hold counts against the budget.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

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
from ..search.chameleon import POLICY_FILE
from .build import (
    CompiledModel,
    TaskRow,
    VerificationError,
    applied_tasks,
    export,
    stage,
    max_abs_error,
    time_side_by_side,
    tolerance,
    verify,
    write_report,
)
from ..evaluation.model_curve import final_estimate, latency_curve, plot_curve, time_to_beat
from .importer import ModelError, load_model
from ..evaluation.model_references import REFERENCES, check_references
from .goal import Goal, parse_until
from .pipeline import Pipeline
from .record_store import RecordStore, RecordStoreError, target_key
from .transfer import (
    STARTING_CONFIGS,
    Transfer,
    compatible,
    nearest_stored,
    stored_best,
    stored_measurements,
    stored_programs,
    valid_starting_configs,
)
from .scheduler import GradientScheduler, ModelTask, SchedulerConfig, extract_tasks, warmup_trials

DEFAULT_MODEL = "resnet18"
TRIALS_PER_TASK = 40
"""The default budget of a model: this many trials per task."""
UNMEASURED_S = 1e9
"""The run time recorded for a fallback schedule nobody timed."""
ANCHOR_SHARE = 0.05
"""A task expected to take this share of the model's latency, with no measured sibling to start
from, gets a full round as its first turn: a random first trial would be a poor start to pass on."""


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
    store: object | None = None
    """Where its trials go in the record store (``record_store.TrialWriter``), if one is used."""
    neighbours: list = field(default_factory=list)
    """The nearest compatible workloads of earlier runs in the store (``record_store.StoredWorkload``)."""
    stored_programs: list = field(default_factory=list)
    """The store's measured programs, whatever their knobs (``transfer.stored_programs``)."""

    @property
    def exhausted(self) -> bool:
        return len(self.history) >= self.tvm_space.space.size

    def record(self, trial) -> None:
        if self.store is not None:
            self.store.append(trial.config, trial.result.latency_s if trial.result.valid else None, trial.result.features)


def tune_model(
    model: str = DEFAULT_MODEL,
    strategy: str = DEFAULT_STRATEGY,
    *,
    trials: int | None = None,
    output: str,
    target: str = "llvm",
    seed: int = 0,
    options: MeasureOptions = MeasureOptions(enable_cpu_cache_flush=True),
    scheduler: SchedulerConfig = SchedulerConfig(),
    progress: bool = False,
    runner: RunnerConfig = RunnerConfig(),
    references: Sequence[str] = REFERENCES,
    pipeline: Pipeline = Pipeline(),
    time_budget_s: float | None = None,
    until: str | None = None,
    transfer: Transfer = Transfer(),
    records: str | None = None,
) -> ModelTuneResult:
    """Tune ``model`` (a built-in name, or a ``.pt2`` / ``.onnx`` file) into ``output``.

    ``trials`` is the budget over all tasks, resumed trials included (default: sized to the
    model, :data:`TRIALS_PER_TASK` a task, or unbounded under a ``time_budget_s``);
    ``time_budget_s`` bounds the tuning time of this run; ``until`` (a reference's name or a
    latency such as ``8ms``) stops tuning once a verified build is faster (see ``goal.py``).
    ``options`` say how kernels are built and timed (by default each call on a cold cache, its
    weights flushed, as in the model); ``runner`` says where kernels are measured (this machine,
    or RPC devices); the tuned model is timed against ``references`` (and the model's own
    runtime); ``pipeline`` says which graph rewrites surround tuning; ``transfer`` what tasks
    pass on to each other (starting configurations, a shared cost model); ``records`` is a
    record store directory (``record_store.py``; None: none) whose trials of earlier runs on
    this target the tasks learn from and start from, and to which every trial is appended. Raises
    :class:`UsageError` for bad input and ``VerificationError`` when the tuned model's output
    does not match the reference (then nothing is exported).
    """
    if (trials is not None and trials < 1) or scheduler.round_trials < 1:
        raise UsageError("--trials and --round-trials must be at least 1")
    if time_budget_s is not None and time_budget_s <= 0:
        raise UsageError("--time-budget must be positive")
    check_strategies([strategy])
    try:
        references = check_references(references)
        goal_name, goal_s = parse_until(until) if until else (None, None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    tvm_target = _target(target, runner.threads)
    check_runner(runner)
    threads = _use_threads(runner.threads)
    check_writable(output)
    store = RecordStore(records, target_key(str(tvm_target), options.enable_cpu_cache_flush)) if records else None
    if store is not None:
        try:
            store.check_writable()
        except RecordStoreError as exc:
            raise UsageError(str(exc)) from None
    try:
        imported = load_model(model, threads=threads)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    with locked(output, "output directory"):
        _claim_work_dir(output, {
            "model": imported.name, "target": str(tvm_target), "strategy": strategy, "pipeline": pipeline.to_json(),
            "cache_flush": options.enable_cpu_cache_flush,  # warm and cold timings do not rank alike
        })  # fmt: skip
        start = time.perf_counter()
        built = _Model.compile_ready(imported, pipeline, tvm_target, threads)
        goal = _goal(built, goal_name, goal_s) if goal_name else None
        model_tasks = extract_tasks(built.fused, tvm_target)
        budget = trials or (None if time_budget_s else TRIALS_PER_TASK * len(model_tasks))
        tasks, resumed = _tune_tasks(
            built, model_tasks, output, strategy, _Budget(budget, time_budget_s, start, goal), seed, options,
            scheduler, progress, runner, transfer, store,
        )  # fmt: skip
        tuning_wall_s = time.perf_counter() - start
        return _build_and_report(built, tasks, references, {
            "model": imported.name, "strategy": strategy, "budget": budget, "time_budget_s": time_budget_s,
            "resumed": resumed, "tuning_wall_s": tuning_wall_s, "target": str(tvm_target), "threads": threads,
            "seed": seed, "output": output, "pipeline": pipeline.to_json(), "until": goal.to_json() if goal else None,
            "transfer": transfer.to_json(), "cache_flush": options.enable_cpu_cache_flush, "records": records,
            "scheduler": asdict(scheduler),
        })  # fmt: skip


@dataclass(frozen=True)
class _Model:
    """The imported model on its way through the pipeline, with one checked input/output pair."""

    imported: object
    pipeline: Pipeline
    target: object
    threads: int
    prepared: object
    fused: object
    inputs: list
    expected: list

    @classmethod
    def compile_ready(cls, imported, pipeline: Pipeline, target, threads: int) -> "_Model":
        from ..measure.runner import random_arguments

        prepared = pipeline.prepare(imported.mod)
        inputs = random_arguments(imported.inputs)
        return cls(imported, pipeline, target, threads, prepared, pipeline.fuse(prepared, target), inputs, imported.reference(inputs))

    def build(self, database, staging: str | None = None) -> tuple[CompiledModel, float, str | None]:
        """``(loaded model, max abs error, staged library)`` with ``database``'s records; the
        output is checked before anything is timed (``VerificationError`` if wrong). With
        ``staging``, the library is written there first and loaded from the file."""
        import tvm

        executable = self.pipeline.compile(self.prepared, self.target, database)
        staged = stage(executable, staging) if staging else None
        compiled = CompiledModel(tvm.runtime.load_module(staged) if staged else executable)
        try:
            return compiled, verify(compiled(self.inputs), self.expected, "the tuned model's"), staged
        except VerificationError:
            if staged:
                os.remove(staged)  # a wrong model is never left where it could be taken for the result
            raise


@dataclass
class _Budget:
    """When tuning stops: trials spent (None: no limit), tuning time, or a goal reached."""

    trials: int | None
    time_s: float | None
    start: float
    goal: Goal | None = None

    def left(self, spent: int) -> int:
        return (self.trials - spent) if self.trials is not None else 1 << 30

    def out_of_time(self) -> bool:
        return self.time_s is not None and time.perf_counter() - self.start >= self.time_s


def _goal(built: _Model, name: str, latency_s: float | None) -> Goal:
    """The ``--until`` goal; a reference is set up, checked and timed once before tuning."""
    from ..evaluation.model_references import prepare_references

    if latency_s is not None:
        return Goal(name, latency_s)
    runs, notes = prepare_references(built.imported, [name], built.threads, built.inputs, built.expected, verify)
    if name not in runs:
        raise UsageError(f"--until {name}: {notes[name]}")
    return Goal(name, time_side_by_side(runs)[name].seconds, runs[name])


def _tune_tasks(
    built: _Model, model_tasks, output, strategy, budget: _Budget, seed, options, config, progress, runner, transfer, store
):
    """Spend the budget on the tasks, re-time each task's best: ``(tasks, resumed)``."""
    from ..measure.tvm_measurer import Workers
    from ..tuner import retime_best

    target = built.target
    stored = [w.excluding(output) for w in store.load()] if store else []
    workers = Workers.open(target, options, runner)  # one set for all tasks
    try:
        tasks = [_open(task, i, output, target, seed, options, workers, store) for i, task in enumerate(model_tasks)]
        programs = stored_programs(stored)
        for t in tasks:
            t.neighbours = nearest_stored(t.tvm_space.space, stored)
            t.stored_programs = programs
        resumed = sum(len(t.history) for t in tasks)
        stop = _goal_check(built, tasks, budget) if budget.goal else None
        _spend(tasks, strategy, budget, seed, config, progress, SchedulerLog(output), stop, transfer)
        for t in tasks:  # once, at the end: the record each task is compiled with is its fastest
            t.measurer.prepare()
            retime_best(t.measurer, t.history)
    finally:
        workers.close()
    return tasks, resumed


def _goal_check(built: _Model, tasks: list[_Task], budget: _Budget):
    """After each round: whether a verified build now beats ``budget.goal`` (see ``goal.py``)."""
    goal = budget.goal
    weights = [t.task.weight for t in tasks]

    def reached() -> bool:
        bests = [t.history.best() for t in tasks]
        if any(b is None for b in bests):
            return False  # a task without a measured record: the estimate cannot say yet
        estimate = final_estimate(weights, bests)
        tuning_s = time.perf_counter() - budget.start
        goal.refresh(tuning_s)
        if not goal.due(estimate):
            return False
        trials = sum(len(t.history) for t in tasks)
        return goal.check(lambda: built.build(chosen_records(tasks, built.target)[0])[0].bind(built.inputs), estimate, tuning_s, trials)

    return reached


def _build_and_report(built: _Model, tasks: list[_Task], references, summary: dict) -> ModelTuneResult:
    """Compile with each task's best record, verify, time against the references, export, report."""
    from ..evaluation.model_references import prepare_references

    imported, target, inputs, expected = built.imported, built.target, built.inputs, built.expected
    database, fallbacks = chosen_records(tasks, target, summary["scheduler"]["sane_fallbacks"])
    applied = applied_tasks(built.fused, target, database)
    rows = [_row(t, applied) for t in tasks]
    tuned, error, staged = built.build(database, staging=summary["output"])
    untuned = CompiledModel(built.pipeline.compile(built.prepared, target))
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
        "fallbacks": fallbacks,
        **noise_summary(tasks, timings),
    }
    output = summary["output"]
    summary.update(_curve(tasks, summary))
    manifest = {k: summary[k] for k in ("model", "reference", "max_abs_error", "tolerance", "target", "threads")}
    manifest["inputs"] = [{"shape": list(shape), "dtype": dtype} for shape, dtype in imported.inputs]
    summary["artifact"] = export(staged, output, manifest)
    summary["report"] = write_report(output, summary, rows)
    return ModelTuneResult(summary, rows)


def _curve(tasks: list[_Task], summary: dict) -> dict:
    """The estimated latency over tuning time, calibrated by the real build; when it first beat each
    reference; whether the final build did; and the plot."""
    seconds, estimate = latency_curve([t.task.weight for t in tasks], [t.history for t in tasks])
    # The curve's last point is the estimate the final build realizes: calibrating on it makes the
    # curve end at the real build. (The re-timed bests' estimate differs from it by the noise of
    # single cold calls, large for a tiny model's microsecond kernels.)
    calibration = summary["tuned_latency_s"] / estimate[-1] if len(estimate) else None
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


def chosen_records(tasks: list[_Task], target, sane_fallbacks: bool = True):
    """``(database, fallbacks)``: one record per task, and why a task has no measured one.

    A task's record is its best trial (re-timed, see ``History.best``): MetaSchedule
    would pick by raw timing, lucky ones included. A task with no valid trial still gets
    a MetaSchedule schedule (parallel outer loops, vectorized inner ones), unmeasured:
    carried over from its most similar measured task, else its first sketch's own
    decisions; never TVM's naive default (unless not ``sane_fallbacks``: the ablation of that).
    The model's output check covers them.
    """
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.MemoryDatabase()
    fallbacks = {}
    for t in tasks:
        best = t.history.best()
        tried = f"no valid kernel in {len(t.history)} trials" if len(t.history) else "no trial in the budget"
        if best is not None:
            config, seconds = np.asarray(best.config), best.result.latency_s
        elif not sane_fallbacks:
            fallbacks[t.task.name] = f"{tried}: TVM's default schedule"
            continue
        else:
            configs, source = _starting_configs(t, tasks)
            if configs is not None:
                config, why = configs[0], f"{tried}: unmeasured schedule carried over from {source}"
            else:
                config, why = t.tvm_space.sketch_config(), f"{tried}: unmeasured schedule of MetaSchedule's first sketch"
            seconds = UNMEASURED_S
            fallbacks[t.task.name] = why
        sch = t.tvm_space.schedule(config)[0]
        if sch is None:
            fallbacks[t.task.name] = f"{fallbacks.get(t.task.name, 'its record')} does not apply: TVM's default schedule"
            continue
        database.commit_tuning_record(
            ms.database.TuningRecord(
                trace=sch.trace,
                workload=database.commit_workload(t.tvm_space.mod),
                run_secs=[seconds],
                target=target,
                args_info=ms.arg_info.ArgInfo.from_prim_func(t.tvm_space.mod["main"]),
            )
        )
    return database, fallbacks


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


def _open(task: ModelTask, index: int, output: str, target, seed: int, options, workers, store) -> _Task:
    import tvm_ffi

    from ..measure.tvm_measurer import TVMMeasurer
    from ..tvm_space import TVMSpace

    work_dir = os.path.join(output, "tasks", f"{index:02d}-{task.name}")
    # The structural hash is what the database is keyed on: a changed operator must not resume.
    key = str(tvm_ffi.structural_hash(task.mod))
    _claim_work_dir(work_dir, {"task": task.name, "hash": key})
    tvm_space = TVMSpace(task.mod, target, seed=max(1, seed + 1))
    _check_space(os.path.join(work_dir, "space.json"), tvm_space.space)
    try:
        history = History(tvm_space.space, os.path.join(work_dir, "history.jsonl"))
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    measurer = TVMMeasurer(tvm_space, options, database_dir=work_dir, workers=workers)
    writer = store.writer(key, task.name, tvm_space.space, work_dir) if store is not None else None
    return _Task(task, work_dir, tvm_space, history, measurer, writer)


def _spend(
    tasks: list[_Task], strategy: str, budget: _Budget, seed: int, config: SchedulerConfig, progress: bool,
    log: "SchedulerLog", stop=None, transfer: Transfer = Transfer(),
) -> None:
    """Give rounds of trials to the task the scheduler picks until the budget is spent.

    Each round opens the task's strategy afresh from its history, exactly as a
    rerun resumes: the cost model refits on every trial so far and the PPO
    policy reloads from the task's ``policy.pt``; the tuning loop is the same.
    A task's first turn starts from the best configurations of the most similar task
    measured already (``transfer.py``), not from a random draw; the first heavy task of
    its kind gets a full round instead, so that what it passes on is worth having. Its
    cost model learns from every compatible task's measurements as well as its own, and a
    learning strategy starts from the policy of the task tuned just before.
    ``stop()``, if given, is asked after every round whether to end tuning (``--until``).
    """
    from ..search.base import TaskContext
    from ..tuner import tune

    spent = sum(len(t.history) for t in tasks)
    warmup = warmup_trials(budget.trials if budget.trials is not None else TRIALS_PER_TASK * len(tasks), len(tasks), config)
    config = replace(config, warmup_trials=warmup)
    scheduler = GradientScheduler([t.task.weight for t in tasks], config, [t.task.cost_estimate_s for t in tasks])
    finished = {i for i, t in enumerate(tasks) if t.exhausted}
    carried = None  # (policy file, task) of the task tuned last that saved one (``transfer.policy``)
    bars = _Progress(budget.trials, spent, enabled=progress)
    try:
        while budget.left(spent) > 0 and not budget.out_of_time():
            curves = [np.minimum.accumulate(t.history.latencies) for t in tasks]
            index = scheduler.next_task(curves, finished)
            if index is None:
                break
            t = tasks[index]
            first = transfer.starting_configs and not len(t.history)
            seeds, source = _starting_configs(t, tasks) if first else (None, None)
            turn, why = scheduler.turn_trials(len(t.history)), scheduler.reason(index, curves)
            waiting = sum(1 for o in tasks if o is not t and not len(o.history))
            if (
                first and seeds is None and turn < config.round_trials and scheduler.expected_share[index] >= ANCHOR_SHARE
                and budget.left(spent) - config.round_trials >= waiting * config.warmup_trials  # never at others' warm-up
            ):  # fmt: skip
                turn, why = config.round_trials, f"{why}; the first of its kind: a full round, its siblings start from its best"
            goal = len(t.history) + min(turn, budget.left(spent), t.tvm_space.space.size - len(t.history))
            bars.start(t.task.name, len(t.history), goal)
            t.measurer.prepare()  # the shared runner now checks against this task's reference
            own_policy = os.path.join(t.work_dir, POLICY_FILE)
            carry = carried if transfer.policy and carried and not os.path.exists(own_policy) else None
            log.round(spent, t.task.name, goal - len(t.history), why, source, carry[1] if carry else None)
            context = TaskContext(
                t.tvm_space.space,
                t.history,
                seed=seed + len(t.history),
                tvm_space=t.tvm_space,
                is_valid=lambda config, space=t.tvm_space: space.schedule(config)[0] is not None,
                work_dir=t.work_dir,
                related=_related(t, tasks) if transfer.shared_cost_model else None,
                warm_start=carry[0] if carry else None,
                program_features=t.tvm_space.program_features,
                related_programs=_related_programs(t, tasks) if transfer.shared_cost_model else None,
            )
            tune(
                t.measurer, make_search(strategy, context), t.history, trials=goal, batch_size=turn,
                on_trial=lambda trial, t=t: (t.record(trial), bars.trial(trial)), retime_top=0, seeds=seeds,
            )  # fmt: skip
            if os.path.exists(own_policy):
                carried = own_policy, t.task.name
            if len(t.history) < goal or t.exhausted:
                finished.add(index)  # the strategy found nothing new to measure
            spent = sum(len(t.history) for t in tasks)
            if stop is not None and stop():
                break
    finally:
        bars.close()


def _related(t: _Task, tasks: list[_Task]):
    """Every other task's measurements in ``t``'s knobs, and its neighbours' in the record store,
    as the shared cost model asks for them."""
    space = t.tvm_space.space
    siblings = [o for o in tasks if o is not t and compatible(o.tvm_space.space, space)]
    stored = stored_measurements(t.neighbours)
    return lambda: [(o.tvm_space.space, o.history.configs, o.history.latencies) for o in siblings if len(o.history)] + stored


def _related_programs(t: _Task, tasks: list[_Task]):
    """Every other task's measured programs, whatever its knobs, and the record store's."""
    siblings = [o for o in tasks if o is not t]
    return lambda: [(o.history.program_features, o.history.latencies) for o in siblings if len(o.history)] + t.stored_programs


def _starting_configs(t: _Task, tasks: list[_Task]) -> tuple[np.ndarray | None, str | None]:
    """The valid configurations ``t`` starts from, and the task they come from (None: none):
    the most similar task measured in this run or, in the record store, in an earlier one."""
    others = [o for o in tasks if o is not t and len(o.history)]
    measured = [(o.tvm_space.space, [trial.config for trial in o.history.top(STARTING_CONFIGS)]) for o in others]
    names = [o.task.name for o in others]
    measured += stored_best(t.neighbours)
    names += [f"{w.name} (record store)" for w in t.neighbours]
    configs, source = valid_starting_configs(t.tvm_space.space, measured, lambda c: t.tvm_space.schedule(c)[0] is not None)
    return (configs, names[source]) if configs is not None else (None, None)


class SchedulerLog:
    """``scheduler.jsonl`` in the output directory: each round's task, size and why it was chosen."""

    def __init__(self, output: str) -> None:
        self.path = os.path.join(output, "scheduler.jsonl")
        self.start = time.perf_counter()

    def round(self, spent: int, task: str, trials: int, why: str, started_from: str | None, policy_from: str | None = None) -> None:
        entry = {"time_s": round(time.perf_counter() - self.start, 3), "spent": spent, "task": task, "trials": trials, "why": why}
        if started_from:
            entry["starts_from"] = started_from
        if policy_from:
            entry["policy_from"] = policy_from
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")


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
