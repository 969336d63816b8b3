"""Fetch batches are cut by count and by bytes, so large mails do not pile up in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maildesk import imapsync
from maildesk.config import Config, load_config
from maildesk.connections import connect_imap
from maildesk.service import Desk
from tests.faultkit import account_config
from tests.mailkit import make_mail

MIB = 1024 * 1024


def make_config(tmp_path: Path, imap_account: Any, batch_size: int = 200) -> Config:
    return load_config(account_config(tmp_path, imap_account, None, batch_size=batch_size))


def batch_uids(config: Config, uids: list[int]) -> list[list[int]]:
    """Return the UIDs of each batch that a sync of ``uids`` in INBOX would fetch."""
    sync = Desk.open(config).mailbox_sync()
    client = connect_imap(config.require_mailbox())
    try:
        client.select_folder("INBOX", readonly=True)
        return [[uid for uid, _ in batch] for batch in sync._batches(client, "INBOX", uids)]
    finally:
        client.logout()


def test_batches_cut_at_byte_limit(
    tmp_path: Path, imap_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch ends before the message that would take it over MAX_BATCH_BYTES."""
    raws = [make_mail(body="Hei, tilaus on myöhässä. " * 80) for _ in range(5)]
    uids = [imap_account.append(raw) for raw in raws]
    monkeypatch.setattr(imapsync, "MAX_BATCH_BYTES", 2 * max(map(len, raws)) + 100)

    assert batch_uids(make_config(tmp_path, imap_account), uids) == [uids[0:2], uids[2:4], uids[4:]]


def test_batches_cut_at_count(tmp_path: Path, imap_account: Any) -> None:
    """Small mails are batched by batch_size alone."""
    uids = [imap_account.append(make_mail()) for _ in range(5)]

    assert batch_uids(make_config(tmp_path, imap_account, batch_size=2), uids) == [
        uids[0:2], uids[2:4], uids[4:],
    ]


def test_batches_of_large_mails(tmp_path: Path, imap_account: Any) -> None:
    """Three mails of 3 MiB go in two batches, because 9 MiB is over the 8 MiB limit."""
    uids = [imap_account.append(big_mail(3 * MIB)) for _ in range(3)]

    assert batch_uids(make_config(tmp_path, imap_account), uids) == [uids[0:2], uids[2:]]


def big_mail(size: int) -> bytes:
    """Return a mail of about ``size`` bytes with a plain-text body of 76-character lines."""
    line = b"Liitteena kuvat paketista, joka tuli rikki perille. Terveisin Maija Asiakas\r\n"
    head = make_mail(body="Kuvat liitteena.").split(b"\n\n", 1)[0].replace(b"\n", b"\r\n")
    return head + b"\r\n\r\n" + line * (size // len(line))


def test_progress_counts_stopped_batch() -> None:
    """A batch that stopped counts only the messages up to its last stored UID."""
    from maildesk.ingest import BatchStats

    batch = [(11, 100), (12, 100), (13, 100), (14, 100)]

    assert 2 == imapsync.handled_count(batch, BatchStats(stopped=True, last_uid=12))


def test_progress_counts_whole_batch() -> None:
    """A batch that ran to its end counts all of its messages."""
    from maildesk.ingest import BatchStats

    assert 3 == imapsync.handled_count([(1, 5), (2, 5), (3, 5)], BatchStats(last_uid=3))
