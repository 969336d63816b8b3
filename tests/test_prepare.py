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

from maildesk import imapsync
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
        from_worker = preparer.collect(items, preparer.submit(items))
    finally:
        preparer.close()

    in_process = prepare_message(items[0], FileStore(tmp_path / "in-process"), LimitSettings())
    assert from_worker is not None
    assert [in_process] == from_worker


def test_killed_worker_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """When the worker dies, collect returns None and later batches are not submitted."""
    items = [IncomingMessage(raw=make_mail(), folder="INBOX", uid=1)]
    preparer = ProcessPreparer(tmp_path / "files", LimitSettings(), 1)
    try:
        preparer.collect(items, preparer.submit(items))
        # The pool keeps its processes in a private attribute; the test needs their PIDs.
        for pid in list(preparer._executor._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="maildesk.prepare"):
            collected = preparer.collect(items, preparer.submit(items))
            later = preparer.submit(items)
    finally:
        preparer.close()

    assert collected is None
    assert later is None
    assert "parsing in the main process from now on" in caplog.text


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
        attachment_rows = connection.execute(select(attachments.c.sha256)).scalars().all()
    engine.dispose()
    assert "parsing in 1 worker process(es) while storing 13 messages" in caplog.text
    assert (13, 0) == (stats.stored, stats.duplicates)
    assert list(range(1, 14)) == [row.uid for row in stored]
    assert 7 == len(ticket_numbers)
    assert stored[0].ticket == stored[1].ticket
    assert [hashlib.sha256(b"%PDF-1.4 liite").hexdigest()] == attachment_rows


WORKER_OWNER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from maildesk.config import LimitSettings
    from maildesk.message import IncomingMessage
    from maildesk.prepare import ProcessPreparer

    if __name__ == "__main__":
        preparer = ProcessPreparer(Path(sys.argv[1]), LimitSettings(), 1)
        items = [IncomingMessage(raw=b"From: a@example.com\\r\\n\\r\\nhei\\r\\n")]
        preparer.collect(items, preparer.submit(items))
        print(*preparer._executor._processes, flush=True)
        time.sleep(60)
    """
)


def test_worker_ends_with_killed_parent(tmp_path: Path) -> None:
    """A worker whose main process is killed with SIGKILL ends too."""
    script = tmp_path / "owner.py"
    script.write_text(WORKER_OWNER, encoding="utf-8")
    owner = subprocess.Popen([sys.executable, str(script), str(tmp_path / "files")], stdout=subprocess.PIPE, text=True)
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
