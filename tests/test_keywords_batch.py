"""The keyword pass in chunks against the private Dovecot: commands sent, records written, moves."""

from __future__ import annotations

import json
import logging
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import Engine, event, select, update

from maildesk.config import Config, MailboxSettings, load_config
from maildesk.connections import connect_imap
from maildesk.db import messages
from maildesk.keywords import GONE, MailboxMarker
from maildesk.service import Desk
from maildesk.ticketactions import add_tag, set_priority, set_status
from tests.mailkit import make_mail

pytestmark = pytest.mark.dovecot

URGENT_RULE = '\n[[rules]]\nsubject = "kiire"\npriority = "urgent"\ntags = ["Lähetys"]\n'


class CommandLog:
    """IMAP connections opened as maildesk opens them, with a record of every command sent ("SELECT", "UID STORE")."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.clients: list[IMAPClient] = []

    def connect(self, settings: MailboxSettings) -> IMAPClient:
        client = connect_imap(settings)
        send = client._imap._command

        def record(name: str, *args: Any) -> Any:
            self.commands.append(f"UID {args[0]}" if name == "UID" else name)
            return send(name, *args)

        client._imap._command = record
        self.clients.append(client)
        return client

    def count(self, name: str) -> int:
        return self.commands.count(name)


def make_config(tmp_path: Path, imap_account: Any, extra: str = "", mailbox_extra: str = "") -> Config:
    """Write a desk config for ``imap_account`` that imports all existing mail."""
    path = tmp_path / "config.toml"
    text = f"""
        [desk]
        name = "Verkkokauppa"
        support_address = "tuki@example.fi"
        agents = ["myyja@example.fi"]
        state_dir = "{tmp_path / 'state'}"

        [mailbox]
        host = "127.0.0.1"
        port = {imap_account.port}
        security = "none"
        username = "{imap_account.username}"
        password = "{imap_account.password}"
        {mailbox_extra}

        [import]
        existing = "all"
        """
    path.write_text(textwrap.dedent(text) + textwrap.dedent(extra), encoding="utf-8")
    imap_account.prepare()
    return load_config(path)


def sync(config: Config) -> Engine:
    """Import the mailbox without the keyword pass that sync_once runs after it."""
    desk = Desk.open(config)
    desk.mailbox_sync().sync_once()
    return desk.engine


def append_thread(imap_account: Any, count: int, subject: str = "Tilaus 1001", folder: str = "INBOX") -> list[int]:
    """Append one customer's first mail and ``count - 1`` replies to it; return their UIDs."""
    first = f"{subject.replace(' ', '-')}-{folder}@example.com"
    uids = [imap_account.append(make_mail(subject=subject, message_id=first), folder=folder)]
    for _ in range(count - 1):
        reply = make_mail(subject=f"Re: {subject}", headers={"In-Reply-To": f"<{first}>"})
        uids.append(imap_account.append(reply, folder=folder))
    return uids


def server_flags(imap_account: Any, folder: str = "INBOX") -> dict[int, set[bytes]]:
    """Return the flags of every message in ``folder``, read on a new connection."""
    client = imap_account.client()
    client.select_folder(folder, readonly=True)
    return {uid: set(flags) for uid, flags in client.get_flags(client.search("ALL")).items()}


def records(engine: Engine) -> dict[int, Any]:
    """Return each stored message's imap_keywords, decoded from JSON unless it is GONE."""
    with engine.connect() as connection:
        rows = connection.execute(select(messages.c.uid, messages.c.imap_keywords)).all()
    return {uid: value if value in (None, GONE) else json.loads(value) for uid, value in rows}


def places(engine: Engine) -> list[tuple[str, str | None]]:
    """Return (folder, moved_from) of every stored message in id order."""
    with engine.connect() as connection:
        rows = connection.execute(select(messages.c.folder, messages.c.moved_from).order_by(messages.c.id))
        return [tuple(row) for row in rows]


def exists(imap_account: Any, folder: str) -> int:
    return int(imap_account.client().select_folder(folder, readonly=True)[b"EXISTS"])


def change_status(engine: Engine, number: int, status: str) -> None:
    with engine.begin() as connection:
        set_status(connection, number, status, datetime.now(UTC))


