"""TVM MetaSchedule design spaces <-> :class:`~chameleon_tune.space.Space`.

MetaSchedule's ``post-order-apply`` generator turns a TIR workload into a few
*sketches*: schedule traces whose sampling instructions (tile sizes, unroll
depth, compute location) are the tunable decisions. Every sampling instruction
becomes a knob whose choices are *all* its legal decisions, so a configuration
(a vector of choice indices) replays into a concrete schedule.
"""

from __future__ import annotations

import importlib.util
import math
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .measure.types import short_error
from .space import Knob, Space, perfect_tilings


def host_target(num_cores: int | None = None):
    """The host CPU as an LLVM target with its microarchitecture (``mcpu``) detected.

    Generic x86-64 code leaves AVX-512 units idle, so the detected CPU matters.
    """
    import tvm
    from tvm.target import codegen

    return tvm.target.Target(
        {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": num_cores or _physical_cores()}
    )


def parse_target(spec: str, threads: int | None = None):
    """``llvm`` (the host CPU, detected), ``cuda``, a JSON dict, or any TVM target string.

    ``threads`` sets a CPU target's ``num-cores``: the parallelism kernels are scheduled and run for.
    """
    import json

    import tvm

    if spec == "llvm":
        return host_target(threads)
    target = tvm.target.Target(json.loads(spec) if spec.lstrip().startswith("{") else spec)
    if threads and target.kind.name == "llvm":
        target = tvm.target.Target({**target.export(), "num-cores": threads})
    return target


def target_cores(target) -> int | None:
    """The core count a CPU target was compiled for (``num-cores``), if it says."""
    cores = target.attrs.get("num-cores") if target.kind.name == "llvm" else None
    return int(cores) if cores else None


def _physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def load_tensor_intrinsics(target) -> None:
    """Register the tensor intrinsics of ``target``'s kind only.

    ``TuneContext`` imports ``tvm.s_tir.tensor_intrin``, whose ``__init__`` imports
    every backend: ~45 s on a 2-core machine, 41 s of it CUDA's. For a CPU target
    we register the package without running that ``__init__`` and load the
    intrinsics of the target's architecture alone (x86: 0.2 s; ARM's take 1.3 s,
    needless on x86); the later import is then a no-op.
    """
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    if target.kind.name != "llvm":
        importlib.import_module(name)
        return
    spec = importlib.util.find_spec(name)
    sys.modules[name] = importlib.util.module_from_spec(spec)
    triple = str(target.attrs.get("mtriple", "")) or platform.machine()
    importlib.import_module(name + (".arm_cpu" if triple.startswith(("aarch64", "arm")) else ".x86"))


@dataclass
class _Sampling:
    """One sampling instruction of a sketch and the knob it maps to."""

    inst: Any
    position: int  # index among the sketch's sampling instructions
    knob: int
    to_decision: Any  # choice -> the decision object the trace expects


class TVMSpace:
    """The design space of one TIR workload on one target, as a :class:`Space`."""

    def __init__(self, mod, target, *, seed: int = 1, num_threads: int | None = None) -> None:
        import tvm
        from tvm.s_tir import meta_schedule as ms

        if isinstance(mod, tvm.tirx.PrimFunc):
            mod = tvm.IRModule({"main": mod})
        load_tensor_intrinsics(target)
        self.mod = mod
        self.target = target
        self.context = ms.TuneContext(
            mod=mod,
            target=target,
            space_generator="post-order-apply",
            task_name="main",
            num_threads=num_threads or _physical_cores(),
            rand_state=seed,
        )
        self.sketches = [s.trace for s in self.context.space_generator.generate_design_space(mod)]
        if not self.sketches:
            raise ValueError("MetaSchedule generated no design space for this workload")
        self.postprocs = list(self.context.space_generator.postprocs)
        self.space, self._samplings = self._build_space()
        self._sketch_signatures = [_signature(t) for t in self.sketches]

    # -- building the knob space -----------------------------------------------
    def _build_space(self) -> tuple[Space, list[list[_Sampling]]]:
        knobs: list[Knob] = []
        by_key: dict[tuple, int] = {}
        users: dict[int, set[int]] = {}
        samplings: list[list[_Sampling]] = []
        multi = len(self.sketches) > 1
        if multi:
            knobs.append(Knob("sketch", tuple(range(len(self.sketches)))))
        for s, trace in enumerate(self.sketches):
            rows = []
            counts: dict[str, int] = {}
            probe: dict = {}
            for position, inst in enumerate(i for i in trace.insts if i.kind.name.startswith("Sample")):
                described = self._describe(trace, inst, probe)
                if described is None or len(described[1]) < 2:
                    continue  # unknown kinds and single choices keep the sketch's own decision
                prefix, choices, to_decision = described
                key = (position, inst.kind.name, choices)
                if key not in by_key:
                    name = f"{prefix}{counts.get(prefix, 0)}"
                    by_key[key] = len(knobs)
                    knobs.append(Knob(name if s == 0 else f"s{s}.{name}", choices))
                counts[prefix] = counts.get(prefix, 0) + 1
                users.setdefault(by_key[key], set()).add(s)
                rows.append(_Sampling(inst, position, by_key[key], to_decision))
            samplings.append(rows)
        if not knobs:
            # Nothing to sample (e.g. an elementwise op): the one sketch, scheduled as
            # generated, is still worth measuring against the untuned default.
            knobs.append(Knob("sketch", (0,)))
        # A knob that only one sketch uses matters only when that sketch is chosen.
        conditions = {k: (0, next(iter(u))) for k, u in users.items() if multi and len(u) == 1}
        return Space(tuple(knobs), conditions), samplings

    def _describe(self, trace, inst, probe: dict) -> tuple[str, tuple, Any] | None:
        kind = inst.kind.name
        decision = trace.decisions[inst]
        if kind == "SamplePerfectTile":
            n, max_innermost = int(inst.attrs[0]), int(inst.attrs[1])
            extent = math.prod(int(v) for v in decision)
            choices = tuple(perfect_tilings(extent, n, max_innermost if max_innermost > 0 else None))
            # Probe compute locations on a tiling without unit factors where possible:
            # TVM offers no location at a loop of extent 1.
            probe[inst] = list(max(choices, key=min))
            return "tile", choices, list
        if kind == "SampleCategorical":
            candidates = tuple(_plain(c) for c in inst.attrs[0])
            return "categorical", candidates, candidates.index
        if kind == "SampleComputeLocation":
            return "compute_at", self._legal_compute_locations(trace, inst, probe), int
        return None

    def _legal_compute_locations(self, trace, inst, probe: dict) -> tuple[int, ...]:
        """The legal decisions of a SampleComputeLocation (-2 inline, -1 root, i: i-th loop).

        TVM snaps an illegal location down to the nearest legal one, so replaying
        every index and reading back the decision it became yields the legal set.
        """
        position = [i for i in trace.insts if i.kind.name.startswith("Sample")].index(inst)
        legal = set()
        for decision in range(-2, trace_loop_count(trace) + 1):
            sch, _error = self._apply(trace, {**probe, inst: decision}, postprocess=False)
            if sch is not None:
                applied = [i for i in sch.trace.insts if i.kind.name.startswith("Sample")][position]
                legal.add(int(sch.trace.decisions[applied]))
        return tuple(sorted(legal)) or (int(trace.decisions[inst]),)

    # -- configurations <-> schedules ------------------------------------------
    def schedule(self, config) -> tuple[Any, str | None]:
        """Replay ``config`` into a schedule with postprocessors applied.

        Returns ``(schedule, None)`` or ``(None, reason)`` for an invalid configuration.
        """
        config = [int(v) for v in config]
        sketch = config[0] if len(self.sketches) > 1 else 0
        trace = self.sketches[sketch]
        decisions = {
            row.inst: row.to_decision(self.space.knobs[row.knob].choices[config[row.knob]])
            for row in self._samplings[sketch]
        }
        return self._apply(trace, decisions, postprocess=True)

    def _apply(self, trace, decisions: dict, *, postprocess: bool) -> tuple[Any, str | None]:
        from tvm.s_tir.schedule import Schedule, Trace

        merged = dict(trace.decisions)
        merged.update(decisions)
        sch = Schedule(self.mod, seed=1)
        try:
            Trace(trace.insts, merged).apply_to_schedule(sch, remove_postproc=True)
            if postprocess:
                sch.enter_postproc()
                for postproc in self.postprocs:
                    if not postproc.apply(sch):
                        return None, f"postprocessor {type(postproc).__name__} rejected the schedule"
        except Exception as exc:  # noqa: BLE001 - TVM raises many types; all mean "invalid"
            return None, short_error(exc)
        return sch, None

    def program_features(self, configs: np.ndarray) -> np.ndarray:
        """Each configuration's program features (``measure/program_features.py``), as the
        builder describes what it compiles; a row of NaN where one does not schedule."""
        from .measure import program_features

        rows = np.full((len(configs), program_features.WIDTH), np.nan)
        scheduled = [(i, sch) for i, config in enumerate(configs) if (sch := self.schedule(config)[0]) is not None]
        if scheduled:
            rows[[i for i, _ in scheduled]] = program_features.describe(
                [sch.mod for _, sch in scheduled], str(self.target), threads=self.context.num_threads
            )
        return rows

    def sketch_config(self, sketch: int = 0) -> np.ndarray:
        """The configuration of a sketch's own (randomly sampled) decisions."""
        return self._config_in_sketch(self.sketches[sketch], sketch)

    def config_of(self, sch) -> np.ndarray:
        """The configuration that replays into schedule ``sch`` (e.g. a MetaSchedule candidate).

        Sketches are told apart by their schedule-changing instructions; where
        two share them (they differ in which loop an instruction targets), the
        configuration is replayed in each and the resulting programs compared.
        """
        import tvm_ffi

        signature = _signature(sch.trace)
        matches = [s for s, sig in enumerate(self._sketch_signatures) if sig == signature]
        for sketch in matches:
            config = self._config_in_sketch(sch.trace, sketch)
            if len(matches) == 1:
                return config
            replayed, _reason = self.schedule(config)
            if replayed is not None and tvm_ffi.structural_equal(replayed.mod, sch.mod):
                return config
        raise ValueError("schedule does not come from one of this space's sketches")

    def _config_in_sketch(self, trace, sketch: int) -> np.ndarray:
        config = np.zeros(self.space.n_knobs, dtype=np.int64)
        if len(self.sketches) > 1:
            config[0] = sketch
        sampled = [i for i in trace.insts if i.kind.name.startswith("Sample")]
        for row in self._samplings[sketch]:
            choices = self.space.knobs[row.knob].choices
            config[row.knob] = _choice_index(choices, trace.decisions[sampled[row.position]], row.to_decision)
        return config


def _choice_index(choices: tuple, decision, to_decision) -> int:
    decision = _plain(decision)
    for i, choice in enumerate(choices):
        if _plain(to_decision(choice)) == decision:
            return i
    raise ValueError(f"decision {decision} is not among the knob's choices")


def _plain(value):
    """TVM containers and integers as plain Python values (tuples for arrays)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "value"):  # IntImm, FloatImm
        return value.value
    return tuple(_plain(v) for v in value)


def _signature(trace) -> str:
    """What identifies a sketch: its schedule-changing instructions, decisions aside.

    MetaSchedule simplifies the traces of its candidates (dropping unused pure
    instructions such as ``GetConsumers``) and appends postprocessing, so only
    the impure instructions before postprocessing count.
    """
    kinds = []
    for inst in trace.insts:
        if inst.kind.name == "EnterPostproc":
            break
        if not inst.kind.is_pure:
            kinds.append((inst.kind.name, str(inst.attrs)))
    return str(kinds)


def trace_loop_count(trace) -> int:
    """Upper bound on loop positions: loops produced by the sketch's instructions."""
    count = 0
    for inst in trace.insts:
        if inst.kind.name in ("GetLoops", "Split", "Fuse"):
            count += len(inst.outputs)
    return count
