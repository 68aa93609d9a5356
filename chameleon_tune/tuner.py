"""The tuning loop: propose, measure, record, learn, until the budget is spent.

The budget lives here, not in the strategies: the loop removes proposals that
were measured already, records each trial the moment it is finished (so Ctrl-C
or a crash loses nothing), and counts what a resumed history holds.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from .database import History, Trial
from .measure.base import Measurer
from .search.base import Strategy

OnTrial = Callable[[Trial], None]

RETIME_TOP = 4
"""Best configurations re-timed side by side at the end of a run (0: none)."""
RETIME_ROUNDS = 5
"""Interleaved rounds of that re-timing, one sample per configuration each."""


@dataclass(frozen=True)
class TuneResult:
    """What a tuning run reached and where its time went."""

    trials: int
    valid: int
    errors: dict[str, int]
    best_latency_s: float | None
    best_gflops: float | None
    best_config: tuple[int, ...] | None
    wall_s: float
    search_s: float
    build_s: float
    run_s: float
    resumed: int = 0
    """Trials that were already in the work directory when this run started."""
    stopped_early: bool = False
    noisy_trials: int = 0
    """Valid trials timed while other work disturbed the machine (see ``measure.interference``)."""
    interference_max: float | None = None
    """The most CPU other work took from the kernel's cores during any timing, in cores."""
    best_noisy: bool = False
    """The best latency itself comes from a disturbed timing."""
    retime_s: float = 0.0
    """Wall time of the end-of-run re-timing of the best configurations."""
    extra: dict = field(default_factory=dict)

    @property
    def invalid(self) -> int:
        return self.errors.get("invalid", 0)

    def to_json(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        data["invalid"] = self.invalid
        data["best_config"] = list(self.best_config) if self.best_config else None
        data.update(self.extra)
        return data


def tune(
    measurer: Measurer,
    strategy: Strategy,
    history: History,
    *,
    trials: int,
    batch_size: int = 64,
    early_stopping: int | None = None,
    on_trial: OnTrial | None = None,
    retime_top: int = RETIME_TOP,
    seeds: np.ndarray | None = None,
) -> TuneResult:
    """Measure up to ``trials`` configurations in all (counting resumed ones), then re-time
    the ``retime_top`` best side by side so the best is the fastest, not the luckiest.

    ``seeds`` (configurations known to be good elsewhere) are measured first, before the
    strategy proposes anything, and it learns from them like from its own."""
    start = time.perf_counter()
    resumed = len(history)
    build0, run0 = measurer.build_s, measurer.run_s
    search_s = 0.0
    # Each trial records when work on its batch began (learning from the previous
    # batch and searching included), so tuning_clock() can tell tuning time from
    # the pause between a run and its resumption.
    batch_started = time.time()
    if resumed:
        t = time.perf_counter()
        strategy.update(history.configs, [trial.result for trial in history.trials])
        search_s += time.perf_counter() - t
    stopped_early = False
    pending = seeds
    while len(history) < trials:
        if early_stopping is not None and _since_best(history) >= early_stopping:
            stopped_early = True
            break
        t = time.perf_counter()
        wanted = min(batch_size, trials - len(history))
        proposed = _new_only(pending, history)[:wanted] if pending is not None else []
        pending = None
        if not len(proposed):  # no seeds, or all measured before (a resumed run)
            proposed = _new_only(strategy.propose(wanted), history)[:wanted]
        search_s += time.perf_counter() - t
        if not len(proposed):
            break  # the strategy has nothing new: the space is exhausted for it
        record = partial(_record, history, proposed, batch_started, on_trial)
        results = measurer.measure(proposed, on_result=record)
        batch_started = time.time()
        t = time.perf_counter()
        strategy.update(proposed, results)
        search_s += time.perf_counter() - t
    retime_s = retime_best(measurer, history, retime_top)
    return summarize(
        history,
        measurer.flops,
        wall_s=time.perf_counter() - start,
        search_s=search_s,
        build_s=measurer.build_s - build0,
        run_s=measurer.run_s - run0,
        resumed=resumed,
        stopped_early=stopped_early,
        retime_s=retime_s,
    )


def retime_best(measurer: Measurer, history: History, top: int = RETIME_TOP, rounds: int = RETIME_ROUNDS) -> float:
    """Time the ``top`` best configurations again side by side; returns the seconds it took.

    A trial timed once can be lucky (or unlucky) by the machine's noise; timed in
    interleaved rounds, what disturbs one disturbs all, so the order is right.
    Nothing happens when the history's latest re-timing is still current.
    """
    best = history.top(top)
    if len(best) < 2 or history.retimed_after == len(history):
        return 0.0
    start = time.perf_counter()
    configs = np.array([t.config for t in best], dtype=np.int64)
    results = measurer.retime(configs, rounds)
    if results is not None:
        history.record_retimed(configs, results, time.time())
    return time.perf_counter() - start


def _record(history: History, batch, started: float, on_trial: OnTrial | None, index: int, result) -> None:
    """Append one finished trial at once: an interrupted run keeps everything measured."""
    trial = history.append(batch[index], result, started=started, finished=time.time())
    if on_trial is not None:
        on_trial(trial)


def summarize(history: History, flops: float | None, **timing) -> TuneResult:
    best = history.best()
    errors = Counter(t.result.error for t in history.trials if not t.result.valid)
    latency = best.result.latency_s if best else None
    return TuneResult(
        trials=len(history),
        valid=sum(t.result.valid for t in history.trials),
        errors=dict(errors),
        best_latency_s=latency,
        best_gflops=flops / latency / 1e9 if (latency and flops) else None,
        best_config=best.config if best else None,
        noisy_trials=len(history.noisy),
        interference_max=history.interference_max,
        best_noisy=bool(best and best.result.noisy),
        **timing,
    )


def _new_only(proposed: np.ndarray, history: History) -> np.ndarray:
    """Drop configurations measured before or repeated within the batch."""
    seen, keep = set(), []
    for i, config in enumerate(proposed):
        key = history.space.key(config)
        if key not in seen and config not in history:
            seen.add(key)
            keep.append(i)
    return history.space.canonical(np.asarray(proposed)[keep]).reshape(-1, history.space.n_knobs)


def _since_best(history: History) -> int:
    """Trials measured since the best one so far."""
    latencies = history.latencies
    if not np.isfinite(latencies).any():
        return len(latencies)
    return len(latencies) - 1 - int(np.argmin(latencies))
