"""The record store: every trial measured on a target, kept across runs, so a new run starts
from what earlier runs of any model measured there.

A directory (by default ``$XDG_CACHE_HOME/chameleon/records``, else ``~/.cache/...``) with
one folder per *target key* (the target and how kernels were timed: warm and cold timings
do not rank alike) and in it one folder per workload: ``space.json`` (its knobs, name and
key) and ``trials.jsonl``, one line per trial appended as it is measured, so a killed run
loses nothing measured. A workload's key is its operator's structural hash, so the same
operator in two models is one workload. A file that cannot be read is skipped with a
warning; nothing else is lost.

What a new run takes from the store (see ``tuner.py``): for each of its tasks, the stored
workloads with the same knobs (``transfer.compatible``), nearest first, feed the shared
cost model and the task's first configurations; the program features kept with each trial
(``measure/program_features.py``), of every stored workload whatever its knobs, train the
program cost model that ranks the task's first candidates. No TVM here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..measure import program_features
from ..space import Space

SPACE_FILE = "space.json"
TRIALS_FILE = "trials.jsonl"


class RecordStoreError(ValueError):
    """The store cannot be used (not a directory, not writable) or an import source is not a work directory."""


def default_root() -> str:
    """Where the store lives unless ``--records`` says otherwise."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "chameleon", "records")


def target_key(target: str, cache_flush: bool) -> str:
    """A folder name for a target (TVM's JSON of it) and a timing mode: readable, and unique."""
    try:
        attrs = json.loads(target)
    except ValueError:
        attrs = {"kind": target}
    readable = "-".join(
        str(part) for part in (attrs.get("kind"), attrs.get("mcpu") or attrs.get("arch"), attrs.get("num-cores")) if part
    )
    digest = hashlib.sha1(target.encode()).hexdigest()[:8]
    return f"{readable}-{'cold' if cache_flush else 'warm'}-{digest}".replace("/", "_")


@dataclass(frozen=True)
class StoredWorkload:
    """One workload's stored trials (valid or not: ``inf`` latency for a failure)."""

    key: str
    name: str
    space: Space
    configs: np.ndarray
    latencies: np.ndarray
    runs: tuple[str, ...]
    """The work directory each trial was measured in (a ``tune-model`` task's folder)."""
    features: np.ndarray | None = None
    """Each trial's program features (``measure/program_features.py``), a row of NaN where a
    trial has none; None: no trial has any."""

    def excluding(self, directory: str) -> "StoredWorkload":
        """Without the trials measured under ``directory`` (a run resumed there has them already)."""
        prefix = os.path.abspath(directory)
        return self._take([i for i, r in enumerate(self.runs) if r != prefix and not r.startswith(prefix + os.sep)])

    def latest(self, n: int) -> "StoredWorkload":
        """Its last ``n`` trials."""
        return self._take(list(range(max(0, len(self.runs) - n), len(self.runs))))

    def _take(self, rows: list[int]) -> "StoredWorkload":
        index = np.array(rows, dtype=np.int64)
        return StoredWorkload(
            self.key, self.name, self.space, self.configs[index], self.latencies[index], tuple(self.runs[i] for i in rows),
            None if self.features is None else self.features[index],
        )  # fmt: skip

    def best(self, k: int) -> np.ndarray:
        order = np.argsort(self.latencies, kind="stable")
        return self.configs[order[: min(k, int(np.isfinite(self.latencies).sum()))]]


class RecordStore:
    """The records of one target key under ``root``."""

    def __init__(self, root: str, key: str) -> None:
        self.root = root
        self.key = key
        self.directory = os.path.join(root, key)

    def check_writable(self) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise RecordStoreError(f"cannot use the record store {self.root!r}: {exc.strerror or exc}") from None
        if not os.access(self.directory, os.W_OK):
            raise RecordStoreError(f"cannot use the record store {self.root!r}: not writable")

    def writer(self, workload_key: str, name: str, space: Space, run: str) -> "TrialWriter":
        """Where one workload's trials of ``run`` are appended as measured."""
        folder = os.path.join(self.directory, _folder(workload_key))
        os.makedirs(folder, exist_ok=True)
        space_path = os.path.join(folder, SPACE_FILE)
        if not os.path.exists(space_path):
            with open(space_path + ".tmp", "w") as f:
                json.dump({"key": workload_key, "name": name, "space": space.to_json()}, f)
            os.replace(space_path + ".tmp", space_path)  # never a half-written space
        return TrialWriter(os.path.join(folder, TRIALS_FILE), os.path.abspath(run))

    def load(self) -> list[StoredWorkload]:
        """Every readable workload of this target key; unreadable files are skipped with a warning."""
        return [w for w in (_read(folder) for folder in self._folders()) if w is not None]

    def _folders(self) -> Iterator[str]:
        if os.path.isdir(self.directory):
            for entry in sorted(os.listdir(self.directory)):
                if os.path.isdir(path := os.path.join(self.directory, entry)):
                    yield path


