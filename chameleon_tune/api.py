"""The Python API: tune a built-in workload into a work directory.

A work directory holds one task: ``run.json`` (what is tuned, where),
``space.json``, ``history.jsonl`` and MetaSchedule's two database files.
Running again over it resumes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .database import History, HistoryError
from .measure.types import MeasureOptions, RunnerConfig
from .model.transfer import nearest_stored, stored_best, stored_measurements, stored_programs, valid_starting_configs
from .search.base import PolicyError, TaskContext, make_strategy, strategy_names
from .tuner import OnTrial, TuneResult, tune
from .workloads import DEFAULT_WORKLOAD, get_workload

if TYPE_CHECKING:
    from .model.record_store import StoredWorkload
    from .workdir_lock import WorkDirLock

DEFAULT_STRATEGY = "chameleon"


class UsageError(ValueError):
    """Bad input from the user: reported as one line, exit code 2."""


@dataclass(frozen=True)
class Task:
    """A workload opened for tuning: its TVM space, measurer and history."""

    workload: object
    tvm_space: object
    measurer: object
    history: History
    lock: WorkDirLock
    """Held on the work directory until :meth:`close`: one tuner per directory."""

    def close(self) -> None:
        """Stop the measurement workers opened for this task and give the work directory free."""
        try:
            self.measurer.close()
        finally:
            self.lock.release()


def open_task(
    workload: str = DEFAULT_WORKLOAD,
    *,
    target: str = "llvm",
    work_dir: str | None = None,
    strategy: str = DEFAULT_STRATEGY,
    options: MeasureOptions = MeasureOptions(),
    seed: int = 0,
    runner: RunnerConfig = RunnerConfig(),
    workers=None,
) -> Task:
    """Check the inputs, lock the work directory, then build the space and measurement path
    of one workload (on ``workers``, a ``tvm_measurer.Workers`` shared with other runs, or
    its own). The caller must :meth:`Task.close` it."""
    try:
        wl = get_workload(workload)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    check_strategies([strategy])
    tvm_target = _target(target, runner.threads)
    check_runner(runner)
    if work_dir is not None:
        check_writable(work_dir)
    lock = locked(work_dir)
    try:
        return _open_locked(wl, tvm_target, work_dir, strategy, options, seed, runner, lock, workers)
    except BaseException:
        lock.release()
        raise


def _open_locked(wl, tvm_target, work_dir, strategy, options, seed, runner, lock, workers) -> Task:
    if work_dir is not None:
        _claim_work_dir(work_dir, {"workload": wl.name, "target": str(tvm_target), "strategy": strategy})

    from .measure.tvm_measurer import TVMMeasurer
    from .tvm_space import TVMSpace

    tvm_space = TVMSpace(wl.prim_func(), tvm_target, seed=max(1, seed + 1))
    history_path = None
    if work_dir is not None:
        _check_space(os.path.join(work_dir, "space.json"), tvm_space.space)
        history_path = os.path.join(work_dir, "history.jsonl")
    try:
        history = History(tvm_space.space, history_path)
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    measurer = TVMMeasurer(tvm_space, options, flops=wl.flops, database_dir=work_dir, workers=workers, config=runner)
    return Task(wl, tvm_space, measurer, history, lock)


def tune_workload(
    workload: str = DEFAULT_WORKLOAD,
    strategy: str = DEFAULT_STRATEGY,
    *,
    trials: int = 200,
    target: str = "llvm",
    work_dir: str | None = None,
    seed: int = 0,
    options: MeasureOptions = MeasureOptions(),
    batch_size: int = 64,
    early_stopping: int | None = None,
    on_trial: OnTrial | None = None,
    warm_start: str | None = None,
    runner: RunnerConfig = RunnerConfig(),
    workers=None,
    learn_from: Sequence[StoredWorkload] = (),
) -> TuneResult:
    """Tune one built-in workload; with ``work_dir`` records persist and reruns resume.

    ``warm_start`` is a policy file (``policy.pt`` of another run's work directory)
    that the learning strategies (``chameleon``, ``rl``, ``rl+as``) start from.
    ``runner`` says where kernels are compiled and run (this machine, or RPC devices);
    ``workers`` (``tvm_measurer.Workers``), opened for it, are shared with the caller's other runs.
    ``learn_from`` holds other workloads' measurements (a record store's, ``RecordStore.load``):
    the nearest with the same knobs feed the cost model (``related``) and give the first
    configurations measured, as in ``tune-model``; the programs of all of them train the
    program cost model that picks the first batch where none has the task's knobs
    (``related_programs``).
    """
    if trials < 1:
        raise UsageError("--trials must be at least 1")
    if warm_start is not None and not os.path.isfile(warm_start):
        raise UsageError(f"warm-start policy {warm_start!r} does not exist")
    start = time.perf_counter()
    task = open_task(
        workload, target=target, work_dir=work_dir, strategy=strategy, options=options, seed=seed, runner=runner,
        workers=workers,
    )  # fmt: skip
    try:
        tvm_space = task.tvm_space

        def is_valid(config) -> bool:
            return tvm_space.schedule(config)[0] is not None

        neighbours = nearest_stored(tvm_space.space, learn_from)
        starts, source = valid_starting_configs(tvm_space.space, stored_best(neighbours), is_valid)
        programs = stored_programs(learn_from)
        context = TaskContext(
            tvm_space.space,
            task.history,
            seed=seed,
            tvm_space=tvm_space,
            is_valid=is_valid,
            work_dir=work_dir,
            warm_start=warm_start,
            related=(lambda: stored_measurements(neighbours)) if neighbours else None,
            program_features=tvm_space.program_features,
            related_programs=(lambda: programs) if programs else None,
        )
        search = make_search(strategy, context)
        # Worker start-up and the reference build are one-off setup, not tuning time.
        task.measurer.prepare()
        setup_s = time.perf_counter() - start
        result = tune(
            task.measurer,
            search,
            task.history,
            trials=trials,
            batch_size=batch_size,
            early_stopping=early_stopping,
            on_trial=on_trial,
            seeds=starts,
        )
    finally:
        task.close()
    extra = {"workload": task.workload.name, "strategy": strategy, "setup_s": setup_s, **result.extra}
    if learn_from:
        extra["learned_from"] = [w.name for w in neighbours]
        extra["started_from"] = neighbours[source].name if source is not None else None
    return replace(result, extra=extra, wall_s=time.perf_counter() - start)


def locked(directory: str | None, what: str = "work directory") -> WorkDirLock:
    """``directory``'s lock, taken (see ``workdir_lock``): use it in ``with``; a second run
    on the directory gets a UsageError naming the holder."""
    from .workdir_lock import WorkDirBusy, WorkDirLock

    try:
        return WorkDirLock(directory, what).acquire()
    except WorkDirBusy as exc:
        raise UsageError(str(exc)) from None


def make_search(strategy: str, context: TaskContext):
    """The strategy for one task; a warm-start file that is no usable policy is a UsageError."""
    try:
        return make_strategy(strategy, context)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None


def check_strategies(names: list[str]) -> None:
    """Every name must be a registered strategy (one-line error naming the choices)."""
    unknown = [name for name in names if name not in strategy_names()]
    if unknown or not names:
        raise UsageError(f"unknown strategy {','.join(unknown)!r}; choose from: {', '.join(strategy_names())}")


def check_runner(runner: RunnerConfig) -> None:
    """An RPC runner's tracker must answer and know a device under its key, before any work starts."""
    if runner.kind != "rpc":
        return
    from .measure.rpc_runner import TrackerError, devices_by_key, tracker_summary

    try:
        keys = devices_by_key(tracker_summary(runner.tracker_address))
    except TrackerError as exc:
        raise UsageError(str(exc)) from None
    if not keys.get(runner.device_key, {}).get("total"):
        known = ", ".join(sorted(key for key, n in keys.items() if n["total"])) or "none"
        raise UsageError(
            f"no device is registered under key {runner.device_key!r} at {runner.tracker}; keys with devices: {known}"
        )


