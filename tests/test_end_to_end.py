"""The whole pipeline against a private Dovecot and an aiosmtpd server."""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maildesk.config import Config, load_config
from maildesk.db import messages, outbox
from maildesk.errors import LockHeldError
from maildesk.lock import StateLock
from maildesk.service import Desk, sync_once
from tests.mailkit import make_mail, message_id_of

pytestmark = pytest.mark.dovecot


def write_config(tmp_path: Path, imap_account: Any, smtp_sink: Any, extra: str = "", **mailbox: Any) -> Path:
    folders = mailbox.get("folders", ["INBOX"])
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [desk]
            name = "Verkkokauppa"
            support_address = "tuki@example.fi"
            own_addresses = ["noreply@example.fi"]
            agents = ["myyja@example.fi"]
            state_dir = "{tmp_path / 'state'}"

            [mailbox]
            host = "127.0.0.1"
            port = {imap_account.port}
            security = "none"
            username = "{imap_account.username}"
            password = "{imap_account.password}"
            folders = {json.dumps(folders)}
            sent_folder = "Sent"
            batch_size = {mailbox.get("batch_size", 200)}

            [smtp]
            host = "127.0.0.1"
            port = {smtp_sink.port}
            security = "none"
            username = "{smtp_sink.username}"
            password = "{smtp_sink.password}"
            from_address = "tuki@example.fi"

            [import]
            existing = "{mailbox.get("existing", "all")}"
            """
        )
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def desk_config(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> Config:
    """A desk on an empty mailbox whose first sync has already happened."""
    config = load_config(write_config(tmp_path, imap_account, smtp_sink))
    sync_once(config)
    return config


def stored_rows(config: Config, table: Any) -> list[Any]:
    engine = Desk.open(config).engine
    with engine.connect() as connection:
        return connection.execute(select(table).order_by(table.c.id)).all()


def test_new_mail_gets_one_reply(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """A customer's mail becomes a ticket and gets exactly one auto-reply."""
    imap_account.append(make_mail(subject="Tilaus 1001 myöhässä"))

    stats, sent = sync_once(desk_config)
    sync_once(desk_config)

    assert 1 == stats.new_tickets
    assert 1 == sent.sent
    assert 1 == len(smtp_sink.messages)
    reply = smtp_sink.messages[0]
    assert ["maija@example.com"] == reply.rcpt_tos
    assert "Re: Tilaus 1001 myöhässä [#1]" == str(email.message_from_bytes(reply.raw, policy=email.policy.default)["Subject"])


