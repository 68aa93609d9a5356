"""Compile scheduled IRModules into loadable shared libraries, in parallel.

MetaSchedule's LocalBuilder starts a fresh worker that imports TVM's tensor
intrinsics (~20-45 s here) per build batch and times out; our workers import
TVM once and stay alive, one per core.

A kernel whose weights were given a new layout (MetaSchedule's ``RewriteLayout``)
re-lays them out on every call of ``main``; in the compiled model that happens once,
at compile time (``SplitLayoutRewritePreproc``, then ``FoldConstant``). Such a kernel is
built split the same way (:class:`LayoutSplit`): a ``prepack`` entry re-lays out the
weights and a ``compute`` entry runs on them; the check calls both, the timing calls
``compute`` alone, exactly the function the model runs. (Compiling the whole ``main``
beside ``compute``, as before, cost half of every build.)
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from queue import Queue

import numpy as np

from .types import BuildResult
from .worker import IsolatedWorker, RemoteError, WorkerError, WorkerTimeout, close_all


@cache
def _target(target_json: str):
    import tvm

    return tvm.target.Target(json.loads(target_json))


COMPUTE = "compute"
PREPACK = "prepack"


def build_artifact(mod, target_json: str, path: str) -> str:
    """Worker side: compile ``mod`` and export it as a shared library at ``path``."""
    import tvm

    mod, split = split_layout_rewrite(mod)
    tvm.compile(mod, target=_target(target_json)).export_library(path)
    if split is not None:
        with open(_split_path(path), "w") as f:
            json.dump(split.to_json(), f)
    return path


def build_described(mod, target_json: str, path: str) -> tuple[str, list[float] | None]:
    """Worker side: :func:`build_artifact`, and ``mod``'s program features
    (``program_features.py``; None if they cannot be extracted: the kernel is measured without)."""
    from . import program_features

    try:
        features = program_features.describe([mod], target_json)[0].tolist()
    except Exception:  # noqa: BLE001 - features are extra: a kernel that builds is measured without them
        features = None
    return build_artifact(mod, target_json, path), features


ArgSpec = tuple[tuple[int, ...], str]


@dataclass(frozen=True)
class LayoutSplit:
    """How to call a kernel built as ``prepack`` + ``compute`` in place of its ``main``.

    ``buffers`` are the re-laid-out weights; ``calls`` are ``(function, buffer indices)``
    in order, where index ``i`` below the kernel's argument count is its own argument
    ``i`` and the rest index ``buffers``. The last call is ``compute``, which writes the
    kernel's outputs into its own output arguments, so the check reads them as for ``main``.
    """

    buffers: tuple[ArgSpec, ...]
    calls: tuple[tuple[str, tuple[int, ...]], ...]

    def call(self, module, dev, tensors: list) -> None:
        """Run the calls on the kernel's own argument tensors (outputs written into them)."""
        import tvm

        table = list(tensors) + [tvm.runtime.tensor(np.zeros(shape, dtype), dev) for shape, dtype in self.buffers]
        for name, indices in self.calls:
            module[name](*(table[i] for i in indices))

    def timed(self, args: list[ArgSpec]) -> tuple[str, list[ArgSpec]]:
        """``(function, argument specs)`` of the timed call, ``args`` being the kernel's own."""
        name, indices = self.calls[-1]
        specs = list(args) + list(self.buffers)
        return name, [specs[i] for i in indices]

    def to_json(self) -> dict:
        return {"buffers": self.buffers, "calls": self.calls}

    @classmethod
    def from_json(cls, data: dict) -> "LayoutSplit":
        return cls(
            tuple((tuple(shape), dtype) for shape, dtype in data["buffers"]),
            tuple((name, tuple(indices)) for name, indices in data["calls"]),
        )


