"""What the progress bars say beside the count: the best so far, and a busy machine."""

from __future__ import annotations


def progress_note(best_s: float, noisy: int) -> str:
    """A progress bar's postfix: the best latency, and a warning once timings were disturbed."""
    note = f"best {best_s * 1e3:.3f} ms"
    return note + (f", BUSY MACHINE: {noisy} timings disturbed" if noisy else "")
