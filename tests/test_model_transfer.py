"""What tasks pass on to each other (starting schedules, a shared cost model), and the --until
goal's bookkeeping (no TVM)."""

import numpy as np
import pytest

from chameleon_tune.cost_model import XGBoostCostModel
from chameleon_tune.model.goal import Goal, parse_until
from chameleon_tune.model.transfer import compatible, starting_configs, translate
from chameleon_tune.space import Knob, Space, perfect_tilings


def conv_like(extent: int, unroll=(0, 16, 64)) -> Space:
    return Space((Knob("tile0", tuple(perfect_tilings(extent, 4))), Knob("categorical0", unroll)))


def test_translation_takes_the_nearest_tiling_and_the_same_value():
    small, large = conv_like(64), conv_like(256)
    config = (small.knobs[0].choices.index((4, 2, 1, 8)), 1)
    out = translate(config, small, large)
    tiling = large.knobs[0].choices[out[0]]
    assert np.prod(tiling) == 256 and tiling[-1] == 8 and tiling[1:3] == (2, 1)  # only the outer factor grows
    assert large.knobs[1].choices[out[1]] == 16


def test_spaces_of_other_sketches_are_not_compatible():
    assert compatible(conv_like(64), conv_like(128))
    assert not compatible(conv_like(64), Space((Knob("tile0", tuple(perfect_tilings(64, 2))), Knob("categorical0", (0, 16)))))
    assert not compatible(conv_like(64), Space((Knob("tile0", tuple(perfect_tilings(64, 4))),)))


def test_starting_configs_come_from_the_most_similar_measured_task_best_first():
    target = conv_like(112)
    far, near = conv_like(16), conv_like(128)
    near_best = [(near.knobs[0].choices.index((2, 4, 2, 8)), 2), (near.knobs[0].choices.index((1, 1, 8, 16)), 0)]
    measured = [(far, [(0, 0)]), (near, near_best), (conv_like(120), [])]  # the last was never measured
    configs, source = starting_configs(target, measured, count=2)
    assert source == 1 and len(configs) == 2
    assert np.array_equal(configs[0], translate(near_best[0], near, target))
    assert target.knobs[0].choices[configs[0][0]][-1] == 8


def _synthetic_latencies(space: Space, configs: np.ndarray) -> np.ndarray:
    """Fastest with an inner tile of 16 and unrolling 16, whatever the extent."""
    inner = np.array([space.knobs[0].choices[c][-1] for c in configs[:, 0]], dtype=float)
    unroll = np.array([space.knobs[1].choices[c] for c in configs[:, 1]], dtype=float)
    extent = float(np.prod(space.knobs[0].choices[0]))
    return extent * 1e-6 * (1 + np.abs(np.log2(inner / 16)) + 0.5 * (unroll != 16))


def test_a_shared_cost_model_ranks_a_task_it_never_measured():
    rng = np.random.default_rng(0)
    seen = [conv_like(e) for e in (64, 128)]
    related = [(s, c, _synthetic_latencies(s, c)) for s in seen for c in [s.sample(rng, 40)]]
    unseen = conv_like(512)
    shared = XGBoostCostModel(unseen, related=lambda: related)
    shared.fit(np.zeros((0, 2), dtype=np.int64), np.zeros(0))  # nothing of its own measured yet
    assert shared.trained
    candidates = np.array(list(unseen.configurations()))
    top = candidates[np.argsort(-shared.predict(candidates))[:5]]
    assert np.all(_synthetic_latencies(unseen, top) == _synthetic_latencies(unseen, candidates).min())
    # The same knobs by index alone mean nothing in another space: a task's own model has no such start.
    assert not XGBoostCostModel(unseen).trained


def test_other_tasks_weigh_less_as_a_task_measures_its_own():
    """Three other tasks of the same loops (the same kernel on other hardware: features cannot
    tell them apart) agree on unrolling 16; this task's own 48 measurements say 64. With a prior
    of 2, the others weigh 2/50 each and the task's own data decide its ranking; weighed equally
    throughout, their 180 measurements outvote its 48."""
    from chameleon_tune.cost_model import CostModelConfig

    rng = np.random.default_rng(0)
    own = conv_like(512)
    related = [(own, c, _synthetic_latencies(own, c)) for c in [own.sample(rng, 60) for _ in range(3)]]
    configs = own.sample(rng, 48)
    unroll = np.array([own.knobs[1].choices[c] for c in configs[:, 1]])
    latencies = _synthetic_latencies(own, configs) * np.where(unroll == 64, 0.5, 1.0)  # its own best unrolls 64
    candidates = np.array(list(own.configurations()))
    best_unroll = {}
    for prior in (2.0, None):
        model = XGBoostCostModel(own, CostModelConfig(transfer_prior=prior), related=lambda: related)
        model.fit(configs, latencies)
        best_unroll[prior] = own.knobs[1].choices[candidates[np.argmax(model.predict(candidates))][1]]
    assert XGBoostCostModel(own, CostModelConfig(transfer_prior=2.0)).transfer_weight(48) == pytest.approx(2 / 50)
    assert best_unroll == {2.0: 64, None: 16}


def test_a_shared_cost_model_skips_tasks_with_other_knobs():
    other = Space((Knob("tile0", tuple(perfect_tilings(64, 2))), Knob("categorical0", (0, 16))))
    configs = other.sample(np.random.default_rng(1), 10)
    model = XGBoostCostModel(conv_like(64), related=lambda: [(other, configs, np.ones(10))])
    model.fit(np.zeros((0, 2), dtype=np.int64), np.zeros(0))
    assert not model.trained


