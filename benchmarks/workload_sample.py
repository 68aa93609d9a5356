"""What the throughput benchmarks share: one workload's space on this host and a fixed random sample of it."""

from __future__ import annotations

import os
import platform
import time
from typing import Any, NamedTuple

import numpy as np


class WorkloadSample(NamedTuple):
    workload: Any  # chameleon_tune.workloads.Workload
    target: Any  # tvm.target.Target
    tvm_space: Any  # chameleon_tune.tvm_space.TVMSpace
    configs: np.ndarray

    def report_header(self) -> dict:
        """The fields every benchmark report starts with."""
        return {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "target": str(self.target),
            "workload": self.workload.name,
        }


def random_sample(workload: str, n_configs: int) -> WorkloadSample:
    """The host target's space of ``workload`` and ``n_configs`` configurations drawn with
    seed 0, so every benchmark and every setting in it measures the same ones."""
    from chameleon_tune.tvm_space import TVMSpace, host_target
    from chameleon_tune.workloads import get_workload

    wl = get_workload(workload)
    target = host_target()
    tvm_space = TVMSpace(wl.prim_func(), target)
    return WorkloadSample(wl, target, tvm_space, tvm_space.space.sample(np.random.default_rng(0), n_configs))
