"""Exported models against the references, in a fresh process, in interleaved rounds.

    python benchmarks/side_by_side.py --model bert_base_layer \\
        runs/bench-shared/bert-until-ort runs/bench-models/bert_base_layer-until-ort

Each directory is a ``tune-model`` output of the same model; its ``model.so`` is loaded as a
user loads it (``load_artifact``: the thread count it was tuned for), its output checked
against the model's reference, then every artifact and every reference is timed turn by turn
(``time_side_by_side``: a pause before each turn, other work on the machine watched).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="+", help="tune-model --output directories")
    parser.add_argument("--model", required=True, help="the built-in model (or file) the artifacts were tuned from")
    parser.add_argument("--references", default="pytorch,torch.compile,onnxruntime")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)

    from chameleon_tune.evaluation.model_references import prepare_references
    from chameleon_tune.measure.runner import random_arguments
    from chameleon_tune.model.build import load_artifact, time_side_by_side, verify
    from chameleon_tune.model.importer import load_model

    imported = load_model(args.model, threads=args.threads)
    inputs = random_arguments(imported.inputs)
    expected = imported.reference(inputs)
    runs, notes = prepare_references(imported, args.references.split(","), args.threads, inputs, expected, verify)
    for name, why in notes.items():
        print(f"{name}: not timed: {why}")
    for directory in args.artifacts:
        model, _manifest = load_artifact(directory)
        verify(model(inputs), expected, f"{directory}'s")
        runs[directory] = model.bind(inputs)
    timings = time_side_by_side(runs, rounds=args.rounds, round_s=0.5, pause_s=1.0)
    for name, timing in timings.items():
        print(f"{name:<60} {timing.seconds * 1e3:8.3f} ms{'  (disturbed)' if timing.noisy else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
