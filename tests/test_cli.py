"""The command line: listings, a real tuning run, and one-line errors with exit code 2."""

import json
import os
import subprocess
import sys

import pytest


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
    table = chameleon("workloads")
    assert "resnet18.L12" in table.stdout and "GFLOP" in table.stdout


def test_tune_json_summary(tmp_path):
    out = chameleon(
        "tune", "--workload", "matmul.64", "--strategy", "random", "--trials", "6",
        "--work-dir", str(tmp_path / "w"), "--seed", "2", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("workload", "strategy", "trials", "valid", "best_latency_s", "best_gflops", "wall_s", "search_s", "build_s", "run_s"):
        assert key in summary
    assert summary["trials"] == 6 and summary["valid"] == 6 and summary["workload"] == "matmul.64"
    assert summary["wall_s"] >= summary["build_s"] + summary["run_s"]
    assert "best" in out.stdout and "GFLOPS" in out.stdout


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
