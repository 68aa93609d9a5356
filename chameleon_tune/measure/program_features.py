"""Program features: a kernel described by its scheduled TIR, the same way in every task.

A configuration's knob indices mean nothing outside its own space; what the schedule made of
the program does: loop extents and their products per level, vector width, parallel extent,
bytes touched and reuse per buffer, arithmetic intensity. MetaSchedule's ``PerStoreFeature``
computes those (164 numbers, log-scaled, per buffer store: TenSet's and MetaSchedule's cost
models learn on them). A program's vector here is their maximum and their mean over its
stores, so every program has the same width however many stores it has, and a cost model
trained on one task's programs ranks another's (``cost_model.ProgramCostModel``).

Measured programs are described where they are built (the builder workers, beside the
compiler, about 20 ms against 0.1-0.3 s of compiling); candidates the search has not built
are described in the tuning process (``TVMSpace.program_features``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache

import numpy as np

PER_STORE = 164
"""``PerStoreFeature``'s numbers per store with its default settings."""
WIDTH = 2 * PER_STORE
"""A program's features: the per-store ones' maximum, then their mean."""
DECIMALS = 4
"""Features are kept (history, record store) to this many decimals: log-scaled values, so
the rounding changes nothing a tree splits on."""


@cache
def _context(target_json: str, threads: int):
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from ..tvm_space import load_tensor_intrinsics

    target = tvm.target.Target(json.loads(target_json))
    load_tensor_intrinsics(target)  # else TuneContext imports every backend's: ~45 s in a fresh worker
    return ms.TuneContext(target=target, num_threads=threads)


def describe(mods: list, target_json: str, threads: int = 1) -> np.ndarray:
    """One row of :data:`WIDTH` features per scheduled module (``main`` is the kernel), on
    ``threads`` threads: one in a builder worker (a compiler worker runs per core), every
    core in the tuning process, where nothing else runs while the search picks."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.schedule import Schedule

    candidates = [ms.MeasureCandidate(Schedule(mod), ms.arg_info.ArgInfo.from_prim_func(mod["main"])) for mod in mods]
    if not candidates:
        return np.zeros((0, WIDTH))
    per_store = ms.feature_extractor.PerStoreFeature().extract_from(_context(target_json, threads), candidates)
    return np.array([pool(f.numpy()) for f in per_store])


def pool(per_store: np.ndarray) -> np.ndarray:
    """One program's vector from its ``(stores, PER_STORE)`` features (zeros: no store)."""
    if not len(per_store):
        return np.zeros(WIDTH)
    if per_store.shape[1] != PER_STORE:
        raise ValueError(f"expected {PER_STORE} features per store, got {per_store.shape[1]}")
    return np.round(np.concatenate([per_store.max(axis=0), per_store.mean(axis=0)]), DECIMALS)


def checked(values) -> tuple[float, ...] | None:
    """Features read back from a file as a tuple of :data:`WIDTH` numbers (None stays None);
    ``ValueError`` for anything else, so the line they came on counts as damaged."""
    if values is None:
        return None
    features = tuple(float(v) for v in values)
    if len(features) != WIDTH:
        raise ValueError(f"{len(features)} program features, expected {WIDTH}")
    return features


def table(rows: Sequence) -> np.ndarray:
    """Per-trial features (each :data:`WIDTH` numbers, or None) as one array, NaN rows for None."""
    out = np.full((len(rows), WIDTH), np.nan)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = row
    return out
