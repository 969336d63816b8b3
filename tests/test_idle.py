"""IMAP IDLE and reconnects with backoff, against private Dovecot instances."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from faultkit import DaemonProcess, account_config, private_dovecot, wait_until
from maildesk.backoff import Backoff, RetryGate
from maildesk.idle import IdleWatcher
from servers import SmtpSink
from tests.mailkit import make_mail

pytestmark = pytest.mark.dovecot


class Recorder:
    """Collects on_new_mail calls from an IdleWatcher thread."""

    def __init__(self) -> None:
        self.folders: list[str] = []
        self.event = threading.Event()

    def __call__(self, folder: str) -> None:
        self.folders.append(folder)
        self.event.set()


@pytest.fixture
def stop_event() -> Any:
    event = threading.Event()
    yield event
    event.set()


def fast_gate(name: str = "IDLE test") -> RetryGate:
    return RetryGate(name, Backoff(first=0.2, maximum=0.5))


def test_idle_reports_new_mail(imap_account: Any, stop_event: threading.Event) -> None:
    """A message appended while the watcher idles triggers on_new_mail for its folder."""
    recorder = Recorder()
    watcher = IdleWatcher(imap_account.settings(), "INBOX", recorder, stop_event, check_seconds=0.1)
    watcher.start()
    wait_until(lambda: watcher.idle_commands >= 1, what="first IDLE")

    imap_account.append(make_mail())

    assert recorder.event.wait(10)
    assert ["INBOX"] == recorder.folders[:1]


def test_idle_renewed_on_same_connection(imap_account: Any, stop_event: threading.Event) -> None:
    """IDLE is re-issued after renew_seconds without opening a new connection."""
    watcher = IdleWatcher(
        imap_account.settings(), "INBOX", Recorder(), stop_event,
        renew_seconds=0.3, check_seconds=0.1,
    )
    watcher.start()

    wait_until(lambda: watcher.idle_commands >= 3, what="three IDLE commands")

    assert 1 == watcher.connections


def test_idle_stops_on_event(imap_account: Any) -> None:
    """Setting the stop event ends the watcher thread, which sends DONE and logs out."""
    stop = threading.Event()
    watcher = IdleWatcher(imap_account.settings(), "INBOX", Recorder(), stop, check_seconds=0.1)
    watcher.start()
    wait_until(lambda: watcher.idle_commands >= 1, what="first IDLE")

    stop.set()
    watcher.join(timeout=5)

    assert not watcher.is_alive()


def test_idle_missing_capability_ends(dovecot_binary: str, stop_event: threading.Event) -> None:
    """Against a server without IDLE the watcher marks it unsupported and ends; polling goes on."""
    with private_dovecot(dovecot_binary, "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS") as server:
        account = server.create_account()
        watcher = IdleWatcher(account.settings(), "INBOX", Recorder(), stop_event, check_seconds=0.1)
        watcher.start()
        watcher.join(timeout=10)
        account.close()

    assert watcher.supported is False
    assert not watcher.is_alive()


def test_idle_deleted_folder_retries(
    imap_account: Any, stop_event: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder the server refuses is retried with backoff, each attempt logged with its number."""
    caplog.set_level(logging.WARNING, logger="maildesk.backoff")
    gate = fast_gate("IDLE connection for Gone")
    watcher = IdleWatcher(imap_account.settings(), "Gone", Recorder(), stop_event, gate=gate, check_seconds=0.1)
    watcher.start()

    wait_until(lambda: gate.failures >= 2, what="two failed attempts")

    messages = [record.getMessage() for record in caplog.records]
    assert any("IDLE connection for Gone failed (attempt 1)" in message for message in messages)
    assert any("(attempt 2)" in message and "Mailbox doesn't exist" in message for message in messages)


def test_idle_reconnects_after_restart(dovecot_binary: str, stop_event: threading.Event) -> None:
    """A Dovecot restart breaks the IDLE connection; the watcher reconnects and requests a sync."""
    with private_dovecot(dovecot_binary) as server:
        account = server.create_account()
        recorder = Recorder()
        gate = fast_gate()
        watcher = IdleWatcher(account.settings(), "INBOX", recorder, stop_event, gate=gate, check_seconds=0.1)
        watcher.start()
        wait_until(lambda: watcher.idle_commands >= 1, what="first IDLE")

        account.close()
        server.restart()
        wait_until(lambda: watcher.connections >= 2 and watcher.idle_commands >= 2, what="reconnect")
        # Read before the server stops at the end of the block, which breaks the connection again.
        failures = gate.failures
        account.close()

    assert recorder.folders[:1] == ["INBOX"]
    assert 0 == failures


def test_daemon_idle_beats_polling(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """With a one-hour poll interval, mail still becomes a ticket with a reply because IDLE wakes the sync."""
    config_path = account_config(tmp_path, imap_account, smtp_sink, poll_interval=3600)
    daemon = DaemonProcess(config_path, tmp_path / "daemon.log").start()
    try:
        daemon.wait_for_log("waiting for new mail in INBOX with IMAP IDLE")
        # Mail appended before the first sync has searched INBOX would count as old
        # mail found at the first start, which never gets a reply.
        daemon.wait_for_log("first sync of INBOX")
        imap_account.append(make_mail(subject="Tilaus 77"))

        received = smtp_sink.wait_for(1, timeout=30)
    finally:
        code = daemon.terminate()

    assert 0 == code
    assert ["maija@example.com"] == received[0].rcpt_tos
