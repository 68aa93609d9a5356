"""Real measurements through TVM: replay, build in parallel, run (here or on RPC devices), record.

Valid trials are committed as they finish to a MetaSchedule ``JSONDatabase``
(``database_workload.json``, ``database_tuning_record.json``), so stock TVM can
apply what we tuned.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from ..tvm_space import TVMSpace, target_cores
from .interference import kernel_cpus
from .base import Measurer, OnResult
from .builder import LocalBuilder, remove_artifact
from .runner import LocalRunner, Runner
from .types import BUILD, INVALID, TIMEOUT, MeasureOptions, MeasureResult, RunnerConfig, RunResult


class TVMMeasurer(Measurer):
    def __init__(
        self,
        tvm_space: TVMSpace,
        options: MeasureOptions = MeasureOptions(),
        *,
        flops: float | None = None,
        database_dir: str | None = None,
        workers: "Workers | None" = None,
        config: RunnerConfig = RunnerConfig(),
    ) -> None:
        """``workers``: a builder and runner shared with other tasks (the caller closes them);
        by default this measurer opens its own where ``config`` says (this machine, or RPC
        devices) and closes them in :meth:`close`."""
        from tvm.s_tir import meta_schedule as ms

        self.tvm_space = tvm_space
        self.space = tvm_space.space
        self.options = options
        self.flops = flops
        self._own_workers = workers is None
        self.workers = workers or Workers.open(tvm_space.target, options, config)
        self.builder, self.runner = self.workers.builder, self.workers.runner
        func = tvm_space.mod["main"]
        self.args_info = ms.arg_info.ArgInfo.from_prim_func(func)
        self.database = None
        if database_dir is not None:
            os.makedirs(database_dir, exist_ok=True)
            self.database = ms.database.JSONDatabase(work_dir=database_dir)
            self.workload = self.database.commit_workload(tvm_space.mod)
        self._prepared = False
        self._reference: str | None = None

    def prepare(self) -> None:
        """Build the untransformed workload once: the reference every kernel is checked against.

        Called again (a shared runner switching back to this task), it reuses that build.
        """
        self.builder.start()
        if self.options.check_correctness and self._reference is None:
            (built,) = self.builder.build([self.tvm_space.mod])
            if built.error_msg is not None:
                raise RuntimeError(f"cannot build the reference implementation: {built.error_msg}")
            self._reference = built.artifact
        self.runner.prepare(self._reference, [(tuple(int(d) for d in a.shape), str(a.dtype)) for a in self.args_info])
        self._prepared = True

    def measure(self, configs: np.ndarray, on_result: OnResult | None = None) -> list[MeasureResult]:
        if not self._prepared:
            self.prepare()
        results: list[MeasureResult | None] = [None] * len(configs)
        build_start = time.perf_counter()
        schedules, to_build = {}, []
        for i, config in enumerate(configs):
            start = time.perf_counter()
            sch, reason = self.tvm_space.schedule(config)
            if sch is None:
                results[i] = MeasureResult.failed(INVALID, reason, build_s=time.perf_counter() - start)
                _notify(on_result, i, results[i])
            else:
                schedules[i] = (sch, time.perf_counter() - start)
                to_build.append(i)
        built = self.builder.build([schedules[i][0].mod for i in to_build], describe=True)
        run_start = time.perf_counter()
        self.build_s += run_start - build_start
        runnable = []  # (index in batch, artifact, build seconds, program features)
        for i, build in zip(to_build, built):
            build_s = schedules[i][1] + build.build_s
            if build.error_msg is not None:
                results[i] = MeasureResult.failed(TIMEOUT if build.timed_out else BUILD, build.error_msg, build_s=build_s)
                _notify(on_result, i, results[i])
            else:
                runnable.append((i, build.artifact, build_s, build.features))

        def finished(k: int, run: RunResult) -> None:
            i, artifact, build_s, features = runnable[k]
            remove_artifact(artifact)
            results[i] = replace(_result(run, build_s), features=tuple(features) if features is not None else None)
            if results[i].valid:
                self._commit(schedules[i][0], run.run_secs)
            _notify(on_result, i, results[i])

        self.runner.run_all([r[1] for r in runnable], finished)
        self.run_s += time.perf_counter() - run_start
        return results

    def retime(self, configs: np.ndarray, rounds: int) -> list[MeasureResult]:
        """Build ``configs`` again and time them side by side (see ``Runner.retime``)."""
        if not self._prepared:
            self.prepare()
        start = time.perf_counter()
        schedules = [self.tvm_space.schedule(config)[0] for config in configs]
        built = self.builder.build([sch.mod for sch in schedules if sch is not None])
        self.build_s += time.perf_counter() - start
        builds = iter(built)
        results: list[MeasureResult] = []
        artifacts, where = [], []
        for sch in schedules:
            build = next(builds) if sch is not None else None
            if build is None or build.error_msg is not None:
                results.append(MeasureResult.failed(BUILD, build.error_msg if build else "no longer a legal schedule"))
            else:
                where.append(len(results))
                results.append(None)
                artifacts.append(build.artifact)
        start = time.perf_counter()
        if artifacts:
            for k, run in zip(where, self.runner.retime(artifacts, rounds)):
                results[k] = _result(run, 0.0)  # kept in retimed.jsonl; the database holds each trial once
        for artifact in artifacts:
            remove_artifact(artifact)
        self.run_s += time.perf_counter() - start
        return results

    def _commit(self, sch, run_secs) -> None:
        if self.database is None:
            return
        from tvm.s_tir import meta_schedule as ms

        self.database.commit_tuning_record(
            ms.database.TuningRecord(
                trace=sch.trace,
                workload=self.workload,
                run_secs=[float(s) for s in run_secs],
                target=self.tvm_space.target,
                args_info=self.args_info,
            )
        )

    def close(self) -> None:
        if self._own_workers:
            self.workers.close()


def _result(run: RunResult, build_s: float) -> MeasureResult:
    """A trial's result from its run: the fastest sample is its latency (see ``MeasureOptions.repeat``)."""
    if run.error is not None:
        return MeasureResult.failed(run.error, run.error_msg, build_s=build_s, run_s=run.run_s)
    return MeasureResult(
        float(min(run.run_secs)), run.run_secs, build_s=build_s, run_s=run.run_s,
        interference=run.interference, noisy=run.noisy,
    )  # fmt: skip


