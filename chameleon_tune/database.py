"""The trial history: one JSON line per measured configuration, appended as measured.

``history.jsonl`` holds every trial, valid or not (configuration, latency or
error, timestamps, how much other work disturbed its timing), so a rerun over
the same work directory resumes: what it holds counts against the budget and
seeds the cost model. Valid trials also go to MetaSchedule's own database (see
``measure.tvm_measurer``), for stock TVM.

``retimed.jsonl`` holds the end-of-run re-timings: the few best configurations
timed again side by side. The latest of them, if no trial came after it, names
the task's best: the fastest configuration, not the luckiest measurement.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .measure import program_features
from .measure.types import ERROR_KINDS, MeasureResult
from .space import Config, Space


class HistoryError(ValueError):
    """The work directory's history cannot be read or belongs to another space."""


@dataclass(frozen=True)
class Trial:
    """One measured configuration. ``started`` is when work on its batch began
    (search included), shared by the batch; ``finished`` when its result came."""

    config: Config
    result: MeasureResult
    started: float
    finished: float

    def to_json(self, space: Space) -> dict:
        r = self.result
        features = {} if r.features is None else {"features": list(r.features)}
        return {
            "config": list(self.config),
            "choices": {k: _jsonable(v) for k, v in space.choices_of(self.config).items()},
            "latency_s": r.latency_s,
            "run_secs": list(r.run_secs),
            "error": r.error,
            "error_msg": r.error_msg,
            "build_s": round(r.build_s, 6),
            "run_s": round(r.run_s, 6),
            "started": self.started,
            "finished": self.finished,
            "interference": None if r.interference is None else round(r.interference, 3),
            "noisy": r.noisy,
            **features,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Trial":
        error = data.get("error")
        if error is not None and error not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {error!r}")
        result = MeasureResult(
            data["latency_s"],
            tuple(data.get("run_secs", ())),
            error,
            data.get("error_msg"),
            data.get("build_s", 0.0),
            data.get("run_s", 0.0),
            interference=data.get("interference"),
            noisy=bool(data.get("noisy", False)),
            features=program_features.checked(data.get("features")),
        )
        return cls(tuple(int(v) for v in data["config"]), result, data["started"], data["finished"])


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


RETIMED_FILE = "retimed.jsonl"


def tuning_clock(trials: list[Trial]) -> np.ndarray:
    """Seconds of tuning when each of ``trials`` (in the order they finished) finished.

    Trials of one batch share their ``started`` time; a batch adds the time from
    that start to its last result, so the clock runs through searching, building
    and timing, and stops while no run is going (between a run and its resumption).
    The trials of several tasks tuned in one run, merged in finishing order, share
    one clock the same way.
    """
    clock, offset, i = np.zeros(len(trials)), 0.0, 0
    while i < len(trials):
        start = trials[i].started
        j = i
        while j < len(trials) and trials[j].started == start:
            clock[j] = offset + trials[j].finished - start
            j += 1
        offset = clock[i:j].max()
        i = j
    return clock


class History:
    """Every trial of one task, in memory and (optionally) in ``path``."""

    def __init__(self, space: Space, path: str | None = None) -> None:
        self.space = space
        self.path = path
        self.trials: list[Trial] = []
        self._keys: set[Config] = set()
        self.retimed: list[tuple[Config, MeasureResult]] = []
        """The latest re-timing, side by side, of the best configurations."""
        self.retimed_after = -1
        """How many trials the history held when they were re-timed."""
        if path is not None and os.path.exists(path):
            self._load(path)
        if self._retimed_path and os.path.exists(self._retimed_path):
            self._load_retimed(self._retimed_path)

    @property
    def _retimed_path(self) -> str | None:
        return None if self.path is None else os.path.join(os.path.dirname(self.path), RETIMED_FILE)

    def _load_retimed(self, path: str) -> None:
        with open(path) as f:
            lines = [line for line in f.read().split("\n") if line.strip()]
        rounds: dict[tuple, list] = {}
        for line in lines:
            try:
                data = json.loads(line)
                trial = Trial.from_json({**data, "started": data["round"], "finished": data["round"]})
                rounds.setdefault((data["round"], data["after"]), []).append(trial)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill: that re-timing is simply redone
        if rounds:
            (_, after), trials = max(rounds.items())
            self.retimed = [(t.config, t.result) for t in trials if t.config in self]
            self.retimed_after = after

    def record_retimed(self, configs, results: list[MeasureResult], when: float) -> None:
        """Keep (and append to ``retimed.jsonl``) a side-by-side re-timing of ``configs``."""
        self.retimed = [(self.space.key(c), r) for c, r in zip(configs, results)]
        self.retimed_after = len(self.trials)
        if self._retimed_path is not None:
            with open(self._retimed_path, "a") as f:
                for config, result in self.retimed:
                    line = Trial(config, result, when, when).to_json(self.space)
                    f.write(json.dumps({**line, "round": when, "after": self.retimed_after}) + "\n")

    def _load(self, path: str) -> None:
        with open(path) as f:
            lines = f.read().split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                trial = Trial.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                if number >= len(lines) - 1:
                    break  # a line cut short by a kill mid-write: that trial is lost, not the rest
                raise HistoryError(f"{path}:{number}: not a trial record ({exc})") from None
            if len(trial.config) != self.space.n_knobs or np.any(np.asarray(trial.config) >= self.space.dims):
                raise HistoryError(f"{path}:{number}: configuration does not fit this task's space")
            self._remember(trial)

    def _remember(self, trial: Trial) -> None:
        self.trials.append(trial)
        self._keys.add(self.space.key(trial.config))

    def append(self, config, result: MeasureResult, started: float, finished: float) -> Trial:
        trial = Trial(self.space.key(config), result, started, finished)
        self._remember(trial)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(trial.to_json(self.space)) + "\n")
        return trial

    def __len__(self) -> int:
        return len(self.trials)

    def __contains__(self, config) -> bool:
        return self.space.key(config) in self._keys

    @property
    def keys(self) -> frozenset[Config]:
        """Keys of every measured configuration."""
        return frozenset(self._keys)

    @property
    def configs(self) -> np.ndarray:
        return np.array([t.config for t in self.trials], dtype=np.int64).reshape(-1, self.space.n_knobs)

    @property
    def latencies(self) -> np.ndarray:
        """Latency per trial in seconds, ``inf`` for failed ones."""
        return np.array([t.result.latency_s if t.result.valid else np.inf for t in self.trials], dtype=np.float64)

    @property
    def program_features(self) -> np.ndarray:
        """Each trial's program features (``measure/program_features.py``), a row of NaN where
        the trial has none (it did not build, or it was measured before they were kept)."""
        return program_features.table([trial.result.features for trial in self.trials])

    def tuning_clock(self) -> np.ndarray:
        """Seconds of tuning when each trial finished, pauses between resumed runs left out
        (see :func:`tuning_clock`)."""
        return tuning_clock(self.trials)

    def top(self, k: int) -> list[Trial]:
        """The ``k`` fastest valid trials as measured."""
        return sorted((t for t in self.trials if t.result.valid), key=lambda t: t.result.latency_s)[:k]

    def best(self) -> Trial | None:
        """The fastest trial: by its re-timing when the latest one is newer than every trial."""
        if self.retimed_after == len(self.trials):
            valid = [(c, r) for c, r in self.retimed if r.valid]
            if valid:
                config, result = min(valid, key=lambda cr: cr[1].latency_s)
                measured = next(t for t in self.trials if t.config == config)
                return Trial(config, result, measured.started, measured.finished)
        valid = self.top(1)
        return valid[0] if valid else None

    @property
    def noisy(self) -> list[Trial]:
        """Valid trials whose timing other work disturbed."""
        return [t for t in self.trials if t.result.valid and t.result.noisy]

    @property
    def interference_max(self) -> float | None:
        """The most CPU other work took from the kernel's cores during any timing, in cores (None: never watched)."""
        seen = [t.result.interference for t in self.trials if t.result.interference is not None]
        return max(seen) if seen else None
