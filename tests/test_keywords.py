"""Keyword decisions, and Gmail labels and servers without custom keywords on a fake IMAP client.

Dovecot offers neither X-GM-EXT-1 nor a folder without custom keywords, so these two
server behaviours are imitated by :class:`FakeImap`. Everything else about keywords is
tested against the real Dovecot in test_agent_mailbox.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import update

from maildesk import keywords
from maildesk.config import load_config, parse_config
from maildesk.db import make_engine, messages
from maildesk.errors import ConfigError
from maildesk.keywords import (
    MailboxMarker,
    _Changes,
    _send_stores,
    _uid_batches,
    desired_names,
    keyword_atom,
)
from tests.casekit import Desk, make_desk
from tests.mailkit import make_mail

MAILBOX = """
[mailbox]
host = "127.0.0.1"
security = "none"
username = "tuki"
password = "x"
"""
CONFIG_MINIMAL: dict[str, Any] = {
    "desk": {"support_address": "tuki@example.fi", "state_dir": "/tmp/maildesk-test"}
}


class FakeImap:
    """The few IMAP calls the marker makes, over flags and labels held in dicts."""

    def __init__(
        self, capabilities: tuple[bytes, ...], permanent: tuple[bytes, ...], uids: tuple[int, ...] = (1,)
    ) -> None:
        self.caps = capabilities
        self.permanent = permanent
        self.flags: dict[int, set[bytes]] = {uid: set() for uid in uids}
        self.labels: dict[int, set[str]] = {uid: set() for uid in uids}
        # (method, UIDs, names) of every flag and label change, in order.
        self.calls: list[tuple[str, list[int], list[str]]] = []
        self.selects = 0
        self.select_error: str | None = None
        self._imap = SimpleNamespace(untagged_responses={})

    def capabilities(self) -> tuple[bytes, ...]:
        return self.caps

    def has_capability(self, name: str) -> bool:
        return name.encode() in self.caps

    def select_folder(self, folder: str, readonly: bool = False) -> dict[bytes, Any]:
        self.selects += 1
        if self.select_error:
            raise IMAPClient.Error(self.select_error)
        return {b"UIDVALIDITY": 7, b"PERMANENTFLAGS": self.permanent}

    def fetch(self, uids: list[int], items: list[str]) -> dict[int, dict[bytes, Any]]:
        return {uid: {b"FLAGS": tuple(self.flags[uid])} for uid in uids if uid in self.flags}

    def add_flags(self, uids: list[int], flags: list[str], silent: bool = False) -> None:
        self.calls.append(("add_flags", uids, flags))
        for uid in uids:
            self.flags[uid].update(flag.encode() for flag in flags)

    def remove_flags(self, uids: list[int], flags: list[str], silent: bool = False) -> None:
        self.calls.append(("remove_flags", uids, flags))
        for uid in uids:
            self.flags[uid].difference_update(flag.encode() for flag in flags)

    def add_gmail_labels(self, uids: list[int], labels: list[str], silent: bool = False) -> None:
        self.calls.append(("add_gmail_labels", uids, labels))
        for uid in uids:
            self.labels[uid].update(labels)

    def remove_gmail_labels(self, uids: list[int], labels: list[str], silent: bool = False) -> None:
        self.calls.append(("remove_gmail_labels", uids, labels))
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


def test_uid_batches_split_by_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """UID lists are split so that each one's comma-separated text fits MAX_UID_LIST_CHARS."""
    monkeypatch.setattr(keywords, "MAX_UID_LIST_CHARS", 10)

    assert [[1, 22, 333], [4444]] == list(_uid_batches([1, 22, 333, 4444]))


def test_stores_grouped_by_name_set() -> None:
    """Messages that change alike share one STORE per direction, removals first."""
    fake = FakeImap((b"IMAP4REV1",), (b"\\*",), uids=(1, 2))
    changes = _Changes(stores=[
        (1, ["md:status-open", "md:ticket-1"], ["md:status-new"]),
        (2, ["md:status-open", "md:ticket-1"], ["md:status-new"]),
    ])

    _send_stores(fake, changes, gmail=False)

    assert [
        ("remove_flags", [1, 2], ["md:status-new"]),
        ("add_flags", [1, 2], ["md:status-open", "md:ticket-1"]),
    ] == fake.calls


