"""Built-in tuning workloads: the paper's conv2d layers, MobileNetV2's, plus square matmuls.

The paper's layers are extracted from the model definitions in
:mod:`chameleon_tune.model.networks` rather than typed by hand. torch and tvm are
imported only inside functions so that importing this module (e.g. for the
CLI's workload listing) stays fast, and matmul-only look-ups never touch torch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tvm.tirx import PrimFunc

DEFAULT_WORKLOAD = "resnet18.L2"

# Ordered shape parameters per operator; Workload.params must follow this order.
_PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "conv2d": ("N", "C", "H", "W", "K", "R", "S", "stride", "padding"),
    "matmul": ("M", "N", "K"),
}

PAPER_MODELS: tuple[str, ...] = ("alexnet", "vgg16", "resnet18")
# Models whose layers are workloads: the paper's, and MobileNetV2's dense convolutions (its
# 1x1 ones are what the paper's models have few of: relatives for ResNet-18's 1x1 layers
# when learning across models, issue 13).
LAYER_MODELS: tuple[str, ...] = (*PAPER_MODELS, "mobilenet_v2")

# The paper's ResNet-18 count of 12 tasks is its 11 unique conv2d shapes plus
# the final dense (fully connected) layer; for AlexNet and VGG-16 it counts
# conv2d layers only. MobileNetV2's dense layer is a relative of ResNet-18's.
_DENSE_TASK_MODELS = frozenset({"resnet18", "mobilenet_v2"})

SUITES: dict[str, tuple[str, ...]] = {
    **{model: (model,) for model in LAYER_MODELS},
    "paper": PAPER_MODELS,
}

MATMUL_SIZES: tuple[int, ...] = (64, 128, 256, 512, 1024)
# 121 = 11 x 11 leaves few perfect tilings: its space (1,944 configurations on
# x86) is small enough to measure exhaustively and replay (BENCHMARKS.md).
SMALL_SPACE_MATMUL_SIZES: tuple[int, ...] = (121,)


@dataclass(frozen=True)
class Workload:
    """One tuning task: an operator and its shape.

    ``params`` is an ordered tuple of (name, value) pairs so the dataclass
    stays hashable; conv2d uses N, C, H, W (input), K (output channels),
    R, S (kernel), stride, padding; matmul uses M, N, K for (MxK) @ (KxN).
    """

    name: str
    op: str
    params: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        if self.op not in _PARAM_KEYS:
            raise ValueError(f"workload {self.name!r}: unknown op {self.op!r}; choices: {', '.join(_PARAM_KEYS)}")
        keys = tuple(key for key, _ in self.params)
        if keys != _PARAM_KEYS[self.op]:
            raise ValueError(f"workload {self.name!r}: {self.op} params must be {_PARAM_KEYS[self.op]}, got {keys}")

    @property
    def param_dict(self) -> dict[str, int]:
        return dict(self.params)

    @property
    def output_hw(self) -> tuple[int, int]:
        """Output height and width of a conv2d workload."""
        if self.op != "conv2d":
            raise ValueError(f"workload {self.name!r} is {self.op}, not conv2d")
        p = self.param_dict
        oh = (p["H"] + 2 * p["padding"] - p["R"]) // p["stride"] + 1
        ow = (p["W"] + 2 * p["padding"] - p["S"]) // p["stride"] + 1
        return oh, ow

    @property
    def flops(self) -> int:
        """Floating-point operations, counting a multiply-add as two."""
        p = self.param_dict
        if self.op == "conv2d":
            oh, ow = self.output_hw
            return 2 * p["N"] * p["K"] * oh * ow * p["C"] * p["R"] * p["S"]
        return 2 * p["M"] * p["N"] * p["K"]

    @property
    def shape_str(self) -> str:
        """Short description: ``NxCxHxW * KxCxRxS sX pY`` or ``MxNxK``."""
        p = self.param_dict
        if self.op == "conv2d":
            return (
                f"{p['N']}x{p['C']}x{p['H']}x{p['W']} * {p['K']}x{p['C']}x{p['R']}x{p['S']}"
                f" s{p['stride']} p{p['padding']}"
            )
        return f"{p['M']}x{p['N']}x{p['K']}"

    def prim_func(self) -> PrimFunc:
        """The fp32 TIR PrimFunc of this workload, built with TE (inputs first, output last)."""
        from tvm import te, topi

        p = self.param_dict
        if self.op == "conv2d":
            data = te.placeholder((p["N"], p["C"], p["H"], p["W"]), name="data", dtype="float32")
            weight = te.placeholder((p["K"], p["C"], p["R"], p["S"]), name="weight", dtype="float32")
            out = topi.nn.conv2d_nchw(data, weight, p["stride"], p["padding"], dilation=1, out_dtype="float32")
            return te.create_prim_func([data, weight, out])
        a = te.placeholder((p["M"], p["K"]), name="A", dtype="float32")
        b = te.placeholder((p["K"], p["N"]), name="B", dtype="float32")
        k = te.reduce_axis((0, p["K"]), name="k")
        c = te.compute((p["M"], p["N"]), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
        return te.create_prim_func([a, b, c])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for listings."""
        return {
            "name": self.name,
            "op": self.op,
            "params": self.param_dict,
            "shape": self.shape_str,
            "flops": self.flops,
        }


