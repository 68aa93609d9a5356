"""Compile a model with or without the tuning records, verify it, time it, export it.

The exported directory holds ``model.so`` (weights included) and ``model.json``
(inputs, threads and what was verified). :func:`load_artifact` loads it on the
thread count it was tuned for; with TVM alone, set ``TVM_NUM_THREADS`` to the
manifest's ``threads`` first (TVM's default on x86 is half the logical CPUs)::

    import numpy as np, tvm
    from tvm import relax
    vm = relax.VirtualMachine(tvm.runtime.load_module("DIR/model.so"), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(np.zeros((1, 3, 224, 224), "float32")))  # a tuple if several outputs
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LIBRARY = "model.so"
STAGED = "unverified-model.so"
MANIFEST = "model.json"

VERIFY_RTOL = 1e-3
"""Tolerance of the end-to-end check, relative to the reference output's largest magnitude."""


class VerificationError(RuntimeError):
    """The compiled model's output differs from the reference's."""


def applied_tasks(fused_mod, target, database) -> set[str]:
    """Names of the fused functions that ``database`` schedules when the model is compiled.

    Runs the pass ``compile_relax`` uses, on the module it would see, and reads
    which functions came out marked as scheduled.
    """
    from tvm import relax, tirx

    with target, database:
        applied = relax.transform.MetaScheduleApplyDatabase()(fused_mod)
    return {
        gv.name_hint
        for gv, func in applied.functions.items()
        if isinstance(func, tirx.PrimFunc) and func.attrs is not None and func.attrs.get("tirx.is_scheduled")
    }


class CompiledModel:
    """A Relax executable (or exported library) loaded on the CPU, called with numpy arrays."""

    def __init__(self, executable) -> None:
        import tvm
        from tvm import relax

        self.device = tvm.cpu()
        self.vm = relax.VirtualMachine(executable, self.device)

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        import tvm_ffi

        out = self.bind(arrays)()
        return [t.numpy() for t in (out if isinstance(out, tvm_ffi.Array) else (out,))]

    def bind(self, arrays: list[np.ndarray]) -> Callable[[], object]:
        """One call with the inputs already on the device: what is timed."""
        import tvm

        tensors = [tvm.runtime.tensor(a, self.device) for a in arrays]
        main = self.vm["main"]
        return lambda: main(*tensors)


def load_artifact(directory: str) -> tuple[CompiledModel, dict]:
    """The exported model of ``directory`` and its manifest, on the thread count it was tuned for.

    TVM sizes its thread pool once, when a process first runs parallel code, and on
    x86 to half the logical CPUs unless ``TVM_NUM_THREADS`` says otherwise: an
    artifact loaded plainly on a 2-vCPU machine runs on one thread. So unless the
    user set ``TVM_NUM_THREADS``, it is set here to the manifest's ``threads``
    before the pool starts; a pool already running with another count gets a warning.
    """
    import tvm

    with open(os.path.join(directory, MANIFEST)) as f:
        manifest = json.load(f)
    threads = manifest.get("threads")
    if threads and "TVM_NUM_THREADS" not in os.environ:
        os.environ["TVM_NUM_THREADS"] = str(threads)
        if tvm.runtime.num_threads() != threads:
            warnings.warn(
                f"TVM's thread pool already runs {tvm.runtime.num_threads()} threads in this process; {directory} "
                f"was tuned for {threads}: set TVM_NUM_THREADS={threads} before TVM first runs",
                stacklevel=2,
            )
    return CompiledModel(tvm.runtime.load_module(os.path.join(directory, LIBRARY))), manifest


def stage(executable, directory: str) -> str:
    """Write the library beside where it will go, not yet as ``model.so``; returns its path.

    What is verified and timed is then the very file the user gets, loaded as they load it.
    """
    path = os.path.join(directory, STAGED)
    executable.export_library(path)
    return path


