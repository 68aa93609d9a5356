"""Give a record store's trials of built-in workloads their program features, in a copy.

    python benchmarks/describe_store.py runs/bench-lomo/records runs/bench-program/records

Stores filled before trials were described (``measure/program_features.py``) hold
configurations only. A built-in workload's configuration replays into the same program on the
same target, so its features can be computed now, exactly as the builder computes them for a
new trial: each trial is scheduled again and described, and the copy's ``trials.jsonl`` lines
carry them. Workloads that are not built-in (``tune-model`` tasks, stored by hash), or whose
stored space differs from the one built here, are copied as they are. No kernel is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np

from chameleon_tune.model.record_store import SPACE_FILE, TRIALS_FILE, target_key
from chameleon_tune.space import Space
from chameleon_tune.tvm_space import TVMSpace, host_target
from chameleon_tune.workloads import get_workload


def describe_folder(folder: str, target) -> str:
    """Add features to one workload folder's trials in place; what was done, in a few words."""
    with open(os.path.join(folder, SPACE_FILE)) as f:
        meta = json.load(f)
    name = meta.get("name", "")
    try:
        workload = get_workload(name)
    except (KeyError, ValueError):
        return f"{name}: not a built-in workload, left as it is"
    tvm_space = TVMSpace(workload.prim_func(), target)
    if tvm_space.space.to_json() != Space.from_json(meta["space"]).to_json():
        return f"{name}: stored space differs from this target's, left as it is"
    path = os.path.join(folder, TRIALS_FILE)
    with open(path) as f:
        trials = [json.loads(line) for line in f if line.strip()]
    features = tvm_space.program_features(np.array([t["config"] for t in trials], dtype=np.int64))
    described = 0
    for trial, row in zip(trials, features):
        if not np.isnan(row).any():
            trial["features"] = row.tolist()
            described += 1
    with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(t) + "\n" for t in trials)
    os.replace(path + ".tmp", path)
    return f"{name}: {described} of {len(trials)} trials described"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="a record store (its root, as --records takes it)")
    parser.add_argument("copy", help="where the described copy goes (must not exist)")
    parser.add_argument("--threads", type=int, default=None, help="the target's num-cores (default: physical cores)")
    args = parser.parse_args()
    shutil.copytree(args.source, args.copy)
    target = host_target(args.threads)
    keys = {target_key(str(target), flush) for flush in (False, True)}
    for key in sorted(os.listdir(args.copy)):
        if key not in keys:
            print(f"{key}: another target than this machine's {sorted(keys)}, left as it is")
            continue
        for entry in sorted(os.listdir(os.path.join(args.copy, key))):
            print(f"{key}: {describe_folder(os.path.join(args.copy, key, entry), target)}", flush=True)


if __name__ == "__main__":
    main()
