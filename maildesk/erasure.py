"""Erase one person's data from the database and the stored files.

Everything happens in one transaction. The person's own messages (with
their attachments), the outbox rows to them or naming them, and the notes
on tickets they requested are deleted. Tickets they requested stay, so that
ticket numbers and counts stay right. Their requester becomes a random
pseudonym and their subject ``[removed]``, and open ones are closed. Messages
that other customers still need are kept without the person's data (see
:mod:`maildesk.redaction`), and their raw files are dropped because a raw
mail cannot be edited reliably. After the commit, stored files that no row
names any more are deleted, and the SQLite file is vacuumed and its WAL
checkpointed and truncated, so the bytes are gone from the database files too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, select, update

from maildesk import repository as repo
from maildesk.config import Config
from maildesk.db import (
    attachments,
    bounced_recipients,
    messages,
    outbox,
    ticket_notes,
    ticket_participants,
    tickets,
)
from maildesk.errors import MaildeskError
from maildesk.privacy import (
    PersonData,
    Row,
    find_person_data,
    normalize_address,
    personal_message_columns,
)
from maildesk.purge import (
    attachment_digests,
    checkpoint_sqlite,
    chunks,
    delete_files,
    delete_messages,
    new_pseudonym,
    plan_file_deletion,
)
from maildesk.redaction import REMOVED, Redactor
from maildesk.storage import FileStore

log = logging.getLogger(__name__)


class ErasureError(MaildeskError):
    """The address cannot be erased, such as the support address or an agent's."""


@dataclass
class EraseReport:
    """Counts of what an erasure did, or with ``dry_run`` would do."""

    address: str
    pseudonym: str
    dry_run: bool
    tickets_pseudonymized: int = 0
    tickets_closed: int = 0
    # Other customers' tickets whose participants no longer list the address.
    tickets_left: int = 0
    messages_deleted: int = 0
    messages_redacted: int = 0
    attachments_deleted: int = 0
    outbox_deleted: int = 0
    notes_deleted: int = 0
    notes_redacted: int = 0
    # Records that auto-replies to the address bounced.
    bounce_records_deleted: int = 0
    files_deleted: int = 0
    # Files of deleted messages that other messages still use.
    files_still_used: int = 0
    # Files that no message named, such as the raw copy of a skipped duplicate.
    orphan_files_deleted: int = 0
    # True when the WAL was checkpointed and truncated after VACUUM; None when
    # nothing ran (a dry run, or a database other than SQLite).
    database_compacted: bool | None = None


def check_erasable(config: Config, address: str) -> str:
    """Return the normalized address, or raise ErasureError for one that is not a customer's."""
    normalized = normalize_address(address)
    if "@" not in normalized.strip("@") or any(c.isspace() for c in normalized):
        raise ErasureError(f"invalid address {address!r}: expected a plain address such as maija@example.com")
    if config.is_own(normalized) or config.is_agent(normalized):
        raise ErasureError(
            f"{normalized} is the support address, one of desk.own_addresses or an agent; "
            "only customers' addresses can be erased"
        )
    return normalized


def erase_address(
    engine: Engine,
    config: Config,
    files: FileStore,
    address: str,
    *,
    now: datetime,
    dry_run: bool = False,
) -> EraseReport:
    """Erase ``address`` and return the counts; ``dry_run`` rolls everything back.

    Hold the state directory lock unless ``dry_run``, so that no ingest
    starts to use a stored file while it is being deleted.
    """
    address = check_erasable(config, address)
    report = EraseReport(address, new_pseudonym("erased"), dry_run)
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            data = find_person_data(connection, config, files, address)
            candidates = _file_candidates(connection, data)
            _erase_rows(connection, data, data.redactor(report.pseudonym), report, now)
            plan = plan_file_deletion(connection, files, candidates)
        except BaseException:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()

    report.files_deleted = len(plan.released)
    report.files_still_used = plan.still_used
    report.orphan_files_deleted = len(plan.orphans)
    if not dry_run:
        delete_files(files, plan)
        report.database_compacted = checkpoint_sqlite(engine, vacuum=True)
        log.info(
            "erased a customer's data: %d messages deleted, %d redacted, %d tickets "
            "pseudonymized as %s, %d files deleted",
            report.messages_deleted, report.messages_redacted, report.tickets_pseudonymized,
            report.pseudonym, report.files_deleted + report.orphan_files_deleted,
        )
    return report