def test_no_start_without_a_compatible_measured_task():
    configs, source = starting_configs(conv_like(64), [(Space((Knob("sketch", (0, 1)),)), [(1,)])])
    assert source is None and configs.shape == (0, 2)


@pytest.mark.parametrize("spec, seconds", [("8ms", 8e-3), ("0.5 s", 0.5), ("250us", 250e-6), ("onnxruntime", None)])
def test_until_accepts_references_and_latencies(spec, seconds):
    name, latency = parse_until(spec)
    assert latency == pytest.approx(seconds) if seconds else latency is None and name == spec


@pytest.mark.parametrize("spec", ["8", "fast", "-3ms", "0ms", "tensorrt"])
def test_until_rejects_anything_else_in_one_line(spec):
    with pytest.raises(ValueError, match="--until") as info:
        parse_until(spec)
    assert "\n" not in str(info.value)


def test_goal_checks_first_then_only_when_the_calibrated_estimate_beats_it_and_has_dropped():
    goal = Goal("10ms", 10e-3)
    assert goal.due(50e-3)  # nothing calibrated yet: one build says how estimate and model relate
    assert not goal.check(lambda: (lambda: __import__("time").sleep(0.02)), 8e-3, tuning_s=1.0, trials=10)
    assert goal.calibration > 2  # the real build is slower than the sum of its kernels here
    assert not goal.due(7.9e-3)  # calibrated, still slower than the goal
    assert goal.due(3e-3) and not goal.checks[-1].beaten
    assert not Goal("10ms", 10e-3, calibration=1.0, checks=goal.checks).due(7.9e-3)  # has not dropped 3% since the check


def test_a_reference_goal_is_timed_again_after_a_minute_of_tuning():
    import time

    from chameleon_tune.model.goal import RETIME_S

    delay = [0.004]
    goal = Goal("onnxruntime", 0.004, reference=lambda: time.sleep(delay[0]), calibration=1.0)
    goal.refresh(RETIME_S / 2)
    assert goal.goal_s == 0.004 and goal.retimes == 0  # timed recently enough
    delay[0] = 0.008  # the machine slowed down: the reference too
    assert not goal.due(0.006)  # against the stale timing the estimate never calls a check
    goal.refresh(RETIME_S + 1)
    assert goal.retimes == 1 and goal.goal_s >= 0.008 and goal.due(0.006)
    assert goal.to_json()["reference_retimed"] == 1


def test_the_record_store_keeps_every_readable_trial_and_skips_what_is_damaged(tmp_path, capsys):
    import os

    from chameleon_tune.model.record_store import RecordStore, clear, summary, target_key

    key = target_key('{"kind":"llvm","mcpu":"znver5","num-cores":2}', cache_flush=True)
    assert key.startswith("llvm-znver5-2-cold-") and key != target_key('{"kind":"llvm","mcpu":"znver5","num-cores":2}', False)
    store = RecordStore(str(tmp_path), key)
    a, b = conv_like(64), conv_like(256)
    run_a = store.writer("hash-a", "conv_a", a, str(tmp_path / "run1" / "tasks" / "00-conv_a"))
    for config, latency in (((3, 0), 2e-3), ((5, 1), 1e-3), ((7, 2), None)):
        run_a.append(config, latency)
    run_b = store.writer("hash-b", "conv_b", b, str(tmp_path / "run2" / "tasks" / "00-conv_b"))
    run_b.append((1, 1), 4e-3)
    with open(run_a.path, "a") as f:
        f.write('{"config": [2, 1], "latency')  # a run killed mid-line

    (stored_a, stored_b) = sorted(store.load(), key=lambda w: w.name)
    assert "skipped 1 unreadable line" in capsys.readouterr().err
    assert stored_a.name == "conv_a" and stored_a.space == a and stored_a.configs.tolist() == [[3, 0], [5, 1], [7, 2]]
    assert stored_a.latencies[1] == 1e-3 and np.isinf(stored_a.latencies[2])  # a failure is kept, as a failure
    assert stored_a.best(2).tolist() == [[5, 1], [3, 0]]
    assert len(stored_a.excluding(str(tmp_path / "run1")).latencies) == 0  # a resumed run has these already
    assert len(stored_b.excluding(str(tmp_path / "run1")).latencies) == 1

    # a damaged space file loses that workload only
    with open(os.path.join(os.path.dirname(run_b.path), "space.json"), "w") as f:
        f.write("{not json")
    assert [w.name for w in store.load()] == ["conv_a"]
    assert "unreadable space.json" in capsys.readouterr().err
    assert [(r["workload"], r["trials"], r["valid"]) for r in summary(str(tmp_path))] == [("conv_a", 3, 2)]
    assert clear(str(tmp_path)) == 1 and store.load() == []


def test_a_task_learns_from_the_nearest_compatible_stored_workloads_only():
    from chameleon_tune.model.record_store import StoredWorkload
    from chameleon_tune.model.transfer import STORED_NEIGHBOURS, nearest_stored

    def stored(name, space, n=3):
        return StoredWorkload(name, name, space, np.zeros((n, space.n_knobs), dtype=np.int64), np.ones(n), ("r",) * n)

    other_knobs = Space((Knob("tile0", tuple(perfect_tilings(64, 2))), Knob("categorical0", (0, 16))))
    pool = [stored("far", conv_like(1024)), stored("near", conv_like(128)), stored("other", other_knobs), stored("empty", conv_like(64), 0)]
    pool += [stored(f"x{i}", conv_like(2 ** (11 + i))) for i in range(STORED_NEIGHBOURS)]
    chosen = nearest_stored(conv_like(64), pool)
    assert [w.name for w in chosen[:2]] == ["near", "far"] and len(chosen) == STORED_NEIGHBOURS
    assert not {"other", "empty"} & {w.name for w in chosen}
