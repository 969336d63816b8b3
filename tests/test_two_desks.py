"""Two desks on one Dovecot, each the other's customer, must not mail each other forever.

Each desk has its own Dovecot account and state. One SMTP sink takes what both send, and
the test delivers each mail into the mailbox of the desk it is addressed to, with an
APPEND, round after round. The variants play relays that damage the mail on the way:
removing the auto-reply headers, the thread headers, and making every subject new.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from maildesk.config import Config, load_config
from maildesk.service import sync_once
from tests.mailkit import make_mail

pytestmark = pytest.mark.dovecot

DESK_A = "tuki@kauppa-a.example"
DESK_B = "support@shop-b.example"
ROUNDS = 8

_AUTO_HEADERS = re.compile(rb"^(?:Auto-Submitted|X-Auto-Response-Suppress):[^\r\n]*\r?\n", re.IGNORECASE | re.MULTILINE)
_THREAD_HEADERS = re.compile(rb"^(?:In-Reply-To|References):[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*", re.IGNORECASE | re.MULTILINE)
_SUBJECT = re.compile(rb"^Subject:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*", re.IGNORECASE | re.MULTILINE)


def as_sent(raw: bytes, hop: int) -> bytes:
    return raw


def without_auto_headers(raw: bytes, hop: int) -> bytes:
    return _AUTO_HEADERS.sub(b"", raw)


def without_thread(raw: bytes, hop: int) -> bytes:
    return _THREAD_HEADERS.sub(b"", without_auto_headers(raw, hop))


def new_subject_each_hop(raw: bytes, hop: int) -> bytes:
    return _SUBJECT.sub(f"Subject: Kysymys {hop}\r\n".encode(), without_thread(raw, hop))


@pytest.fixture
def second_account(dovecot_server: Any) -> Iterator[Any]:
    account = dovecot_server.create_account()
    try:
        yield account
    finally:
        account.close()


def desk_config(
    folder: Path, address: str, account: Any, sink: Any, extra: str = ""
) -> Config:
    folder.mkdir()
    path = folder / "config.toml"
    path.write_text(
        textwrap.dedent(f"""
            [desk]
            name = "Desk {address}"
            support_address = "{address}"
            language = "en"
            state_dir = "{folder / 'state'}"

            [mailbox]
            host = "127.0.0.1"
            port = {account.port}
            security = "none"
            username = "{account.username}"
            password = "{account.password}"

            [smtp]
            host = "127.0.0.1"
            port = {sink.port}
            security = "none"
            username = "{sink.username}"
            password = "{sink.password}"
            from_address = "{address}"

            [import]
            existing = "all"
            """)
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    config = load_config(path)
    sync_once(config)
    return config


def play(
    tmp_path: Path,
    imap_account: Any,
    second_account: Any,
    smtp_sink: Any,
    relay: Callable[[bytes, int], bytes],
    extra: str = "",
) -> list[list[str]]:
    """Run the two desks for ROUNDS rounds and return the recipients of every mail sent."""
    desk_a = desk_config(tmp_path / "a", DESK_A, imap_account, smtp_sink, extra)
    desk_b = desk_config(tmp_path / "b", DESK_B, second_account, smtp_sink, extra)
    mailboxes = {DESK_A: imap_account, DESK_B: second_account}
    imap_account.append(
        make_mail(sender=f"Shop B <{DESK_B}>", to=DESK_A, subject="Kysymys", body="Where is our order 1001?")
    )

    delivered = 0
    for _ in range(ROUNDS):
        for config in (desk_a, desk_b):
            sync_once(config)
            for message in smtp_sink.messages[delivered:]:
                delivered += 1
                for recipient in message.rcpt_tos:
                    mailboxes[recipient].append(relay(message.raw, delivered))

    return [message.rcpt_tos for message in smtp_sink.messages]


def test_desks_as_sent(tmp_path: Path, imap_account: Any, second_account: Any, smtp_sink: Any) -> None:
    """Desk A replies once, and desk B sees Auto-Submitted and sends nothing."""
    sent = play(tmp_path, imap_account, second_account, smtp_sink, as_sent)

    assert [[DESK_B]] == sent


def test_desks_auto_headers_removed(
    tmp_path: Path, imap_account: Any, second_account: Any, smtp_sink: Any
) -> None:
    """Without Auto-Submitted, B answers once, and A threads that answer into its ticket."""
    sent = play(tmp_path, imap_account, second_account, smtp_sink, without_auto_headers)

    assert [[DESK_B], [DESK_A]] == sent


def test_desks_unthreaded(tmp_path: Path, imap_account: Any, second_account: Any, smtp_sink: Any) -> None:
    """Without thread headers either, the per-sender window stops the second round."""
    sent = play(tmp_path, imap_account, second_account, smtp_sink, new_subject_each_hop)

    assert [[DESK_B], [DESK_A]] == sent


def test_desks_domain_limit(tmp_path: Path, imap_account: Any, second_account: Any, smtp_sink: Any) -> None:
    """With no sender window, the per-domain limit ends the loop after three mails each way."""
    extra = """
        [autoreply]
        per_sender_window = "0s"
        per_domain_limit = 3
    """
    sent = play(tmp_path, imap_account, second_account, smtp_sink, new_subject_each_hop, extra)

    assert 3 == sent.count([DESK_B])
    assert 3 == sent.count([DESK_A])
    assert 6 == len(sent)


def test_desks_global_limit(tmp_path: Path, imap_account: Any, second_account: Any, smtp_sink: Any) -> None:
    """With neither window nor domain limit, the global limit still bounds the loop."""
    extra = """
        [autoreply]
        per_sender_window = "0s"
        per_domain_limit = 0
        global_limit = 2
    """
    sent = play(tmp_path, imap_account, second_account, smtp_sink, new_subject_each_hop, extra)

    assert 4 == len(sent)
