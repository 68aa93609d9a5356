"""Other work on the machine while we time: how much CPU it took from the kernel's cores.

A two-thread kernel on two cores slows down 1.3-2x when one other busy process
shares them (its threads wait for each other at every barrier), and nothing in
the timings themselves says so. So every timing window is watched: the CPU time
spent on the kernel's cores by anything but the timing process itself, in cores
(0.0: the cores were ours alone; 1.0: one whole core went to other work).

Both counters come from the kernel's tick accounting (``/proc/stat`` and the
process's own CPU time, through psutil), so on a quiet machine a 60 ms window
reads within about +-0.2 cores of zero; :data:`NOISY_CORES` sits above that.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

NOISY_CORES = 0.25
"""Other processes' CPU on the kernel's cores (in cores) above which a timing is disturbed."""


@dataclass(frozen=True)
class Interference:
    """What other work took while something was timed."""

    cores: float
    """Average CPU of other processes on the watched cores over the window, in cores."""

    @property
    def noisy(self) -> bool:
        return self.cores >= NOISY_CORES


class CpuWatch:
    """Measures :class:`Interference` over windows: ``start()``, then ``stop()``.

    ``cpus`` are the cores the timed work may run on (default: this process's
    affinity); the process's own CPU time, all threads included, is subtracted.
    """

    def __init__(self, cpus: set[int] | None = None) -> None:
        import psutil

        self._process = psutil.Process()
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self._start: tuple[float, float, float] | None = None

    def _busy_s(self) -> float:
        import psutil

        per_cpu = psutil.cpu_times(percpu=True)
        return sum(_busy(per_cpu[c]) for c in self.cpus if c < len(per_cpu))

    def _own_s(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def start(self) -> None:
        self._start = (time.perf_counter(), self._busy_s(), self._own_s())

    def stop(self) -> Interference:
        wall0, busy0, own0 = self._start
        wall = max(time.perf_counter() - wall0, 1e-9)
        others = (self._busy_s() - busy0) - (self._own_s() - own0)
        return Interference(cores=max(0.0, others / wall))

    def measure(self, seconds: float) -> Interference:
        """Other processes' CPU over the next ``seconds``, while this process sleeps."""
        self.start()
        time.sleep(seconds)
        return self.stop()


def _busy(cpu) -> float:
    """Seconds a core spent on anything but idling and waiting for I/O (steal included: a
    hypervisor giving our vCPU to another guest disturbs timings just the same)."""
    return sum(getattr(cpu, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def kernel_cpus(threads: int | None, sample_s: float = 0.2) -> set[int] | None:
    """The cores to pin ``threads`` kernel threads to: the least busy ones right now.

    None (no pinning) when the kernels use every core this process may run on.
    """
    import psutil

    allowed = sorted(os.sched_getaffinity(0))
    if not threads or threads >= len(allowed):
        return None
    before = psutil.cpu_times(percpu=True)
    time.sleep(sample_s)
    after = psutil.cpu_times(percpu=True)
    busy = {c: _busy(after[c]) - _busy(before[c]) for c in allowed if c < len(after)}
    return set(sorted(busy, key=lambda c: (busy[c], c))[:threads])


def rotated(items, shift: int) -> list[int]:
    """``items`` starting at position ``shift``: no kernel is always timed first (or right after another)."""
    items = list(items)
    shift %= max(len(items), 1)
    return items[shift:] + items[:shift]


def keep_quiet(samples: tuple[float, ...], interference: tuple[float, ...]) -> tuple[tuple[float, ...], float, bool]:
    """``(samples kept, their interference, noisy)``: the undisturbed samples if there are any."""
    quiet = [s for s, i in zip(samples, interference) if i < NOISY_CORES]
    if quiet:
        return tuple(quiet), max(i for i in interference if i < NOISY_CORES), False
    return tuple(samples), min(interference), True
