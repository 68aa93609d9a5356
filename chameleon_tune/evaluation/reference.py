"""Vendor reference: PyTorch eager (oneDNN on CPU) timing of a workload's operator.

Timed with the same thread count as our kernels, and only after its output was
checked against an independent NumPy computation of the operator.
"""

from __future__ import annotations

import time

import numpy as np

from ..workloads import Workload


def torch_latency_s(workload: Workload, threads: int | None = None, repeat: int = 30) -> tuple[float, float]:
    """``(median latency of one call of workload in PyTorch eager, interference)``: the CPU other
    work took while it was timed, in cores (``measure.interference``), the import and warm-up
    left out (importing PyTorch beside TVM read as 0.6 cores of other work, the kernel's
    memory housekeeping)."""
    import torch

    from ..measure.interference import CpuWatch

    from ..tvm_space import _physical_cores

    torch.set_num_threads(threads or _physical_cores())
    p = workload.param_dict
    rng = np.random.default_rng(0)
    if workload.op == "conv2d":
        x = rng.uniform(-1, 1, (p["N"], p["C"], p["H"], p["W"])).astype("float32")
        w = rng.uniform(-1, 1, (p["K"], p["C"], p["R"], p["S"])).astype("float32")
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        run = lambda: torch.nn.functional.conv2d(xt, wt, stride=p["stride"], padding=p["padding"])  # noqa: E731
        expected = lambda: _conv2d_numpy(x, w, p["stride"], p["padding"])  # noqa: E731
    else:
        a = rng.uniform(-1, 1, (p["M"], p["K"])).astype("float32")
        b = rng.uniform(-1, 1, (p["K"], p["N"])).astype("float32")
        at, bt = torch.from_numpy(a), torch.from_numpy(b)
        run = lambda: at @ bt  # noqa: E731
        expected = lambda: a @ b  # noqa: E731
    with torch.no_grad():
        np.testing.assert_allclose(run().numpy(), expected(), rtol=1e-3, atol=1e-3)
        for _ in range(5):
            run()
        watch = CpuWatch()
        watch.start()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        interference = watch.stop().cores
    return float(np.median(times)), interference


def _conv2d_numpy(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """NCHW x OIHW convolution as a contraction over sliding windows."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k, _, r, s = w.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (r, s), axis=(2, 3))[:, :, ::stride, ::stride]
    # windows: N, C, OH, OW, R, S -> contract C, R, S with w's C, R, S.
    return np.einsum("nchwrs,kcrs->nkhw", windows, w, optimize=True)
