"""Keyword decisions, and Gmail labels and servers without custom keywords on a fake IMAP client.

Dovecot offers neither X-GM-EXT-1 nor a folder without custom keywords, so these two
server behaviours are imitated by :class:`FakeImap`. Everything else about keywords is
tested against the real Dovecot in test_agent_mailbox.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from maildesk import keywords
from maildesk.config import load_config
from maildesk.db import make_engine, messages
from maildesk.keywords import MailboxMarker, desired_names, keyword_atom
from tests.casekit import Desk, make_desk
from tests.mailkit import make_mail

MAILBOX = """
[mailbox]
host = "127.0.0.1"
security = "none"
username = "tuki"
password = "x"
"""


class FakeImap:
    """The few IMAP calls the marker makes, over flags and labels held in dicts."""

    def __init__(self, capabilities: tuple[bytes, ...], permanent: tuple[bytes, ...]) -> None:
        self.caps = capabilities
        self.permanent = permanent
        self.flags: dict[int, set[bytes]] = {1: set()}
        self.labels: dict[int, set[str]] = {1: set()}

    def capabilities(self) -> tuple[bytes, ...]:
        return self.caps

    def has_capability(self, name: str) -> bool:
        return name.encode() in self.caps

    def select_folder(self, folder: str, readonly: bool = False) -> dict[bytes, Any]:
        return {b"UIDVALIDITY": 7, b"PERMANENTFLAGS": self.permanent}

    def fetch(self, uids: list[int], items: list[str]) -> dict[int, dict[bytes, Any]]:
        return {uid: {b"FLAGS": tuple(self.flags[uid])} for uid in uids if uid in self.flags}

    def add_flags(self, uids: list[int], flags: list[str], silent: bool = False) -> None:
        for uid in uids:
            self.flags[uid].update(flag.encode() for flag in flags)

    def remove_flags(self, uids: list[int], flags: list[str], silent: bool = False) -> None:
        for uid in uids:
            self.flags[uid].difference_update(flag.encode() for flag in flags)

    def add_gmail_labels(self, uids: list[int], labels: list[str], silent: bool = False) -> None:
        for uid in uids:
            self.labels[uid].update(labels)

    def remove_gmail_labels(self, uids: list[int], labels: list[str], silent: bool = False) -> None:
        for uid in uids:
            self.labels[uid].difference_update(labels)

    def logout(self) -> None:
        pass


def _desk_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str = "") -> tuple[Desk, Any]:
    rule = '\n[[rules]]\nsubject = "kiire"\npriority = "urgent"\ntags = ["Lähetys"]\n'
    desk = make_desk(tmp_path, capsys, MAILBOX + extra + rule)
    path = tmp_path / "a.eml"
    path.write_bytes(make_mail(subject="Kiire"))
    desk.import_files(path, auto_reply=False)
    config = load_config(desk.config_path)
    engine = make_engine(config.database_url)
    with engine.begin() as connection:
        connection.execute(update(messages).values(folder="INBOX", uid=1))
    return desk, config


def test_keyword_atom_drops_accents() -> None:
    """Tags become ASCII keyword atoms: accents dropped, other characters as "_"."""
    assert "lahetys_ja_palautus" == keyword_atom("Lähetys ja palautus")


def test_desired_names_urgent() -> None:
    """An urgent ticket's messages get \\Flagged besides the keywords."""
    assert {"md:ticket-3", "md:status-open", "md:priority-urgent", "md:tag-vip", "\\Flagged"} == desired_names(
        "md:", 3, "open", "urgent", ["vip"]
    )


def test_gmail_labels_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With X-GM-EXT-1 the names go to X-GM-LABELS and \\Flagged stays a flag."""
    _desk, config = _desk_with_message(tmp_path, capsys)
    fake = FakeImap((b"IMAP4REV1", b"X-GM-EXT-1", b"UIDPLUS"), (b"\\Flagged", b"\\Seen", b"\\*"))

    MailboxMarker(config, make_engine(config.database_url), connect=lambda settings: fake).run_once()

    assert {"md:ticket-1", "md:status-new", "md:priority-urgent", "md:tag-lahetys"} == fake.labels[1]
    assert {b"\\Flagged"} == fake.flags[1]


def test_no_custom_keywords_logged_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Without \\* in PERMANENTFLAGS only \\Flagged is set, and the limit is logged once."""
    _desk, config = _desk_with_message(tmp_path, capsys)
    fake = FakeImap((b"IMAP4REV1",), (b"\\Flagged", b"\\Seen"))
    keywords._warned.clear()
    caplog.set_level(logging.WARNING, logger="maildesk.keywords")
    marker = MailboxMarker(config, make_engine(config.database_url), connect=lambda settings: fake)

    marker.run_once()
    second = marker.run_once()

    assert {b"\\Flagged"} == fake.flags[1]
    assert 0 == second.marked
    assert 1 == caplog.text.count("does not allow custom keywords")


def test_keywords_disabled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With [keywords] enabled = false nothing is stored on the server."""
    _desk, config = _desk_with_message(tmp_path, capsys, "\n[keywords]\nenabled = false\n")

    stats = MailboxMarker(config, make_engine(config.database_url), connect=lambda settings: pytest.fail("connected")).run_once()

    assert 0 == stats.marked