class TrialWriter:
    """Appends one workload's trials to the store, one line each, as they are measured."""

    def __init__(self, path: str, run: str) -> None:
        self.path = path
        self.run = run

    def append(self, config, latency_s: float | None, features=None) -> None:
        line = {"config": [int(c) for c in config], "latency_s": latency_s, "run": self.run}
        if features is not None:
            line["features"] = [float(v) for v in features]
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")


def _warn(message: str) -> None:
    sys.stderr.write(f"chameleon: warning: record store: {message}\n")


def _folder(workload_key: str) -> str:
    return hashlib.sha1(workload_key.encode()).hexdigest()[:16]


def _read(folder: str) -> StoredWorkload | None:
    try:
        with open(os.path.join(folder, SPACE_FILE)) as f:
            meta = json.load(f)
        space = Space.from_json(meta["space"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _warn(f"skipping {folder}: unreadable {SPACE_FILE} ({exc})")
        return None
    configs, latencies, runs, features, bad = [], [], [], [], 0
    try:
        with open(os.path.join(folder, TRIALS_FILE)) as f:
            lines = f.readlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            trial = json.loads(line)
            config = [int(c) for c in trial["config"]]
            if len(config) != space.n_knobs or not all(0 <= c < len(k) for c, k in zip(config, space.knobs)):
                raise ValueError("not a configuration of the stored space")
            latency = trial["latency_s"]
            described = program_features.checked(trial.get("features"))
            latencies.append(float(latency) if latency is not None and latency > 0 else np.inf)
            configs.append(config)
            runs.append(str(trial.get("run", "")))
            features.append(described)
        except (ValueError, KeyError, TypeError):
            bad += 1  # a line cut short by a killed run, or damaged: the rest still counts
    if bad:
        _warn(f"skipped {bad} unreadable line(s) of {os.path.join(folder, TRIALS_FILE)}")
    described = program_features.table(features) if any(f is not None for f in features) else None
    return StoredWorkload(
        str(meta["key"]), str(meta.get("name", meta["key"])), space,
        np.array(configs, dtype=np.int64).reshape(len(configs), space.n_knobs), np.array(latencies, dtype=np.float64),
        tuple(runs), described,
    )  # fmt: skip


def summary(root: str) -> list[dict]:
    """Per target key and workload: how many trials, how many valid, how many with program features."""
    rows = []
    if not os.path.isdir(root):
        return rows
    for key in sorted(os.listdir(root)):
        if not os.path.isdir(os.path.join(root, key)):
            continue
        for w in RecordStore(root, key).load():
            rows.append({
                "target": key, "workload": w.name, "key": w.key, "trials": len(w.latencies),
                "valid": int(np.isfinite(w.latencies).sum()), "runs": len(set(w.runs)),
                "described": 0 if w.features is None else int((~np.isnan(w.features).any(axis=1)).sum()),
            })  # fmt: skip
    return rows


def clear(root: str, key: str | None = None) -> int:
    """Remove the records of one target key (all of them without ``key``): how many folders went."""
    if not os.path.isdir(root):
        return 0
    keys = [key] if key is not None else [k for k in os.listdir(root) if os.path.isdir(os.path.join(root, k))]
    removed = 0
    for k in keys:
        path = os.path.join(root, k)
        if os.path.isdir(path):
            shutil.rmtree(path)
            removed += 1
    return removed


def import_work_dir(root: str, path: str) -> tuple[str, int]:
    """Add the trials of a finished or killed run to the store: ``(target key, trials added)``.

    ``path`` is a ``tune-model`` output directory (every task) or a ``tune`` work directory
    (its workload, keyed by name). Trials already imported from ``path`` are not added twice.
    """
    from ..database import History, HistoryError

    try:
        with open(os.path.join(path, "run.json")) as f:
            run = json.load(f)
        key = target_key(run["target"], bool(run.get("cache_flush", False)))
    except (OSError, ValueError, KeyError, TypeError):
        raise RecordStoreError(f"{path!r} is not a chameleon work directory (no readable run.json)") from None
    if "model" in run:
        tasks_dir = os.path.join(path, "tasks")
        folders = [os.path.join(tasks_dir, d) for d in sorted(os.listdir(tasks_dir))] if os.path.isdir(tasks_dir) else []
    else:
        folders = [path]
    store, added = RecordStore(root, key), 0
    store.check_writable()
    existing = {w.key: set(w.runs) for w in store.load()}
    for folder in folders:
        try:
            with open(os.path.join(folder, "run.json")) as f:
                meta = json.load(f)
            with open(os.path.join(folder, SPACE_FILE)) as f:
                space = Space.from_json(json.load(f))
            history = History(space, os.path.join(folder, "history.jsonl"))
        except (OSError, ValueError, KeyError, HistoryError) as exc:
            _warn(f"skipping {folder}: {exc}")
            continue
        workload_key, name = (meta["hash"], meta["task"]) if "hash" in meta else (f"workload:{meta['workload']}", meta["workload"])
        writer = store.writer(workload_key, name, space, folder)
        if writer.run in existing.get(workload_key, ()):
            continue
        for trial in history.trials:
            writer.append(trial.config, trial.result.latency_s if trial.result.valid else None, trial.result.features)
            added += 1
    return key, added
