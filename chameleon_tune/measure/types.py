"""What flows through measurement: settings, and results where failures are data."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Error kinds a trial can end with (``MeasureResult.error``).
INVALID = "invalid"  # the configuration does not replay into a legal schedule
BUILD = "build"  # compiling or exporting failed
RUN = "run"  # loading or running failed, or the worker process crashed
TIMEOUT = "timeout"  # build or run exceeded its time limit
WRONG = "wrong_result"  # output differs from the reference implementation
ERROR_KINDS = (INVALID, BUILD, RUN, TIMEOUT, WRONG)


@dataclass(frozen=True)
class MeasureOptions:
    """How kernels are built and timed; identical for every strategy of a comparison."""

    number: int = 3
    """Kernel calls per timed repeat (their mean is one sample)."""
    repeat: int = 5
    """Timed samples per configuration; the latency reported is the fastest.

    Other work on the machine only ever slows a kernel down, so the minimum is the
    statistic interference cannot bias toward a wrong winner (the median can)."""
    min_repeat_ms: int = 20
    """Raise ``number`` until one repeat lasts at least this long (steadier short kernels; and a
    timing window of 100 ms or more, long enough to see other work in the CPU accounting)."""
    enable_cpu_cache_flush: bool = False
    """Time each call on a cold cache: all arguments but the first (the input) are flushed
    before it, and each sample is one call (``number`` x ``repeat`` samples; ``min_repeat_ms``
    unused). In a whole model a kernel's weights were evicted by the other operators since
    its last call, and kernels that tie warm can differ by a third there (BENCHMARKS.md §12);
    ``tune-model`` times this way by default."""
    build_timeout_s: float = 30.0
    """Limit for compiling one configuration."""
    run_timeout_s: float = 10.0
    """Limit for the correctness check plus timing of one configuration."""
    check_correctness: bool = True
    """Compare each kernel's output with the untransformed workload's on random inputs."""
    rtol: float = 1e-4
    """Relative tolerance of the check, scaled by the reference's largest magnitude."""
    priority: bool = True
    """Time kernels at the highest scheduling priority (nice -20) where that is permitted
    (root or CAP_SYS_NICE): other work on the machine then yields the cores to the
    kernel while it is timed, instead of stalling its threads. Only the timing
    process is raised, and it sleeps between trials."""
    noisy_retries: int = 2
    """Times a timing disturbed by other work is redone once the machine is quiet again."""
    quiet_wait_s: float = 1.0
    """How long to wait for a quiet machine before redoing a disturbed timing."""


RUNNER_KINDS = ("local", "rpc")


@dataclass(frozen=True)
class RunnerConfig:
    """Where kernels are compiled and run: this machine, or devices behind a TVM RPC tracker.

    Invalid combinations raise ``ValueError`` with one line naming the flag to fix.
    """

    kind: str = "local"
    """``local``: this machine's CPU; ``rpc``: every device registered at ``tracker`` under ``device_key``."""
    tracker: str | None = None
    """The TVM RPC tracker as ``HOST:PORT`` (rpc only)."""
    device_key: str | None = None
    """The key the devices registered under (``python -m tvm.exec.rpc_server --key``)."""
    build_workers: int | None = None
    """Parallel compiler processes on this machine; default: one per CPU core."""
    retries: int = 1
    """Further sessions a job gets after its device's session died mid-measurement."""
    threads: int | None = None
    """Threads a kernel runs on (the target's ``num-cores``); default: every physical core.

    Fewer than this machine's cores pins the local runner to that many of the least
    busy ones, so kernels can share a machine with other work without stalling on it."""

    def __post_init__(self) -> None:
        if self.kind not in RUNNER_KINDS:
            raise ValueError(f"unknown runner {self.kind!r}; choose from: {', '.join(RUNNER_KINDS)}")
        if self.kind == "rpc" and not (self.tracker and self.device_key):
            raise ValueError("--runner rpc needs --tracker HOST:PORT and --device-key KEY")
        if self.kind == "local" and (self.tracker or self.device_key):
            raise ValueError("--tracker and --device-key go with --runner rpc")
        if self.tracker is not None:
            parse_tracker(self.tracker)  # a typo fails now, not mid-run
        if self.build_workers is not None and self.build_workers < 1:
            raise ValueError("--build-workers must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError("--threads must be at least 1")
        if self.retries < 0:
            raise ValueError("retries must be at least 0")

    @property
    def tracker_address(self) -> tuple[str, int]:
        return parse_tracker(self.tracker or "")


def parse_tracker(spec: str) -> tuple[str, int]:
    """``HOST:PORT`` as (host, port); ``ValueError`` (one line) if it is not one."""
    host, _, port = spec.rpartition(":")
    host = host.strip("[]")  # [::1]:9190
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--tracker must be HOST:PORT (e.g. 127.0.0.1:9190), not {spec!r}")
    return host, int(port)


@dataclass(frozen=True)
class BuildResult:
    artifact: str | None
    error_msg: str | None
    build_s: float
    timed_out: bool = False
    features: list[float] | None = None
    """The program's features (``program_features.py``), when asked for and extracted."""


@dataclass(frozen=True)
class RunResult:
    run_secs: tuple[float, ...]
    error: str | None
    error_msg: str | None
    run_s: float
    interference: float | None = None
    """Other processes' CPU on the kernel's cores while it was timed, in cores (None: not watched)."""
    noisy: bool = False
    """The timing kept was disturbed by other work (no quiet attempt could be had)."""


@dataclass(frozen=True)
class MeasureResult:
    """The outcome of one trial; ``latency_s`` is set exactly when it is valid."""

    latency_s: float | None
    run_secs: tuple[float, ...] = ()
    error: str | None = None
    error_msg: str | None = None
    build_s: float = 0.0
    run_s: float = 0.0
    extra: dict = field(default_factory=dict)
    interference: float | None = None
    """Other processes' CPU on the kernel's cores while it was timed, in cores (None: not watched)."""
    noisy: bool = False
    """The latency was measured while other work disturbed the machine: treat it with suspicion."""
    features: tuple[float, ...] | None = None
    """The measured program's features (``program_features.py``); None: not described."""

    @property
    def valid(self) -> bool:
        return self.error is None and self.latency_s is not None

    @classmethod
    def failed(cls, error: str, message: str, build_s: float = 0.0, run_s: float = 0.0) -> "MeasureResult":
        assert error in ERROR_KINDS, error
        return cls(None, (), error, message, build_s, run_s)


def short_error(exc: BaseException) -> str:
    """One line of a (often multi-line) TVM error: its last meaningful line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[-1] if lines else type(exc).__name__
    return f"{type(exc).__name__}: {message}"[:500]
