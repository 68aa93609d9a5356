"""One tuner per work directory: an advisory lock held for the whole run.

Two runs appending to one history would measure the same budget twice and
interleave their records. The lock is ``flock`` on ``.chameleon.lock`` in the
directory, which the operating system releases when its holder exits in any
way, so a lock file left by a killed run is stale by construction and the next
run simply takes it over. The file names the holder's process id for the error.
"""

from __future__ import annotations

import fcntl
import os

LOCK_FILE = ".chameleon.lock"


class WorkDirBusy(Exception):
    """Another live run holds the directory (one-line message naming its process id)."""


class WorkDirLock:
    """``with WorkDirLock(directory):`` holds the lock for the block; ``directory`` None locks nothing."""

    def __init__(self, directory: str | None, what: str = "work directory") -> None:
        self.directory = directory
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "WorkDirLock":
        """Take the lock, or raise :class:`WorkDirBusy` at once (OSError if the directory is unusable)."""
        if self.directory is None or self._fd is not None:
            return self
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(os.path.join(self.directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkDirBusy(
                f"{self.what} {self.directory!r} is in use by another chameleon run (process {holder}); "
                "wait for it to finish or choose another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "WorkDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
