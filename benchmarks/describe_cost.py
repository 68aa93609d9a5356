"""What describing kernels costs: the builder, and the search's first-batch pick.

    python benchmarks/describe_cost.py --workload resnet18.L2 --kernels 32 --rounds 3

The builder: the same kernels built with and without their program features
(``measure/program_features.py``), in interleaved rounds. The pick: scheduling the
program model's pool of random candidates, then describing them on one thread and on
every core, in interleaved rounds.

Run it alone on the machine: it times compilation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from chameleon_tune.measure import program_features
from chameleon_tune.measure.builder import LocalBuilder
from chameleon_tune.search.model_based import PROGRAM_POOL
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
    pick_cost(space, args.rounds)


def pick_cost(space: TVMSpace, rounds: int) -> None:
    """Scheduling and describing the first-batch pick's pool, on one thread and on every core."""
    cores = space.context.num_threads
    pool = space.space.sample(np.random.default_rng(1), PROGRAM_POOL)
    schedule_s, describe_s = [], {1: [], cores: []}
    for r in range(rounds):
        start = time.perf_counter()
        mods = [sch.mod for c in pool if (sch := space.schedule(c)[0]) is not None]
        schedule_s.append(time.perf_counter() - start)
        if r == 0:  # each thread count's context made before anything is timed
            for threads in describe_s:
                program_features.describe(mods[:1], str(space.target), threads=threads)
        for threads in (1, cores) if r % 2 == 0 else (cores, 1):
            time.sleep(1)  # TVM's pool threads spin after a call
            start = time.perf_counter()
            program_features.describe(mods, str(space.target), threads=threads)
            describe_s[threads].append(time.perf_counter() - start)
    print(f"pick of {PROGRAM_POOL} candidates ({len(mods)} schedule): scheduling {np.median(schedule_s):.2f} s, "
          f"describing {np.median(describe_s[1]):.2f} s on 1 thread, {np.median(describe_s[cores]):.2f} s on {cores} "
          f"(medians of {rounds}); rounds {describe_s}")


if __name__ == "__main__":
    main()
