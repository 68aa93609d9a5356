"""`chameleon compare`: ratio and reached-at arithmetic on hand-made runs, then a small real comparison."""

import json
import math
import os

import numpy as np
import pytest

from chameleon_tune.evaluation.compare import Run, summarize
from conftest import chameleon_in_process
from test_cli import chameleon

INF = math.inf


def _run(strategy, seed, latencies, wall_s=10.0, search_s=1.0):
    latencies = np.array(latencies, dtype=float)
    # One trial per second of tuning: measurement n finishes at clock n.
    return Run("w", strategy, seed, latencies, np.arange(1.0, len(latencies) + 1), search_s, wall_s)


def test_ratios_and_reached_at_on_known_runs():
    runs = [
        # The reference reaches its final best (1.0) at measurement 4 in both seeds.
        _run("sa", 0, [4.0, 3.0, 2.0, 1.0, 1.5, 1.2]),
        _run("sa", 1, [INF, 2.0, 3.0, 1.0, 1.1, 1.1]),
        # Twice as cheap: reaches 1.0 at measurement 2, and a better final best.
        _run("fast", 0, [3.0, 1.0, 0.5, 0.5, 0.5, 0.5]),
        _run("fast", 1, [1.0, 0.9, 0.8, 0.8, 0.8, 0.8]),
        # Never reaches 1.0; gets within 95% (1.05) at measurement 3 in seed 0 only.
        _run("slow", 0, [5.0, 2.0, 1.05, 1.05, 1.05, 1.05]),
        _run("slow", 1, [INF, INF, 4.0, 4.0, 2.0, 2.0]),
    ]
    s = summarize(runs, {"w": 2e9}, {"w": 2e-3 / 1.0}, "sa", ["sa", "fast", "slow"])
    w = s["per_workload"]["w"]["strategies"]

    assert w["sa"]["to_reference_best"] == {"measurements_median": 4.0, "wall_s_median": 4.0, "reached": "2/2"}
    assert w["sa"]["measurement_ratio"] == w["sa"]["time_ratio"] == w["sa"]["quality_ratio"] == 1.0

    # fast: seed 0 gets to 1.0 at 2; seed 1 (reference best 1.0) at 1.
    assert w["fast"]["to_reference_best"]["measurements_median"] == 1.5
    assert w["fast"]["measurement_ratio"] == pytest.approx(4 / 1.5)
    assert w["fast"]["best_gflops_median"] == pytest.approx(np.median([2e9 / 0.5e9, 2e9 / 0.8e9]))
    assert w["fast"]["quality_ratio"] == pytest.approx(w["fast"]["best_gflops_median"] / 2.0)

    # slow: not reached is reported as such, never as a number.
    assert w["slow"]["to_reference_best"] == {"measurements_median": None, "wall_s_median": None, "reached": "0/2"}
    assert w["slow"]["measurement_ratio"] is None and w["slow"]["time_ratio"] is None
    # Within 95% in one seed of two: the median counts the other as never, so not reached either.
    assert w["slow"]["to_95%_of_reference_best"]["reached"] == "1/2"
    assert w["slow"]["to_95%_of_reference_best"]["measurements_median"] is None

    # PyTorch: 2 GFLOP in 2 ms = 1000 GFLOPS.
    assert s["per_workload"]["w"]["pytorch_gflops"] == pytest.approx(1000.0)
    assert w["sa"]["vs_pytorch"] == pytest.approx(2.0 / 1000.0)

    assert s["geomean_measurement_ratio"] == {"sa": 1.0, "fast": pytest.approx(4 / 1.5), "slow": None}
    assert s["measurement_ratio_defined_for"]["slow"] == "0/1"
    json.dumps(s)  # every number is JSON-ready


def test_geomean_over_workloads_and_a_reference_without_valid_trials():
    runs = []
    for name, fast_at in (("a", 2), ("b", 8)):
        ref = [INF] * 7 + [1.0]  # reference best at measurement 8
        fast = [2.0] * (fast_at - 1) + [1.0] * (9 - fast_at)
        runs += [Run(name, "sa", 0, np.array(ref), np.arange(1.0, 9), 0, 8), Run(name, "x", 0, np.array(fast), np.arange(1.0, 9), 0, 8)]
    runs.append(Run("c", "sa", 0, np.full(8, INF), np.arange(1.0, 9), 0, 8))
    runs.append(Run("c", "x", 0, np.full(8, 1.0), np.arange(1.0, 9), 0, 8))
    s = summarize(runs, {"a": 1e9, "b": 1e9, "c": 1e9}, {}, "sa", ["sa", "x"])
    # Ratios 8/2 = 4 and 8/8 = 1 -> geomean 2; workload c has no reference best: undefined.
    assert s["geomean_measurement_ratio"]["x"] == pytest.approx(2.0)
    assert s["measurement_ratio_defined_for"]["x"] == "2/3"
    assert s["per_workload"]["c"]["strategies"]["x"]["quality_ratio"] is None
    assert s["per_workload"]["c"]["pytorch_gflops"] is None


