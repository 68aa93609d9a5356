"""What describing kernels costs the builder: the same kernels built with and without their
program features (``measure/program_features.py``), in interleaved rounds.

    python benchmarks/describe_cost.py --workload resnet18.L2 --kernels 32 --rounds 3

Run it alone on the machine: it times compilation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from chameleon_tune.measure.builder import LocalBuilder
from chameleon_tune.tvm_space import TVMSpace, host_target
from chameleon_tune.workloads import get_workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="resnet18.L2")
    parser.add_argument("--kernels", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    space = TVMSpace(get_workload(args.workload).prim_func(), host_target(2))
    scheduled = (space.schedule(c)[0] for c in space.space.sample(np.random.default_rng(0), 2 * args.kernels))
    mods = [sch.mod for sch in scheduled if sch is not None][: args.kernels]
    builder = LocalBuilder(space.target, n_workers=2)
    try:
        builder.start()
        builder.build(mods[:4], describe=True)  # both paths warm in every worker
        seconds: dict[bool, list[float]] = {False: [], True: []}
        for r in range(args.rounds):
            for describe in (False, True) if r % 2 == 0 else (True, False):
                start = time.perf_counter()
                built = builder.build(mods, describe=describe)
                seconds[describe].append(time.perf_counter() - start)
                failed = [b.error_msg for b in built if b.error_msg is not None]
                if failed:
                    raise SystemExit(f"a kernel did not build: {failed[0]}")
    finally:
        builder.close()
    plain, described = np.median(seconds[False]), np.median(seconds[True])
    print(f"{len(mods)} kernels of {args.workload}: {plain:.2f} s without features, {described:.2f} s with "
          f"(median of {args.rounds}; x{described / plain:.3f}); rounds {seconds}")


if __name__ == "__main__":
    main()
