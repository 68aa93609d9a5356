"""Learning across tasks of other knobs: the program cost model on ResNet-18's layers that no
stored workload shares knobs with.

    python benchmarks/describe_store.py runs/bench-lomo/records runs/bench-program/records
    python benchmarks/program_transfer.py --records runs/bench-program/records --trials 100 --seeds 3 \
        --work-root runs/bench-program --out benchmarks/results/program_transfer/program_transfer.json

The store (§36's: AlexNet's and VGG-16's convolutions, ``sa``, 100 measurements each, their
trials described afterwards by ``describe_store.py``) holds no relative with ResNet-18's knobs
for its 1x1 downsampling convolutions (L5, L8, L11) and its classifier (L12): the knob-level
shared model and the starting configurations have nothing to give them, so ``chameleon+records``
differs from ``chameleon`` there by the program cost model alone (same seeds).

1. Offline, no kernel timed: each stored workload ranked by a program model trained on the
   others (rank correlation with the measured throughput; the best of its top 10).
2. Side by side in one ``chameleon compare``: ``sa``, ``chameleon``, ``chameleon+records`` on the
   four layers, ``--trials`` measurements, ``--seeds`` seeds. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from chameleon_tune.cost_model import ProgramCostModel
from chameleon_tune.evaluation.compare import compare
from chameleon_tune.model.record_store import RecordStore, target_key
from chameleon_tune.tvm_space import host_target
from leave_one_model_out import comparison_report

LAYERS = ("resnet18.L5", "resnet18.L8", "resnet18.L11", "resnet18.L12")


def holdout(records: str) -> dict:
    """Each described stored workload ranked by a program model of the other workloads."""
    stored = [w for w in RecordStore(records, target_key(str(host_target()), False)).load() if w.features is not None]
    rows = {}
    for i, w in enumerate(stored):
        model = ProgramCostModel(seed=0)
        model.fit([(o.features, o.latencies) for j, o in enumerate(stored) if j != i])
        ok = np.isfinite(w.latencies) & ~np.isnan(w.features).any(axis=1)
        scores, latencies = model.predict(w.features[ok]), w.latencies[ok]
        ranks = np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort(-latencies)))[0, 1]
        top = np.argsort(-scores)[:10]
        rows[w.name] = {
            "rank_correlation": round(float(ranks), 3),
            "best_of_top10": round(float(latencies.min() / latencies[top].min()), 3),
            "median_of_top10": round(float(latencies.min() / np.median(latencies[top])), 3),
            "median_of_all": round(float(latencies.min() / np.median(latencies)), 3),
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", required=True, help="a record store whose trials are described")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--work-root", default="runs/bench-program")
    parser.add_argument("--out", default="benchmarks/results/program_transfer/program_transfer.json")
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%d %H:%M %Z")
    offline = holdout(args.records)
    side_by_side = compare(
        list(LAYERS), strategies=["sa", "chameleon", "chameleon+records"], trials=args.trials, seeds=args.seeds,
        out=os.path.join(args.work_root, "side_by_side"), reference="sa", records=args.records,
    )  # fmt: skip
    report = {
        **comparison_report(started, args, side_by_side),
        "holdout": offline,
        "per_workload": side_by_side["per_workload"],
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: report[k] for k in ("geomean_quality_ratio", "geomean_measurement_ratio")}, indent=1))


if __name__ == "__main__":
    main()
