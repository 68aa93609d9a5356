"""The model pipeline's options. Winograd convolutions: which convolutions take them, and that
they compute the convolution, unscheduled and scheduled, on outputs that are not whole tiles.
The NHWC layout: every kind of convolution converted, computed correctly, scheduled correctly."""

import os

import numpy as np
import pytest
import torch
from torch import nn

from chameleon_tune.model.importer import _from_exported
from chameleon_tune.model.pipeline import Pipeline
from chameleon_tune.model.scheduler import extract_tasks
from chameleon_tune.tvm_space import host_target


class _Convs(nn.Module):
    """One eligible convolution and five that are not (stride 2, too few tiles, 1x1, depthwise,
    3 input channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Conv2d(3, 16, 3, padding=1)  # 3 input channels: too few
        self.eligible = nn.Conv2d(16, 16, 3, padding=1)  # 13x13 output: 16 tiles, not whole 4x4 ones
        self.strided = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.small = nn.Conv2d(16, 16, 3, padding=1)  # 7x7 output: 4 tiles, too few
        self.pointwise = nn.Conv2d(16, 16, 1)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.image(x))
        x = torch.relu(self.eligible(x)) + x
        return self.depthwise(self.pointwise(self.small(self.strided(x))))


@pytest.fixture(scope="module")
def convs():
    torch.manual_seed(0)
    module = _Convs().eval()
    x = torch.randn(1, 3, 13, 13)
    imported = _from_exported("convs", torch.export.export(module, (x,)), module, threads=1)
    return imported, x.numpy()


def _tasks(imported, winograd: bool = False, layout: str = "NHWC"):
    target = host_target(num_cores=2)
    pipeline = Pipeline(winograd=winograd, layout=layout)
    return target, pipeline, extract_tasks(pipeline.fuse(pipeline.prepare(imported.mod), target), target)


LAYOUTS = pytest.mark.parametrize("layout", ["NCHW", "NHWC"])


@LAYOUTS
def test_only_3x3_stride_1_convolutions_with_enough_channels_take_winograd(convs, layout):
    imported, _ = convs
    _, _, tasks = _tasks(imported, winograd=True, layout=layout)
    winograd = [t.name for t in tasks if "winograd" in t.name]
    assert len(winograd) == 1 and "add" in winograd[0] and "relu" in winograd[0]  # its epilogue fused in
    assert sum("conv2d" in t.name and "winograd" not in t.name for t in tasks) == 5
    assert not any("winograd" in t.name for t in _tasks(imported, layout=layout)[2])


def _assert_computes_the_model(imported, pipeline: Pipeline, target, x: np.ndarray) -> None:
    """Compiled the tuned way (fused, weights transformed at compile time), no kernel scheduled,
    called with the input the model was imported with: PyTorch's output."""
    from tvm.s_tir import meta_schedule as ms

    from chameleon_tune.model.build import CompiledModel

    model = CompiledModel(pipeline.compile(pipeline.prepare(imported.mod), target, ms.database.MemoryDatabase()))
    (out,) = model([x])
    (expected,) = imported.reference([x])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@LAYOUTS
def test_the_winograd_model_computes_the_convolutions(convs, layout):
    imported, x = convs
    target, pipeline, _ = _tasks(imported, winograd=True, layout=layout)
    _assert_computes_the_model(imported, pipeline, target, x)


@pytest.fixture(scope="module")
def workers():
    """One builder and runner for every task of the module, as tune-model shares them between a
    model's tasks (each set of processes takes seconds to start); each task's measurer still
    builds its own reference and the runner checks against it."""
    from chameleon_tune.measure.tvm_measurer import Workers
    from chameleon_tune.measure.types import MeasureOptions

    options = MeasureOptions(number=1, repeat=1, min_repeat_ms=0)
    with Workers.open(host_target(num_cores=2), options) as shared:
        yield shared, options


