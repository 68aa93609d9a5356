"""Measuring through a real TVM RPC tracker and two real loopback servers, one killed mid-run.

One tracker and its servers serve the whole module (each start imports TVM for
seconds); a server that a test killed is started again before the next test.
"""

import json
import os
import time

import numpy as np
import psutil
import pytest

from chameleon_tune.api import UsageError, tune_workload
from chameleon_tune.cli import main
from chameleon_tune.measure.loopback import LoopbackDevices, free_port
from chameleon_tune.measure.types import MeasureOptions, RunnerConfig
from failing_kernels import failing_module
from test_cli import chameleon

KEY = "chameleon-test"
OPTIONS = MeasureOptions(run_timeout_s=5.0)


@pytest.fixture(scope="module")
def cluster():
    with LoopbackDevices(2, key=KEY) as c:
        yield c


@pytest.fixture
def devices(cluster):
    """The module's tracker with both servers up."""
    for i, server in enumerate(cluster.servers):
        if server.poll() is not None:
            cluster.restart(i)
    return cluster


def rpc(devices: LoopbackDevices) -> RunnerConfig:
    return RunnerConfig("rpc", devices.tracker, devices.key, build_workers=1)


def check_records(work_dir, trials: int) -> None:
    """Every trial is in history.jsonl, valid, and in MetaSchedule's database with the same timings."""
    from tvm.s_tir import meta_schedule as ms

    with open(os.path.join(work_dir, "history.jsonl")) as f:
        history = [json.loads(line) for line in f]
    assert len(history) == trials
    assert len({tuple(t["config"]) for t in history}) == trials
    for t in history:
        assert t["error"] is None, t["error_msg"]
        assert len(t["run_secs"]) == OPTIONS.repeat and t["latency_s"] == min(t["run_secs"])
    records = ms.database.JSONDatabase(work_dir=str(work_dir)).get_all_tuning_records()
    assert sorted(tuple(float(s) for s in r.run_secs) for r in records) == sorted(tuple(t["run_secs"]) for t in history)


def test_cli_tunes_through_two_servers(devices, tmp_path, capsys):
    code = main([
        "tune", "--workload", "matmul.64", "--strategy", "random", "--trials", "4", "--run-timeout", "5",
        "--work-dir", str(tmp_path), "--runner", "rpc", "--tracker", devices.tracker, "--device-key", KEY,
        "--build-workers", "1", "--json",
    ])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["trials"] == 4 and summary["valid"] == 4
    check_records(tmp_path, 4)


def test_remote_kernels_are_checked_and_hangs_time_out(devices, tmp_path):
    import tvm

    from chameleon_tune.measure.builder import build_artifact
    from chameleon_tune.measure.rpc_runner import RPCRunner
    from chameleon_tune.tvm_space import host_target
    from chameleon_tune.workloads import get_workload

    # Compiled here, in this process: the runner alone is under test.
    modules = {"correct": tvm.IRModule({"main": get_workload("matmul.64").prim_func()})}
    modules.update((kind, failing_module(kind)) for kind in ("wrong", "hang"))
    target = str(host_target(num_cores=2))
    kinds = list(modules)
    paths = [build_artifact(modules[kind], target, str(tmp_path / f"{kind}.so")) for kind in kinds]
    results = {}

    def done(index, result) -> None:
        results[kinds[index]] = result

    runner = RPCRunner(rpc(devices), MeasureOptions(run_timeout_s=3.0))
    try:
        runner.prepare(paths[0], [((64, 64), "float32")] * 3)  # the untransformed matmul is the reference
        runner.run_all(paths, done)
    finally:
        runner.close()
    assert results["correct"].error is None and len(results["correct"].run_secs) == MeasureOptions().repeat
    assert results["wrong"].error == "wrong_result" and "differs" in results["wrong"].error_msg
    assert results["hang"].error == "timeout" and "timed out" in results["hang"].error_msg
    devices.wait_free(2, timeout_s=30)  # a session that timed out is ended; the server serves on


