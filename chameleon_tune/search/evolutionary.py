"""MetaSchedule's own EvolutionarySearch and XGBModel, measured through our path.

The search strategy and its cost model are TVM's, unchanged (defaults as in
``ms.tune_tir``); we only take its candidates, measure them with our builder
and runner like every other strategy, and feed the results back. Each
candidate maps back to a configuration of our space, so the history, the
budget and the records are shared with the other strategies. A candidate that
does not (MetaSchedule's mutators can reach programs outside the knob space)
is skipped and counted in ``outside_space``.
"""

from __future__ import annotations

import numpy as np

from ..measure.types import MeasureResult
from .base import Strategy, TaskContext, register

#: The tuner loop holds the real budget; MetaSchedule just must never stop first.
_UNBOUNDED_TRIALS = 1 << 30


@register("evolutionary")
class EvolutionarySearch(Strategy):
    """MetaSchedule's evolutionary search with its XGBoost model (TVM spaces only)."""

    def __init__(self, task: TaskContext, num_trials_per_iter: int = 64) -> None:
        super().__init__(task)
        if task.tvm_space is None:
            raise ValueError("the evolutionary strategy drives MetaSchedule and needs a TVM workload")
        from tvm.s_tir import meta_schedule as ms

        self.tvm_space = task.tvm_space
        self.context = ms.TuneContext(
            mod=self.tvm_space.mod,
            target=self.tvm_space.target,
            space_generator=self.tvm_space.context.space_generator,
            search_strategy=ms.search_strategy.EvolutionarySearch(),
            task_name="main",
            num_threads=self.tvm_space.context.num_threads,
            rand_state=max(1, task.seed + 1),  # MetaSchedule seeds must be positive
        )
        self.database = ms.database.MemoryDatabase()
        self.workload = self.database.commit_workload(self.tvm_space.mod)
        self.cost_model = ms.cost_model.XGBModel(num_warmup_samples=0)
        self.args_info = ms.arg_info.ArgInfo.from_prim_func(self.tvm_space.mod["main"])
        design_spaces = self.context.space_generator.generate_design_space(self.tvm_space.mod)
        self.context.search_strategy.pre_tuning(
            max_trials=_UNBOUNDED_TRIALS,
            num_trials_per_iter=num_trials_per_iter,
            design_spaces=design_spaces,
            database=self.database,
            cost_model=self.cost_model,
        )
        self._pending: dict = {}
        self._generation: list = []
        self.outside_space = 0

    def propose(self, n: int) -> np.ndarray:
        configs, taken, evolved = [], set(), 0
        while len(configs) < n:
            if not self._generation:
                # Like MetaSchedule itself, evolve again only once a generation is used up
                # (twice at most per call: a generation can hold only measured programs).
                if evolved == 2:
                    break
                self._generation = list(self.context.search_strategy.generate_measure_candidates() or [])
                evolved += 1
                if not self._generation:
                    break
            candidate = self._generation.pop(0)
            try:
                config = self.tvm_space.config_of(candidate.sch)
            except ValueError:
                self.outside_space += 1
                continue
            key = self.space.key(config)
            if key in taken or config in self.history:
                continue
            taken.add(key)
            self._pending[key] = candidate
            configs.append(config)
        proposed = np.array(configs, dtype=np.int64).reshape(-1, self.space.n_knobs)
        # MetaSchedule may offer only configurations we measured already; top up
        # with random ones (as its own epsilon-greedy would) rather than stop early.
        extra = self.random_unmeasured(n - len(proposed), exclude=taken)
        return np.concatenate([proposed, extra]) if len(extra) else proposed

    def update(self, configs: np.ndarray, results: list[MeasureResult]) -> None:
        from tvm.s_tir import meta_schedule as ms

        candidates, runner_results = [], []
        for config, result in zip(configs, results):
            candidate = self._pending.pop(self.space.key(config), None) or self._candidate(config)
            if candidate is None:
                continue  # an invalid configuration from the history: MetaSchedule never saw it
            candidates.append(candidate)
            if result.valid:
                runner_results.append(ms.runner.RunnerResult(run_secs=list(result.run_secs), error_msg=None))
                self.database.commit_tuning_record(
                    ms.database.TuningRecord(
                        trace=candidate.sch.trace,
                        workload=self.workload,
                        run_secs=list(result.run_secs),
                        target=self.tvm_space.target,
                        args_info=self.args_info,
                    )
                )
            else:
                runner_results.append(ms.runner.RunnerResult(run_secs=None, error_msg=result.error_msg or result.error))
        self._pending.clear()
        if candidates:
            self.cost_model.update(self.context, candidates, runner_results)
            self.context.search_strategy.notify_runner_results(candidates, runner_results)

    def _candidate(self, config):
        from tvm.s_tir import meta_schedule as ms

        sch, _reason = self.tvm_space.schedule(config)
        return None if sch is None else ms.MeasureCandidate(sch, self.args_info)
