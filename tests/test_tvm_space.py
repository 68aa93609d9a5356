"""The TVM adapter: knobs from MetaSchedule sketches, configurations <-> schedules."""

import numpy as np
import pytest

from chameleon_tune.space import Knob, Space, perfect_tilings


def _knob(space, prefix):
    return [k for k in space.knobs if k.name.startswith(prefix)]


def test_matmul_space_has_every_legal_tiling(matmul_space):
    space = matmul_space.space
    tiles = _knob(space, "tile")
    # M and N of a 64^3 matmul split 4 ways, K 2 ways (innermost <= 64)
    assert sorted(len(k) for k in tiles) == sorted([84, 84, 7])
    assert set(tiles[0].choices) == set(perfect_tilings(64, 4, 64))
    assert _knob(space, "categorical")[0].choices == (0, 16, 64, 512)
    assert space.knobs[0].name == "sketch" and len(space.knobs[0]) == len(matmul_space.sketches)


def test_config_trace_round_trip(matmul_space):
    space = matmul_space.space
    for config in space.sample(np.random.default_rng(3), 10):
        sch, reason = matmul_space.schedule(config)
        assert reason is None, reason
        # the schedule's own trace maps back to the very same configuration
        assert tuple(matmul_space.config_of(sch)) == space.key(config)


def test_different_configs_give_different_programs(matmul_space):
    space = matmul_space.space
    a, b = space.sample(np.random.default_rng(4), 2)
    sa, _ = matmul_space.schedule(a)
    sb, _ = matmul_space.schedule(b)
    assert sa.mod.script() != sb.mod.script()


def test_invalid_configuration_is_a_result_not_a_crash(matmul_space, monkeypatch):
    space = matmul_space.space
    tile = next(i for i, k in enumerate(space.knobs) if k.name.startswith("tile"))
    # A 2-way "tiling" of a 4-way split cannot be replayed.
    broken = Knob(space.knobs[tile].name, ((8, 8),) + space.knobs[tile].choices[1:])
    knobs = space.knobs[:tile] + (broken,) + space.knobs[tile + 1 :]
    monkeypatch.setattr(matmul_space, "space", Space(knobs, space.conditions))
    config = np.zeros(space.n_knobs, dtype=np.int64)
    sch, reason = matmul_space.schedule(config)
    assert sch is None
    assert reason and "\n" not in reason


def test_postprocessor_rejection_is_invalid(matmul_space, monkeypatch):
    class Reject:
        def apply(self, sch):
            return False

    monkeypatch.setattr(matmul_space, "postprocs", [Reject()])
    sch, reason = matmul_space.schedule(matmul_space.space.sample(np.random.default_rng(0), 1)[0])
    assert sch is None and "Reject" in reason


def test_conv2d_space_of_the_paper_layer():
    from chameleon_tune.tvm_space import TVMSpace, host_target
    from chameleon_tune.workloads import get_workload

    tvm_space = TVMSpace(get_workload("resnet18.L2").prim_func(), host_target(num_cores=2))
    space = tvm_space.space
    tiles = {len(k) for k in _knob(space, "tile")}
    assert {84, 80, 7, 2} <= tiles  # 64 channels, 56 rows/cols, 64 in-channels split 2-way, 3x3 kernel
    compute_at = _knob(space, "compute_at")
    assert compute_at and compute_at[0].choices[:2] == (-2, -1)  # inline, root, then loops
    config = space.sample(np.random.default_rng(0), 1)[0]
    sch, reason = tvm_space.schedule(config)
    assert reason is None
    assert "parallel" in sch.mod.script()  # postprocessors ran


@pytest.mark.parametrize("spec", ["llvm"])
def test_host_target_detects_the_cpu(spec):
    from chameleon_tune.tvm_space import parse_target

    target = parse_target(spec)
    assert target.kind.name == "llvm"
    assert str(target.attrs["mcpu"])  # never generic x86-64 code