def _assert_scheduled_kernels_are_correct(task, target, n: int, workers) -> None:
    """``n`` sampled schedules of ``task``: each output checked against the unscheduled kernel
    by the measurer."""
    from chameleon_tune.measure.tvm_measurer import TVMMeasurer
    from chameleon_tune.tvm_space import TVMSpace

    shared, options = workers
    space = TVMSpace(task.mod, target)
    measurer = TVMMeasurer(space, options, workers=shared)
    try:
        results = measurer.measure(space.space.sample(np.random.default_rng(0), n))
    finally:
        measurer.close()  # leaves the shared workers open
    checked = [r for r in results if r.error != "invalid"]  # a schedule its postprocessors reject is not run
    assert checked and all(r.valid for r in checked), (task.name, [r.error_msg for r in checked])


@LAYOUTS
def test_scheduled_winograd_kernels_are_correct_on_partial_tiles(convs, layout, workers):
    """Every scheduled configuration reads only what it padded."""
    imported, _ = convs
    target, _, tasks = _tasks(imported, winograd=True, layout=layout)
    (task,) = [t for t in tasks if "winograd" in t.name]
    _assert_scheduled_kernels_are_correct(task, target, 4, workers)


@LAYOUTS
@pytest.mark.parametrize("size", [7, 8, 14])
def test_every_tile_reads_inside_the_padded_input(size, layout):
    """``topi``'s tiles read ``alpha`` rows from each tile's start; on a 7x7 or 14x14 output the
    last tile would read past a padding of 1 (a scheduled kernel then returned garbage)."""
    from tvm import te

    from chameleon_tune.model import winograd

    shape = (1, 16, size, size) if layout == "NCHW" else (1, size, size, 16)
    conv = winograd.conv2d_winograd if layout == "NCHW" else winograd.conv2d_winograd_nhwc
    data, weight = te.placeholder(shape, name="data"), te.placeholder((6, 6, 16, 16), name="weight")
    out = conv(data, weight, [1, 1, 1, 1])
    assert [int(x) for x in out.shape] == list(shape)
    stages, pending = {}, [out]
    while pending:
        tensor = pending.pop()
        stages[tensor.op.name] = tensor
        pending += list(tensor.op.input_tensors)
    tiles = -(-size // winograd.TILE)
    reach = (tiles - 1) * winograd.TILE + winograd.TILE + 2  # the last tile's start + alpha
    read = stages["input_tile"].op.input_tensors[0]
    spatial = read.shape[2:] if layout == "NCHW" else read.shape[1:3]
    assert all(int(extent) >= reach for extent in spatial), read.shape


def test_tune_model_with_winograd_builds_a_checked_model(tmp_path):
    """Winograd end to end (the default, in the default NHWC): tasks tuned, the weight transform
    folded, the model checked."""
    import json

    from conftest import chameleon_in_process

    torch.manual_seed(0)
    module, x = _Convs().eval(), torch.randn(1, 3, 13, 13)
    torch.export.save(torch.export.export(module, (x,)), tmp_path / "convs.pt2")
    # random search, the cheapest: what is under test is the pipeline around the search
    out = chameleon_in_process(
        "tune-model", "--model", str(tmp_path / "convs.pt2"), "--strategy", "random", "--trials", "8", "--round-trials", "1",
        "--no-records", "--references", "pytorch", "--output", str(tmp_path / "run"), "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["pipeline"]["winograd"] and summary["pipeline"]["layout"] == "NHWC"
    assert summary["max_abs_error"] <= summary["tolerance"]
    assert "as Winograd F(4x4, 3x3)" in (tmp_path / "run" / "report.md").read_text()
    assert any("winograd" in name for name in os.listdir(tmp_path / "run" / "tasks"))


def _output_shape(task) -> tuple[int, ...]:
    from tvm.s_tir import meta_schedule as ms

    return tuple(int(d) for d in ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])[-1].shape)


