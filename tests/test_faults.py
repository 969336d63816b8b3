"""Fault injection: SIGKILL at random and chosen points, server outages, a locked database, a full disk.

Every test checks the same promise: each mail in the mailbox becomes exactly
one stored message, no ticket is duplicated, and every auto-reply goes out
once. The exception is the window between the SMTP server accepting a reply
and maildesk marking it sent (README.md, "The one duplicate window"), where
the tests count how often a duplicate happened.
"""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from faultkit import (
    DaemonProcess,
    SlowAcceptSink,
    account_config,
    private_dovecot,
    rows,
    wait_until,
)
from maildesk.config import Config, load_config
from maildesk.connections import ConnectionLostError
from maildesk.db import folder_errors, folders, messages, outbox, tickets
from maildesk.faults import CRASH_ENV, CRASH_POINTS
from maildesk.ingest import Ingestor
from maildesk.outbox import MAX_ATTEMPTS, OutboxSender
from maildesk.service import Daemon, Desk, sync_once
from servers import SmtpSink
from tests.mailkit import make_mail

pytestmark = pytest.mark.dovecot

# Fixed, so a failure can be replayed; change it to explore other kill times.
KILL_SEED = int(os.environ.get("MAILDESK_KILL_SEED", "20261204"))
# SIGKILLs of the stream test; CI runs 8, a measurement of the duplicate window more.
KILL_ROUNDS = int(os.environ.get("MAILDESK_KILL_ROUNDS", "8"))


def sync_command(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "maildesk", "--config", str(config_path), "sync", "--once"]


# The stream test sends more auto-replies than the default per-domain and
# global limits allow in an hour, so it turns those limits off.
NO_REPLY_LIMITS = """
[autoreply]
per_domain_limit = 0
global_limit = 0
"""


def customer_mail(number: int) -> bytes:
    return make_mail(sender=f"asiakas{number}@example.com", subject=f"Tilaus {number}")


def assert_exactly_once(config: Config, count: int) -> None:
    """Each of ``count`` mails is one stored message on its own ticket, with one sent reply row."""
    stored = rows(config, messages)
    assert count == len(stored)
    assert count == len({row.message_id for row in stored})
    assert all(row.ticket is not None for row in stored)
    assert count == len(rows(config, tickets))
    replies = rows(config, outbox)
    assert count == len(replies)
    assert {"sent"} == {row.status for row in replies}


def duplicates(sink: SmtpSink) -> int:
    counts = Counter(message.rcpt_tos[0] for message in sink.messages)
    return sum(count - 1 for count in counts.values())


# --- SIGKILL ---------------------------------------------------------------------------


