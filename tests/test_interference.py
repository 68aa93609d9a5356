"""Timings a user can trust on a busy machine, and one tuner per work directory."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from chameleon_tune.database import History
from chameleon_tune.measure.interference import NOISY_CORES, CpuWatch, keep_quiet, kernel_cpus
from chameleon_tune.measure.runner import LocalRunner
from chameleon_tune.measure.types import MeasureOptions, MeasureResult, RunResult
from chameleon_tune.model.build import disturbance_lines, ratio_cell, time_side_by_side
from chameleon_tune.space import Knob, Space
from chameleon_tune.workdir_lock import LOCK_FILE, WorkDirBusy, WorkDirLock

HOG = "import time\nt = time.time()\nwhile time.time() - t < {seconds}: pass\n"


def chameleon(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "chameleon_tune.cli", *args], capture_output=True, text=True, timeout=timeout)


class hogs:
    """``n`` busy processes, each ending by itself after ``seconds`` and killed on exit anyway."""

    def __init__(self, n: int, seconds: float = 60.0) -> None:
        self.n, self.seconds = n, seconds

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=self.seconds)]) for _ in range(self.n)]
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def test_watch_sees_a_busy_process():
    watch = CpuWatch()
    with hogs(len(watch.cpus), seconds=20):
        seen = watch.measure(0.5)
    assert seen.cores >= 0.5 and seen.noisy, seen


def test_kernel_cpus_pins_only_when_fewer_threads_than_cores():
    assert kernel_cpus(None) is None
    assert kernel_cpus(os.cpu_count() + 1) is None
    if len(os.sched_getaffinity(0)) > 1:
        (cpu,) = kernel_cpus(1)
        assert cpu in os.sched_getaffinity(0)


def test_keep_quiet_prefers_undisturbed_samples():
    kept, cores, noisy = keep_quiet((1.0, 3.0, 1.2), (0.0, 0.9, 0.1))
    assert kept == (1.0, 1.2) and cores == 0.1 and not noisy
    kept, cores, noisy = keep_quiet((2.0, 3.0), (0.8, 0.9))
    assert kept == (2.0, 3.0) and cores == 0.8 and noisy


def _runner_with(attempts, quiet):
    """A local runner whose attempts and quiet checks are scripted (its worker never starts)."""
    runner = LocalRunner(MeasureOptions(noisy_retries=2))
    script = iter(attempts)
    runner._attempt = lambda artifact: next(script)
    runner._quiet_again = lambda: quiet
    return runner


def test_a_disturbed_timing_is_redone_once_the_machine_is_quiet():
    noisy = RunResult((2.0e-3, 2.5e-3), None, None, 0.1, 0.9, True)
    clean = RunResult((1.5e-3, 1.6e-3), None, None, 0.1, 0.05, False)
    result = _runner_with([noisy, clean], quiet=True).run("kernel.so")
    assert not result.noisy and min(result.run_secs) == 1.5e-3 and result.run_s == pytest.approx(0.2)


def test_a_disturbed_timing_stays_flagged_while_the_machine_stays_busy():
    noisy = RunResult((2.0e-3,), None, None, 0.1, 0.9, True)
    result = _runner_with([noisy], quiet=False).run("kernel.so")
    assert result.noisy and result.interference == 0.9


@pytest.mark.slow
def test_disturbed_trials_are_flagged_in_the_history_and_the_summary(tmp_path):
    # Normal priority: with every core busy, each timing is disturbed. The cores are taken once the
    # first trial is in, and given back once a disturbed trial is: the tuner's start-up (TVM imported
    # in each of its processes) and its shutdown would crawl on a busy machine for a minute.
    work, stdout, stderr = tmp_path / "w", tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "w") as out, open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chameleon_tune.cli", "tune", "--workload", "matmul.64", "--strategy", "random",
             "--trials", "8", "--batch-size", "4", "--work-dir", str(work), "--no-priority", "--json"],
            stdout=out, stderr=err, text=True,
        )  # fmt: skip
    try:
        history = work / "history.jsonl"
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline and not (history.exists() and history.read_text().strip()):
            time.sleep(0.05)
        assert proc.poll() is None, stderr.read_text()[-2000:]  # still tuning: the rest is timed while the cores are busy
        with hogs(len(os.sched_getaffinity(0)), seconds=120):
            while proc.poll() is None and time.time() < deadline and '"noisy": true' not in history.read_text():
                time.sleep(0.05)
        proc.wait(timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr.read_text()[-2000:]
    summary = json.loads(stdout.read_text().strip().splitlines()[-1])
    assert summary["noisy_trials"] >= 1 and summary["interference_max"] >= NOISY_CORES
    assert "warning" in stdout.read_text()
    trials = [json.loads(line) for line in history.read_text().splitlines()]
    assert any(t["noisy"] and t["interference"] >= NOISY_CORES for t in trials)


def test_a_second_run_on_a_locked_work_dir_gets_one_line_naming_the_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom chameleon_tune.workdir_lock import WorkDirLock\n"
         f"lock = WorkDirLock({str(tmp_path)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        out = chameleon("tune", "--workload", "matmul.64", "--trials", "1", "--work-dir", str(tmp_path))
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and f"process {holder.pid}" in out.stderr, out.stderr
        with pytest.raises(WorkDirBusy):
            WorkDirLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    # The holder was killed: its lock file is left behind, stale, and taken over.
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(holder.pid)
    with WorkDirLock(str(tmp_path)):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_a_stale_lock_file_is_taken_over_and_released(tmp_path):
    (tmp_path / LOCK_FILE).write_text("999999\n")
    with WorkDirLock(str(tmp_path)):
        with pytest.raises(WorkDirBusy, match="process"):
            WorkDirLock(str(tmp_path)).acquire()
    WorkDirLock(str(tmp_path)).acquire().release()  # released at the end of the block


def test_warm_start_with_a_file_that_is_not_a_policy(tmp_path):
    bogus = tmp_path / "policy.pt"
    bogus.write_text("not a policy")
    out = chameleon("tune", "--workload", "matmul.64", "--trials", "1", "--work-dir", str(tmp_path / "w"), "--warm-start", str(bogus))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "is not a policy" in out.stderr, out.stderr


def _history(path=None):
    return History(Space((Knob("a", (1, 2, 3, 4)), Knob("b", (1, 2)))), path)


def test_the_best_is_the_fastest_when_re_timed_not_the_luckiest(tmp_path):
    history = _history(str(tmp_path / "history.jsonl"))
    for config, latency in (((0, 0), 1.0e-3), ((1, 0), 1.1e-3), ((2, 1), 2.0e-3)):
        history.append(np.array(config), MeasureResult(latency, (latency,)), 0.0, 0.0)
    assert history.best().config == (0, 0)
    # Side by side, (0, 0) turns out to have been lucky.
    retimed = [MeasureResult(1.3e-3, (1.3e-3,)), MeasureResult(1.15e-3, (1.15e-3,))]
    history.record_retimed(np.array([(0, 0), (1, 0)]), retimed, time.time())
    assert history.best().config == (1, 0) and history.best().result.latency_s == 1.15e-3
    reloaded = _history(str(tmp_path / "history.jsonl"))
    assert reloaded.best().config == (1, 0)
    # A trial measured after the re-timing makes it stale until the next one.
    reloaded.append(np.array((3, 1)), MeasureResult(1.2e-3, (1.2e-3,)), 0.0, 0.0)
    assert reloaded.best().config == (0, 0)


def test_side_by_side_timing_orders_runtimes_and_watches_them():
    timings = time_side_by_side(
        {"fast": lambda: time.sleep(0.002), "slow": lambda: time.sleep(0.006)}, rounds=3, round_s=0.03, pause_s=0.01
    )
    assert timings["fast"].seconds < timings["slow"].seconds
    assert all(len(t.rounds) == 3 and t.interference >= 0 for t in timings.values())


def test_a_ratio_from_a_disturbed_timing_carries_its_warning():
    summary = {
        "tuned_latency_s": 1.0e-3, "untuned_latency_s": 4.0e-3, "references": {"pytorch": 2.0e-3, "onnxruntime": 0.5e-3},
        "timing_noisy": ["onnxruntime"], "timing_interference": {"tuned": 0.0, "untuned": 0.0, "pytorch": 0.1, "onnxruntime": 0.9},
        "noisy_trials": 3, "interference_max": 1.0, "noisy_best": ["conv"],
    }  # fmt: skip
    assert ratio_cell(summary, "pytorch") == "2.00x" and ratio_cell(summary, "untuned") == "4.00x"
    assert ratio_cell(summary, "onnxruntime").startswith("0.50x (UNRELIABLE") and "0.9 cores" in ratio_cell(summary, "onnxruntime")
    text = " ".join(disturbance_lines(summary))
    assert "onnxruntime was timed" in text and "3 trials" in text and "conv" in text
    assert disturbance_lines({**summary, "timing_noisy": [], "noisy_trials": 0}) == []
