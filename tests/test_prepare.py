"""Parsing in worker processes during a large sync, and the fallback when a worker dies."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maildesk import imapsync, prepare
from maildesk.config import LimitSettings, load_config
from maildesk.db import attachments, messages, tickets
from maildesk.message import IncomingMessage
from maildesk.prepare import ProcessPreparer, prepare_message
from maildesk.service import Desk, sync_once
from maildesk.storage import FileStore
from tests.faultkit import account_config
from tests.mailkit import make_mail


def mail_with_attachment(content: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = "maija@example.com"
    message["To"] = "tuki@example.fi"
    message["Subject"] = "Kuitti"
    message["Message-ID"] = "<kuitti@example.com>"
    message.set_content("Liitteenä kuitti.")
    message.add_attachment(content, maintype="application", subtype="pdf", filename="kuitti.pdf")
    return message.as_bytes()


def test_prepare_stores_attachments(tmp_path: Path) -> None:
    """Preparing a message stores its raw bytes and its attachment, and records the attachment's sha256."""
    content = b"%PDF-1.4 kuitti"
    raw = mail_with_attachment(content)
    files = FileStore(tmp_path / "files")

    prepared = prepare_message(IncomingMessage(raw=raw), files, LimitSettings())

    assert prepared.parsed is not None
    attachment = prepared.parsed.attachments[0]
    assert hashlib.sha256(content).hexdigest() == attachment.stored_sha256
    assert content == files.get("attachments", attachment.stored_sha256)
    assert raw == files.get("raw", prepared.raw_sha)


def test_prepare_parse_error_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message the parser rejects is stored raw and returned with the error."""
    from maildesk import prepare
    from maildesk.errors import MessageParseError

    def reject(raw: bytes) -> None:
        raise MessageParseError("no header block")

    monkeypatch.setattr(prepare, "parse_message", reject)
    prepared = prepare_message(IncomingMessage(raw=b"garbage"), FileStore(tmp_path), LimitSettings())

    assert (None, "parse error: no header block") == (prepared.parsed, prepared.error)


def test_worker_prepares_batch(tmp_path: Path) -> None:
    """A worker process returns the same result as preparing in this process."""
    raw = mail_with_attachment(b"%PDF-1.4 toinen")
    items = [IncomingMessage(raw=raw, folder="INBOX", uid=1)]
    preparer = ProcessPreparer(tmp_path / "files", LimitSettings(), 1)
    try:
        from_worker = preparer.collect(preparer.submit(items))
    finally:
        preparer.close()

    in_process = prepare_message(items[0], FileStore(tmp_path / "in-process"), LimitSettings())
    assert from_worker is not None
    assert [in_process] == from_worker


def test_killed_worker_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """When the worker dies, its message comes back unprepared and later batches are not submitted."""
    items = [IncomingMessage(raw=make_mail(), folder="INBOX", uid=1)]
    preparer = ProcessPreparer(tmp_path / "files", LimitSettings(), 1)
    try:
        preparer.collect(preparer.submit(items))
        [pid] = preparer.pids
        # Stopped, the worker takes the message but cannot return a result before it is killed.
        os.kill(pid, signal.SIGSTOP)
        with caplog.at_level(logging.WARNING, logger="maildesk.prepare"):
            submitted = preparer.submit(items)
            os.kill(pid, signal.SIGKILL)
            collected = preparer.collect(submitted)
            later = preparer.submit(items)
    finally:
        preparer.close()

    assert [None] == collected
    assert later is None
    assert "stopped (exit status -9) with 1 message(s) without a result" in caplog.text


def test_stalled_worker_is_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that sends no result in time is killed, and collect returns its messages unprepared."""
    monkeypatch.setattr(prepare, "WORKER_STALL_SECONDS", 0.5)
    monkeypatch.setattr(prepare, "STALL_CHECK_SECONDS", 0.1)
    items = [IncomingMessage(raw=make_mail(), folder="INBOX", uid=uid) for uid in (1, 2)]
    preparer = ProcessPreparer(tmp_path / "files", LimitSettings(), 1)
    try:
        [pid] = preparer.pids
        os.kill(pid, signal.SIGSTOP)
        with caplog.at_level(logging.WARNING, logger="maildesk.prepare"):
            collected = preparer.collect(preparer.submit(items))
    finally:
        preparer.close()

    assert [None, None] == collected
    assert f"parse worker {pid} sent no result for" in caplog.text


def test_close_ends_stopped_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """close returns although a stopped worker leaves a batch unread in a full pipe."""
    monkeypatch.setattr(prepare, "WORKER_EXIT_SECONDS", 0.5)
    # More than the two 1 MiB buffers and the pipe between them can take.
    items = [IncomingMessage(raw=make_mail(body="x" * 200_000), folder="INBOX", uid=uid) for uid in range(20)]
    preparer = ProcessPreparer(tmp_path / "files", LimitSettings(), 1)
    [pid] = preparer.pids
    os.kill(pid, signal.SIGSTOP)
    submitted = preparer.submit(items)

    preparer.close()

    assert submitted is not None
    assert [None] * 20 == submitted.results
    assert not _alive(pid)


