"""One ingest batch: the batch-wide Message-ID lookups and the fallback to savepoints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select

from maildesk import ingest
from maildesk.config import Config, load_config
from maildesk.db import messages, tickets
from maildesk.ingest import BatchStats, Ingestor, IngestOptions
from maildesk.message import IncomingMessage
from maildesk.service import Desk
from tests.mailkit import make_mail

NO_REPLY = IngestOptions(autoreply=False)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "maildesk.toml"
    path.write_text(
        "[desk]\n"
        'name = "Kauppa"\n'
        'support_address = "tuki@example.fi"\n'
        'agents = ["anna@example.fi"]\n'
        f'state_dir = "{tmp_path / "state"}"\n',
        encoding="utf-8",
    )
    return load_config(path)


@pytest.fixture
def desk(config: Config) -> Iterator[Desk]:
    desk = Desk.open(config)
    yield desk
    desk.engine.dispose()


def incoming(raw: bytes, uid: int) -> IncomingMessage:
    return IncomingMessage(raw=raw, folder="INBOX", uid=uid)


def reply_to(parent_id: str, *, subject: str = "Re: Tilaus 1001", sender: str = "maija@example.com") -> bytes:
    return make_mail(
        sender=sender, subject=subject, headers={"In-Reply-To": f"<{parent_id}>", "References": f"<{parent_id}>"}
    )


def stored(desk: Desk) -> list[tuple[str | None, int | None, str | None, str]]:
    with desk.engine.connect() as connection:
        return [
            (row.message_id, row.ticket, row.thread_rule, row.kind)
            for row in connection.execute(select(messages).order_by(messages.c.id))
        ]


def ticket_count(desk: Desk) -> int:
    with desk.engine.connect() as connection:
        return len(connection.execute(select(tickets.c.number)).all())


def test_reply_threads_within_batch(desk: Desk, config: Config) -> None:
    """A reply in the same batch as its parent joins the parent's ticket."""
    parent = make_mail(message_id="parent@example.com")
    batch = [incoming(parent, 1), incoming(reply_to("parent@example.com"), 2)]

    Ingestor(config, desk.engine).ingest_batch(batch, NO_REPLY)

    rows = stored(desk)
    assert 1 == ticket_count(desk)
    assert ("parent@example.com", 1, "new-ticket", "customer") == rows[0]
    assert (1, "in-reply-to") == rows[1][1:3]


def test_reply_threads_across_batches(desk: Desk, config: Config) -> None:
    """A reply in a later batch finds its parent through the batch-wide lookup."""
    ingestor = Ingestor(config, desk.engine)
    ingestor.ingest_batch([incoming(make_mail(message_id="parent@example.com"), 1)], NO_REPLY)

    ingestor.ingest_batch([incoming(reply_to("parent@example.com"), 2)], NO_REPLY)

    assert 1 == ticket_count(desk)
    assert (1, "in-reply-to") == stored(desk)[1][1:3]


def test_duplicate_within_batch_stored_once(desk: Desk, config: Config) -> None:
    """The same message twice in one batch is stored once and counted as a duplicate."""
    raw = make_mail(message_id="twice@example.com")

    stats = Ingestor(config, desk.engine).ingest_batch([incoming(raw, 1), incoming(raw, 2)], NO_REPLY)

    assert (1, 1) == (stats.stored, stats.duplicates)
    assert 1 == len(stored(desk))


def test_reused_id_within_batch_kept(desk: Desk, config: Config) -> None:
    """A different mail reusing a Message-ID of the same batch is stored as its own message."""
    first = make_mail(subject="Eka", message_id="same@example.com")
    second = make_mail(sender="toinen@example.org", subject="Toka", message_id="same@example.com")

    stats = Ingestor(config, desk.engine).ingest_batch([incoming(first, 1), incoming(second, 2)], NO_REPLY)

    assert (2, 0) == (stats.stored, stats.duplicates)
    assert 2 == ticket_count(desk)


def test_one_lookup_query_per_batch(desk: Desk, config: Config) -> None:
    """Ten mails with replies read their Message-IDs' rows in one query per table."""
    batch = []
    for number in range(5):
        parent_id = f"parent-{number}@example.com"
        batch.append(incoming(make_mail(subject=f"Tilaus {number}", message_id=parent_id), 2 * number + 1))
        batch.append(incoming(reply_to(parent_id, subject=f"Re: Tilaus {number}"), 2 * number + 2))
    counts: Counter[str] = Counter()

    def count(connection, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        counts[" ".join(statement.split()).partition(" WHERE ")[0]] += 1

    event.listen(desk.engine, "before_cursor_execute", count)
    Ingestor(config, desk.engine).ingest_batch(batch, NO_REPLY)
    event.remove(desk.engine, "before_cursor_execute", count)

    assert 1 == counts["SELECT messages.message_id, messages.ticket, messages.content_hash FROM messages"]
    assert 1 == counts["SELECT outbox.message_id, outbox.id, outbox.ticket FROM outbox"]
    assert 5 == ticket_count(desk)


def test_failing_message_falls_back(desk: Desk, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message that fails is quarantined and the rest of its batch is stored once each."""
    real_rules = ingest.apply_rules

    def rules_failing_on_broken(rules, parsed):  # type: ignore[no-untyped-def]
        if parsed.subject == "Rikki":
            raise RuntimeError("rule engine failed")
        return real_rules(rules, parsed)

    monkeypatch.setattr(ingest, "apply_rules", rules_failing_on_broken)
    batch = [
        incoming(make_mail(subject="Eka", message_id="first@example.com"), 1),
        incoming(make_mail(subject="Rikki", message_id="broken@example.com"), 2),
        incoming(reply_to("first@example.com", subject="Re: Eka"), 3),
    ]

    stats = Ingestor(config, desk.engine).ingest_batch(batch, NO_REPLY)

    rows = stored(desk)
    assert (3, 1, 1) == (stats.stored, stats.quarantined, stats.new_tickets)
    assert ["customer", "quarantined", "customer"] == [row[3] for row in rows]
    assert (1, "in-reply-to") == rows[2][1:3]
    assert 1 == ticket_count(desk)


def test_fallback_keeps_last_uid(desk: Desk, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch stored again after a failure still reports its last UID and runs on_commit once."""
    monkeypatch.setattr(ingest, "apply_rules", lambda rules, parsed: 1 / 0)
    commits: list[BatchStats] = []

    stats = Ingestor(config, desk.engine).ingest_batch(
        [incoming(make_mail(), 7), incoming(make_mail(), 9)],
        NO_REPLY,
        on_commit=lambda connection, batch_stats: commits.append(batch_stats),
    )

    assert (9, 2) == (stats.last_uid, stats.quarantined)
    assert [stats] == commits