def test_thread_sent_one_store(tmp_path: Path, imap_account: Any) -> None:
    """Six messages of one ticket get all their keywords in one UID STORE."""
    config = make_config(tmp_path, imap_account)
    append_thread(imap_account, 6)
    engine = sync(config)
    log = CommandLog()

    stats = MailboxMarker(config, engine, connect=log.connect).run_once()

    assert 6 == stats.marked
    assert 1 == log.count("UID FETCH")
    assert 1 == log.count("UID STORE")


def test_chunks_store_per_chunk(tmp_path: Path, imap_account: Any) -> None:
    """With chunks of 4 rows, six messages take two FETCHes and two STOREs, and one SELECT."""
    config = make_config(tmp_path, imap_account)
    append_thread(imap_account, 6)
    engine = sync(config)
    log = CommandLog()

    stats = MailboxMarker(config, engine, connect=log.connect, chunk_rows=4).run_once()

    assert 6 == stats.marked
    assert 1 == log.count("SELECT")
    assert 2 == log.count("UID FETCH")
    assert 2 == log.count("UID STORE")


def test_tickets_share_state_stores(tmp_path: Path, imap_account: Any) -> None:
    """Three single-message tickets take one UID STORE each, never more than one per message."""
    config = make_config(tmp_path, imap_account)
    for subject in ("Tilaus 1", "Tilaus 2", "Tilaus 3"):
        append_thread(imap_account, 1, subject)
    engine = sync(config)
    log = CommandLog()

    MailboxMarker(config, engine, connect=log.connect).run_once()

    assert 3 == log.count("UID STORE")
    assert {b"md:ticket-3", b"md:status-new", b"md:priority-normal"} == server_flags(imap_account)[3]


def test_shared_tags_stored_by_name(tmp_path: Path, imap_account: Any) -> None:
    """Tags a, b and both on three tickets take one UID STORE per tag, not one per ticket."""
    config = make_config(tmp_path, imap_account)
    for subject in ("Tilaus 1", "Tilaus 2", "Tilaus 3"):
        append_thread(imap_account, 1, subject)
    engine = sync(config)
    MailboxMarker(config, engine).run_once()
    with engine.begin() as connection:
        for number, tag in ((1, "a"), (2, "b"), (3, "a"), (3, "b")):
            add_tag(connection, number, tag, datetime.now(UTC))
    log = CommandLog()

    stats = MailboxMarker(config, engine, connect=log.connect).run_once()
    flags = server_flags(imap_account)

    assert 3 == stats.marked
    assert 2 == log.count("UID STORE")
    assert {b"md:tag-a", b"md:tag-b"} == {flag for flag in flags[3] if flag.startswith(b"md:tag-")}


def test_flag_lists_not_kept(tmp_path: Path, imap_account: Any) -> None:
    """The FLAGS and PERMANENTFLAGS lists that Dovecot sends for new keywords are not kept."""
    config = make_config(tmp_path, imap_account)
    for subject in ("Tilaus 1", "Tilaus 2", "Tilaus 3"):
        append_thread(imap_account, 1, subject)
    engine = sync(config)
    log = CommandLog()

    MailboxMarker(config, engine, connect=log.connect).run_once()
    untagged = log.clients[0]._imap.untagged_responses

    assert "FLAGS" not in untagged
    assert "PERMANENTFLAGS" not in untagged