def test_devices_lists_keys_and_free_devices(devices, capsys):
    devices.wait_free(2)
    assert main(["devices", "--tracker", devices.tracker, "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["keys"][KEY] == {"total": 2, "free": 2, "pending": 0}
    assert len(listing["devices"]) == 2 and {d["key"] for d in listing["devices"]} == {KEY}
    assert main(["devices", "--tracker", devices.tracker]) == 0
    assert KEY in capsys.readouterr().out


def test_unknown_key_is_refused_before_any_work(devices, tmp_path):
    with pytest.raises(UsageError, match="no device is registered under key 'nope'.*keys with devices: " + KEY):
        tune_workload("matmul.64", trials=2, work_dir=str(tmp_path / "w"), runner=RunnerConfig("rpc", devices.tracker, "nope"))
    assert not os.path.exists(tmp_path / "w")


def test_unreachable_tracker_is_one_line_and_exit_2(tmp_path):
    port = free_port()  # nothing listens there
    out = chameleon("tune", "--workload", "matmul.64", "--work-dir", str(tmp_path / "w"),
                    "--runner", "rpc", "--tracker", f"127.0.0.1:{port}", "--device-key", KEY)  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach the RPC tracker at 127.0.0.1:{port}" in lines[0]
    assert not os.path.exists(tmp_path / "w")
    with pytest.raises(UsageError, match="cannot reach"):
        tune_workload("matmul.64", trials=2, runner=RunnerConfig("rpc", f"127.0.0.1:{port}", KEY))


def test_compare_and_tune_model_measure_through_the_tracker(devices, tmp_path, capsys):
    import torch

    from chameleon_tune.model.scheduler import SchedulerConfig
    from chameleon_tune.model.tuner import tune_model
    from test_tune_model import _tiny

    code = main([
        "compare", "--workload", "matmul.64", "--strategies", "random", "--trials", "2", "--seeds", "1",
        "--run-timeout", "5", "--out", str(tmp_path / "cmp"), "--runner", "rpc", "--tracker", devices.tracker,
        "--device-key", KEY, "--build-workers", "1", "--json",
    ])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["runner"]["kind"] == "rpc"
    check_records(tmp_path / "cmp" / "runs" / "matmul.64" / "random-s0", 2)

    model, x = _tiny()
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "tiny.pt2")
    result = tune_model(str(tmp_path / "tiny.pt2"), "random", trials=4, scheduler=SchedulerConfig(round_trials=2), output=str(tmp_path / "model"),
                        options=OPTIONS, runner=rpc(devices), references=("pytorch",))  # fmt: skip
    assert result.summary["trials"] == 4 and result.summary["max_abs_error"] <= result.summary["tolerance"]
    assert all(t.valid for t in result.tasks if t.trials)


# Last: the test that kills a server (the next test would have to wait for it to start again).
def kill_a_busy_server(cluster: LoopbackDevices) -> int | None:
    """Kill the server whose session began last: it is in the middle of measuring a job."""
    time.sleep(0.3)  # the session of the job that just finished closes meanwhile
    started = {}
    for i, server in enumerate(cluster.servers):
        sessions = psutil.Process(server.pid).children(recursive=True)[1:]  # [0] is the serving process
        if sessions:
            started[i] = max(p.create_time() for p in sessions)
    if not started:
        return None
    index = max(started, key=started.get)
    cluster.kill(index)
    return index


def test_api_run_with_a_server_killed_mid_run_loses_no_trial(devices, tmp_path, monkeypatch):
    from chameleon_tune.measure import rpc_runner
    from chameleon_tune.measure.worker import IsolatedWorker

    outcomes, finished, killed = [], [], []
    call = IsolatedWorker.call

    def recording_call(self, fn, *args, **kwargs):
        value = call(self, fn, *args, **kwargs)
        if fn is rpc_runner.check_and_time_on_device:
            outcomes.append(value[0])
        return value

    def on_trial(trial) -> None:
        finished.append(trial)
        if len(finished) == 2:
            killed.append(kill_a_busy_server(devices))

    monkeypatch.setattr(IsolatedWorker, "call", recording_call)
    # Long timing runs (3 x 300 ms) keep each device busy well past the kill.
    options = MeasureOptions(run_timeout_s=10.0, min_repeat_ms=300)
    result = tune_workload(
        "matmul.64", "random", trials=6, batch_size=6, seed=2, work_dir=str(tmp_path), options=options,
        runner=rpc(devices), on_trial=on_trial,
    )  # fmt: skip
    assert killed and killed[0] is not None
    assert rpc_runner.LOST in outcomes  # the job in flight there was retried on the other device
    devices.wait_free(1)
    assert devices.free() == 1
    assert result.trials == 6 and result.valid == 6
    check_records(tmp_path, 6)
