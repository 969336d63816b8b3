"""The retention job: remove personal data of tickets that were closed long enough ago.

``[retention]`` has three stages. Each counts from the ticket's closing time:
``closed_at``, or the last update for a ticket closed before that column
existed. Mail on no ticket counts from when it was stored, and outbox rows
on no ticket from when they were queued.

1. ``raw_mail_and_attachments``: the raw .eml files, the attachment files
   and rows, and the raw bytes of sent replies are removed. Messages keep
   their text.
2. ``message_text``: the messages, the sent or failed outbox rows, the notes
   and the participants are deleted, and the ticket's requester becomes a
   random pseudonym and its subject ``[removed]``. The ticket row stays as
   metadata without personal data: number, status, priority, tags, owner
   and times.
3. ``ticket_metadata``: the ticket rows are deleted.

New, open and pending tickets are never touched, and neither are queued
replies. Every run looks only at what is still there, so running it twice
changes nothing the second time. Deleted rows are zeroed in the database
file (``secure_delete``) and the WAL is truncated after each run that
removed something; unlike erasure, the job does not VACUUM.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, and_, delete, or_, select, update

from maildesk.config import RetentionSettings
from maildesk.db import (
    attachments,
    bounced_recipients,
    messages,
    outbox,
    ticket_notes,
    ticket_participants,
    tickets,
)
from maildesk.purge import (
    attachment_digests,
    checkpoint_sqlite,
    chunks,
    delete_attachment_rows,
    delete_files,
    delete_messages,
    new_pseudonym,
    plan_file_deletion,
)
from maildesk.redaction import REMOVED
from maildesk.storage import FileStore

if TYPE_CHECKING:
    from maildesk.service import Desk

log = logging.getLogger(__name__)

# Outbox rows that retention may remove; queued and sending rows still have work to do.
_FINISHED = ("sent", "failed")


@dataclass
class RetentionStats:
    """Counts of one retention run."""

    raw_removed: int = 0
    attachments_removed: int = 0
    reply_raw_removed: int = 0
    messages_deleted: int = 0
    outbox_deleted: int = 0
    notes_deleted: int = 0
    bounce_records_deleted: int = 0
    tickets_pseudonymized: int = 0
    tickets_deleted: int = 0
    files_deleted: int = 0

    @property
    def changed(self) -> bool:
        return any(getattr(self, item.name) for item in fields(self))


def run_job(desk: Desk, now: datetime) -> None:
    """Apply the configured retention; the daily job of ``maildesk run``."""
    apply_retention(desk.engine, FileStore(desk.config.storage_path), desk.config.retention, now)


def apply_retention(
    engine: Engine, files: FileStore, settings: RetentionSettings, now: datetime
) -> RetentionStats:
    """Apply the three stages of ``settings`` as of ``now`` and return the counts.

    Run it under the state directory lock, as the daemon does, so that no
    ingest starts to use a stored file while it is being deleted.
    """
    stats = RetentionStats()
    candidates: set[tuple[str, str]] = set()
    with engine.begin() as connection:
        if settings.ticket_metadata is not None:
            _delete_tickets(connection, now - settings.ticket_metadata, stats, candidates)
        if settings.message_text is not None:
            _remove_messages(connection, now - settings.message_text, now, stats, candidates)
        if settings.raw_mail_and_attachments is not None:
            _remove_files(connection, now - settings.raw_mail_and_attachments, now, stats, candidates)
        # Also sweeps files that no row named before, such as raw copies of skipped duplicates.
        plan = plan_file_deletion(connection, files, candidates)
    stats.files_deleted = delete_files(files, plan)
    if stats.changed:
        checkpoint_sqlite(engine, vacuum=False)
    log.info(
        "retention: %d tickets deleted, %d pseudonymized, %d messages deleted, %d raw messages "
        "and %d attachments removed, %d raw replies removed, %d outbox rows, %d notes and "
        "%d bounce records deleted, %d stored files deleted",
        stats.tickets_deleted, stats.tickets_pseudonymized, stats.messages_deleted,
        stats.raw_removed, stats.attachments_removed, stats.reply_raw_removed,
        stats.outbox_deleted, stats.notes_deleted, stats.bounce_records_deleted,
        stats.files_deleted,
    )
    return stats


def _closed_before(cutoff: datetime):  # type: ignore[no-untyped-def]
    """Return a query of the numbers of tickets closed before ``cutoff``."""
    closed = or_(
        tickets.c.closed_at < cutoff,
        and_(tickets.c.closed_at.is_(None), tickets.c.updated_at < cutoff),
    )
    return select(tickets.c.number).where(tickets.c.status == "closed", closed)


def _expired_messages(cutoff: datetime):  # type: ignore[no-untyped-def]
    """Return a condition for messages of tickets closed before ``cutoff`` and old ticketless mail."""
    return or_(
        messages.c.ticket.in_(_closed_before(cutoff)),
        and_(messages.c.ticket.is_(None), messages.c.stored_at < cutoff),
    )


def _finished_outbox(cutoff: datetime):  # type: ignore[no-untyped-def]
    return and_(
        outbox.c.status.in_(_FINISHED),
        or_(
            outbox.c.ticket.in_(_closed_before(cutoff)),
            and_(outbox.c.ticket.is_(None), outbox.c.created_at < cutoff),
        ),
    )


def _take_messages(
    connection: Connection, condition: object, candidates: set[tuple[str, str]]
) -> list[int]:
    """Return the ids of the messages matching ``condition`` and note their stored files."""
    rows = connection.execute(select(messages.c.id, messages.c.raw_sha256).where(condition)).all()
    ids = [row.id for row in rows]
    candidates.update(("raw", row.raw_sha256) for row in rows)
    candidates.update(("attachments", digest) for digest in attachment_digests(connection, ids))
    return ids


def _delete_tickets(
    connection: Connection,
    cutoff: datetime,
    stats: RetentionStats,
    candidates: set[tuple[str, str]],
) -> None:
    _delete_content(connection, cutoff, stats, candidates)
    numbers = list(connection.execute(_closed_before(cutoff)).scalars())
    for part in chunks(numbers):
        stats.tickets_deleted += connection.execute(
            delete(tickets).where(tickets.c.number.in_(part))
        ).rowcount


def _remove_messages(
    connection: Connection,
    cutoff: datetime,
    now: datetime,
    stats: RetentionStats,
    candidates: set[tuple[str, str]],
) -> None:
    _delete_content(connection, cutoff, stats, candidates)
    stats.tickets_pseudonymized += _pseudonymize(connection, cutoff, now)


def _delete_content(
    connection: Connection,
    cutoff: datetime,
    stats: RetentionStats,
    candidates: set[tuple[str, str]],
) -> None:
    """Delete the messages, finished outbox rows, notes and participants that expired."""
    ids = _take_messages(connection, _expired_messages(cutoff), candidates)
    deleted, attachment_count = delete_messages(connection, ids)
    stats.messages_deleted += deleted
    stats.attachments_removed += attachment_count
    stats.outbox_deleted += connection.execute(delete(outbox).where(_finished_outbox(cutoff))).rowcount
    expired = _closed_before(cutoff)
    stats.notes_deleted += connection.execute(
        delete(ticket_notes).where(ticket_notes.c.ticket.in_(expired))
    ).rowcount
    connection.execute(delete(ticket_participants).where(ticket_participants.c.ticket.in_(expired)))
    stats.bounce_records_deleted += connection.execute(
        delete(bounced_recipients).where(bounced_recipients.c.bounced_at < cutoff)
    ).rowcount


def _pseudonymize(connection: Connection, cutoff: datetime, now: datetime) -> int:
    rows = connection.execute(
        select(tickets.c.number, tickets.c.requester).where(
            tickets.c.number.in_(_closed_before(cutoff)), tickets.c.redacted_at.is_(None)
        )
    ).all()
    # One pseudonym per requester in a run, so their tickets still count as one customer's.
    pseudonyms: dict[str, str] = defaultdict(lambda: new_pseudonym("expired"))
    for row in rows:
        connection.execute(
            update(tickets)
            .where(tickets.c.number == row.number)
            .values(
                requester=pseudonyms[row.requester], requester_name="", subject=REMOVED,
                subject_key="", redacted_at=now,
            )
        )
    return len(rows)


def _remove_files(
    connection: Connection,
    cutoff: datetime,
    now: datetime,
    stats: RetentionStats,
    candidates: set[tuple[str, str]],
) -> None:
    with_files = or_(
        messages.c.raw_sha256 != "",
        select(attachments.c.id).where(attachments.c.message == messages.c.id).exists(),
    )
    rows = connection.execute(
        select(messages.c.id, messages.c.raw_sha256).where(_expired_messages(cutoff), with_files)
    ).all()
    ids = [row.id for row in rows]
    candidates.update(("raw", row.raw_sha256) for row in rows)
    candidates.update(("attachments", digest) for digest in attachment_digests(connection, ids))
    stats.attachments_removed += delete_attachment_rows(connection, ids)
    stats.raw_removed += sum(1 for row in rows if row.raw_sha256)
    for part in chunks(ids):
        connection.execute(
            update(messages).where(messages.c.id.in_(part)).values(raw_sha256="", redacted_at=now)
        )
    stats.reply_raw_removed += connection.execute(
        update(outbox).where(_finished_outbox(cutoff), outbox.c.raw != b"").values(raw=b"")
    ).rowcount