def _file_candidates(connection: Connection, data: PersonData) -> set[tuple[str, str]]:
    owned_ids = [row.id for row in data.owned_messages]
    candidates = {("attachments", digest) for digest in attachment_digests(connection, owned_ids)}
    for row in data.owned_messages + data.involved_messages:
        candidates.add(("raw", row.raw_sha256))
    return candidates


def _erase_rows(
    connection: Connection, data: PersonData, redactor: Redactor, report: EraseReport, now: datetime
) -> None:
    _erase_notes(connection, data, redactor, report)
    owned_ids = [row.id for row in data.owned_messages]
    report.messages_deleted, report.attachments_deleted = delete_messages(connection, owned_ids)
    for row in data.involved_messages:
        connection.execute(
            update(messages).where(messages.c.id == row.id).values(**redacted_message(row, redactor, now))
        )
        _redact_attachment_names(connection, row.id, redactor)
    report.messages_redacted = len(data.involved_messages)

    _erase_tickets(connection, data, redactor, report, now)
    outbox_ids = [row.id for row in data.owned_outbox + data.mentioning_outbox]
    for part in chunks(outbox_ids):
        report.outbox_deleted += connection.execute(delete(outbox).where(outbox.c.id.in_(part))).rowcount
    report.bounce_records_deleted = connection.execute(
        delete(bounced_recipients).where(bounced_recipients.c.address == data.address)
    ).rowcount


def redacted_message(row: Row, redactor: Redactor, now: datetime) -> dict[str, object]:
    """Return the column values of a kept message without the person's data and raw file."""
    values: dict[str, object] = {}
    for name in personal_message_columns():
        value = getattr(row, name)
        if not value:
            continue
        if name in ("text", "visible_text"):
            values[name] = redactor.text(value)
        elif name in ("to_addrs", "cc_addrs", "reply_to"):
            values[name] = redactor.addresses_json(value)
        elif name == "subject":
            values[name] = redactor.subject(value)
        else:
            values[name] = redactor.replace_names(value)
    values.update(raw_sha256="", redacted_at=now)
    return values


def _redact_attachment_names(connection: Connection, message_id: int, redactor: Redactor) -> None:
    """Remove their names from the file names of a kept message's attachments."""
    rows = connection.execute(
        select(attachments.c.id, attachments.c.filename).where(attachments.c.message == message_id)
    ).all()
    for row in rows:
        renamed = redactor.replace_names(row.filename)
        if renamed != row.filename:
            connection.execute(
                update(attachments).where(attachments.c.id == row.id).values(filename=renamed)
            )


def _erase_notes(
    connection: Connection, data: PersonData, redactor: Redactor, report: EraseReport
) -> None:
    for part in chunks(row.id for row in data.owned_notes):
        report.notes_deleted += connection.execute(
            delete(ticket_notes).where(ticket_notes.c.id.in_(part))
        ).rowcount
    for row in data.mentioning_notes:
        connection.execute(
            update(ticket_notes).where(ticket_notes.c.id == row.id).values(text=redactor.text(row.text))
        )
    report.notes_redacted = len(data.mentioning_notes)


def _erase_tickets(
    connection: Connection, data: PersonData, redactor: Redactor, report: EraseReport, now: datetime
) -> None:
    for row in data.requested_tickets:
        if row.status != "closed":
            repo.set_status(connection, row.number, "closed", now)
            report.tickets_closed += 1
        connection.execute(
            update(tickets)
            .where(tickets.c.number == row.number)
            .values(
                requester=redactor.pseudonym, requester_name="", subject=REMOVED, subject_key="",
                redacted_at=now,
            )
        )
    report.tickets_pseudonymized = len(data.requested_tickets)

    report.tickets_left = connection.execute(
        delete(ticket_participants).where(ticket_participants.c.address == data.address)
    ).rowcount
    for row in data.shared_tickets:
        if redactor.names_them(row.subject):
            connection.execute(
                update(tickets)
                .where(tickets.c.number == row.number)
                .values(subject=redactor.replace_names(row.subject))
            )
