"""Vendor reference: PyTorch (oneDNN on CPU) timing of the same operator, same thread count."""

from __future__ import annotations

import time

import numpy as np


def torch_latency_s(workload, threads: int | None = None, repeat: int = 30) -> float:
    """Median latency of one call of ``workload`` in PyTorch eager, output checked against NumPy."""
    import torch

    from chameleon_tune.tvm_space import _physical_cores

    torch.set_num_threads(threads or _physical_cores())
    p = workload.param_dict
    rng = np.random.default_rng(0)
    if workload.op == "conv2d":
        x = torch.from_numpy(rng.uniform(-1, 1, (p["N"], p["C"], p["H"], p["W"])).astype("float32"))
        w = torch.from_numpy(rng.uniform(-1, 1, (p["K"], p["C"], p["R"], p["S"])).astype("float32"))
        run = lambda: torch.nn.functional.conv2d(x, w, stride=p["stride"], padding=p["padding"])  # noqa: E731
    else:
        a = torch.from_numpy(rng.uniform(-1, 1, (p["M"], p["K"])).astype("float32"))
        b = torch.from_numpy(rng.uniform(-1, 1, (p["K"], p["N"])).astype("float32"))
        run = lambda: a @ b  # noqa: E731
    with torch.no_grad():
        out = run()
        if workload.op == "matmul":
            np.testing.assert_allclose(out.numpy(), a.numpy() @ b.numpy(), rtol=1e-3, atol=1e-3)
        for _ in range(5):
            run()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return float(np.median(times))