def test_stores_grouped_by_name() -> None:
    """When names overlap across messages, one STORE per name beats one per set of names."""
    fake = FakeImap((b"IMAP4REV1",), (b"\\*",), uids=(1, 2, 3))
    changes = _Changes(stores=[(1, ["a"], []), (2, ["b"], []), (3, ["a", "b"], [])])

    _send_stores(fake, changes, gmail=False)

    assert [("add_flags", [1, 3], ["a"]), ("add_flags", [2, 3], ["b"])] == fake.calls


def test_gmail_flagged_own_store() -> None:
    """On Gmail, \\Flagged goes in a flag STORE and the other names in a label STORE."""
    fake = FakeImap((b"IMAP4REV1", b"X-GM-EXT-1"), (b"\\*",), uids=(1,))
    changes = _Changes(stores=[(1, ["\\Flagged", "md:ticket-1"], [])])

    _send_stores(fake, changes, gmail=True)

    assert [("add_flags", [1], ["\\Flagged"]), ("add_gmail_labels", [1], ["md:ticket-1"])] == fake.calls


def test_failed_folder_skipped_rest_of_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A folder whose SELECT fails is tried once per pass, and all its messages count as failed."""
    desk = make_desk(tmp_path, capsys, MAILBOX)
    paths = []
    for number in range(3):
        path = tmp_path / f"{number}.eml"
        path.write_bytes(make_mail(subject=f"Tilaus {number}"))
        paths.append(path)
    desk.import_files(*paths, auto_reply=False)
    config = load_config(desk.config_path)
    engine = make_engine(config.database_url)
    with engine.begin() as connection:
        connection.execute(update(messages).values(folder="INBOX", uid=messages.c.id))
    fake = FakeImap((b"IMAP4REV1",), (b"\\*",), uids=(1, 2, 3))
    fake.select_error = "SELECT failed"
    caplog.set_level(logging.ERROR, logger="maildesk.keywords")

    stats = MailboxMarker(config, engine, connect=lambda settings: fake, chunk_rows=1).run_once()

    assert 3 == stats.failed
    assert 1 == fake.selects
    assert 1 == caplog.text.count("updating keywords in folder INBOX failed")


def test_budget_ignores_gone_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """UIDs the server no longer has use none of a budget of 1, so the oldest message is still marked."""
    desk = make_desk(tmp_path, capsys, MAILBOX + "\n[keywords]\nmax_updates_per_pass = 1\n")
    paths = []
    for number in range(3):
        path = tmp_path / f"{number}.eml"
        path.write_bytes(make_mail(subject=f"Tilaus {number}"))
        paths.append(path)
    desk.import_files(*paths, auto_reply=False)
    config = load_config(desk.config_path)
    engine = make_engine(config.database_url)
    with engine.begin() as connection:
        connection.execute(update(messages).values(folder="INBOX", uid=messages.c.id))
    fake = FakeImap((b"IMAP4REV1",), (b"\\*",), uids=(1,))

    stats = MailboxMarker(config, engine, connect=lambda settings: fake).run_once()

    assert 1 == stats.updated
    assert [("add_flags", [1], ["md:priority-normal", "md:status-new", "md:ticket-1"])] == fake.calls


def test_max_updates_default() -> None:
    """Without the key a keyword pass updates at most 500 messages."""
    assert 500 == parse_config(CONFIG_MINIMAL).keywords.max_updates_per_pass


def test_max_updates_set() -> None:
    """keywords.max_updates_per_pass = 1 is the smallest budget accepted."""
    config = parse_config({**CONFIG_MINIMAL, "keywords": {"max_updates_per_pass": 1}})

    assert 1 == config.keywords.max_updates_per_pass


@pytest.mark.parametrize("value", [0, -5, 1_000_001, "2000", True, 2.5])
def test_max_updates_invalid(value: Any) -> None:
    """A budget that is not a whole number from 1 to 1000000 is rejected with key, value and range."""
    expected = (
        f"invalid value {value!r} for keywords.max_updates_per_pass: "
        "expected a whole number from 1 to 1000000"
    )

    with pytest.raises(ConfigError) as raised:
        parse_config({**CONFIG_MINIMAL, "keywords": {"max_updates_per_pass": value}})

    assert expected == str(raised.value)
