"""The systemd notification protocol (sd_notify) over ``$NOTIFY_SOCKET``.

With ``Type=notify`` systemd passes the path of a datagram socket in
``$NOTIFY_SOCKET`` and waits for ``READY=1``. ``WatchdogSec=`` makes it pass
``$WATCHDOG_USEC`` too, and kill the service when no ``WATCHDOG=1`` arrives
in time. A name starting with "@" is a Linux abstract socket. Outside
systemd the variable is unset and every call here does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends state lines such as ``READY=1`` to the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_seconds = _watchdog_seconds(environ)
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> None:
        """Ask for ``seconds`` more before the start-up times out (systemd 236 and later)."""
        self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def stopping(self) -> None:
        self.send("STOPPING=1\nSTATUS=stopping")

    def send(self, state: str) -> None:
        """Send ``state``; a failure is logged and otherwise ignored, as sd_notify(3) does."""
        if self.address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(state.encode("utf-8"), self.address)
        except OSError as exc:
            log.warning("sending %r to the service manager failed: %s", state.split("\n")[0], exc)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket name; ignored", value)
    return None


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """Return the watchdog timeout in seconds, or None when the watchdog is off or meant for another process."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000
