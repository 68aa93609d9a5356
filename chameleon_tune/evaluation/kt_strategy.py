"""Kernel Tuner's own strategies on a recorded space, replayed beside ours.

``kt:NAME`` runs Kernel Tuner's strategy ``NAME`` in its simulation mode on the
replayed cache file, restricted (as our space is) to the configurations the file
holds, recorded errors included, for the replay's budget of unique evaluations.
The configurations it evaluated, in its order, are then proposed to our tuner
loop like any strategy's, so both are counted the same way (unique configurations,
in order, up to the budget) and charged the same recorded compile and benchmark
times by the same measurer. Kernel Tuner is an optional extra.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
import warnings

import numpy as np

from ..measure.replay import CacheFile, cache_key, configs_of
from ..search.base import Strategy, TaskContext

PREFIX = "kt:"
INSTALL = 'pip install -e ".[kerneltuner]"'


class KernelTunerError(RuntimeError):
    """Kernel Tuner failed to run a strategy; the message is one line."""


def is_kernel_tuner(name: str) -> bool:
    return name.startswith(PREFIX)


def check_kernel_tuner(names: list[str]) -> None:
    """``kt:`` names need Kernel Tuner installed and must name one of its strategies (one-line ``ValueError``)."""
    wanted = [name for name in names if is_kernel_tuner(name)]
    if not wanted:
        return
    try:
        from kernel_tuner.interface import strategy_map
    except ImportError:
        raise ValueError(f"{wanted[0]} needs Kernel Tuner, the optional extra: {INSTALL}") from None
    unknown = [name for name in wanted if name[len(PREFIX) :] not in strategy_map]
    if unknown:
        raise ValueError(f"unknown Kernel Tuner strategy {','.join(unknown)!r}; choose from: {', '.join(PREFIX + s for s in strategy_map)}")


class KernelTunerStrategy(Strategy):
    """Proposes, in order, what Kernel Tuner's strategy evaluated on the cache file.

    Kernel Tuner's search sees the recorded values themselves, just as ours sees
    them through the measurer, so running it first and handing out its order
    makes the same decisions as running it in step.
    """

    def __init__(self, name: str, task: TaskContext, cache: CacheFile, budget: int) -> None:
        super().__init__(task)
        self.order = kernel_tuner_order(cache, name[len(PREFIX) :], seed=task.seed, budget=budget)
        self.next = 0

    def propose(self, n: int) -> np.ndarray:
        picked = self.order[self.next : self.next + n]
        self.next += len(picked)
        return picked


def kernel_tuner_order(cache: CacheFile, strategy: str, *, seed: int, budget: int) -> np.ndarray:
    """The distinct configurations Kernel Tuner's ``strategy`` evaluated, in order, as index vectors.

    Its strategies draw from Python's and NumPy's global generators; both are
    seeded with ``seed`` for the run and restored afterwards. (``diff_evo`` and
    ``bayes_opt`` also draw a Latin hypercube sample from SciPy without a seed,
    which Kernel Tuner does not let us set: their runs differ between processes.)
    """
    import kernel_tuner
    from constraint import FunctionConstraint

    names = cache.space.names
    with tempfile.TemporaryDirectory() as tmp, _seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numerical warnings of its models, on our terminal
        path = os.path.join(tmp, "cache.json")
        _write_for_kernel_tuner(cache, path)
        try:
            results, _env = kernel_tuner.tune_kernel(
                "replay", "", 1, [], {knob.name: list(knob.choices) for knob in cache.space.knobs},
                # The space is the recorded configurations, as in Kernel Tuner's own
                # tune_cache, but recorded errors stay in it (evaluated, and charged).
                restrictions=[FunctionConstraint(lambda *values: cache_key(values) in cache.records)],
                strategy=strategy, strategy_options={"max_fevals": budget}, cache=path, simulation_mode=True,
                objective=cache.objective, objective_higher_is_better=False, quiet=True, seed=seed,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - any failure inside Kernel Tuner is one line for the user
            first_line = (str(exc).splitlines() or [""])[0]
            raise KernelTunerError(f"Kernel Tuner's {strategy} failed: {type(exc).__name__}: {first_line}") from None
    return configs_of(cache.space, dict.fromkeys(cache_key(result[name] for name in names) for result in results))


def _write_for_kernel_tuner(cache: CacheFile, path: str) -> None:
    """The cache as the plain JSON file Kernel Tuner reads, under the kernel name we pass it.

    Every record carries its parameter values, which Kernel Tuner's results echo
    back and we map to configurations; the problem size is left out, as nothing
    is computed.
    """
    meta = {k: v for k, v in cache.meta.items() if k != "problem_size"}
    configs = configs_of(cache.space, cache.records)
    records = {key: {**record, **cache.space.choices_of(config)} for (key, record), config in zip(cache.records.items(), configs)}
    data = {**meta, "kernel_name": "replay", "device_name": meta.get("device_name") or "recorded", "cache": records}
    with open(path, "w") as f:
        json.dump(data, f)


@contextlib.contextmanager
def _seeded(seed: int):
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