def test_updates_one_executemany_per_chunk(tmp_path: Path, imap_account: Any) -> None:
    """The records of a chunk go in one executemany UPDATE: six messages in chunks of 4 make 4 and 2 rows."""
    config = make_config(tmp_path, imap_account)
    append_thread(imap_account, 6)
    engine = sync(config)
    updates: list[int] = []

    def count_updates(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("UPDATE messages"):
            updates.append(len(parameters) if executemany else 1)

    event.listen(engine, "before_cursor_execute", count_updates)
    MailboxMarker(config, engine, chunk_rows=4).run_once()

    assert [4, 2] == updates


def test_chunked_pass_matches_one_chunk(tmp_path: Path, imap_account: Any) -> None:
    """Chunks of 2 rows leave the same flags and records as one chunk."""
    config = make_config(tmp_path, imap_account, URGENT_RULE)
    append_thread(imap_account, 3, "Kiire")
    append_thread(imap_account, 1, "Tilaus 2")
    gone_uid = append_thread(imap_account, 1, "Tilaus 3")[0]
    append_thread(imap_account, 2, "Tilaus 4")
    engine = sync(config)
    client = imap_account.client()
    client.select_folder("INBOX")
    client.delete_messages([gone_uid])
    client.expunge()

    MailboxMarker(config, engine, chunk_rows=2).run_once()
    chunked = (server_flags(imap_account), records(engine))
    client.set_flags(client.search("ALL"), [], silent=True)
    with engine.begin() as connection:
        connection.execute(update(messages).values(imap_keywords=None))
    MailboxMarker(config, engine, chunk_rows=1000).run_once()
    whole = (server_flags(imap_account), records(engine))

    assert whole[0] == chunked[0]
    assert whole[1] == chunked[1]
    assert ["\\Flagged", "md:priority-urgent", "md:status-new", "md:tag-lahetys", "md:ticket-1"] == whole[1][1]
    assert GONE == whole[1][gone_uid]


def test_agents_flagged_kept(tmp_path: Path, imap_account: Any) -> None:
    """An agent's own \\Flagged is recorded as skipped and stays when the ticket stops being urgent."""
    config = make_config(tmp_path, imap_account, URGENT_RULE)
    own = imap_account.append(make_mail(subject="Kiire 1"), flags=[b"\\Flagged"])
    other = imap_account.append(make_mail(subject="Kiire 2"))
    engine = sync(config)
    marker = MailboxMarker(config, engine, chunk_rows=1)

    marker.run_once()
    urgent_records = records(engine)
    with engine.begin() as connection:
        for number in (1, 2):
            set_priority(connection, config, number, "normal", datetime.now(UTC))
    marker.run_once()
    flags = server_flags(imap_account)

    assert ["!\\Flagged", "md:priority-urgent", "md:status-new", "md:tag-lahetys", "md:ticket-1"] == urgent_records[own]
    assert ["\\Flagged", "md:priority-urgent", "md:status-new", "md:tag-lahetys", "md:ticket-2"] == urgent_records[other]
    assert b"\\Flagged" in flags[own]
    assert b"\\Flagged" not in flags[other]


def test_vanished_uid_recorded_gone(tmp_path: Path, imap_account: Any) -> None:
    """A UID missing from the FETCH response is recorded as gone, and a later pass does not connect."""
    config = make_config(tmp_path, imap_account)
    uids = [append_thread(imap_account, 1, f"Tilaus {n}")[0] for n in range(3)]
    engine = sync(config)
    client = imap_account.client()
    client.select_folder("INBOX")
    client.delete_messages([uids[1]])
    client.expunge()
    first, second = CommandLog(), CommandLog()

    stats = MailboxMarker(config, engine, connect=first.connect, chunk_rows=2).run_once()
    again = MailboxMarker(config, engine, connect=second.connect, chunk_rows=2).run_once()

    assert 2 == stats.marked
    assert GONE == records(engine)[uids[1]]
    assert ["md:priority-normal", "md:status-new", "md:ticket-3"] == records(engine)[uids[2]]
    assert 0 == again.marked
    assert [] == second.commands


def test_closed_move_across_chunks(tmp_path: Path, imap_account: Any) -> None:
    """Three messages of a closed ticket move in chunks of 2 and come back when it reopens."""
    config = make_config(tmp_path, imap_account, '[keywords]\nclosed_folder = "Suljetut"\n')
    append_thread(imap_account, 3)
    engine = sync(config)
    marker = MailboxMarker(config, engine, chunk_rows=2)

    change_status(engine, 1, "closed")
    closed = marker.run_once()
    closed_places = places(engine)
    in_closed = exists(imap_account, "Suljetut")
    change_status(engine, 1, "open")
    reopened = marker.run_once()

    assert 3 == closed.moved
    assert [("Suljetut", "INBOX")] * 3 == closed_places
    assert 3 == in_closed
    assert 3 == reopened.moved
    assert [("INBOX", None)] * 3 == places(engine)
    assert 3 == exists(imap_account, "INBOX")
    assert 0 == exists(imap_account, "Suljetut")


def test_closed_back_to_two_folders(tmp_path: Path, imap_account: Any) -> None:
    """Messages leaving the closed folder in one chunk go back to each one's own folder."""
    imap_account.create_folder("Tuki")
    config = make_config(
        tmp_path, imap_account, '[keywords]\nclosed_folder = "Suljetut"\n',
        mailbox_extra='folders = ["INBOX", "Tuki", "Sent"]',
    )
    append_thread(imap_account, 1, "Tilaus 1", "INBOX")
    append_thread(imap_account, 1, "Tilaus 2", "Tuki")
    engine = sync(config)
    marker = MailboxMarker(config, engine)
    for number in (1, 2):
        change_status(engine, number, "closed")
    marker.run_once()
    for number in (1, 2):
        change_status(engine, number, "open")

    stats = marker.run_once()

    assert 2 == stats.moved
    assert [("INBOX", None), ("Tuki", None)] == places(engine)
    assert 1 == exists(imap_account, "INBOX")
    assert 1 == exists(imap_account, "Tuki")
    assert 0 == exists(imap_account, "Suljetut")


def keyword_uids(imap_account: Any) -> list[int]:
    """Return the UIDs in INBOX that carry a ticket keyword, in ascending order."""
    flags = server_flags(imap_account)
    return sorted(
        uid for uid, names in flags.items() if any(name.startswith(b"md:ticket-") for name in names)
    )


@pytest.mark.parametrize("chunk_rows", [2, 500])
def test_budget_marks_newest_first(
    tmp_path: Path, imap_account: Any, caplog: pytest.LogCaptureFixture, chunk_rows: int
) -> None:
    """A budget of 3 marks the 3 newest of 7 messages first, then 3 and 1 in the next passes."""
    config = make_config(tmp_path, imap_account, "[keywords]\nmax_updates_per_pass = 3\n")
    for number in range(1, 8):
        append_thread(imap_account, 1, f"Tilaus {number}")
    engine = sync(config)
    marker = MailboxMarker(config, engine, chunk_rows=chunk_rows)
    caplog.set_level(logging.INFO, logger="maildesk.keywords")

    first = marker.run_once()
    after_first = keyword_uids(imap_account)
    first_log = caplog.text
    caplog.clear()
    second = marker.run_once()
    after_second = keyword_uids(imap_account)
    second_log = caplog.text
    caplog.clear()
    third = marker.run_once()
    third_log = caplog.text
    log = CommandLog()
    fourth = MailboxMarker(config, engine, connect=log.connect, chunk_rows=chunk_rows).run_once()

    assert 3 == first.updated
    assert [5, 6, 7] == after_first
    assert 1 == first_log.count("keyword pass stopped after 3 updates")
    assert 3 == second.updated
    assert [2, 3, 4, 5, 6, 7] == after_second
    assert 1 == second_log.count("keyword pass stopped after 3 updates")
    assert 1 == third.updated
    assert [1, 2, 3, 4, 5, 6, 7] == keyword_uids(imap_account)
    assert "keyword pass stopped" not in third_log
    assert 0 == fourth.updated
    assert [] == log.commands


def test_budget_skips_settled_messages(
    tmp_path: Path, imap_account: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Newer messages that need nothing leave the whole budget of 2 to the two oldest, which changed."""
    config = make_config(tmp_path, imap_account, "[keywords]\nmax_updates_per_pass = 2\n")
    for number in range(1, 6):
        append_thread(imap_account, 1, f"Tilaus {number}")
    engine = sync(config)
    marker = MailboxMarker(config, engine)
    for _ in range(3):
        marker.run_once()
    for number in (1, 2):
        change_status(engine, number, "open")
    caplog.set_level(logging.INFO, logger="maildesk.keywords")

    stats = marker.run_once()
    flags = server_flags(imap_account)

    assert 2 == stats.updated
    assert b"md:status-open" in flags[1]
    assert b"md:status-open" in flags[2]
    assert b"md:status-new" in flags[3]
    assert "keyword pass stopped" not in caplog.text


def test_budget_counts_moved_once(tmp_path: Path, imap_account: Any) -> None:
    """A message that gets the closed status and moves uses one update of the budget, not two."""
    config = make_config(
        tmp_path, imap_account, '[keywords]\nclosed_folder = "Suljetut"\nmax_updates_per_pass = 2\n'
    )
    append_thread(imap_account, 3)
    engine = sync(config)
    marker = MailboxMarker(config, engine)
    marker.run_once()
    marker.run_once()
    change_status(engine, 1, "closed")

    first = marker.run_once()
    first_places = places(engine)
    second = marker.run_once()

    assert 2 == first.updated
    assert 2 == first.marked
    assert 2 == first.moved
    assert [("INBOX", None), ("Suljetut", "INBOX"), ("Suljetut", "INBOX")] == first_places
    assert 1 == second.updated
    assert [("Suljetut", "INBOX")] * 3 == places(engine)
    assert 3 == exists(imap_account, "Suljetut")
