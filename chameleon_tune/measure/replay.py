"""Recorded search spaces: Kernel Tuner cache files as a measurer, no compiler needed.

A cache file holds exhaustive measurements of one kernel: ``tune_params_keys``
(ordered names), ``tune_params`` (name -> ordered values), ``objective`` and
``cache``, a mapping from the configuration's values joined by commas to a
record with the objective (a number, lower is better, or an error string),
often ``compile_time`` and ``benchmark_time`` in ms. Every tune parameter
becomes a knob. As in Kernel Tuner, the cache holds the configurations that
satisfy the kernel's restrictions: the space is restricted to them, so a
configuration absent from the cache is never proposed and costs nothing, while
one recorded as an error is a failed (and charged) evaluation. Each evaluation
is charged its recorded compile and benchmark time, so replays report simulated
tuning time as well as evaluations.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass

import numpy as np

from ..space import Knob, Space
from .base import Measurer, OnResult
from .types import BUILD, INVALID, RUN, MeasureResult

#: Kernel Tuner's error strings and the error kind each one is here.
ERROR_STRINGS = {"InvalidConfig": INVALID, "CompilationFailedConfig": BUILD, "RuntimeFailedConfig": RUN}
_REQUIRED = ("tune_params_keys", "tune_params", "objective", "cache")


class CacheFileError(ValueError):
    """The file is not a usable Kernel Tuner cache; the message names the problem."""


@dataclass(frozen=True)
class CacheFile:
    space: Space
    objective: str
    records: dict[str, dict]
    meta: dict

    @property
    def scale(self) -> float:
        """Factor from the recorded objective to our latency unit (ms -> s for ``time``)."""
        return 1e-3 if self.objective == "time" else 1.0

    @property
    def optimum(self) -> float:
        """The best (lowest) valid objective value recorded."""
        return min(float(r[self.objective]) for r in self.records.values() if _valid(r.get(self.objective)))


def _valid(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def cache_key(values) -> str:
    """Kernel Tuner's cache key: the values, as ``str``, joined by commas."""
    return ",".join(str(v) for v in values)