def conv2d_workload(
    name: str, N: int, C: int, H: int, W: int, K: int, R: int, S: int, stride: int, padding: int
) -> Workload:
    values = (N, C, H, W, K, R, S, stride, padding)
    return Workload(name, "conv2d", tuple(zip(_PARAM_KEYS["conv2d"], values)))


def matmul_workload(name: str, M: int, N: int, K: int) -> Workload:
    return Workload(name, "matmul", (("M", M), ("N", N), ("K", K)))


_MATMULS: dict[str, Workload] = {
    f"matmul.{n}": matmul_workload(f"matmul.{n}", n, n, n) for n in MATMUL_SIZES + SMALL_SPACE_MATMUL_SIZES
}


def _pair_value(value: int | tuple[int, ...], what: str, module: Any) -> int:
    """The single int behind a square kernel/stride/padding setting."""
    values = (value, value) if isinstance(value, int) else tuple(value)
    assert len(values) == 2 and values[0] == values[1] and isinstance(values[0], int), (
        f"non-square {what} {value!r} in {module}"
    )
    return values[0]


@functools.cache
def _traced_shapes(model_name: str) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, int, int], ...]]:
    """Unique dense conv2d shapes (N,C,H,W,K,R,S,stride,padding) and dense-layer shapes
    (M,K,N) of one model, each in order of first execution.

    Grouped (depthwise) convolutions are left out: a ``conv2d`` workload is a dense
    convolution, and a depthwise one is another operator with other knobs.

    Runs on the meta device: only shapes are needed, so no weights are
    initialised and no arithmetic is done.
    """
    import torch
    from torch import nn

    from chameleon_tune.model.networks import INPUT_SHAPE, build_model

    convs: dict[tuple[int, ...], None] = {}  # dict as an insertion-ordered set
    denses: dict[tuple[int, int, int], None] = {}

    def conv_hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        if module.groups != 1:
            return
        assert _pair_value(module.dilation, "dilation", module) == 1, f"dilated conv2d not supported: {module}"
        n, c, h, w = inputs[0].shape
        r = _pair_value(module.kernel_size, "kernel", module)
        stride = _pair_value(module.stride, "stride", module)
        padding = _pair_value(module.padding, "padding", module)  # a str ("same") fails here too
        convs[(n, c, h, w, module.out_channels, r, r, stride, padding)] = None

    def dense_hook(module: nn.Linear, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        m, k = inputs[0].shape
        denses[(m, k, module.out_features)] = None

    with torch.device("meta"):
        model = build_model(model_name)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(conv_hook)
        elif isinstance(module, nn.Linear):
            module.register_forward_hook(dense_hook)
    with torch.no_grad():
        model(torch.empty(INPUT_SHAPE, device="meta"))
    return tuple(convs), tuple(denses)


def conv_layers(model_name: str) -> tuple[Workload, ...]:
    """The model's unique dense conv2d layers, named ``<model>.L1``, ``<model>.L2``, ..."""
    convs, _ = _traced_shapes(model_name)
    return tuple(conv2d_workload(f"{model_name}.L{i}", *shape) for i, shape in enumerate(convs, start=1))


@functools.cache
def model_layers(model_name: str) -> tuple[Workload, ...]:
    """One model's tuning tasks, as the paper counts them: its unique dense conv2d layers,
    then (ResNet-18, MobileNetV2) its dense layers as matmuls, numbered on from the convs."""
    if model_name not in LAYER_MODELS:
        raise KeyError(f"no layers for model {model_name!r}; choices: {', '.join(LAYER_MODELS)}")
    layers = conv_layers(model_name)
    if model_name in _DENSE_TASK_MODELS:
        _, denses = _traced_shapes(model_name)
        layers += tuple(
            matmul_workload(f"{model_name}.L{i}", M=m, N=n, K=k)
            for i, (m, k, n) in enumerate(denses, start=len(layers) + 1)
        )
    return layers


def list_workloads() -> list[Workload]:
    """All built-in workloads: the layers of AlexNet, VGG-16, ResNet-18, MobileNetV2, then the matmuls."""
    return [w for model in LAYER_MODELS for w in model_layers(model)] + list(_MATMULS.values())


def suite(name: str) -> list[Workload]:
    """The workloads of one suite: a model of :data:`LAYER_MODELS`, or ``paper`` (the first three)."""
    try:
        models = SUITES[name]
    except KeyError:
        raise KeyError(f"unknown suite {name!r}; choices: {', '.join(SUITES)}") from None
    return [w for model in models for w in model_layers(model)]


def _valid_names_summary() -> str:
    """Compact list of valid names, e.g. ``resnet18.L1..L12, matmul.64, ...``."""
    ranges = [f"{model}.L1..L{len(model_layers(model))}" for model in LAYER_MODELS]
    return ", ".join(ranges + list(_MATMULS))


def get_workload(name: str) -> Workload:
    """Look a built-in workload up by name; matmuls are found without importing torch."""
    if name in _MATMULS:
        return _MATMULS[name]
    model = name.partition(".")[0]
    if model in LAYER_MODELS:
        for workload in model_layers(model):
            if workload.name == name:
                return workload
    raise KeyError(f"unknown workload {name!r}; valid: {_valid_names_summary()}")