def test_sigkill_stream_exactly_once(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """The daemon killed at random times while mail streams in: every mail once, replies at most in the window."""
    config_path = account_config(
        tmp_path, imap_account, smtp_sink, NO_REPLY_LIMITS, batch_size=3, poll_interval=5
    )
    subprocess.run(sync_command(config_path), check=True, capture_output=True, timeout=60)
    count = max(45, KILL_ROUNDS * 6)
    rng = random.Random(KILL_SEED)

    def stream() -> None:
        for number in range(count):
            imap_account.append(customer_mail(number))
            time.sleep(0.06 if KILL_ROUNDS <= 8 else 0.2)

    feeder = threading.Thread(target=stream)
    feeder.start()
    daemon = DaemonProcess(config_path, tmp_path / "daemon.log")
    kills = 0
    while feeder.is_alive() or kills < KILL_ROUNDS:
        daemon.start()
        time.sleep(rng.uniform(1.0, 3.0))
        daemon.kill()
        kills += 1
    feeder.join()

    starts = daemon.log().count("maildesk started")
    daemon.start()
    try:
        # Until this line the daemon has no SIGTERM handler and would die of the signal.
        daemon.wait_for_log("maildesk started", count=starts + 1)
        wait_until(lambda: len({m.rcpt_tos[0] for m in smtp_sink.messages}) >= count, 60, "every reply")
        wait_until(
            lambda: {row.status for row in rows(load_config(config_path), outbox)} == {"sent"},
            30, "every outbox row sent",
        )
    finally:
        assert 0 == daemon.terminate()

    config = load_config(config_path)
    assert_exactly_once(config, count)
    requeued = sum(int(n) for n in re.findall(r"(\d+) replies were being sent when", daemon.log()))
    # A duplicate needs a kill inside the window, which leaves its row in "sending".
    assert duplicates(smtp_sink) <= requeued, f"kills={kills} requeued={requeued}"
    print(f"\n{kills} SIGKILLs, {requeued} requeued sends, {duplicates(smtp_sink)} duplicate replies")


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_point_exactly_once(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink, point: str) -> None:
    """SIGKILL at each named crash point, then a restart: nothing lost, nothing stored twice."""
    config_path = account_config(tmp_path, imap_account, smtp_sink, batch_size=2)
    subprocess.run(sync_command(config_path), check=True, capture_output=True, timeout=60)
    count = 6
    for number in range(count):
        imap_account.append(customer_mail(number))

    crashed = subprocess.run(
        sync_command(config_path), capture_output=True, text=True, timeout=60,
        env=dict(os.environ, **{CRASH_ENV: f"{point}:2"}),
    )
    final = subprocess.run(sync_command(config_path), capture_output=True, text=True, timeout=60)

    assert -9 == crashed.returncode, crashed.stderr
    assert 0 == final.returncode, final.stderr
    assert_exactly_once(load_config(config_path), count)
    # Only a crash after the server accepted the reply can send it twice, and then it does.
    assert (1 if point == "smtp-accepted" else 0) == duplicates(smtp_sink)


def test_kill_awaiting_smtp_reply_duplicates(tmp_path: Path, imap_account: Any) -> None:
    """A kill while the server delays its reply to DATA sends that reply again: the window includes the wait."""
    with SlowAcceptSink(delay=3.0) as sink:
        config_path = account_config(tmp_path, imap_account, sink)
        subprocess.run(sync_command(config_path), check=True, capture_output=True, timeout=60)
        imap_account.append(customer_mail(1))
        process = subprocess.Popen(sync_command(config_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sink.wait_for(1, timeout=30)
        process.kill()
        process.wait(timeout=10)
        sink.delay = 0.0

        final = subprocess.run(sync_command(config_path), capture_output=True, text=True, timeout=60)

        assert 0 == final.returncode, final.stderr
        assert_exactly_once(load_config(config_path), 1)
        assert 1 == duplicates(sink)


# --- IMAP outages ----------------------------------------------------------------------


class RestartingIngestor(Ingestor):
    """Ingests normally, but shuts the IMAP server down after the first batch is committed."""

    def __init__(self, config: Config, engine: Any, server: Any) -> None:
        super().__init__(config, engine)
        self.server = server
        self.batches = 0

    def ingest_batch(self, items: Any, options: Any, **kwargs: Any) -> Any:
        stats = super().ingest_batch(items, options, **kwargs)
        self.batches += 1
        if self.batches == 1:
            self.server.shut_down()
        return stats


def test_imap_restart_mid_sync(tmp_path: Path, dovecot_binary: str, smtp_sink: SmtpSink) -> None:
    """The server going away after one batch keeps that batch, records the error, and the next sync finishes."""
    with private_dovecot(dovecot_binary) as server:
        account = server.create_account()
        config = load_config(account_config(tmp_path, account, smtp_sink, batch_size=2))
        sync_once(config)
        for number in range(5):
            account.append(customer_mail(number))
        account.close()
        desk = Desk.open(config)
        ingestor = RestartingIngestor(config, desk.engine, server)
        from maildesk.imapsync import MailboxSync

        with pytest.raises(ConnectionLostError, match="IMAP connection to 127.0.0.1 lost"):
            MailboxSync(config, desk.engine, ingestor).sync_once()
        stored_during_outage = len(rows(config, messages))
        errors = rows(config, folder_errors)
        server._launch()
        stats, sent = sync_once(config)

    assert 2 == stored_during_outage
    assert ["INBOX"] == [row.name for row in errors]
    assert 3 == stats.stored
    assert 5 == sent.sent
    assert [] == rows(config, folder_errors)
    assert_exactly_once(config, 5)


def test_daemon_recovers_from_imap_outage(tmp_path: Path, dovecot_binary: str, smtp_sink: SmtpSink) -> None:
    """With the IMAP server down the daemon logs numbered retries; when it is back, new mail gets its reply."""
    with private_dovecot(dovecot_binary) as server:
        account = server.create_account()
        config_path = account_config(tmp_path, account, smtp_sink, poll_interval=5)
        daemon = DaemonProcess(config_path, tmp_path / "daemon.log").start()
        try:
            daemon.wait_for_log("waiting for new mail in INBOX with IMAP IDLE")
            account.close()
            server.shut_down()
            daemon.wait_for_log(r"sync failed \(attempt 2\)", timeout=40)
            daemon.wait_for_log(r"IDLE connection for INBOX failed \(attempt 1\)")
            server._launch()
            account.append(customer_mail(1))

            received = smtp_sink.wait_for(1, timeout=60)
        finally:
            code = daemon.terminate()
            account.close()

    assert 0 == code
    assert ["asiakas1@example.com"] == received[0].rcpt_tos
    assert "sync succeeded after" in daemon.log()


# --- SMTP replies ----------------------------------------------------------------------


class Clock:
    def __init__(self, start: Any) -> None:
        self.now = start

    def __call__(self) -> Any:
        return self.now


def queued_desk(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> Config:
    """Return a desk whose outbox contains one queued reply, not yet sent."""
    config = load_config(account_config(tmp_path, imap_account, smtp_sink))
    desk = Desk.open(config)
    desk.mailbox_sync().sync_once()
    imap_account.append(customer_mail(1))
    desk.mailbox_sync().sync_once()
    return config


def test_smtp_4xx_backoff_then_sent(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """After two 451 replies the row is retried after 1 and 2 minutes; the third attempt is sent."""
    from datetime import UTC, datetime, timedelta

    config = queued_desk(tmp_path, imap_account, smtp_sink)
    clock = Clock(datetime.now(UTC))
    sender = OutboxSender(config, Desk.open(config).engine, clock=clock)
    smtp_sink.fail_next(code=451, count=2)

    first = sender.run_once()
    early = sender.run_once()
    clock.now += timedelta(minutes=1, seconds=1)
    second = sender.run_once()
    clock.now += timedelta(minutes=2, seconds=1)
    third = sender.run_once()

    row = rows(config, outbox)[0]
    assert (1, 0, 1, 0) == (first.retried, early.retried + early.sent, second.retried, second.sent)
    assert 1 == third.sent
    assert ("sent", 3) == (row.status, row.attempts)


def test_smtp_4xx_gives_up_after_max_attempts(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """A reply that only ever gets 4xx is marked failed after MAX_ATTEMPTS, not retried forever."""
    from datetime import UTC, datetime, timedelta

    config = queued_desk(tmp_path, imap_account, smtp_sink)
    clock = Clock(datetime.now(UTC))
    sender = OutboxSender(config, Desk.open(config).engine, clock=clock)
    smtp_sink.fail_next(code=450, count=MAX_ATTEMPTS + 5)

    for _ in range(MAX_ATTEMPTS + 3):
        sender.run_once()
        clock.now += timedelta(hours=3)

    row = rows(config, outbox)[0]
    assert ("failed", MAX_ATTEMPTS) == (row.status, row.attempts)
    assert row.last_error.startswith("450")


def test_smtp_5xx_shown_by_status(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """A 5xx reply code fails the reply at once, and maildesk status exits 3 naming it."""
    config = queued_desk(tmp_path, imap_account, smtp_sink)
    smtp_sink.fail_next(code=550, count=1, stage="RCPT")
    Desk.open(config).outbox_sender().run_once()

    result = subprocess.run(
        [sys.executable, "-m", "maildesk", "--config", str(config.path), "status"],
        capture_output=True, text=True, timeout=60,
    )

    assert 3 == result.returncode, result.stderr
    assert "1 replies failed in the last 24 h" in result.stdout
    assert "550" in result.stdout


def test_smtp_down_waits_with_backoff(tmp_path: Path, imap_account: Any, caplog: pytest.LogCaptureFixture) -> None:
    """An unreachable SMTP server claims no reply and the next attempt waits; the row stays queued."""
    sink = SmtpSink()
    sink.start()
    config = queued_desk(tmp_path, imap_account, sink)
    sink.stop()
    sender = Desk.open(config).outbox_sender()
    caplog.set_level(logging.WARNING, logger="maildesk.backoff")

    sender.run_once()
    sender.run_once()

    row = rows(config, outbox)[0]
    assert ("queued", 0) == (row.status, row.attempts)
    assert 1 == sender.smtp_gate.failures
    assert "SMTP connection failed (attempt 1)" in caplog.text


# --- database and disk -----------------------------------------------------------------

LOCK_HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


def hold_database_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert "locked" == holder.stdout.readline().strip()
    return holder


def test_locked_database_waits(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """Another process holding the write lock briefly makes the sync wait (busy timeout), not fail."""
    config = load_config(account_config(tmp_path, imap_account, smtp_sink))
    sync_once(config)
    imap_account.append(customer_mail(1))
    holder = hold_database_lock(tmp_path / "state" / "maildesk.sqlite3", 2.0)

    stats, sent = sync_once(config)
    holder.wait(timeout=30)

    assert (1, 1) == (stats.stored, sent.sent)


def test_locked_database_daemon_backs_off(
    tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock held past the busy timeout fails the sync pass, which is logged and retried; nothing is half stored."""
    config = load_config(account_config(tmp_path, imap_account, smtp_sink))
    sync_once(config)
    for number in range(3):
        imap_account.append(customer_mail(number))
    desk = Desk.open(config)
    # A short busy timeout, so the test need not wait the production 30 s.
    event.listen(desk.engine, "connect", lambda dbapi, record: dbapi.execute("PRAGMA busy_timeout=300"))
    desk.engine.dispose()
    daemon = Daemon(config)
    caplog.set_level(logging.WARNING)
    holder = hold_database_lock(tmp_path / "state" / "maildesk.sqlite3", 3.0)

    daemon._sync(desk.mailbox_sync())
    during = rows(config, messages) if holder.poll() is not None else None
    holder.wait(timeout=30)
    daemon.sync_gate.next_attempt_at = 0.0
    daemon._sync(desk.mailbox_sync())

    assert "sync failed (attempt 1)" in caplog.text
    assert "database is locked" in caplog.text
    assert during in (None, [])
    assert 3 == len(rows(config, messages))
    assert 0 == daemon.sync_gate.failures


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 3 MiB tmpfs, which the test can grow; needs root, as in CI."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def big_mail(number: int, size: int) -> bytes:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = f"asiakas{number}@example.com"
    message["To"] = "tuki@example.fi"
    message["Subject"] = f"Kuvat {number}"
    message["Message-ID"] = f"<big-{number}-{time.monotonic_ns()}@example.com>"
    message.set_content("Kuvat liitteenä.")
    message.add_attachment(os.urandom(size), maintype="image", subtype="jpeg", filename=f"kuva{number}.jpg")
    return message.as_bytes()


def test_disk_full_then_recovers(
    tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk fails the batch as a whole and is logged; after space is freed the next sync stores every mail once."""
    extra = f"""
    [storage]
    path = "{small_disk / 'storage'}"
    """
    config = load_config(account_config(tmp_path, imap_account, smtp_sink, extra, batch_size=10))
    sync_once(config)
    for number in range(4):
        imap_account.append(big_mail(number, 900_000))
    daemon = Daemon(config)
    desk = Desk.open(config)
    caplog.set_level(logging.WARNING)

    daemon._sync(desk.mailbox_sync())
    stored_while_full = len(rows(config, messages))
    error = rows(config, folder_errors)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    daemon.sync_gate.next_attempt_at = 0.0
    daemon._sync(desk.mailbox_sync())

    assert 0 == stored_while_full
    assert "No space left on device" in caplog.text
    assert "No space left on device" in error[0].error
    assert 4 == len(rows(config, messages))
    assert [] == rows(config, folder_errors)


# --- mailbox changes -------------------------------------------------------------------


def test_deleted_folder_reported_others_synced(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """A watched folder deleted on the server is an error in status; the other folders still sync."""
    imap_account.create_folder("Tilaukset")
    config = load_config(account_config(tmp_path, imap_account, smtp_sink, folders=("INBOX", "Tilaukset")))
    sync_once(config)
    imap_account.client().delete_folder("Tilaukset")
    imap_account.append(customer_mail(1))

    stats, _ = sync_once(config)
    status = subprocess.run(
        [sys.executable, "-m", "maildesk", "--config", str(config.path), "status"],
        capture_output=True, text=True, timeout=60,
    )

    assert 1 == stats.stored
    assert ["Tilaukset"] == [row.name for row in rows(config, folder_errors)]
    assert 3 == status.returncode
    assert "folder Tilaukset: sync failing since" in status.stdout


def test_renamed_folder_back_resumes(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """A folder renamed away fails its syncs; renamed back it resumes where it was, storing nothing twice."""
    imap_account.create_folder("Tilaukset")
    imap_account.append(customer_mail(1), folder="Tilaukset")
    config = load_config(account_config(tmp_path, imap_account, smtp_sink, folders=("INBOX", "Tilaukset")))
    sync_once(config)
    client = imap_account.client()
    client.rename_folder("Tilaukset", "Arkisto")
    sync_once(config)
    errors = rows(config, folder_errors)
    client.rename_folder("Arkisto", "Tilaukset")

    stats, _ = sync_once(config)

    assert ["Tilaukset"] == [row.name for row in errors]
    assert (0, 0) == (stats.stored, stats.duplicates)
    assert [] == rows(config, folder_errors)
    assert 1 == len(rows(config, messages))


def test_recreated_folder_rereads(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """A folder deleted and created again has a new UIDVALIDITY: it is read again and known mail is a duplicate."""
    mail = customer_mail(1)
    imap_account.create_folder("Tilaukset")
    imap_account.append(mail, folder="Tilaukset")
    config = load_config(account_config(tmp_path, imap_account, smtp_sink, folders=("INBOX", "Tilaukset")))
    sync_once(config)
    imap_account.client().delete_folder("Tilaukset")
    imap_account.create_folder("Tilaukset")
    imap_account.append(mail, folder="Tilaukset")

    stats, _ = sync_once(config)

    assert (0, 1) == (stats.stored, stats.duplicates)
    assert 1 == len(rows(config, messages))


class ExpungingIngestor(Ingestor):
    """Ingests normally, but after the first batch an agent expunges two of the messages still to come."""

    def __init__(self, config: Config, engine: Any, account: Any, victims: list[int]) -> None:
        super().__init__(config, engine)
        self.account = account
        self.victims = victims
        self.batches = 0

    def ingest_batch(self, items: Any, options: Any, **kwargs: Any) -> Any:
        stats = super().ingest_batch(items, options, **kwargs)
        self.batches += 1
        if self.batches == 1:
            agent = self.account.client()
            agent.select_folder("INBOX")
            agent.delete_messages(self.victims)
            agent.expunge()
        return stats


def test_expunge_during_batch_skipped(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """Messages an agent expunges while a sync runs are skipped; the rest are stored and the folder advances."""
    config = load_config(account_config(tmp_path, imap_account, smtp_sink, batch_size=2))
    sync_once(config)
    uids = [imap_account.append(customer_mail(number)) for number in range(6)]
    desk = Desk.open(config)
    from maildesk.imapsync import MailboxSync

    stats = MailboxSync(config, desk.engine, ExpungingIngestor(config, desk.engine, imap_account, uids[2:4])).sync_once()
    again, _ = sync_once(config)

    assert 4 == stats.stored
    assert 0 == again.stored + again.duplicates
    assert uids[-1] == rows(config, folders)[0].last_uid
