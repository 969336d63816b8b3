"""An exclusive lock in the state directory.

Only one process may sync or send at a time: ``run``, ``sync --once``,
``import`` and ``demo`` take this lock, while read-only commands do not.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from types import TracebackType

from maildesk.errors import LockHeldError

LOCK_NAME = "maildesk.lock"


class StateLock:
    """``fcntl.flock`` on ``<state_dir>/maildesk.lock``, which records the holder's pid and command."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 1024).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            raise LockHeldError(
                f"another maildesk process holds {self.path} ({holder}); "
                "stop it first, or wait until it finishes"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(['maildesk', *sys.argv[1:]])}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
