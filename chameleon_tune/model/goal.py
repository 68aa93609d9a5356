"""``--until``: stop tuning once a verified build of the model is faster than a goal.

The goal is a reference runtime (``onnxruntime``, ``pytorch``, ``torch.compile``) or a
latency (``8ms``). While tuning, the model's latency is estimated from each task's best
(weight x latency, summed) times a calibration: the ratio of the last real build's latency
to the estimate at that time. When the calibrated estimate says the goal is beaten, the
model is compiled with the records so far, its output checked, and it is timed side by side
with the reference; only that decides. A check that fails recalibrates the estimate, and
the next waits until the estimate has dropped a little more, so checks stay rare.

Between checks a reference is re-timed every :data:`RETIME_S` of tuning (alone, a second or
two): a machine whose speed drifts (a third, within one run here) slows the kernels the
estimate is made of and the reference alike, and an estimate compared with a reference timed
before the drift would never call the check that shows the goal beaten.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..evaluation.model_references import REFERENCES
from .build import time_side_by_side

#: A new check only once the estimate fell this much below the last checked one.
RECHECK_DROP = 0.97
#: Seconds of tuning after which a reference goal is timed again before the next decision.
RETIME_S = 60.0

_LATENCY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s)\s*$")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_until(spec: str) -> tuple[str, float | None]:
    """``(reference name, None)`` or ``(spec, seconds)``; ValueError (one line) otherwise."""
    if spec in REFERENCES:
        return spec, None
    match = _LATENCY.match(spec)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--until {spec!r}: expected a reference ({', '.join(REFERENCES)}) or a latency such as 8ms")
    return spec.strip(), float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Check:
    """One verified build during tuning, timed against the goal."""

    tuning_s: float
    trials: int
    estimate_s: float
    tuned_s: float
    goal_s: float

    @property
    def beaten(self) -> bool:
        return self.tuned_s < self.goal_s


@dataclass
class Goal:
    name: str
    """A reference's name, or the latency as the user wrote it."""
    goal_s: float
    """The reference's latency timed before tuning (re-timed at each check), or the latency asked for."""
    reference: Callable[[], object] | None = None
    calibration: float | None = None
    checks: list[Check] = field(default_factory=list)
    timed_at_s: float = 0.0
    """Tuning time at which ``goal_s`` was last measured."""
    retimes: int = 0

    def refresh(self, tuning_s: float) -> None:
        """Time a reference goal again if it was last timed :data:`RETIME_S` of tuning ago."""
        if self.reference is None or tuning_s - self.timed_at_s < RETIME_S:
            return
        self.goal_s = time_side_by_side({self.name: self.reference})[self.name].seconds
        self.timed_at_s, self.retimes = tuning_s, self.retimes + 1

    def due(self, estimate_s: float) -> bool:
        """Whether the estimate says a build is worth checking now."""
        if self.calibration is None:
            return True
        if self.checks and estimate_s > RECHECK_DROP * self.checks[-1].estimate_s:
            return False
        return estimate_s * self.calibration < self.goal_s

    def check(self, build: Callable[[], Callable[[], object]], estimate_s: float, tuning_s: float, trials: int) -> bool:
        """Build (``build`` compiles, verifies and returns one call of the model), time, record."""
        runs = {"tuned": build()}
        if self.reference is not None:
            runs[self.name] = self.reference
        timings = time_side_by_side(runs)
        if self.reference is not None:
            self.goal_s, self.timed_at_s = timings[self.name].seconds, tuning_s
        tuned_s = timings["tuned"].seconds
        self.calibration = tuned_s / estimate_s
        self.checks.append(Check(tuning_s, trials, estimate_s, tuned_s, self.goal_s))
        return self.checks[-1].beaten

    def to_json(self) -> dict:
        reached = next((c for c in self.checks if c.beaten), None)
        return {
            "goal": self.name,
            "reached": reached is not None,
            "reached_at_s": reached.tuning_s if reached else None,
            "checks": [asdict(c) for c in self.checks],
            "reference_retimed": self.retimes,
        }
