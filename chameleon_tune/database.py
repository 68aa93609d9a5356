"""The trial history: one JSON line per measured configuration, appended as measured.

``history.jsonl`` holds every trial, valid or not (configuration, latency or
error, timestamps), so a rerun over the same work directory resumes: what it
holds counts against the budget and seeds the cost model. Valid trials also go
to MetaSchedule's own database (see ``measure.tvm_measurer``), for stock TVM.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

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
        )
        return cls(tuple(int(v) for v in data["config"]), result, data["started"], data["finished"])


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


class History:
    """Every trial of one task, in memory and (optionally) in ``path``."""

    def __init__(self, space: Space, path: str | None = None) -> None:
        self.space = space
        self.path = path
        self.trials: list[Trial] = []
        self._keys: set[Config] = set()
        if path is not None and os.path.exists(path):
            self._load(path)

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

    def tuning_clock(self) -> np.ndarray:
        """Seconds of tuning when each trial finished, pauses between resumed runs left out.

        Trials of one batch share their ``started`` time; a batch adds the time from
        that start to its last result, so the clock runs through searching, building
        and timing, and stops while no run is going.
        """
        clock, offset, i = np.zeros(len(self.trials)), 0.0, 0
        while i < len(self.trials):
            start = self.trials[i].started
            j = i
            while j < len(self.trials) and self.trials[j].started == start:
                clock[j] = offset + self.trials[j].finished - start
                j += 1
            offset = clock[i:j].max()
            i = j
        return clock

    def best(self) -> Trial | None:
        valid = [t for t in self.trials if t.result.valid]
        return min(valid, key=lambda t: t.result.latency_s) if valid else None