def export(staged: str, directory: str, manifest: dict) -> str:
    """Publish a staged, verified library as ``model.so`` with ``model.json``; returns its path."""
    path = os.path.join(directory, LIBRARY)
    os.replace(staged, path)
    with open(os.path.join(directory, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    return path


def max_abs_error(outputs: list[np.ndarray], reference: list[np.ndarray]) -> float:
    if len(outputs) != len(reference):
        raise VerificationError(f"the model returns {len(outputs)} outputs, the reference {len(reference)}")
    errors = [0.0]
    for got, want in zip(outputs, reference):
        if got.shape != want.shape:
            raise VerificationError(f"output shape {got.shape} differs from the reference's {want.shape}")
        errors.append(float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0)
    return max(errors)


def tolerance(reference: list[np.ndarray]) -> float:
    scale = max((float(np.max(np.abs(r))) for r in reference if r.size), default=0.0)
    return VERIFY_RTOL * scale + 1e-6


def verify(outputs: list[np.ndarray], reference: list[np.ndarray], what: str) -> float:
    """The largest absolute difference; a mismatch beyond :func:`tolerance` is an error."""
    error, limit = max_abs_error(outputs, reference), tolerance(reference)
    if not error <= limit:
        raise VerificationError(f"{what} output differs from the reference: max abs error {error:.3g} > {limit:.3g}")
    return error


@dataclass(frozen=True)
class Timing:
    """One runtime's latency from interleaved rounds, and how disturbed its rounds were."""

    seconds: float
    """The fastest undisturbed round's median seconds per call (all rounds if none was quiet)."""
    rounds: tuple[float, ...]
    """Median seconds per call of each round."""
    interference: float
    """Other processes' CPU during the rounds kept, in cores (see ``measure.interference``)."""
    noisy: bool
    """Every round was disturbed: the number is suspect."""

    def to_json(self) -> dict:
        return dict(self.__dict__)


def time_side_by_side(
    runs: dict[str, Callable[[], object]], rounds: int = 3, round_s: float = 0.2, pause_s: float = 0.5, max_s: float = 20.0
) -> dict[str, Timing]:
    """Time each runtime in interleaved rounds, in this process, watching for other work.

    Turn by turn, drift and disturbances fall on all runtimes alike. Before each
    turn the process pauses ``pause_s``: a runtime's worker threads keep spinning
    a while after a call and would slow the next one. A runtime slower than
    ``max_s / rounds`` per call gets fewer rounds (never fewer than two).
    """
    from ..measure.interference import CpuWatch, keep_quiet, rotated

    watch = CpuWatch()
    names = list(runs)
    per_call = {}
    for name in names:  # warm-up: first-call allocations and thread-pool start
        time.sleep(pause_s)
        start = time.perf_counter()
        runs[name]()
        per_call[name] = max(time.perf_counter() - start, 1e-7)
    wanted = {name: int(np.clip(max_s / per_call[name], 2, rounds)) for name in names}
    samples = {name: [] for name in names}
    seen = {name: [] for name in names}
    for r in range(rounds):
        for k in rotated(range(len(names)), r):
            name = names[k]
            if len(samples[name]) >= wanted[name]:
                continue
            time.sleep(pause_s)
            calls = []
            watch.start()
            deadline = time.perf_counter() + round_s
            while not calls or time.perf_counter() < deadline:
                start = time.perf_counter()
                runs[name]()
                calls.append(time.perf_counter() - start)
            seen[name].append(watch.stop().cores)
            samples[name].append(float(np.median(calls)))
    timings = {}
    for name in names:
        kept, interference, noisy = keep_quiet(tuple(samples[name]), tuple(seen[name]))
        timings[name] = Timing(min(kept), tuple(samples[name]), interference, noisy)
    return timings


@dataclass(frozen=True)
class TaskRow:
    """One line of the per-task table."""

    name: str
    weight: int
    trials: int
    valid: int
    best_latency_s: float | None
    applied: bool

    def to_json(self) -> dict:
        return dict(self.__dict__)


def write_report(directory: str, summary: dict, tasks: list[TaskRow]) -> str:
    """``report.md``: end-to-end latencies against every reference, tuning time, disturbances, tasks."""
    s = summary
    lines = [
        f"# {s['model']}: tuned with `{s['strategy']}`, {s['trials']} trials",
        "",
        f"Target `{s['target']}`, {s['threads']} threads for TVM and every reference alike, "
        "timed in one process in interleaved rounds.",
        "",
        "| build | latency (ms) | tuned model's speed-up over it |",
        "|---|---|---|",
        f"| TVM tuned | {_ms(s['tuned_latency_s'])} | |",
        f"| TVM untuned (default schedules) | {_ms(s['untuned_latency_s'])} | {ratio_cell(s, 'untuned')} |",
        *(f"| {name} | {_ms(seconds)} | {ratio_cell(s, name)} |" for name, seconds in s["references"].items()),
        "",
        *(f"- {name}: not timed: {why}" for name, why in s.get("reference_notes", {}).items()),
        *([""] if s.get("reference_notes") else []),
        *curve_lines(s),
        *disturbance_lines(s),
        f"Tuning wall time {s['tuning_wall_s']:.1f} s ({s['resumed']} trials resumed). "
        f"Output checked against {s['reference']} on random input: max abs error {s['max_abs_error']:.3g} "
        f"(tolerance {s['tolerance']:.3g} = {VERIFY_RTOL:g} x largest reference magnitude + 1e-6); "
        "every reference's output is checked the same way before it is timed.",
        f"Pipeline: batch norm {'folded into the convolutions' if s['pipeline']['fold_batch_norm'] else 'not folded'}, "
        f"weights {'pre-packed in the tile order of each kernel' if s['pipeline']['prepack_weights'] else 'in their original layout'}, "
        f"3x3 stride-1 convolutions {'as Winograd F(4x4, 3x3)' if s['pipeline'].get('winograd') else 'computed directly'}, "
        f"convolutions in {s['pipeline'].get('layout', 'NCHW')}, "
        f"{'erf and exp approximated (fast math)' if s['pipeline'].get('fast_math') else 'exact erf and exp'}.",
        "",
        *goal_lines(s),
        f"Records applied to {s['tasks_applied']} of {len(tasks)} tasks "
        f"(each round's choice and why: `scheduler.jsonl`)."
        + (" Tasks without a measured record:" if s["fallbacks"] else " Every task runs a measured schedule."),
        *(f"- {name}: {why}" for name, why in s["fallbacks"].items()),
        "",
        "| task | weight | trials | valid | best (ms) | applied |",
        "|---|---|---|---|---|---|",
    ]
    for t in tasks:
        lines.append(
            f"| {t.name} | {t.weight} | {t.trials} | {t.valid} | {_ms(t.best_latency_s)} | {'yes' if t.applied else 'no'} |"
        )
    lines += ["", f"Artifact: `{s['artifact']}` (load it with `chameleon run {directory}`)."]
    path = os.path.join(directory, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def goal_lines(summary: dict) -> list[str]:
    """What ``--until`` checked while tuning, and whether it stopped tuning early."""
    until = summary.get("until")
    if not until:
        return []
    checks = "; ".join(
        f"{c['tuning_s']:.0f} s, {c['trials']} trials: {_ms(c['tuned_s'])} vs {_ms(c['goal_s'])} ms" for c in until["checks"]
    )
    outcome = f"reached after {until['reached_at_s']:.0f} s of tuning" if until["reached"] else "not reached within the budget"
    return [f"Goal `--until {until['goal']}`: {outcome}. Verified builds timed against it: {checks or 'none'}.", ""]


def curve_lines(summary: dict) -> list[str]:
    """When the tuned model first beat each reference, by the calibrated estimate, and the plot."""
    s = summary
    if not s["curve"]["seconds"]:
        return ["No latency curve: some task never had a valid measurement.", ""]
    cells = [
        f"{name} {'at ' + format(t, '.0f') + ' s' if t is not None else 'not reached'}"
        f" (final build {'faster' if s['beats'][name] else 'slower'})"
        for name, t in s["time_to_reference_s"].items()
    ]
    return [
        f"Tuning time until the tuned model beat each reference, read off the estimated latency "
        f"(each task's best x its calls, calibrated x{s['curve']['calibration']:.2f} by the final build): "
        + ("; ".join(cells) or "no reference timed") + ".",
        "",
        f"![latency over tuning time]({os.path.basename(s['curve_plot'])})",
        "",
    ]


def latency_of(summary: dict, name: str) -> float:
    """Seconds per call of ``tuned``, ``untuned`` or a reference runtime."""
    return summary[f"{name}_latency_s"] if name in ("tuned", "untuned") else summary["references"][name]


def ratio_cell(summary: dict, name: str) -> str:
    """The tuned model's speed-up over ``name``, with a warning beside it when either timing was disturbed."""
    ratio = f"{latency_of(summary, name) / summary['tuned_latency_s']:.2f}x"
    disturbed = [n for n in ("tuned", name) if n in summary.get("timing_noisy", ())]
    if not disturbed:
        return ratio
    cores = max(summary["timing_interference"][n] for n in disturbed)
    return f"{ratio} (UNRELIABLE: other work took {cores:.1f} cores while {' and '.join(disturbed)} was timed)"


def disturbance_lines(summary: dict) -> list[str]:
    """What the report says about other work on the machine (nothing when there was none)."""
    s, lines = summary, []
    if s.get("timing_noisy"):
        lines.append(
            f"**Warning: the machine was busy with other work while {', '.join(s['timing_noisy'])} was timed; "
            "the ratios above are unreliable. Time the artifact again on a quiet machine.**"
        )
    if s.get("noisy_trials"):
        lines.append(
            f"**Warning: {s['noisy_trials']} trials were timed while other work took up to "
            f"{s['interference_max']:.1f} cores of the kernels' cores"
            + (f"; the best record of {', '.join(s['noisy_best'])} is among them" if s.get("noisy_best") else "")
            + ". Tuning learns from those timings: tune on a quiet machine, or give kernels cores of their own (`--threads`).**"
        )
    return lines + [""] if lines else []


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.4g}"