def test_small_real_comparison_writes_report_json_plots_and_resumes(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--workload", "matmul.64", "--strategies", "random,sa", "--trials", "4", "--seeds", "2",
            "--batch-size", "2", "--number", "1", "--repeat", "2", "--min-repeat-ms", "5", "--out", str(out), "--json"]
    first = chameleon(*args)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    for key in ("geomean_measurement_ratio", "geomean_time_ratio", "geomean_quality_ratio"):
        assert set(summary[key]) == {"random", "sa"}
    assert summary["reference"] == "sa" and summary["geomean_quality_ratio"]["sa"] == 1.0
    assert summary["per_workload"]["matmul.64"]["pytorch_gflops"] > 0

    # Strategy order alternates by seed: random first in seed 0, sa first in seed 1.
    def first_started(strategy, seed):
        with open(out / "runs" / "matmul.64" / f"{strategy}-s{seed}" / "history.jsonl") as f:
            return json.loads(f.readline())["started"]

    assert first_started("random", 0) < first_started("sa", 0)
    assert first_started("sa", 1) < first_started("random", 1)

    full = json.loads((out / "summary.json").read_text())
    assert len(full["runs"]) == 4 and all(len(r["latencies_s"]) == 4 for r in full["runs"])
    assert "| matmul.64" in (out / "report.md").read_text()
    import matplotlib.image

    for name in ("best_vs_measurements.png", "best_vs_time.png"):
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 0.01

    # A rerun over the same directory measures nothing new and reports the same numbers
    # (through the command line's entry point, in this process).
    sizes = {p: os.path.getsize(p) for p in out.glob("runs/*/*/history.jsonl")}
    again = chameleon_in_process(*args)
    assert again.returncode == 0, again.stderr
    assert {p: os.path.getsize(p) for p in sizes} == sizes
    resumed = json.loads(again.stdout.strip().splitlines()[-1])
    assert resumed["per_workload"]["matmul.64"]["strategies"]["sa"]["best_gflops_median"] == pytest.approx(
        summary["per_workload"]["matmul.64"]["strategies"]["sa"]["best_gflops_median"]
    )


def test_a_strategy_learns_from_the_record_store_beside_itself_cold_and_adds_nothing_to_it(tmp_path, tuned_matmul):
    from chameleon_tune.model.record_store import summary

    # `chameleon tune --workload matmul.128 --strategy random --trials 6` (conftest.py; test_cli.py checks its summary)
    tuned, source, _ = tuned_matmul
    assert tuned.returncode == 0, tuned.stderr
    store = tmp_path / "store"
    assert chameleon("records", "import", str(source), "--records", str(store)).returncode == 0
    before = summary(str(store))
    out = tmp_path / "cmp"
    args = ["compare", "--workload", "matmul.64", "--strategies", "sa,sa+records", "--trials", "4", "--seeds", "1",
            "--batch-size", "2", "--number", "1", "--repeat", "2", "--min-repeat-ms", "5", "--out", str(out)]  # fmt: skip
    result = chameleon_in_process(*args, "--records", str(store), "--json")
    assert result.returncode == 0, result.stderr
    compared = json.loads(result.stdout.strip().splitlines()[-1])
    assert compared["strategies"] == ["sa", "sa+records"] and compared["records"] == {"workloads": 1, "trials": 6}
    warm = json.loads((out / "runs" / "matmul.64" / "sa+records-s0" / "result.json").read_text())
    cold = json.loads((out / "runs" / "matmul.64" / "sa-s0" / "result.json").read_text())
    assert warm["learned_from"] == ["matmul.128"] and warm["started_from"] == "matmul.128" and "learned_from" not in cold
    # The warm run measured the source's best, translated, first; the store is as it was.
    from chameleon_tune.database import History
    from chameleon_tune.model.transfer import translate
    from chameleon_tune.space import Space

    def history(folder):
        return History(Space.from_json(json.loads((folder / "space.json").read_text())), str(folder / "history.jsonl"))

    best = history(source).top(1)[0].config
    warm_history = history(out / "runs" / "matmul.64" / "sa+records-s0")
    first = [list(t.config) for t in warm_history.trials[:2]]  # the batch of starting configurations
    assert list(translate(best, history(source).space, warm_history.space)) in first
    assert summary(str(store)) == before

    empty = chameleon(*args[:-2], "--out", str(tmp_path / "cmp2"), "--records", str(tmp_path / "none"))
    assert empty.returncode == 2 and "holds no records" in empty.stderr and len(empty.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--suite", "mobilenet"], "unknown suite"),
        (["--workload", "resnet18.L99"], "unknown workload"),
        (["--workload", "matmul.64", "--strategies", "sa,magic"], "unknown strategy"),
        (["--workload", "matmul.64", "--trials", "0"], "at least 1"),
        (["--workload", "matmul.64", "--seeds", "0"], "at least 1"),
        (["--workload", "matmul.64", "--strategies", "random", "--reference", "sa"], "not among"),
        (["--workload", "matmul.64", "--out", "/proc/forbidden/x"], "cannot write"),
        (["--workload", "matmul.64", "--suite", "resnet18"], "not allowed with"),
        (["--workload", "matmul.64", "--strategies", "sa,sa+records"], "NAME+records"),
        (["--workload", "matmul.64", "--strategies", "sa", "--records", "store"], "NAME+records"),
        (["--workload", "matmul.64", "--strategies", "magic+records", "--records", "store"], "unknown strategy"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    out_args = [] if "--out" in args else ["--out", str(tmp_path / "never")]
    result = chameleon("compare", *args, *out_args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()