@dataclass(frozen=True)
class Workers:
    """A builder and a runner that tasks measure with in turn: their processes take seconds to
    start, so a model's tasks, or a comparison's runs, share one set. Processes start at first use."""

    builder: LocalBuilder
    runner: Runner

    @classmethod
    def open(cls, target, options: MeasureOptions, config: RunnerConfig = RunnerConfig()) -> "Workers":
        return cls(make_builder(target, options, config), make_runner(target, options, config))

    def close(self) -> None:
        # Each side's processes take a while to exit (TVM's teardown): both sides at once. Both
        # are closed whatever the other does; the first failure is raised after.
        with ThreadPoolExecutor(max_workers=2) as closing:
            closed = [closing.submit(self.builder.close), closing.submit(self.runner.close)]
        for future in closed:
            future.result()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_builder(target, options: MeasureOptions, config: RunnerConfig = RunnerConfig()) -> LocalBuilder:
    """The compilers ``config`` asks for (``build_workers``), on this machine whatever the runner."""
    return LocalBuilder(target, n_workers=config.build_workers, timeout_s=options.build_timeout_s)


def make_runner(target, options: MeasureOptions, config: RunnerConfig = RunnerConfig()) -> Runner:
    """This machine's runner, or the devices of ``config.device_key`` at its tracker."""
    if config.kind == "rpc":
        from .rpc_runner import RPCRunner

        return RPCRunner(config, options, device_type=target.get_target_device_type())
    threads = target_cores(target)
    return LocalRunner(options, num_threads=threads, cpus=kernel_cpus(threads))


def _notify(on_result: OnResult | None, index: int, result: MeasureResult) -> None:
    if on_result is not None:
        on_result(index, result)
