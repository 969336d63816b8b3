"""Interrupting ``maildesk sync --once`` during a first import, and running it again."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from maildesk.config import Config
from maildesk.db import messages, outbox
from maildesk.service import sync_once
from tests.faultkit import account_config, load, rows, wait_until
from tests.mailkit import make_mail

pytestmark = pytest.mark.dovecot

MESSAGES = 400


def fill(imap_account: Any) -> None:
    for number in range(MESSAGES):
        imap_account.append(make_mail(sender=f"asiakas{number}@example.com", subject=f"Tilaus {number}"))


def stored_count(config: Config) -> int:
    """Return how many messages are stored; 0 while the database has no schema yet."""
    try:
        return len(rows(config, messages))
    except OperationalError:
        return 0


def start_sync(config_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "maildesk", "--config", str(config_path), "sync", "--once"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_after_batch(tmp_path: Path, imap_account: Any, smtp_sink: Any, signum: int) -> None:
    """The first signal commits the current batch and prints a notice; a second run stores the rest once."""
    fill(imap_account)
    config_path = account_config(tmp_path, imap_account, smtp_sink, batch_size=10, existing="all")
    config = load(config_path)
    first = start_sync(config_path)
    wait_until(lambda: stored_count(config) > 0, what="the first batch committed")

    first.send_signal(signum)
    _, stderr = first.communicate(timeout=60)
    stored_first = len(rows(config, messages))
    second = subprocess.run(
        [sys.executable, "-m", "maildesk", "--config", str(config_path), "sync", "--once"],
        capture_output=True, text=True, timeout=120,
    )

    assert 128 + signum == first.returncode, stderr
    assert "interrupted: " in stderr
    assert "Traceback" not in stderr
    assert 0 < stored_first < MESSAGES
    assert 0 == second.returncode, second.stderr
    assert MESSAGES == len(rows(config, messages))
    assert MESSAGES == len({row.message_id for row in rows(config, messages)})


def test_second_signal_stops_at_once(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """A second SIGINT ends the process at once, and the next run still stores every message once."""
    fill(imap_account)
    config_path = account_config(tmp_path, imap_account, smtp_sink, batch_size=10, existing="all")
    config = load(config_path)
    first = start_sync(config_path)
    wait_until(lambda: stored_count(config) > 0, what="the first batch committed")

    first.send_signal(signal.SIGINT)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    subprocess.run(
        [sys.executable, "-m", "maildesk", "--config", str(config_path), "sync", "--once"],
        capture_output=True, text=True, timeout=120, check=True,
    )

    assert first.returncode in (-signal.SIGINT, 128 + signal.SIGINT)
    assert MESSAGES == len(rows(config, messages))
    assert [] == rows(config, outbox)


def test_resumed_import_keeps_since(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """An import stopped after one batch later reads only the mail its "since" selected, without replies."""
    from datetime import UTC, datetime, timedelta

    from maildesk.service import sync_once

    old = datetime.now(UTC) - timedelta(days=30)
    recent = datetime.now(UTC) - timedelta(hours=1)
    for number in range(6):
        moment = old if number % 2 == 0 else recent
        imap_account.append(
            make_mail(sender=f"asiakas{number}@example.com", subject=f"Tilaus {number}", date=moment),
            internaldate=moment,
        )
    config = load(account_config(tmp_path, imap_account, smtp_sink, batch_size=1, existing="since:7d"))
    calls = iter(range(1000))

    stopped, _ = sync_once(config, should_stop=lambda: next(calls) >= 2)
    imap_account.append(make_mail(sender="uusi@example.com", subject="Uusi asia"))
    sync_once(config)

    stored = rows(config, messages)
    assert stopped.stopped
    assert ["Tilaus 1", "Tilaus 3", "Tilaus 5", "Uusi asia"] == [row.subject for row in stored]
    assert ["uusi@example.com"] == [row.recipient for row in rows(config, outbox)]


def test_new_uidvalidity_forgets_import(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """After a UIDVALIDITY change, new mail numbered below the old import's end still gets a reply."""
    from maildesk.service import sync_once

    uids = [imap_account.append(make_mail(sender=f"vanha{number}@example.com")) for number in range(5)]
    config = load(account_config(tmp_path, imap_account, smtp_sink, existing="all"))
    sync_once(config)
    client = imap_account.client()
    client.select_folder("INBOX")
    client.delete_messages(uids[1:])
    client.expunge()
    imap_account.reset_uidvalidity()
    sync_once(config)
    imap_account.append(make_mail(sender="uusi@example.com", subject="Uusi asia"))

    sync_once(config)

    assert ["uusi@example.com"] == [row.recipient for row in rows(config, outbox)]


def test_sync_deletes_leftover_temporary_files(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """sync --once deletes the temporary file a killed run left in the file store, and no stored file."""
    imap_account.append(make_mail(sender="asiakas@example.com", subject="Tilaus"))
    config = load(account_config(tmp_path, imap_account, smtp_sink, existing="all"))
    folder = config.storage_path / "raw" / "ab"
    folder.mkdir(parents=True)
    leftover = folder / f".ab{'0' * 62}.4242.tmp"
    leftover.write_bytes(b"puolikas")

    sync_once(config)

    assert not leftover.exists()
    assert 1 == len(rows(config, messages))


def test_other_signal_counts_as_second() -> None:
    """After a SIGTERM stop request, SIGINT is back to its default action, so a Ctrl-C ends the run."""
    from maildesk.commands.daemon import _stop_on_signals

    with _stop_on_signals() as stop:
        signal.raise_signal(signal.SIGTERM)
        after_term = signal.getsignal(signal.SIGINT)

    assert stop.is_set()
    assert signal.SIG_DFL == after_term
