"""Recorded Kernel Tuner spaces: parsing, the knob space, budget accounting, bad files."""

import gzip
import json

import numpy as np
import pytest

from chameleon_tune.database import History
from chameleon_tune.measure.replay import CacheFileError, ReplayMeasurer, cache_key, load_cache
from chameleon_tune.search.base import TaskContext, make_strategy, strategy_names
from chameleon_tune.tuner import tune

NEEDS_TVM = {"evolutionary"}


def make_cache(path, gz=False):
    """A 6x5x4 space with a known optimum, invalid and failed entries, and one missing."""
    params = {"block_x": [16, 32, 64, 128, 256, 512], "tile": [1, 2, 4, 8, 16], "unroll": [0, 1, 2, 3]}
    keys = list(params)
    cache = {}
    for i, bx in enumerate(params["block_x"]):
        for j, t in enumerate(params["tile"]):
            for k, u in enumerate(params["unroll"]):
                record = {"block_x": bx, "tile": t, "unroll": u, "compile_time": 200.0, "benchmark_time": 50.0}
                if (i, j, k) == (5, 4, 3):
                    continue  # never measured: invalid when replayed
                if t == 16 and bx == 512:
                    record["time"] = "InvalidConfig"
                elif (i + j + k) % 11 == 0:
                    record["time"] = "CompilationFailedConfig"
                else:
                    record["time"] = 1.0 + (i - 3) ** 2 + (j - 2) ** 2 + 0.5 * (k - 1) ** 2
                    record["times"] = [record["time"]] * 3
                cache[cache_key([bx, t, u])] = record
    data = {"device_name": "test", "kernel_name": "k", "problem_size": [1024], "tune_params_keys": keys,
            "tune_params": params, "objective": "time", "cache": cache}  # fmt: skip
    text = json.dumps(data).encode()
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def test_parsing_and_the_space(tmp_path):
    cache = load_cache(str(make_cache(tmp_path / "c.json")))
    assert cache.space.names == ["block_x", "tile", "unroll"]
    assert cache.space.knobs[0].choices == (16, 32, 64, 128, 256, 512)
    # restricted to the 119 recorded configurations, errors included; the missing one is outside
    assert len(cache.space.valid) == 119 and cache.space.valid_mask(np.array([[5, 4, 3], [5, 4, 2]])).tolist() == [False, True]
    assert cache.optimum == 1.0
    gz = load_cache(str(make_cache(tmp_path / "c.json.gz", gz=True)))
    assert gz.records == cache.records


def test_lookup_errors_and_simulated_time(tmp_path):
    measurer = ReplayMeasurer(load_cache(str(make_cache(tmp_path / "c.json"))))
    best, invalid, failed, missing = measurer.measure(np.array([[3, 2, 1], [5, 4, 0], [0, 0, 0], [5, 4, 3]]))
    assert best.valid and best.latency_s == pytest.approx(1e-3)
    assert invalid.error == "invalid" and "InvalidConfig" in invalid.error_msg
    assert failed.error == "build"
    assert missing.error == "invalid" and "not in the cache" in missing.error_msg
    # three recorded entries charged 200 ms compile + 50 ms benchmark each; the missing one nothing
    assert measurer.build_s == pytest.approx(0.6) and measurer.run_s == pytest.approx(0.15)


@pytest.mark.parametrize("name", [n for n in strategy_names() if n not in NEEDS_TVM])
def test_every_strategy_replays_within_budget(tmp_path, name):
    measurer = ReplayMeasurer(load_cache(str(make_cache(tmp_path / "c.json"))))
    history = History(measurer.space)
    strategy = make_strategy(name, TaskContext(measurer.space, history, seed=0))
    result = tune(measurer, strategy, history, trials=40, batch_size=8)
    assert result.trials == 40 and len({t.config for t in history.trials}) == 40
    # the one configuration missing from the cache is outside the space: every evaluation is a recorded one
    assert not any(t.result.error_msg == "not in the cache" for t in history.trials)
    assert measurer.build_s == pytest.approx(0.2 * 40)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"tune_params": {}, "cache": {}}).encode(), "lacks tune_params_keys"),
        (json.dumps({"tune_params_keys": ["a", "b"], "tune_params": {"a": [1]}, "objective": "time", "cache": {}}).encode(), "disagree"),
        (json.dumps({"tune_params_keys": ["a"], "tune_params": {"a": []}, "objective": "time", "cache": {}}).encode(), "empty"),
        (json.dumps({"tune_params_keys": ["a"], "tune_params": {"a": [1]}, "objective": "time", "cache": {"1": {"time": "InvalidConfig"}}}).encode(), "no valid"),
        (json.dumps({"tune_params_keys": ["a"], "tune_params": {"a": [1]}, "objective": "time", "cache": {"2": {"time": 1.0}}}).encode(), "not a configuration"),
    ],
)
def test_bad_files_are_named_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(CacheFileError, match=message):
        load_cache(str(path))