def load_cache(path: str) -> CacheFile:
    """Read and check a cache file (``.json`` or gzip-compressed)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise CacheFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise CacheFileError(f"{path} is not valid gzip: {exc}") from None
    elif path.endswith(".gz"):
        raise CacheFileError(f"{path} ends in .gz but is not gzip-compressed")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheFileError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CacheFileError(f"{path} is not a Kernel Tuner cache: expected a JSON object")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise CacheFileError(f"{path} lacks {', '.join(missing)}")
    names, params, objective, cache = data["tune_params_keys"], data["tune_params"], data["objective"], data["cache"]
    if not isinstance(params, dict) or not isinstance(cache, dict) or not isinstance(names, list):
        raise CacheFileError(f"{path}: tune_params and cache must be objects, tune_params_keys a list")
    if sorted(names) != sorted(params):
        raise CacheFileError(f"{path}: tune_params_keys {names} disagree with tune_params {sorted(params)}")
    if not names or any(not params[n] for n in names):
        raise CacheFileError(f"{path}: the space is empty")
    space = Space(tuple(Knob(name, tuple(params[name])) for name in names))
    for key, record in cache.items():
        if not isinstance(record, dict) or objective not in record:
            raise CacheFileError(f"{path}: cache entry {key!r} has no {objective!r}")
        if not (_valid(record[objective]) or isinstance(record[objective], str)):
            raise CacheFileError(f"{path}: cache entry {key!r} has objective {record[objective]!r}")
    if not any(_valid(r[objective]) for r in cache.values()):
        raise CacheFileError(f"{path}: no valid measurement in the cache")
    try:
        space = space.restricted(configs_of(space, cache))
    except KeyError as exc:
        raise CacheFileError(f"{path}: cache entry {exc.args[0]!r} is not a configuration of tune_params") from None
    return CacheFile(space, objective, cache, {k: v for k, v in data.items() if k != "cache"})


def configs_of(space: Space, keys) -> np.ndarray:
    """The index vectors of cache keys (``KeyError`` with the key for one outside ``space``)."""
    index = [{str(choice): i for i, choice in enumerate(knob.choices)} for knob in space.knobs]
    rows = []
    for key in keys:
        values = key.split(",")
        if len(values) != len(index) or any(v not in lookup for v, lookup in zip(values, index)):
            raise KeyError(key)
        rows.append([lookup[v] for v, lookup in zip(values, index)])
    return np.array(rows, dtype=np.int64).reshape(-1, len(index))


class ReplayMeasurer(Measurer):
    """Looks configurations up in a cache file instead of compiling and timing them.

    ``latency_s`` is the objective (converted from ms when it is ``time``);
    ``build_s`` and ``run_s`` are the recorded compile and benchmark times, so
    the measurer's totals are the simulated tuning time.
    """

    def __init__(self, cache: CacheFile) -> None:
        self.cache = cache
        self.space = cache.space
        self.scale = cache.scale
        self.build_s = self.run_s = 0.0

    def measure(self, configs: np.ndarray, on_result: OnResult | None = None) -> list[MeasureResult]:
        results = []
        for i, config in enumerate(configs):
            result = self._lookup(config)
            self.build_s += result.build_s
            self.run_s += result.run_s
            results.append(result)
            if on_result is not None:
                on_result(i, result)
        return results

    def _lookup(self, config) -> MeasureResult:
        values = [knob.choices[int(c)] for knob, c in zip(self.space.knobs, config)]
        record = self.cache.records.get(cache_key(values))
        if record is None:  # outside the (restricted) space: no strategy proposes it
            return MeasureResult.failed(INVALID, "not in the cache")
        build_s = float(record.get("compile_time", 0.0)) * 1e-3
        run_s = float(record.get("benchmark_time", 0.0)) * 1e-3
        value = record[self.cache.objective]
        if not _valid(value):
            return MeasureResult.failed(ERROR_STRINGS.get(value, RUN), str(value), build_s, run_s)
        times = tuple(float(t) * self.scale for t in record.get("times", ())) or (float(value) * self.scale,)
        return MeasureResult(float(value) * self.scale, times, build_s=build_s, run_s=run_s)


#: The error string written for each of our error kinds.
_EXPORTED_ERRORS = {INVALID: "InvalidConfig", BUILD: "CompilationFailedConfig"}


def export_cache(space: Space, trials, path: str, **meta) -> None:
    """Write measured trials as a Kernel Tuner cache file that :func:`load_cache` replays.

    Tuple choices (tilings) become strings like ``"1x2x4x7"``, so every value
    stays a scalar and cache keys stay unambiguous. Times are in ms.
    """
    params = {knob.name: [_scalar(c) for c in knob.choices] for knob in space.knobs}
    cache = {}
    for trial in trials:
        values = [params[knob.name][i] for knob, i in zip(space.knobs, trial.config)]
        r = trial.result
        record = dict(zip(params, values))
        record["time"] = r.latency_s * 1e3 if r.valid else _EXPORTED_ERRORS.get(r.error, "RuntimeFailedConfig")
        if r.valid:
            record["times"] = [s * 1e3 for s in r.run_secs]
        record["compile_time"] = r.build_s * 1e3
        record["benchmark_time"] = r.run_s * 1e3
        cache[cache_key(values)] = record
    data = {**meta, "tune_params_keys": list(params), "tune_params": params, "objective": "time", "cache": cache}
    text = json.dumps(data).encode()
    with open(path, "wb") as f:
        f.write(gzip.compress(text) if path.endswith(".gz") else text)


def _scalar(choice):
    return "x".join(str(v) for v in choice) if isinstance(choice, tuple) else choice
