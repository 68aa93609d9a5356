"""What `chameleon compare` shows: a progress bar while it runs, then report.md,
summary.json and two plots (best GFLOPS so far against measurements and against
tuning time, one panel per workload, a band over seeds, PyTorch as a line)."""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

from .plots import band_name, median_band, pyplot


class Progress:
    """One bar over every trial of the comparison: current run, its best, time left."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="trial", file=sys.stderr, dynamic_ncols=True, disable=not enabled)
        self.flops = 0.0
        self.best_s = math.inf

    def start_run(self, label: str, flops: float) -> None:
        self.bar.set_description(label)
        self.flops, self.best_s = flops, math.inf

    def update(self, trial) -> None:
        if trial.result.valid and trial.result.latency_s < self.best_s:
            self.best_s = trial.result.latency_s
            self.bar.set_postfix_str(f"best {self.flops / self.best_s / 1e9:.1f} GFLOPS")
        self.bar.update(1)

    def end_run(self, run_trials: int, runs_done: int) -> None:
        """Count trials a run did not measure now (resumed ones, an exhausted space)."""
        self.bar.update(max(0, run_trials * runs_done - self.bar.n))

    def close(self) -> None:
        self.bar.close()


def write_report(summary: dict, out_dir: str) -> None:
    """``summary.json``, ``report.md``, ``best_vs_measurements.png`` and ``best_vs_time.png``."""
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    _plot(summary, "measurements", os.path.join(out_dir, "best_vs_measurements.png"))
    _plot(summary, "time", os.path.join(out_dir, "best_vs_time.png"))
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(_markdown(summary)) + "\n")


def _records_line(s: dict) -> list[str]:
    if not s.get("records"):
        return []
    r = s["records"]
    return [
        f"Strategies named NAME+records learned from a record store of {r['workloads']} workload(s), {r['trials']} "
        "trials (cost model and first configurations from the nearest with the same knobs); NAME is the same strategy cold."
    ]


def _markdown(s: dict) -> list[str]:
    ref = s["reference"]
    lines = [
        f"# Strategy comparison: {', '.join(s['strategies'])} (reference {ref})",
        "",
        f"{len(s['workloads'])} workload(s); {s.get('trials')} measurements per run; {s.get('seeds')} seed(s); "
        f"batch size {s.get('batch_size')}; target {s.get('target')}; {s.get('machine', '')}; {s.get('date', '')}.",
        f"Measurement settings, identical for every run: {s.get('measure_options')}.",
        *_records_line(s),
        "",
        "Ratios against the reference, paired by seed. *Measurement ratio*: measurements the reference needed "
        f"to reach its own final best over those the strategy needed to reach it (> 1: the strategy is cheaper); "
        "*time ratio*: the same in tuning wall time; *quality ratio*: the strategy's final best GFLOPS over the "
        "reference's; *vs PyTorch*: final best GFLOPS over PyTorch eager's (oneDNN, same threads, same run). "
        "Medians over seeds, a seed that never reached counting as infinite: *not reached* is not a number.",
        "",
        *_warnings(s),
        "## Over all workloads (geometric means)",
        "",
        "| strategy | measurement ratio | time ratio | quality ratio | vs PyTorch |",
        "|---|---|---|---|---|",
    ]
    for strategy in s["strategies"]:
        cells = [
            f"{_num(s[f'geomean_{r}'][strategy])} ({s[f'{r}_defined_for'][strategy]})"
            for r in ("measurement_ratio", "time_ratio", "quality_ratio", "vs_pytorch")
        ]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    lines += ["", "(k/n): the number of workloads where the ratio is defined.", "", "## Per workload", ""]
    lines += [
        "| workload | strategy | best GFLOPS median [range] | vs PyTorch | measurements to ref. best (to 95%) "
        "| wall s to ref. best (to 95%) | reached | meas. ratio | time ratio | search share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, w in s["per_workload"].items():
        pytorch = f"PyTorch {w['pytorch_gflops']:.1f} GFLOPS" if w["pytorch_gflops"] else "no PyTorch reference"
        for strategy, e in w["strategies"].items():
            best, top = e["to_reference_best"], e["to_95%_of_reference_best"]
            lines.append(
                f"| {name} ({pytorch}) | {strategy} | {e['best_gflops_median']:.1f} "
                f"[{e['best_gflops_range'][0]:.1f}, {e['best_gflops_range'][1]:.1f}] | {_num(e['vs_pytorch'])}"
                f"{' (unreliable)' if name in s.get('pytorch_noisy', ()) else ''} "
                f"| {_num(best['measurements_median'], '.0f')} ({_num(top['measurements_median'], '.0f')}) "
                f"| {_num(best['wall_s_median'], '.0f')} ({_num(top['wall_s_median'], '.0f')}) | {best['reached']} "
                f"| {_num(e['measurement_ratio'])} | {_num(e['time_ratio'])} | {100 * e['search_share_median']:.1f}% |"
            )
    lines += ["", "![best vs measurements](best_vs_measurements.png)", "", "![best vs time](best_vs_time.png)"]
    return lines


def _warnings(s: dict) -> list[str]:
    """Lines saying which numbers other work on the machine may have bent (none on a quiet run)."""
    lines = []
    noisy = {k: v for k, v in s.get("noisy_trials", {}).items() if v}
    if noisy:
        lines.append(
            "**Warning: trials were timed while other work disturbed the machine ("
            + ", ".join(f"{k}: {v}" for k, v in noisy.items())
            + "); the ratios that rest on them are unreliable.**"
        )
    if s.get("pytorch_noisy"):
        lines.append(
            f"**Warning: PyTorch was timed while other work disturbed the machine on {', '.join(s['pytorch_noisy'])}: "
            "those *vs PyTorch* ratios are unreliable.**"
        )
    return lines + [""] if lines else []


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "not reached" if value is None else format(value, fmt)


def _plot(s: dict, axis: str, path: str) -> None:
    plt = pyplot()
    names = s["workloads"]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        w = s["per_workload"][name]
        for strategy in s["strategies"]:
            runs = [r for r in s["runs"] if r["workload"] == name and r["strategy"] == strategy and r["latencies_s"]]
            if not runs:
                continue
            curves = [_best_gflops(w["flops"], r["latencies_s"]) for r in runs]
            if axis == "measurements":
                length = min(len(c) for c in curves)
                x, data = np.arange(1, length + 1), np.array([c[:length] for c in curves])
            else:
                x = np.linspace(0, max(r["clock_s"][-1] for r in runs), 200)
                data = np.array([_at_times(c, np.array(r["clock_s"]), x) for c, r in zip(curves, runs)])
            median_band(ax, x, data, strategy)
        if w["pytorch_gflops"]:
            ax.axhline(w["pytorch_gflops"], color="black", linestyle="--", linewidth=1, label="PyTorch (oneDNN)")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("measurements" if axis == "measurements" else "tuning wall time (s)")
        ax.set_ylabel("best GFLOPS so far")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Best so far, median and {band_name(s.get('seeds'))} over {s.get('seeds')} seed(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _best_gflops(flops: float, latencies: list) -> np.ndarray:
    lat = np.array([math.inf if v is None else v for v in latencies])
    best = np.minimum.accumulate(lat)
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(best), flops / best / 1e9, 0.0)


def _at_times(best: np.ndarray, clock: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The step curve ``best`` (one value per trial finished at ``clock``) sampled at ``times``."""
    done = np.searchsorted(clock, times, side="right")
    return np.where(done > 0, best[np.maximum(done - 1, 0)], 0.0)
