"""Leave one model out: ResNet-18's tasks tuned cold and with a record store of other models' tasks.

    python benchmarks/leave_one_model_out.py --trials 100 --seeds 3 --work-root runs/bench-lomo \
        --out benchmarks/results/leave_one_model_out/leave_one_model_out.json

1. The store: AlexNet's and VGG-16's convolutions (the paper's layers) and MobileNetV2's
   dense ones and its dense layer (``compare --suite``) are tuned with ``--source-strategy``
   (default ``sa``), ``--trials`` each, one seed, and imported into ``WORK_ROOT/records``
   (``chameleon records import``). ResNet-18 is left out. ``--records DIR`` skips this step and
   learns from an existing store: ``benchmarks/results/stores/lomo_sa100.tar.gz`` is §43's
   (``tar xzf ... -C runs``, then ``--records runs/lomo_sa100``), measured on a 2-core
   ``znver5``; a store of another CPU has nothing for this one's target.
2. The 12 ResNet-18 tasks, ``chameleon`` and ``sa`` each cold and learning from the store
   (``chameleon+records``, ``sa+records``), ``--trials`` measurements, ``--seeds`` seeds, in one
   ``chameleon compare`` (runs interleaved task by task, strategy order alternating by seed),
   against cold ``sa``: the measurement ratio to reach cold ``sa``'s final best, the quality
   ratio at equal budget (geometric means over the tasks), the search share of wall time. The
   comparison's report, summary and plots are copied beside ``--out``.

Both steps time kernels: run it alone on the machine. A rerun over ``--work-root`` resumes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import time

from chameleon_tune.evaluation.compare import compare
from chameleon_tune.model.record_store import import_work_dir, summary
from chameleon_tune.workloads import suite

SOURCE_MODELS = ("alexnet", "vgg16", "mobilenet_v2")
HELD_OUT = "resnet18"


def build_store(work_root: str, strategy: str, trials: int) -> str:
    """Tune the source models' tasks and import every run into ``WORK_ROOT/records``."""
    source = os.path.join(work_root, "source")
    workloads = [w.name for model in SOURCE_MODELS for w in suite(model)]
    compare(workloads, strategies=[strategy], trials=trials, seeds=1, out=source, reference=strategy)
    records = os.path.join(work_root, "records")
    for run in sorted(glob.glob(os.path.join(source, "runs", "*", f"{strategy}-s0"))):
        import_work_dir(records, run)  # a rerun adds nothing twice
    return records


def comparison_report(started: str, args: argparse.Namespace, compared: dict) -> dict:
    """When and where a benchmark ran, how, and its comparison's geometric means against ``sa``."""
    return {
        "started": started,
        "finished": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.machine()} {platform.processor()}, {os.cpu_count()} cores",
        "command": vars(args),
        "geomean_measurement_ratio": compared["geomean_measurement_ratio"],
        "measurement_ratio_defined_for": compared["measurement_ratio_defined_for"],
        "geomean_quality_ratio": compared["geomean_quality_ratio"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="measurements per task and run (default 100)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--source-strategy", default="sa", help="how the store's tasks are tuned (default sa)")
    parser.add_argument(
        "--strategies", default="chameleon,sa,chameleon+records,sa+records",
        help="the held-out model's strategies, cold and NAME+records (default chameleon,sa,chameleon+records,sa+records)",
    )  # fmt: skip
    parser.add_argument("--work-root", default="runs/bench-lomo")
    parser.add_argument(
        "--records", help="an existing store to learn from instead of building one (e.g. BENCHMARKS.md §43's, unpacked)"
    )
    parser.add_argument("--out", default="benchmarks/results/leave_one_model_out/leave_one_model_out.json")
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%d %H:%M %Z")
    records = args.records or build_store(args.work_root, args.source_strategy, args.trials)
    held_out = compare(
        suite_name=HELD_OUT, strategies=args.strategies.split(","), trials=args.trials,
        seeds=args.seeds, out=os.path.join(args.work_root, HELD_OUT), reference="sa", records=records,
    )  # fmt: skip
    report = {
        **comparison_report(started, args, held_out),
        "store": summary(records),
        "search_share_median": {
            s: sorted(w["strategies"][s]["search_share_median"] for w in held_out["per_workload"].values())
            for s in held_out["strategies"]
        },
        "compare_summary": os.path.join(os.path.dirname(args.out), "summary.json"),
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    compared = os.path.join(args.work_root, HELD_OUT)
    for name in ("summary.json", "report.md", *(f for f in os.listdir(compared) if f.endswith(".png"))):
        shutil.copy(os.path.join(compared, name), os.path.dirname(args.out) or ".")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    for s in held_out["strategies"]:
        print(f"{s:<18} measurement ratio {report['geomean_measurement_ratio'][s]}, quality ratio {report['geomean_quality_ratio'][s]}")


if __name__ == "__main__":
    main()