def split_layout_rewrite(mod) -> tuple[object, LayoutSplit | None]:
    """``(module to compile, split)``: ``mod`` itself and None where no weight is re-laid out;
    otherwise its ``main`` split by Relax's ``SplitLayoutRewritePreproc``, the pass that splits
    it in the compiled model, into :data:`PREPACK` and :data:`COMPUTE` entries."""
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    # A Relax function calling the kernel, as the model does; the last parameter is passed as
    # call_tir's output. Whichever parameters the kernel writes, the check reads them from
    # the kernel's own argument tensors, which every call gets (see LayoutSplit).
    func = mod["main"]
    args = [(tuple(int(d) for d in a.shape), str(a.dtype)) for a in ms.arg_info.ArgInfo.from_prim_func(func)]
    params = [relax.Var(f"arg{i}", relax.TensorType(list(shape), dtype)) for i, (shape, dtype) in enumerate(args)]
    inputs = params[:-1]
    bb = relax.BlockBuilder()
    with bb.function("main", inputs):
        kernel = bb.add_func(func.without_attr("global_symbol"), "kernel")
        with bb.dataflow():
            result = bb.emit_output(bb.emit(relax.call_tir(kernel, inputs, params[-1].ty)))
        bb.emit_func_output(result)
    split_mod = relax.transform.SplitLayoutRewritePreproc()(bb.get())

    # Follow main's bindings: which buffers each call reads and writes.
    where = {p.name: [i] for i, p in enumerate(inputs)}
    buffers, calls, entries = [], [], {}
    call_tir = tvm.ir.Op.get("relax.call_tir")
    bindings = [b for block in split_mod["main"].body.blocks for b in block.bindings]
    tir_calls = [i for i, b in enumerate(bindings) if isinstance(b.value, relax.Call) and b.value.op.same_as(call_tir)]
    if len(tir_calls) == 1:
        return mod, None  # no weight re-laid out
    last_call = tir_calls[-1]
    for i, binding in enumerate(bindings):
        value = binding.value
        if isinstance(value, relax.Call) and value.op.same_as(call_tir):
            callee, operands = value.args[0], value.args[1].fields
            name = COMPUTE if i == last_call else PREPACK + (str(len(entries)) if entries else "")
            entries[name] = split_mod[callee]
            if i == last_call:
                written = [len(params) - 1]
            else:
                out_tys = value.ty.fields if isinstance(value.ty, relax.TupleType) else [value.ty]
                written = list(range(len(args) + len(buffers), len(args) + len(buffers) + len(out_tys)))
                buffers += [(tuple(int(d) for d in ty.shape.values), str(ty.dtype)) for ty in out_tys]
            calls.append((name, tuple(j for v in operands for j in where[v.name]) + tuple(written)))
            where[binding.var.name] = written
        elif isinstance(value, relax.TupleGetItem):
            where[binding.var.name] = [where[value.tuple_value.name][value.index]]
        elif isinstance(value, relax.Var):
            where[binding.var.name] = where[value.name]
    built = tvm.IRModule({name: f.with_attr("global_symbol", name) for name, f in entries.items()})
    return built, LayoutSplit(tuple(buffers), tuple(calls))


def layout_split(artifact: str) -> LayoutSplit | None:
    """How ``artifact`` is called where the builder split it (:class:`LayoutSplit`); None: call ``main``."""
    path = _split_path(artifact)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return LayoutSplit.from_json(json.load(f))


def remove_artifact(artifact: str) -> None:
    for path in (artifact, _split_path(artifact)):
        if os.path.exists(path):
            os.remove(path)


def _split_path(artifact: str) -> str:
    return artifact + ".split.json"


class LocalBuilder:
    """A pool of long-lived compiler processes on this machine."""

    def __init__(self, target, *, n_workers: int | None = None, timeout_s: float = 30.0) -> None:
        self.target_json = str(target)  # TVM prints targets as JSON
        self.timeout_s = timeout_s
        n_workers = n_workers or os.cpu_count() or 1
        self._workers = [IsolatedWorker(preload=("tvm",)) for _ in range(n_workers)]
        self._free: Queue[IsolatedWorker] = Queue()
        for worker in self._workers:
            self._free.put(worker)
        self._pool = ThreadPoolExecutor(max_workers=n_workers)
        self._dir = tempfile.TemporaryDirectory(prefix="chameleon-build-")
        self._count = 0

    def build(self, mods: list, describe: bool = False) -> list[BuildResult]:
        """Build every module; failures come back as results with ``error_msg``. With
        ``describe``, each result carries the module's program features."""
        paths = []
        for _ in mods:
            self._count += 1
            paths.append(os.path.join(self._dir.name, f"k{self._count}.so"))
        return list(self._pool.map(lambda mod, path: self._build_one(mod, path, describe), mods, paths))

    def _build_one(self, mod, path: str, describe: bool) -> BuildResult:
        worker = self._free.get()
        start = time.perf_counter()
        try:
            features = None
            if describe:
                _path, features = worker.call(build_described, mod, self.target_json, path, timeout=self.timeout_s)
            else:
                worker.call(build_artifact, mod, self.target_json, path, timeout=self.timeout_s)
            return BuildResult(path, None, time.perf_counter() - start, features=features)
        except WorkerTimeout as exc:
            return BuildResult(None, f"build timed out: {exc}", time.perf_counter() - start, timed_out=True)
        except (RemoteError, WorkerError) as exc:
            return BuildResult(None, str(exc), time.perf_counter() - start)
        finally:
            self._free.put(worker)

    def start(self) -> None:
        """Start every worker now (in parallel), so start-up is not charged to a build."""
        list(self._pool.map(lambda w: w.start(), self._workers))

    def close(self) -> None:
        close_all(self._workers)
        self._pool.shutdown()
        self._dir.cleanup()
