"""Reads and writes of stored state used by the ingest pipeline.

All functions take an open SQLAlchemy connection inside the caller's
transaction, so a message and its ticket change commit together.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from maildesk.db import (
    folders,
    messages,
    outbox,
    settings,
    ticket_notes,
    ticket_participants,
    ticket_tags,
    tickets,
)
from maildesk.threader import TicketInfo

SECRET_KEY = "message_id_secret"

# The lookups ingest runs for every message, built once with bound parameters so
# SQLAlchemy does not construct and cache-key a new statement each time.
_MESSAGE_TICKETS = select(messages.c.message_id, messages.c.ticket).where(
    messages.c.message_id.in_(bindparam("ids", expanding=True)), messages.c.ticket.is_not(None)
)
_OUTBOX_TICKETS = select(outbox.c.message_id, outbox.c.ticket).where(
    outbox.c.message_id.in_(bindparam("ids", expanding=True)), outbox.c.ticket.is_not(None)
)
_PARTICIPANTS = select(ticket_participants.c.address).where(
    ticket_participants.c.ticket == bindparam("ticket")
)
_DUPLICATE = select(messages.c.id).where(messages.c.dedupe_key == bindparam("key"))
_HASHES = select(messages.c.content_hash).where(messages.c.message_id == bindparam("message_id"))
_OUTBOX_ROW = select(outbox.c.id, outbox.c.ticket).where(outbox.c.message_id == bindparam("message_id"))
_TICKET_ROW = select(tickets).where(tickets.c.number == bindparam("number"))
# A merge chain longer than this is a loop or a mistake; threading stops following it.
MAX_MERGE_HOPS = 10


class StoredState:
    """The :class:`maildesk.threader.ThreadLookup` over the database."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def tickets_for_message_ids(self, ids: Sequence[str]) -> dict[str, int]:
        if not ids:
            return {}
        found: dict[str, int] = {}
        rows = self.connection.execute(_MESSAGE_TICKETS, {"ids": list(ids)})
        for message_id, ticket in rows:
            found.setdefault(message_id, ticket)
        rows = self.connection.execute(_OUTBOX_TICKETS, {"ids": list(ids)})
        for message_id, ticket in rows:
            found.setdefault(message_id, ticket)
        return found

    def ticket_info(self, number: int) -> TicketInfo | None:
        row = resolve_merged(self.connection, number)
        if row is None:
            return None
        participants = self.connection.execute(_PARTICIPANTS, {"ticket": row.number}).scalars()
        return TicketInfo(
            row.number, row.requester, frozenset(participants), row.status, row.closed_at
        )

    def ticket_for_thread_index(self, guid: str, subject_key: str) -> int | None:
        return self.connection.execute(
            select(messages.c.ticket)
            .join(tickets, tickets.c.number == messages.c.ticket)
            .where(messages.c.thread_index_guid == guid, tickets.c.subject_key == subject_key)
            .order_by(messages.c.id.desc())
            .limit(1)
        ).scalar()

    def ticket_for_subject(self, requester: str, subject_key: str, since: datetime) -> int | None:
        return self.connection.execute(
            select(tickets.c.number)
            .where(
                tickets.c.requester == requester,
                tickets.c.subject_key == subject_key,
                tickets.c.status != "closed",
                tickets.c.merged_into.is_(None),
                tickets.c.updated_at >= since,
            )
            .order_by(tickets.c.number.desc())
            .limit(1)
        ).scalar()


def resolve_merged(connection: Connection, number: int):  # type: ignore[no-untyped-def]
    """Return the ticket row of ``number``, following merges to the surviving ticket, or None."""
    row = ticket_row(connection, number)
    hops = 0
    while row is not None and row.merged_into is not None and hops < MAX_MERGE_HOPS:
        row = ticket_row(connection, row.merged_into)
        hops += 1
    return row


def message_id_secret(connection: Connection) -> bytes:
    """Return the key of the check value in reply Message-IDs, creating it on first use."""
    value = connection.execute(select(settings.c.value).where(settings.c.key == SECRET_KEY)).scalar()
    if value is None:
        value = secrets.token_bytes(32)
        connection.execute(insert(settings).values(key=SECRET_KEY, value=value))
    return value


def find_duplicate(connection: Connection, dedupe_key: str) -> int | None:
    return connection.execute(_DUPLICATE, {"key": dedupe_key}).scalar()


def hashes_for_message_id(connection: Connection, message_id: str) -> set[str]:
    return set(connection.execute(_HASHES, {"message_id": message_id}).scalars())


def outbox_row_for_message_id(connection: Connection, message_id: str) -> tuple[int, int | None] | None:
    row = connection.execute(_OUTBOX_ROW, {"message_id": message_id}).first()
    return (row.id, row.ticket) if row else None


