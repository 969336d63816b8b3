"""Wait for new mail with IMAP IDLE (RFC 2177) and wake the sync job early.

One :class:`IdleWatcher` thread per folder keeps one connection, SELECTs the
folder read-only and waits in IDLE. When the server reports EXISTS (new
mail) it calls ``on_new_mail``, which only moves the daemon's sync job to
now: fetching and storing stay on the daemon's single worker, so IDLE adds
no second writer. The watcher re-issues IDLE every ``renew_seconds`` (25
minutes, because RFC 2177 lets a server drop a client that idles for 30)
and checks its stop event every ``check_seconds``.

A broken connection is closed before a new one is opened, so a folder never
has more than one IDLE connection, and reconnects wait with exponential
backoff and jitter (:mod:`maildesk.backoff`). After a reconnect the watcher
asks for a sync too, since mail may have arrived while it was away. A server
without IDLE ends the watcher: the daemon's polling every ``poll_interval``
goes on as before.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from imapclient import IMAPClient

from maildesk.backoff import RetryGate
from maildesk.config import MailboxSettings
from maildesk.connections import connect_imap
from maildesk.errors import ConnectionSetupError

log = logging.getLogger(__name__)

RENEW_SECONDS = 25 * 60
CHECK_SECONDS = 1.0


class IdleWatcher(threading.Thread):
    """The IDLE connection of one folder, run as a daemon thread until ``stop_event`` is set."""

    def __init__(
        self,
        settings: MailboxSettings,
        folder: str,
        on_new_mail: Callable[[str], None],
        stop_event: threading.Event,
        *,
        connect: Callable[[MailboxSettings], IMAPClient] = connect_imap,
        gate: RetryGate | None = None,
        renew_seconds: float = RENEW_SECONDS,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        super().__init__(name=f"idle {folder}", daemon=True)
        self.settings = settings
        self.folder = folder
        self.on_new_mail = on_new_mail
        self.stop_event = stop_event
        self.connect = connect
        self.gate = gate or RetryGate(f"IDLE connection for {folder}")
        self.renew_seconds = renew_seconds
        self.check_seconds = check_seconds
        # None until the server's capabilities are known.
        self.supported: bool | None = None
        # IDLE commands issued, renewals included; read by tests and logs.
        self.idle_commands = 0
        self.connections = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            if not self.gate.ready():
                self.stop_event.wait(self.gate.remaining())
                continue
            try:
                client = self.connect(self.settings)
            except ConnectionSetupError as exc:
                self.gate.failed(exc)
                continue
            self.connections += 1
            try:
                self._watch(client)
            except (IMAPClient.Error, OSError) as exc:
                # IMAPClient.Error covers a server's NO (the folder was deleted) and
                # AbortError (the connection broke); OSError covers sockets and TLS.
                self.gate.failed(f"{type(exc).__name__}: {exc}")
            finally:
                _close(client)
            if self.supported is False:
                return

    def _watch(self, client: IMAPClient) -> None:
        if not client.has_capability("IDLE"):
            self.supported = False
            log.info(
                "IMAP server %s does not offer IDLE; %s is polled every %d s",
                self.settings.host, self.folder, self.settings.poll_interval,
            )
            return
        self.supported = True
        client.select_folder(self.folder, readonly=True)
        reconnected = self.gate.failures > 0
        self.gate.succeeded()
        log.info("waiting for new mail in %s with IMAP IDLE", self.folder)
        if reconnected:
            # Mail may have arrived while the connection was down.
            self.on_new_mail(self.folder)
        while not self.stop_event.is_set():
            if self._idle_once(client):
                self.on_new_mail(self.folder)

    def _idle_once(self, client: IMAPClient) -> bool:
        """Run one IDLE command until new mail, renewal time or stop; return whether mail arrived."""
        client.idle()
        self.idle_commands += 1
        started = time.monotonic()
        new_mail = False
        try:
            while not self.stop_event.is_set() and not new_mail:
                if time.monotonic() - started >= self.renew_seconds:
                    log.debug("re-issuing IDLE on %s", self.folder)
                    break
                responses = client.idle_check(timeout=self.check_seconds)
                new_mail = any(_is_exists(response) for response in responses)
                if not responses and _peer_closed(client):
                    # imapclient 4.1 returns no responses at EOF instead of raising.
                    raise IMAPClient.AbortError("the server closed the connection during IDLE")
        finally:
            client.idle_done()
        if new_mail:
            log.debug("IDLE on %s reported new mail", self.folder)
        return new_mail


def _is_exists(response: object) -> bool:
    return (
        isinstance(response, tuple)
        and len(response) >= 2
        and isinstance(response[1], bytes)
        and response[1].upper() == b"EXISTS"
    )


def _peer_closed(client: IMAPClient) -> bool:
    """Return whether the server has closed the connection (EOF is waiting on the socket)."""
    # A duplicate of the descriptor lets MSG_PEEK look at the raw bytes even under
    # TLS, where SSLSocket.recv() accepts no flags; peeking consumes nothing.
    try:
        probe = socket.socket(fileno=os.dup(client.socket().fileno()))
    except OSError:
        return True
    try:
        return probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        probe.close()


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClient.Error, OSError):
        try:
            client.shutdown()
        except OSError as exc:
            log.debug("closing the IDLE connection failed: %s", exc)
