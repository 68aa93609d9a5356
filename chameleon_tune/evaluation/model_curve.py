"""The model's latency over tuning time: the curve a user wants to see against the references.

Each task's best latency so far, weighted by how often one run of the model
calls it, summed over the tasks, is an estimate of the end-to-end latency; it
leaves out what runs between the kernels, so it is calibrated by the real build
at the end (the estimate from the final records against the measured tuned
model). The curve starts once every task has a measured schedule: before that
a task would be counted at TVM's naive default, which is not measured.
"""

from __future__ import annotations

import os

import numpy as np

from ..database import History, Trial, tuning_clock

CURVE_PLOT = "latency_curve.png"


def latency_curve(weights: list[int], histories: list[History]) -> tuple[np.ndarray, np.ndarray]:
    """``(seconds of tuning, estimated latency)`` after each trial from the moment every task has a
    valid one; empty arrays if some task never had one."""
    merged = sorted(
        ((t.finished, task, t) for task, h in enumerate(histories) for t in h.trials), key=lambda item: item[0]
    )
    clock = tuning_clock([t for _f, _task, t in merged])
    best = np.full(len(histories), np.inf)
    seconds, estimate = [], []
    for at, (_finished, task, trial) in zip(clock, merged):
        if trial.result.valid:
            best[task] = min(best[task], trial.result.latency_s)
        if np.isfinite(best).all():
            seconds.append(float(at))
            estimate.append(float(np.dot(weights, best)))
    return np.array(seconds), np.array(estimate)


def final_estimate(weights: list[int], bests: list[Trial | None]) -> float | None:
    """The estimate from each task's final best (re-timed where it was), None if a task has none."""
    if any(b is None for b in bests):
        return None
    return float(sum(w * b.result.latency_s for w, b in zip(weights, bests)))


def time_to_beat(seconds: np.ndarray, latency: np.ndarray, references: dict[str, float]) -> dict[str, float | None]:
    """For each reference, the first tuning time at which the (calibrated) curve is below it (None: never)."""
    out = {}
    for name, ref in references.items():
        below = np.nonzero(latency < ref)[0]
        out[name] = float(seconds[below[0]]) if len(below) else None
    return out


def plot_curve(directory: str, model: str, seconds, latency, references: dict[str, float], tuned_s: float) -> str:
    """``latency_curve.png``: the calibrated estimate over tuning time, the references as lines,
    the measured tuned model as a point at the end."""
    from .plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if len(seconds):
        ax.step(seconds, np.asarray(latency) * 1e3, where="post", label="tuned model (estimate, calibrated)")
        ax.plot([seconds[-1]], [tuned_s * 1e3], "o", color="black", label="tuned model, measured")
    for name, ref in references.items():
        ax.axhline(ref * 1e3, linestyle="--", linewidth=1, label=name, color=_REFERENCE_COLORS.get(name))
    ax.set_yscale("log")
    ax.set_xlabel("tuning wall time (s)")
    ax.set_ylabel("latency per inference (ms)")
    ax.set_title(f"{model}: end-to-end latency over tuning time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(directory, CURVE_PLOT)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_REFERENCE_COLORS = {"pytorch": "tab:red", "torch.compile": "tab:purple", "onnxruntime": "tab:green"}