def create_ticket(connection: Connection, **values: object) -> int:
    result = connection.execute(insert(tickets).values(**values))
    number = result.inserted_primary_key[0]
    assert isinstance(number, int)
    return number


def add_tags(connection: Connection, ticket: int, tags: Sequence[str]) -> None:
    existing = set(
        connection.execute(select(ticket_tags.c.tag).where(ticket_tags.c.ticket == ticket)).scalars()
    )
    for tag in tags:
        if tag not in existing:
            connection.execute(insert(ticket_tags).values(ticket=ticket, tag=tag))
            existing.add(tag)


def remove_tag(connection: Connection, ticket: int, tag: str) -> bool:
    """Remove ``tag`` from the ticket; return whether it had it."""
    result = connection.execute(
        delete(ticket_tags).where(ticket_tags.c.ticket == ticket, ticket_tags.c.tag == tag)
    )
    return result.rowcount > 0


def ticket_tag_list(connection: Connection, ticket: int) -> list[str]:
    return list(
        connection.execute(
            select(ticket_tags.c.tag).where(ticket_tags.c.ticket == ticket).order_by(ticket_tags.c.tag)
        ).scalars()
    )


def participant_list(connection: Connection, ticket: int) -> list[str]:
    return list(
        connection.execute(
            select(ticket_participants.c.address).where(ticket_participants.c.ticket == ticket)
        ).scalars()
    )


def add_note(
    connection: Connection,
    ticket: int,
    author: str,
    text: str,
    now: datetime,
    message: int | None = None,
) -> int:
    result = connection.execute(
        insert(ticket_notes).values(
            ticket=ticket, author=author, text=text, created_at=now, message=message
        )
    )
    note_id = result.inserted_primary_key[0]
    assert isinstance(note_id, int)
    return note_id


def set_status(connection: Connection, number: int, status: str, at: datetime) -> None:
    """Set the ticket's status with the times that go with it (closed_at, status_changed_at)."""
    values: dict[str, object] = {"status": status, "status_changed_at": at, "updated_at": at}
    values["closed_at"] = at if status == "closed" else None
    update_ticket(connection, number, **values)


def ticket_messages(connection: Connection, ticket: int):  # type: ignore[no-untyped-def]
    """Return the stored messages of a ticket in the order they were stored."""
    return connection.execute(
        select(messages).where(messages.c.ticket == ticket).order_by(messages.c.id)
    ).all()


def add_participants(connection: Connection, ticket: int, addresses: Sequence[str]) -> None:
    existing = set(
        connection.execute(
            select(ticket_participants.c.address).where(ticket_participants.c.ticket == ticket)
        ).scalars()
    )
    for address in addresses:
        if address and address not in existing:
            connection.execute(insert(ticket_participants).values(ticket=ticket, address=address))
            existing.add(address)


def update_ticket(connection: Connection, number: int, **values: object) -> None:
    connection.execute(update(tickets).where(tickets.c.number == number).values(**values))


def ticket_row(connection: Connection, number: int):  # type: ignore[no-untyped-def]
    return connection.execute(_TICKET_ROW, {"number": number}).first()


def mark_outbox_bounced(connection: Connection, outbox_id: int, recipient: str) -> None:
    connection.execute(
        update(outbox)
        .where(outbox.c.id == outbox_id)
        .values(status="failed", last_error=f"bounced: delivery to {recipient} failed")
    )


def folder_state(connection: Connection, name: str) -> tuple[int, int] | None:
    """Return (UIDVALIDITY, highest stored UID) of a folder, or None before its first sync."""
    row = connection.execute(
        select(folders.c.uidvalidity, folders.c.last_uid).where(folders.c.name == name)
    ).first()
    return (row.uidvalidity, row.last_uid) if row else None


def folder_last_sync(connection: Connection, name: str) -> datetime | None:
    """Return when a folder was last synced, or None."""
    return connection.execute(
        select(folders.c.last_sync_at).where(folders.c.name == name)
    ).scalar()


def save_folder_state(
    connection: Connection, name: str, uidvalidity: int, last_uid: int, now: datetime
) -> None:
    values = {"uidvalidity": uidvalidity, "last_uid": last_uid, "last_sync_at": now}
    result = connection.execute(update(folders).where(folders.c.name == name).values(**values))
    if result.rowcount == 0:
        connection.execute(insert(folders).values(name=name, **values))


def insert_outbox(connection: Connection, **values: object) -> int:
    result = connection.execute(insert(outbox).values(**values))
    row_id = result.inserted_primary_key[0]
    assert isinstance(row_id, int)
    return row_id


def json_list(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)
