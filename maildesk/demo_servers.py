"""Throwaway IMAP and SMTP servers on loopback for ``maildesk demo``.

The demo must run on a machine without any mail server. It starts pymap's
in-memory IMAP server as a subprocess and an aiosmtpd SMTP server in a thread
that keeps every message instead of delivering it. Both listen on 127.0.0.1
only, on a port picked at start, and lose all mail when stopped.

pymap and aiosmtpd come with the ``demo`` extra (``pip install 'maildesk[demo]'``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from maildesk.errors import MaildeskError

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Seconds. Far above pymap's usual start time of under a second, so that a
# slow or busy CI machine does not fail the demo.
IMAP_START_TIMEOUT = 20.0
IMAP_STOP_TIMEOUT = 10.0
# A port found free may be taken by another process before the server binds
# it, so a start that fails with "address already in use" is retried.
START_ATTEMPTS = 3


class DemoServerError(MaildeskError):
    """A demo mail server could not be started."""


class _PortInUseError(Exception):
    """The chosen port was taken before the server could bind it."""


class _Server(ABC):
    """Context manager support shared by both demo servers."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the server and release its port."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


# --- IMAP: pymap ---------------------------------------------------------


def find_pymap() -> Path:
    """Return the path of the ``pymap`` console script.

    The script beside the running interpreter comes first, so a virtual
    environment or a pipx install uses its own copy. ``PATH`` is the fallback.
    """
    beside = Path(sys.executable).parent / "pymap"
    if beside.is_file():
        return beside
    found = shutil.which("pymap")
    if found:
        return Path(found)
    raise DemoServerError(
        f"pymap not found beside {sys.executable} or on PATH; "
        "install the demo extra: pip install 'maildesk[demo]'"
    )


class ImapServer(_Server):
    """A running pymap process that serves one user's in-memory mailbox.

    INBOX starts empty, because pymap 0.36 loads its own sample messages only
    when given ``--demo-data``. INBOX is also the only folder at start, so a
    client that appends to a Sent folder has to CREATE it first.
    """

    def __init__(self, process: subprocess.Popen[bytes], stderr: IO[bytes], port: int) -> None:
        self.host = LOOPBACK
        self.port = port
        self._process = process
        self._stderr = stderr

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self) -> None:
        """Terminate pymap and wait until it exits. A second call does nothing."""
        if self._process.poll() is None:
            _terminate(self._process)
            logger.info("stopped demo IMAP server on %s:%d", self.host, self.port)
        self._stderr.close()


def start_imap_server(username: str, password: str) -> ImapServer:
    """Start pymap on a free loopback port and return once it sends its greeting.

    ``username`` and ``password`` are the only login that the server accepts.
    Both are passed on pymap's command line, where local users can read them
    with ps, so use a throwaway password.
    Raises DemoServerError, with pymap's stderr, when pymap exits or sends no
    greeting within IMAP_START_TIMEOUT seconds.
    """
    script = find_pymap()
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_loopback_port()
        try:
            server = _start_pymap(script, port, username, password)
        except _PortInUseError:
            logger.warning("port %d was taken before pymap could bind it (attempt %d)", port, attempt)
            continue
        logger.info("started demo IMAP server on %s:%d (pid %d)", server.host, port, server.pid)
        return server
    raise DemoServerError(
        f"pymap could not bind a free port on {LOOPBACK} in {START_ATTEMPTS} attempts"
    )


def _start_pymap(script: Path, port: int, username: str, password: str) -> ImapServer:
    command = [
        str(script),
        "--host", LOOPBACK,
        "--port", str(port),
        "--no-tls",
        "dict",
        "--demo-user", username,
        "--demo-password", password,
    ]
    # A file rather than a pipe: nothing reads a pipe while the demo runs, and
    # a full pipe would block pymap as soon as it logs enough.
    stderr = tempfile.TemporaryFile()
    # NOTE: pymap outlives a parent that is killed with SIGKILL, because only
    # stop() ends it. SIGINT from a terminal reaches both processes.
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
    )
    try:
        failure = _wait_for_greeting(process, port)
    except BaseException:
        _terminate(process)
        stderr.close()
        raise
    if failure is None:
        return ImapServer(process, stderr, port)

    _terminate(process)
    stderr.seek(0)
    output = stderr.read().decode("utf-8", "replace").strip()
    stderr.close()
    if "address already in use" in output.lower():
        raise _PortInUseError(port)
    # The error shows the command up to the backend name, without the login.
    shown = " ".join(command[: command.index("dict") + 1])
    raise DemoServerError(f"{failure}; command: {shown}; stderr:\n{output}")