def test_worker_error_leaves_message(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A message the worker fails on comes back as None, and the worker keeps running."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"")
    items = [IncomingMessage(raw=make_mail(), folder="INBOX", uid=7)]
    preparer = ProcessPreparer(blocked, LimitSettings(), 1)
    try:
        with caplog.at_level(logging.ERROR, logger="maildesk.prepare"):
            first = preparer.collect(preparer.submit(items))
        alive = preparer.pids
    finally:
        preparer.close()

    assert [None] == first
    assert 1 == len(alive)
    assert "a parse worker failed on a message" in caplog.text
    assert "folder=INBOX UID=7" in caplog.text


def test_worker_has_own_group(tmp_path: Path) -> None:
    """A worker runs in a process group of its own, so a Ctrl-C on the terminal does not reach it."""
    preparer = ProcessPreparer(tmp_path / "files", LimitSettings(), 1)
    try:
        [pid] = preparer.pids
        group = os.getpgid(pid)
    finally:
        preparer.close()

    assert pid == group


def test_prepared_attachment_drops_bytes(tmp_path: Path) -> None:
    """A prepared attachment keeps its size and stored sha256 but not its bytes."""
    content = b"%PDF-1.4 " + b"x" * 1000
    prepared = prepare_message(
        IncomingMessage(raw=mail_with_attachment(content)), FileStore(tmp_path), LimitSettings()
    )

    assert prepared.parsed is not None
    attachment = prepared.parsed.attachments[0]
    assert (b"", 1009) == (attachment.content, attachment.size)


def test_prepared_forward_keeps_bytes(tmp_path: Path) -> None:
    """An attached message keeps its bytes after preparing, because forwards parse it again."""
    inner = make_mail(sender="asiakas@example.com", subject="Alkuperäinen")
    outer = EmailMessage()
    outer["From"] = "agentti@kauppa.example"
    outer["To"] = "tuki@example.fi"
    outer["Subject"] = "Fwd: Alkuperäinen"
    outer.set_content("Välitän viestin.")
    outer.add_attachment(inner, maintype="message", subtype="rfc822")
    prepared = prepare_message(IncomingMessage(raw=outer.as_bytes()), FileStore(tmp_path), LimitSettings())

    assert prepared.parsed is not None
    attachment = prepared.parsed.attachments[0]
    assert ("message/rfc822", len(attachment.content)) == (attachment.content_type, attachment.size)
    assert attachment.content != b""


@pytest.mark.dovecot
def test_large_sync_uses_worker(
    tmp_path: Path, imap_account: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync over the threshold parses in a worker and stores every message once, threaded."""
    monkeypatch.setattr(imapsync, "PARSE_PROCESS_MIN_MESSAGES", 6)
    for number in range(6):
        first = f"asia-{number}@example.com"
        imap_account.append(make_mail(sender=f"asiakas{number}@example.com", subject=f"Tilaus {number}", message_id=first))
        imap_account.append(
            make_mail(
                sender=f"asiakas{number}@example.com", subject=f"Re: Tilaus {number}",
                headers={"In-Reply-To": f"<{first}>"},
            )
        )
    imap_account.append(mail_with_attachment(b"%PDF-1.4 liite"))
    config = load_config(account_config(tmp_path, imap_account, None, batch_size=2, existing="all"))

    with caplog.at_level(logging.INFO, logger="maildesk.imapsync"):
        stats, _ = sync_once(config)

    engine = Desk.open(config).engine
    with engine.connect() as connection:
        stored = connection.execute(select(messages.c.uid, messages.c.ticket).order_by(messages.c.uid)).all()
        ticket_numbers = connection.execute(select(tickets.c.number)).scalars().all()
        attachment_rows = connection.execute(select(attachments.c.sha256, attachments.c.size)).all()
    engine.dispose()
    assert "parsing in 1 worker process(es) while storing 13 messages" in caplog.text
    assert (13, 0) == (stats.stored, stats.duplicates)
    assert list(range(1, 14)) == [row.uid for row in stored]
    assert 7 == len(ticket_numbers)
    assert stored[0].ticket == stored[1].ticket
    assert [(hashlib.sha256(b"%PDF-1.4 liite").hexdigest(), 14)] == [tuple(row) for row in attachment_rows]


WORKER_OWNER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from maildesk.config import LimitSettings
    from maildesk.message import IncomingMessage
    from maildesk.prepare import ProcessPreparer

    if __name__ == "__main__":
        preparer = ProcessPreparer(Path(sys.argv[1]), LimitSettings(), 1)
        items = [IncomingMessage(raw=b"From: a@example.com\\r\\n\\r\\nhei\\r\\n")]
        preparer.collect(preparer.submit(items))
        if sys.argv[2] == "stopped":
            os.kill(preparer.pids[0], signal.SIGSTOP)
        print(*preparer.pids, flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize("state", ["idle", "stopped"])
def test_worker_ends_with_killed_parent(tmp_path: Path, state: str) -> None:
    """A worker whose main process is killed with SIGKILL ends too, even while it is stopped."""
    script = tmp_path / "owner.py"
    script.write_text(WORKER_OWNER, encoding="utf-8")
    owner = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "files"), state], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    worker = int(owner.stdout.readline().split()[0])

    owner.kill()
    owner.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.05)

    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # A zombie ("Z") has ended and only waits for its parent to reap it.
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