def _target(spec: str, threads: int | None = None):
    from .tvm_space import parse_target

    try:
        target = parse_target(spec, threads)
    except Exception as exc:  # noqa: BLE001 - TVM raises several types for a bad target
        raise UsageError(f"unknown target {spec!r}: {str(exc).splitlines()[-1] if str(exc) else exc}; use e.g. llvm") from None
    if target.kind.name != "llvm":
        raise UsageError(f"target {spec!r} is not supported yet; supported: llvm (the host CPU)")
    return target


def check_writable(directory: str) -> None:
    """Create ``directory`` if needed and prove it writable, before any work starts."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise UsageError(f"cannot write to directory {directory!r}: {exc.strerror or exc}") from None


def _claim_work_dir(work_dir: str, meta: dict) -> None:
    """Create the work directory, or check that it holds this same task."""
    check_writable(work_dir)
    path = os.path.join(work_dir, "run.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                previous = json.load(f)
        except (OSError, ValueError):
            raise UsageError(f"{path} is not readable JSON; use an empty --work-dir") from None
        for key, value in meta.items():
            if previous.get(key) != value:
                raise UsageError(
                    f"work directory {work_dir!r} holds {key} {previous.get(key)!r}, not {value!r}; "
                    "use another --work-dir"
                )
    else:
        with open(path, "w") as f:
            json.dump(meta, f, indent=1)


def _check_space(path: str, space) -> None:
    """A resumed history is only meaningful over the very same knob space."""
    from .space import Space

    if os.path.exists(path):
        try:
            with open(path) as f:
                recorded = Space.from_json(json.load(f))
        except (OSError, ValueError, KeyError):
            raise UsageError(f"{path} is not a readable space; use an empty --work-dir") from None
        if recorded != space:
            raise UsageError(f"{path} describes another knob space (TVM version changed?); use an empty --work-dir")
    else:
        with open(path, "w") as f:
            json.dump(space.to_json(), f)