def _wait_for_greeting(process: subprocess.Popen[bytes], port: int) -> str | None:
    """Poll until pymap greets on ``port``. Return None then, else what went wrong."""
    deadline = time.monotonic() + IMAP_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"pymap exited with status {process.returncode} before accepting connections"
        if _sends_imap_greeting(port):
            return None
        time.sleep(0.05)
    return f"pymap sent no IMAP greeting on {LOOPBACK}:{port} within {IMAP_START_TIMEOUT:.0f} s"


def _sends_imap_greeting(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2.0) as connection:
            return connection.recv(64).startswith(b"* OK")
    except OSError:
        return False


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Send SIGTERM, wait up to IMAP_STOP_TIMEOUT seconds, then SIGKILL."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=IMAP_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        logger.warning(
            "pymap (pid %d) still running %.0f s after SIGTERM; killing it",
            process.pid,
            IMAP_STOP_TIMEOUT,
        )
        process.kill()
        process.wait()


# --- SMTP: aiosmtpd sink -------------------------------------------------


@dataclass(frozen=True, slots=True)
class SinkMessage:
    """One message as the sink accepted it: SMTP envelope and raw DATA bytes."""

    # "" for the null reverse-path (MAIL FROM:<>), which aiosmtpd 1.4 reports as "<>".
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


class _RecordingHandler:
    """aiosmtpd handler that accepts every message and appends it to a list."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[SinkMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        # aiosmtpd keeps DATA as bytes because the Controller is not given decode_data=True.
        message = SinkMessage(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(envelope.content),
        )
        with self.lock:
            self.messages.append(message)
        logger.info(
            "demo SMTP sink accepted %d bytes from %s to %s",
            len(message.data),
            message.mail_from or "<>",
            ", ".join(message.rcpt_tos),
        )
        return "250 Message accepted"


class SmtpSink(_Server):
    """An SMTP server on loopback that stores every accepted message in memory."""

    def __init__(self, controller: Any, handler: _RecordingHandler, port: int) -> None:
        self.host = LOOPBACK
        self.port = port
        self._controller = controller
        self._handler = handler
        self._stopped = False

    @property
    def messages(self) -> list[SinkMessage]:
        """A snapshot copy of the accepted messages, oldest first."""
        with self._handler.lock:
            return list(self._handler.messages)

    def stop(self) -> None:
        """Stop the server thread. A second call does nothing."""
        if self._stopped:
            return
        self._controller.stop()
        self._stopped = True
        logger.info("stopped demo SMTP sink on %s:%d", self.host, self.port)


def start_smtp_sink() -> SmtpSink:
    """Start an SMTP server on a free loopback port that keeps messages in memory.

    It accepts any sender and recipient, without TLS or authentication.
    Raises DemoServerError when no port could be bound in START_ATTEMPTS tries.
    """
    # Imported here so that maildesk runs without the demo extra installed.
    from aiosmtpd.controller import Controller

    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_loopback_port()
        handler = _RecordingHandler()
        # server_hostname is the name in the greeting. Without it aiosmtpd calls
        # socket.getfqdn(), which can wait for DNS on a machine without network.
        controller = Controller(
            handler, hostname=LOOPBACK, port=port, server_hostname="localhost"
        )
        try:
            controller.start()
        except OSError as exc:
            # aiosmtpd 1.4 re-raises the bind error after its ready_timeout (5 s).
            logger.warning("demo SMTP sink could not bind port %d (attempt %d): %s", port, attempt, exc)
            continue
        logger.info("started demo SMTP sink on %s:%d", LOOPBACK, port)
        return SmtpSink(controller, handler, port)
    raise DemoServerError(
        f"the demo SMTP sink could not bind a free port on {LOOPBACK} in {START_ATTEMPTS} attempts"
    )