def test_fake_gzip_is_an_error(tmp_path):
    path = tmp_path / "bad.json.gz"
    path.write_bytes(b"{}")
    with pytest.raises(CacheFileError, match="not gzip"):
        load_cache(str(path))


def test_replay_cli_writes_the_report(tmp_path):
    import subprocess
    import sys

    cache = make_cache(tmp_path / "c.json.gz", gz=True)
    out = subprocess.run(
        [sys.executable, "-m", "chameleon_tune.cli", "replay", str(cache), "--strategies", "sa,random",
         "--budget", "30", "--seeds", "2", "--out", str(tmp_path / "rep"), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(summary["strategies"]) == {"sa", "random"} and summary["optimum"] == pytest.approx(1e-3)
    for name in ("report.md", "summary.json", "fraction_of_optimum.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 100
    runs = json.loads((tmp_path / "rep" / "summary.json").read_text())["runs"]
    assert len(runs) == 4 and all(len(r["fraction"]) == 30 for r in runs)
    assert all(0 <= f <= 1 for r in runs for f in r["fraction"])
    sa_areas = [sum(r["fraction"]) / 30 for r in runs if r["strategy"] == "sa"]
    assert summary["strategies"]["sa"]["mean_fraction"]["mean"] == pytest.approx(sum(sa_areas) / 2)
    assert "mean fraction (± s.e.)" in (tmp_path / "rep" / "report.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategies", "magic"], "unknown strategy"),
        (["--strategies", "evolutionary"], "needs a TVM workload"),
        (["--budget", "0"], "at least 1"),
        (["--out", "/proc/forbidden/x"], "cannot write"),
    ],
)
def test_replay_cli_bad_input(tmp_path, args, message):
    import subprocess
    import sys

    cache = make_cache(tmp_path / "c.json")
    out = subprocess.run([sys.executable, "-m", "chameleon_tune.cli", "replay", str(cache), *args], capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_export_cache_round_trip(tmp_path):
    from chameleon_tune.measure.replay import export_cache
    from conftest import SyntheticMeasurer

    measurer = SyntheticMeasurer()
    history = History(measurer.space)
    tune(measurer, make_strategy("random", TaskContext(measurer.space, history, seed=0)), history, trials=30, batch_size=10)
    path = str(tmp_path / "exported.json.gz")
    export_cache(measurer.space, history.trials, path, kernel_name="synthetic")
    cache = load_cache(path)
    assert cache.space.names == measurer.space.names and len(cache.records) == 30
    replayed = ReplayMeasurer(cache).measure(history.configs)
    for trial, again in zip(history.trials, replayed):
        assert again.valid == trial.result.valid
        if again.valid:
            assert again.latency_s == pytest.approx(trial.result.latency_s)
        else:
            assert again.error == "invalid"


# -- Kernel Tuner's own strategies ---------------------------------------------------
def test_kernel_tuner_strategies_are_counted_and_charged_like_ours(tmp_path):
    pytest.importorskip("kernel_tuner")
    from chameleon_tune.evaluation.replay import replay

    cache = load_cache(str(make_cache(tmp_path / "c.json.gz", gz=True)))
    summary = replay(cache, ["kt:random_sample", "kt:genetic_algorithm", "random"], budget=30, seeds=2, batch_size=8)
    runs = {(r["strategy"], r["seed"]): r for r in summary["runs"]}
    for (name, seed), run in runs.items():
        # unique recorded configurations, up to the budget, each charged 250 ms
        assert run["evaluations"] == 30 and run["simulated_s"][-1] == pytest.approx(30 * 0.25), (name, seed)
    # the same seed is the same run; another seed another
    again = replay(cache, ["kt:genetic_algorithm"], budget=30, seeds=1)["runs"][0]
    assert again["fraction"] == runs[("kt:genetic_algorithm", 0)]["fraction"]
    assert runs[("kt:genetic_algorithm", 0)]["fraction"] != runs[("kt:genetic_algorithm", 1)]["fraction"]
    assert summary["strategies"]["kt:genetic_algorithm"]["evaluations_median"] == 30


def test_kernel_tuner_sees_the_recorded_space_errors_included(tmp_path):
    pytest.importorskip("kernel_tuner")
    from chameleon_tune.evaluation.kt_strategy import kernel_tuner_order

    cache = load_cache(str(make_cache(tmp_path / "c.json")))
    order = kernel_tuner_order(cache, "random_sample", seed=0, budget=500)
    # all 119 recorded configurations, failed ones too, and not the missing (5, 4, 3)
    assert len(order) == 119 == len({tuple(c) for c in order}) and cache.space.valid_mask(order).all()
    results = ReplayMeasurer(cache).measure(order)
    assert sum(r.error == "build" for r in results) > 0 and not any(r.error_msg == "not in the cache" for r in results)


def test_replay_cli_runs_kernel_tuner_strategies(tmp_path):
    pytest.importorskip("kernel_tuner")
    from chameleon_tune.cli import main

    cache = make_cache(tmp_path / "c.json")
    out = tmp_path / "rep"
    assert main(["replay", str(cache), "--strategies", "sa,kt:random_sample", "--budget", "20", "--seeds", "2", "--out", str(out)]) == 0
    assert "| kt:random_sample | " in (out / "report.md").read_text()


def test_unknown_or_failing_kernel_tuner_strategy_is_one_line(tmp_path, capsys):
    pytest.importorskip("kernel_tuner")
    from chameleon_tune.cli import main

    assert main(["replay", str(make_cache(tmp_path / "c.json")), "--strategies", "kt:magic", "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown Kernel Tuner strategy 'kt:magic'" in err and "kt:pso" in err
    # a strategy that fails inside Kernel Tuner (brute_force takes no evaluation budget) is one line too
    assert main(["replay", str(make_cache(tmp_path / "c.json")), "--strategies", "kt:brute_force", "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Kernel Tuner's brute_force failed" in err


def test_kt_strategy_without_kernel_tuner_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    import sys

    from chameleon_tune.cli import main

    monkeypatch.setitem(sys.modules, "kernel_tuner", None)  # import kernel_tuner now fails, as when not installed
    monkeypatch.setitem(sys.modules, "kernel_tuner.interface", None)
    code = main(["replay", str(make_cache(tmp_path / "c.json")), "--strategies", "sa,kt:pso", "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "kt:pso" in err and 'pip install -e ".[kerneltuner]"' in err
    assert not (tmp_path / "rep" / "report.md").exists()


def test_a_replay_carries_a_policy_and_measurements_from_another_run(tmp_path):
    from chameleon_tune.evaluation.replay import replay_run
    from chameleon_tune.search.chameleon import POLICY_FILE

    cache = load_cache(str(make_cache(tmp_path / "c.json")))
    source = History(cache.space)
    cold = replay_run(cache, "chameleon", 0, 40, 8, work_dir=str(tmp_path), history=source)
    assert len(source) == cold["evaluations"] == 40 and (tmp_path / POLICY_FILE).exists()
    warm = replay_run(cache, "chameleon", 1, 40, 8, warm_start=str(tmp_path / POLICY_FILE))
    asked = []
    shared = replay_run(cache, "chameleon", 1, 40, 8, related=lambda: asked.append(1) or [(cache.space, source.configs, source.latencies)])
    assert warm["evaluations"] == shared["evaluations"] == 40 and asked  # the cost model asked for them
    # the source run found the optimum; a cost model that knows its measurements goes straight there
    assert cold["fraction"][-1] == 1.0 and shared["fraction"][15] == 1.0