def test_nhwc_converts_every_convolution_and_computes_the_model(convs):
    """Plain, strided, pointwise and depthwise convolutions all run channel-last (16 channels,
    13x13 and 7x7 images), with their epilogues fused, and the model still computes PyTorch's output."""
    imported, x = convs
    target, pipeline, tasks = _tasks(imported, layout="NHWC")
    convolutions = [t for t in tasks if "conv2d" in t.name]
    assert len(convolutions) == 6 and all(_output_shape(t)[-1] == 16 and _output_shape(t)[1] != 16 for t in convolutions)
    assert sum("relu" in t.name for t in convolutions) == 2
    _assert_computes_the_model(imported, pipeline, target, x)  # still called with its NCHW input


def test_scheduled_nhwc_kernels_are_correct(convs, workers):
    imported, _ = convs
    target, _, tasks = _tasks(imported, layout="NHWC")
    for task in tasks:
        if "conv2d" in task.name:
            _assert_scheduled_kernels_are_correct(task, target, 2, workers)


def test_pipeline_rejects_unknown_layouts(tmp_path):
    import subprocess
    import sys

    with pytest.raises(ValueError, match="unknown layout"):
        Pipeline(layout="NCWH")
    out = subprocess.run(
        [sys.executable, "-m", "chameleon_tune.cli", "tune-model", "--layout", "NCWH", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "'NCWH'" in out.stderr


class _InvertedResidual(nn.Module):
    """MobileNetV2's block: pointwise expansion, depthwise, projection, ReLU6 after the first two."""

    def __init__(self) -> None:
        super().__init__()
        self.expand, self.bn = nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32)
        self.depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.project = nn.Conv2d(32, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.relu6(self.bn(self.expand(x)))
        return self.project(nn.functional.relu6(self.depthwise(y))) + x


def test_relu6_follows_the_nhwc_layout_into_its_convolution():
    """``ConvertLayout`` has no rule for ``clip``: left alone, each ReLU6 ran in NCHW between two
    transposes. Rewritten, the model transposes only its input and output."""
    torch.manual_seed(0)
    module, x = _InvertedResidual().eval(), torch.randn(1, 16, 6, 6)
    imported = _from_exported("block", torch.export.export(module, (x,)), module, threads=1)
    target, pipeline, tasks = _tasks(imported, layout="NHWC")
    assert sum("transpose" in t.name for t in tasks) == 2, [t.name for t in tasks]
    assert sum("conv2d" in t.name and "minimum" in t.name for t in tasks) == 2
    _assert_computes_the_model(imported, pipeline, target, x.numpy())


class _FeedForward(nn.Module):
    """Attention scores and a transformer's feed-forward block on a 3-D input: softmax, then
    linear, GELU, linear (a PyTorch export reshapes around each linear layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(16, 64), nn.Linear(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = torch.softmax(x @ x.transpose(1, 2), dim=-1)
        return self.down(nn.functional.gelu(self.up(scores @ x)))


@pytest.fixture(scope="module")
def feed_forward():
    torch.manual_seed(0)
    module, x = _FeedForward().eval(), torch.randn(1, 8, 16)
    return _from_exported("ffn", torch.export.export(module, (x,)), module, threads=1), x.numpy()


def _calls(task, name: str) -> bool:
    return f"T.{name}(" in task.mod.script()


def test_fast_math_fuses_gelu_into_its_matmul_and_vectorizes_erf_and_exp(feed_forward, workers):
    """With fast math no kernel calls the scalar erf or exp, GELU is the epilogue of its matmul,
    and the model still computes PyTorch's output; without it GELU is a task of its own."""
    imported, x = feed_forward
    target, pipeline, tasks = _tasks(imported)
    assert not any(_calls(t, "erf") or _calls(t, "exp") for t in tasks), [t.name for t in tasks]
    (ffn,) = [t for t in tasks if "fast_erf" in t.name]
    assert "matmul" in ffn.name, [t.name for t in tasks]
    _assert_computes_the_model(imported, pipeline, target, x)
    _assert_scheduled_kernels_are_correct(ffn, target, 2, workers)

    exact = Pipeline(fast_math=False)
    tasks = extract_tasks(exact.fuse(exact.prepare(imported.mod), target), target)
    assert any(_calls(t, "erf") and "matmul" not in t.name for t in tasks), [t.name for t in tasks]
    assert any(_calls(t, "exp") for t in tasks)
