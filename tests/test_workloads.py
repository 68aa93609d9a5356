import subprocess
import sys

import numpy as np
import pytest

from chameleon_tune import workloads
from chameleon_tune.workloads import Workload, get_workload, list_workloads, model_layers, suite

MOBILENET_V2_LAYERS = 21  # its stem, 19 unique 1x1 convolutions, the classifier


@pytest.mark.parametrize(("model", "count"), [("alexnet", 5), ("vgg16", 9), ("resnet18", 12)])
def test_paper_layer_counts(model: str, count: int) -> None:
    layers = model_layers(model)
    assert len(layers) == count
    assert [w.name for w in layers] == [f"{model}.L{i}" for i in range(1, count + 1)]
    assert suite(model) == list(layers)


def test_resnet18_has_11_convs_plus_dense() -> None:
    layers = model_layers("resnet18")
    assert len(workloads.conv_layers("resnet18")) == 11
    assert [w.op for w in layers] == ["conv2d"] * 11 + ["matmul"]
    assert layers[-1].param_dict == {"M": 1, "N": 1000, "K": 512}


def test_mobilenet_v2_layers_are_its_dense_convolutions() -> None:
    # Its depthwise convolutions are another operator; the stem and the 1x1 ones stay.
    layers = model_layers("mobilenet_v2")
    assert len(layers) == MOBILENET_V2_LAYERS
    stem, *pointwise, dense = layers
    assert stem.param_dict == {"N": 1, "C": 3, "H": 224, "W": 224, "K": 32, "R": 3, "S": 3, "stride": 2, "padding": 1}
    assert all(w.op == "conv2d" and (w.param_dict["R"], w.param_dict["stride"]) == (1, 1) for w in pointwise)
    assert dense.param_dict == {"M": 1, "N": 1000, "K": 1280}
    assert get_workload(dense.name) == dense and suite("mobilenet_v2") == list(layers)


def test_resnet18_l2_shape_and_flops() -> None:
    w = get_workload(workloads.DEFAULT_WORKLOAD)
    assert w.name == "resnet18.L2"
    assert w.op == "conv2d"
    assert w.param_dict == {"N": 1, "C": 64, "H": 56, "W": 56, "K": 64, "R": 3, "S": 3, "stride": 1, "padding": 1}
    assert w.flops == 2 * 64 * 56 * 56 * 64 * 9 == 231211008
    assert w.shape_str == "1x64x56x56 * 64x64x3x3 s1 p1"
    assert w.to_dict()["flops"] == w.flops


def test_alexnet_first_conv_is_torchvision_variant() -> None:
    w = model_layers("alexnet")[0]
    assert w.param_dict == {"N": 1, "C": 3, "H": 224, "W": 224, "K": 64, "R": 11, "S": 11, "stride": 4, "padding": 2}
    assert [layer.param_dict["K"] for layer in model_layers("alexnet")] == [64, 192, 384, 256, 256]


def test_list_and_suites() -> None:
    names = [w.name for w in list_workloads()]
    assert len(names) == len(set(names)) == 5 + 9 + 12 + MOBILENET_V2_LAYERS + 6
    assert names[-6:] == ["matmul.64", "matmul.128", "matmul.256", "matmul.512", "matmul.1024", "matmul.121"]
    assert len(suite("paper")) == 26
    assert get_workload("matmul.256").flops == 2 * 256**3


def test_unknown_names_raise_keyerror_listing_choices() -> None:
    with pytest.raises(KeyError, match=r"nope.*resnet18\.L1\.\.L12.*matmul\.1024"):
        get_workload("nope")
    with pytest.raises(KeyError, match="resnet18.L13"):
        get_workload("resnet18.L13")
    with pytest.raises(KeyError, match="paper"):
        suite("nope")
    from chameleon_tune.model.networks import build_model

    with pytest.raises(KeyError, match="mobilenet_v2"):
        build_model("nope")


def test_bad_params_rejected() -> None:
    with pytest.raises(ValueError):
        Workload("x", "matmul", (("M", 1), ("K", 2), ("N", 3)))
    with pytest.raises(ValueError):
        Workload("x", "softmax", ())


def test_matmul_lookup_and_import_avoid_torch() -> None:
    code = (
        "import sys\n"
        "from chameleon_tune.workloads import get_workload\n"
        "assert 'tvm' not in sys.modules\n"
        "get_workload('matmul.128')\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _run_tvm(workload: Workload, inputs: list[np.ndarray], out_shape: tuple[int, ...]) -> np.ndarray:
    import tvm

    mod = tvm.compile(tvm.IRModule({"main": workload.prim_func()}), target="llvm")
    dev = tvm.cpu()
    tensors = [tvm.runtime.tensor(a, dev) for a in inputs]
    out = tvm.runtime.tensor(np.zeros(out_shape, dtype="float32"), dev)
    mod["main"](*tensors, out)
    return out.numpy()


def test_matmul_prim_func_matches_numpy() -> None:
    w = workloads.matmul_workload("mm", M=16, N=24, K=32)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((16, 32), dtype=np.float32)
    b = rng.standard_normal((32, 24), dtype=np.float32)
    np.testing.assert_allclose(_run_tvm(w, [a, b], (16, 24)), a @ b, rtol=1e-4, atol=1e-4)


def _conv2d_nchw_numpy(data: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    padded = np.pad(data, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k, _, r, s = weight.shape
    oh = (padded.shape[2] - r) // stride + 1
    ow = (padded.shape[3] - s) // stride + 1
    out = np.zeros((data.shape[0], k, oh, ow), dtype=np.float64)
    for dy in range(r):
        for dx in range(s):
            window = padded[:, :, dy : dy + stride * oh : stride, dx : dx + stride * ow : stride]
            out += np.einsum("nchw,kc->nkhw", window, weight[:, :, dy, dx])
    return out


def test_conv2d_prim_func_matches_numpy() -> None:
    w = workloads.conv2d_workload("conv", N=1, C=4, H=9, W=9, K=6, R=3, S=3, stride=2, padding=1)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((1, 4, 9, 9), dtype=np.float32)
    weight = rng.standard_normal((6, 4, 3, 3), dtype=np.float32)
    expected = _conv2d_nchw_numpy(data, weight, stride=2, padding=1)
    assert expected.shape == (1, 6, *w.output_hw)
    np.testing.assert_allclose(_run_tvm(w, [data, weight], expected.shape), expected, rtol=1e-4, atol=1e-4)


def test_builtin_prim_func_signatures() -> None:
    # TVM 0.27 PrimFunc params are the buffers themselves (no buffer_map).
    conv = get_workload("resnet18.L2").prim_func()
    assert [(p.name, tuple(int(d) for d in p.shape)) for p in conv.params] == [
        ("data", (1, 64, 56, 56)),
        ("weight", (64, 64, 3, 3)),
        ("conv2d_nchw", (1, 64, 56, 56)),
    ]
    mm = get_workload("matmul.64").prim_func()
    assert [p.name for p in mm.params] == ["A", "B", "C"]


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet18", "mobilenet_v2"])
def test_model_forward_shape(name: str) -> None:
    import torch

    from chameleon_tune.model.networks import INPUT_SHAPE, build_model

    model = build_model(name)
    assert not model.training
    with torch.no_grad():
        out = model(torch.randn(INPUT_SHAPE))
    assert out.shape == (1, 1000)