def test_reply_copied_to_sent(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """The auto-reply is appended to the Sent folder, marked \\Seen."""
    imap_account.append(make_mail())

    sync_once(desk_config)

    client = imap_account.client()
    client.select_folder("Sent", readonly=True)
    uids = client.search(["ALL"])
    assert 1 == len(uids)
    flags = client.get_flags(uids)[uids[0]]
    assert b"\\Seen" in flags


def test_fetch_keeps_seen_unset(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """Syncing never marks the customer's mail as read."""
    uid = imap_account.append(make_mail())

    sync_once(desk_config)

    client = imap_account.client()
    client.select_folder("INBOX", readonly=True)
    assert b"\\Seen" not in client.get_flags([uid])[uid]


def test_customer_reply_threads(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """A reply to the auto-reply joins the ticket through In-Reply-To."""
    imap_account.append(make_mail(subject="Palautus"))
    sync_once(desk_config)
    reply_id = message_id_of(smtp_sink.messages[0].raw)

    imap_account.append(make_mail(subject="Re: Palautus [#1]", headers={"In-Reply-To": f"<{reply_id}>"}))
    stats, sent = sync_once(desk_config)

    rows = stored_rows(desk_config, messages)
    assert 0 == stats.new_tickets
    assert 0 == sent.sent
    assert [1, 1] == [row.ticket for row in rows]
    assert "in-reply-to" == rows[1].thread_rule


def test_references_thread(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """A reply whose client kept only References joins the ticket."""
    first = make_mail(subject="Lasku")
    imap_account.append(first)
    sync_once(desk_config)

    references = f"<other@example.com> <{message_id_of(first)}>"
    imap_account.append(make_mail(subject="Lasku vielä", headers={"References": references}))
    sync_once(desk_config)

    rows = stored_rows(desk_config, messages)
    assert [1, 1] == [row.ticket for row in rows]
    assert "references" == rows[1].thread_rule


def test_subject_tag_threads(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """A reply with only the [#N] tag from the requester joins the ticket."""
    imap_account.append(make_mail(subject="Toimitus"))
    sync_once(desk_config)

    imap_account.append(make_mail(subject="VS: Toimitus [#1]"))
    sync_once(desk_config)

    rows = stored_rows(desk_config, messages)
    assert [1, 1] == [row.ticket for row in rows]
    assert "subject-tag" == rows[1].thread_rule


@pytest.mark.parametrize("charset", ["iso-8859-15", "windows-1252"])
def test_legacy_charsets_decode(desk_config: Config, imap_account: Any, smtp_sink: Any, charset: str) -> None:
    """ISO-8859-15 and windows-1252 mail is stored as readable text."""
    imap_account.append(make_mail(subject="Hyvitys", body="Hyvitys 49,90 € äöå", charset=charset))

    sync_once(desk_config)

    rows = stored_rows(desk_config, messages)
    assert "Hyvitys 49,90 € äöå" == rows[0].text.strip()


LOOP_GUARD_CASES = {
    "auto-submitted": {"headers": {"Auto-Submitted": "auto-replied"}},
    "precedence-bulk": {"headers": {"Precedence": "bulk"}},
    "precedence-junk": {"headers": {"Precedence": "junk"}},
    "precedence-list": {"headers": {"Precedence": "list"}},
    "list-id": {"headers": {"List-Id": "<news.example.com>"}},
    "list-unsubscribe": {"headers": {"List-Unsubscribe": "<mailto:leave@example.com>"}},
    "empty-return-path": {"headers": {"Return-Path": "<>"}},
    "spam-flag": {"headers": {"X-Spam-Flag": "YES"}},
    "spam-status": {"headers": {"X-Spam-Status": "Yes, score=12.1"}},
    "mailer-daemon": {"sender": "MAILER-DAEMON@example.com"},
    "postmaster": {"sender": "postmaster@example.com"},
    "noreply": {"sender": "no-reply@shop.example.com"},
    "support-address": {"sender": "tuki@example.fi"},
    "agent": {"sender": "myyja@example.fi"},
    "own-address-without-reply-to": {"sender": "noreply@example.fi"},
}


@pytest.mark.parametrize("case", sorted(LOOP_GUARD_CASES))
def test_loop_guard_blocks_reply(desk_config: Config, imap_account: Any, smtp_sink: Any, case: str) -> None:
    """Mail that RFC 3834 or common sense says not to answer gets no auto-reply."""
    imap_account.append(make_mail(**LOOP_GUARD_CASES[case]))

    sync_once(desk_config)

    assert [] == smtp_sink.messages


def test_old_mail_not_answered(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """Mail older than max_age when ingested gets no auto-reply."""
    old = datetime.now(UTC) - timedelta(hours=3)
    imap_account.append(make_mail(date=old), internaldate=old)

    stats, _ = sync_once(desk_config)

    assert 1 == stats.new_tickets
    assert [] == smtp_sink.messages


def test_sender_window_limits_replies(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """A second new ticket from the same sender within the window gets no reply."""
    imap_account.append(make_mail(subject="Eka"))
    sync_once(desk_config)
    imap_account.append(make_mail(subject="Toka"))

    stats, _ = sync_once(desk_config)

    assert 1 == stats.new_tickets
    assert 1 == len(smtp_sink.messages)


def test_rule_disables_reply(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """A rule with autoreply = false suppresses the reply and still tags the ticket."""
    extra = """
    [[rules]]
    from = "@marketplace\\\\.example$"
    tags = ["marketplace"]
    autoreply = false
    """
    config = load_config(write_config(tmp_path, imap_account, smtp_sink, extra))
    imap_account.append(make_mail(sender="orders@marketplace.example"))

    sync_once(config)

    assert [] == smtp_sink.messages


def test_first_start_skips_old_mail(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """existing = "since:7d" imports a week of old mail without replies, then answers new mail."""
    now = datetime.now(UTC)
    imap_account.append(make_mail(subject="Vanha"), internaldate=now - timedelta(days=10))
    imap_account.append(make_mail(subject="Viime viikko"), internaldate=now - timedelta(days=2))
    config = load_config(write_config(tmp_path, imap_account, smtp_sink, existing="since:7d"))

    first, _ = sync_once(config)
    imap_account.append(make_mail(sender="uusi@example.net", subject="Uusi"))
    second, _ = sync_once(config)

    assert 1 == first.new_tickets
    assert 0 == first.replies_queued
    assert 1 == second.new_tickets
    assert ["uusi@example.net"] == [m.rcpt_tos[0] for m in smtp_sink.messages]


def test_first_start_none_skips_all(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """existing = "none" leaves every old mail alone."""
    imap_account.append(make_mail(subject="Vanha"))
    config = load_config(write_config(tmp_path, imap_account, smtp_sink, existing="none"))

    first, _ = sync_once(config)
    second, _ = sync_once(config)

    assert 0 == first.stored
    assert 0 == second.stored


def test_uidvalidity_change_no_duplicates(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """A UIDVALIDITY reset reads the folder again but stores nothing twice."""
    imap_account.append(make_mail())
    sync_once(desk_config)

    imap_account.reset_uidvalidity("INBOX")
    stats, _ = sync_once(desk_config)

    assert 0 == stats.stored
    assert 1 == stats.duplicates
    assert 1 == len(stored_rows(desk_config, messages))
    assert 1 == len(smtp_sink.messages)


def test_inbox_and_sent_copy_stored_once(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """A mail in INBOX and Sent, and our own reply found in Sent, are each stored once."""
    imap_account.create_folder("Sent")
    config = load_config(write_config(tmp_path, imap_account, smtp_sink, folders=["INBOX", "Sent"]))
    sync_once(config)
    mail = make_mail()
    imap_account.append(mail)
    imap_account.append(mail, folder="Sent")

    sync_once(config)
    sync_once(config)

    rows = stored_rows(config, messages)
    assert ["inbound", "auto"] == [row.direction for row in rows]
    assert 1 == len(smtp_sink.messages)


def test_smtp_4xx_retried(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """A 4xx answer leaves the reply queued for a later attempt."""
    smtp_sink.fail_next(code=451, count=1)
    imap_account.append(make_mail())

    _, sent = sync_once(desk_config)

    row = stored_rows(desk_config, outbox)[0]
    assert 1 == sent.retried
    assert "queued" == row.status
    assert 1 == row.attempts
    assert row.last_error.startswith("451")


def test_smtp_5xx_fails(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """A 5xx answer marks the reply failed without retries."""
    smtp_sink.fail_next(code=554, count=1)
    imap_account.append(make_mail())

    _, sent = sync_once(desk_config)
    sync_once(desk_config)

    row = stored_rows(desk_config, outbox)[0]
    assert 1 == sent.failed
    assert "failed" == row.status
    assert 1 == row.attempts


def test_interrupted_batch_stores_nothing(desk_config: Config, imap_account: Any, smtp_sink: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash in the middle of a batch commits none of it; the next sync stores all once."""
    for number in range(5):
        imap_account.append(make_mail(sender=f"c{number}@example.com"))
    from maildesk import ingest

    original = ingest.Ingestor._store
    calls = {"count": 0}

    def crash_on_third(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ingest.Ingestor, "_store", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        sync_once(desk_config)
    monkeypatch.setattr(ingest.Ingestor, "_store", original)
    assert [] == stored_rows(desk_config, messages)

    stats, sent = sync_once(desk_config)

    assert 5 == stats.stored
    assert 5 == sent.sent


def test_lock_blocks_second_process(desk_config: Config) -> None:
    """A second process cannot sync while the lock is held, and is told who holds it."""
    with StateLock(desk_config.state_dir):
        code = subprocess.run(
            [sys.executable, "-m", "maildesk", "--config", str(desk_config.path), "sync", "--once"],
            capture_output=True, text=True, timeout=60,
        )
    assert 1 == code.returncode
    assert f"(pid {os.getpid()}:" in code.stderr

    with StateLock(desk_config.state_dir), pytest.raises(LockHeldError, match="another maildesk process holds"):
        StateLock(desk_config.state_dir).acquire()


def test_kill_and_restart_exactly_once(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """SIGKILL at random points of a sync, then a restart: every mail stored once, every reply sent once."""
    config_path = write_config(tmp_path, imap_account, smtp_sink, batch_size=3)
    command = [sys.executable, "-m", "maildesk", "--config", str(config_path), "sync", "--once"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    count = 40
    for number in range(count):
        imap_account.append(make_mail(sender=f"asiakas{number}@example.com", subject=f"Tilaus {number}"))
    delays = [0.4, 0.7, 0.9, 1.2, 1.5]

    kills = 0
    for delay in delays:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=30)
    final = subprocess.run(command, capture_output=True, text=True, timeout=120)

    config = load_config(config_path)
    rows = stored_rows(config, messages)
    replies = stored_rows(config, outbox)
    assert 0 == final.returncode, final.stderr
    assert kills >= 1
    assert count == len(rows)
    assert count == len({row.message_id for row in rows})
    assert count == len(replies)
    assert {"sent"} == {row.status for row in replies}
    recipients = [m.rcpt_tos[0] for m in smtp_sink.messages]
    # A duplicate is possible only in the window between SMTP acceptance and the
    # "sent" UPDATE; with a local sink it is a few microseconds wide.
    assert count == len(set(recipients))
    assert len(recipients) - count <= kills


def test_daemon_stops_on_sigterm(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """maildesk run answers SIGTERM by exiting 0 within 10 seconds."""
    config_path = write_config(tmp_path, imap_account, smtp_sink)
    sync_once(load_config(config_path))
    imap_account.append(make_mail())
    process = subprocess.Popen(
        [sys.executable, "-m", "maildesk", "--config", str(config_path), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    smtp_sink.wait_for(1, timeout=30)

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)

    assert 0 == process.returncode, stderr
    assert "maildesk stopped" in stderr


def test_interrupted_sent_copy_not_doubled(desk_config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """A copy whose APPEND happened but was not recorded is not appended again."""
    imap_account.append(make_mail())
    sync_once(desk_config)
    engine = Desk.open(desk_config).engine
    with engine.begin() as connection:
        # As if the process died right after APPEND, before marking the copy done.
        connection.execute(outbox.update().values(sent_copy="copying"))

    sync_once(desk_config)

    client = imap_account.client()
    client.select_folder("Sent", readonly=True)
    assert 1 == len(client.search(["ALL"]))
    assert "done" == stored_rows(desk_config, outbox)[0].sent_copy


def test_sigterm_with_hung_smtp_exits(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """SIGTERM ends maildesk run within its shutdown bound even while an SMTP server never answers."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        config_path = write_config(tmp_path, imap_account, smtp_sink)
        sync_once(load_config(config_path))
        text = config_path.read_text(encoding="utf-8")
        config_path.write_text(
            text.replace(f"port = {smtp_sink.port}", f"port = {silent.getsockname()[1]}"), encoding="utf-8"
        )
        imap_account.append(make_mail())
        process = subprocess.Popen(
            [sys.executable, "-m", "maildesk", "--config", str(config_path), "run"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not stored_rows(load_config(config_path), outbox):
                time.sleep(0.2)
            time.sleep(1)

            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
    finally:
        silent.close()

    assert 0 == process.returncode, stderr
    assert "maildesk stopped with a job still running" in stderr


def test_uidvalidity_reset_keeps_skipped_mail_out(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """After a UIDVALIDITY change, mail that import.existing skipped at first start stays out."""
    now = datetime.now(UTC)
    imap_account.append(make_mail(subject="Vanha"), internaldate=now - timedelta(days=20))
    config = load_config(write_config(tmp_path, imap_account, smtp_sink, existing="since:7d"))
    sync_once(config)
    imap_account.append(make_mail(sender="uusi@example.net", subject="Uusi"))
    sync_once(config)

    imap_account.reset_uidvalidity("INBOX")
    stats, _ = sync_once(config)

    assert 0 == stats.stored
    assert 1 == stats.duplicates
    assert ["Uusi"] == [row.subject for row in stored_rows(config, messages)]


def test_missing_sent_folder_no_error(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """A Sent folder that the first reply has not created yet is no sync error."""
    from maildesk.db import folder_errors

    config = load_config(write_config(tmp_path, imap_account, smtp_sink, folders=["INBOX", "Sent"]))

    sync_once(config)

    engine = Desk.open(config).engine
    with engine.connect() as connection:
        assert [] == connection.execute(select(folder_errors)).all()


def test_sync_once_exit_code_on_folder_failure(
    tmp_path: Path, imap_account: Any, smtp_sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """sync --once exits 1 and names the folder when a configured folder cannot be synced."""
    from maildesk.cli import main

    config_path = write_config(tmp_path, imap_account, smtp_sink, folders=["INBOX", "Arkisto"])

    code = main(["--config", str(config_path), "sync", "--once"])

    assert 1 == code
    assert "folder Arkisto failed:" in capsys.readouterr().err
