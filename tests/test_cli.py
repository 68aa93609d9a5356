"""The command line: listings, a real tuning run, and one-line errors with exit code 2."""

import json
import os
import subprocess
import sys

import pytest

from conftest import chameleon_in_process


def chameleon(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "chameleon_tune.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_workloads_json_lists_the_paper_layers():
    out = chameleon("workloads", "--json")
    assert out.returncode == 0, out.stderr
    items = {w["name"]: w for w in json.loads(out.stdout.strip().splitlines()[-1])}
    assert items["resnet18.L2"]["flops"] == 2 * 64 * 56 * 56 * 64 * 9
    assert sum(name.startswith("vgg16.") for name in items) == 9
    table = chameleon_in_process("workloads")
    assert "resnet18.L12" in table.stdout and "GFLOP" in table.stdout


def test_tune_json_summary(tuned_matmul):
    # `chameleon tune --workload matmul.128 --strategy random --trials 6 --seed 2 --export-cache c.json --json`
    # (conftest.py; test_compare.py fills a record store from the same run)
    out, work, cache_file = tuned_matmul
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("workload", "strategy", "trials", "valid", "best_latency_s", "best_gflops", "wall_s", "search_s", "build_s", "run_s"):
        assert key in summary
    assert summary["trials"] == 6 and summary["valid"] == 6 and summary["workload"] == "matmul.128"
    assert summary["wall_s"] >= summary["build_s"] + summary["run_s"]
    assert "best" in out.stdout and "GFLOPS" in out.stdout
    # what was measured replays: the exported cache gives back the same best latency as first measured
    # (the summary's best is the end-of-run re-timing of the best few, side by side)
    from chameleon_tune.measure.replay import ReplayMeasurer, load_cache

    measured = [json.loads(line)["latency_s"] for line in (work / "history.jsonl").read_text().splitlines()]
    cache = load_cache(str(cache_file))
    assert len(cache.records) == 6 and cache.optimum * 1e-3 == pytest.approx(min(measured))
    assert summary["best_config"] in [json.loads(line)["config"] for line in (work / "history.jsonl").read_text().splitlines()]
    assert any("x" in str(v) for v in cache.space.knobs[1].choices)  # tilings as "AxBxCxD" strings
    assert ReplayMeasurer(cache).space.size == cache.space.size


@pytest.mark.parametrize(
    "args, message",
    [
        (["tune", "--workload", "resnet99.L1"], "valid: "),
        (["tune", "--workload", "matmul.64", "--strategy", "magic"], "choose from: "),
        (["tune", "--workload", "matmul.64", "--target", "nonsense-target"], "target"),
        (["tune", "--workload", "matmul.64", "--trials", "0"], "--trials"),
        (["tune", "--workload", "matmul.64", "--work-dir", "/proc/forbidden/w"], "cannot write"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    out = chameleon(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_work_dir_of_another_task_is_refused(tmp_path):
    work = tmp_path / "w"
    os.makedirs(work)
    (work / "run.json").write_text(json.dumps({"workload": "matmul.128", "target": "x", "strategy": "sa"}))
    out = chameleon("tune", "--workload", "matmul.64", "--work-dir", str(work))
    assert out.returncode == 2 and "holds workload 'matmul.128'" in out.stderr


def test_ctrl_c_keeps_every_finished_trial(tmp_path):
    import signal
    import time

    work = tmp_path / "w"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chameleon_tune.cli", "tune", "--workload", "matmul.64", "--strategy", "random",
         "--trials", "500", "--batch-size", "4", "--work-dir", str(work)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell's background jobs inherit SIGINT ignored; give the child the default, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    history = work / "history.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 6):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    trials = [json.loads(line) for line in history.read_text().splitlines()]
    assert 6 <= len(trials) < 500
    # and the run resumes from there (through the command line's entry point, in this process)
    out = chameleon_in_process("tune", "--workload", "matmul.64", "--strategy", "random", "--trials", str(len(trials) + 2),
                               "--work-dir", str(work), "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["resumed"] == len(trials)
