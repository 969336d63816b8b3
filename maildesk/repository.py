"""Reads and writes of stored state used by the ingest pipeline.

All functions take an open SQLAlchemy connection inside the caller's
transaction, so a message and its ticket change commit together.
"""

from __future__ import annotations

import json
import secrets
import weakref
from collections.abc import Iterable, Sequence
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
_STORED_BY_MESSAGE_ID = select(messages.c.message_id, messages.c.ticket, messages.c.content_hash).where(
    messages.c.message_id.in_(bindparam("ids", expanding=True))
)
_OUTBOX_BY_MESSAGE_ID = select(outbox.c.message_id, outbox.c.id, outbox.c.ticket).where(
    outbox.c.message_id.in_(bindparam("ids", expanding=True))
)
_TICKET_FOR_THREAD_INDEX = (
    select(messages.c.ticket)
    .join(tickets, tickets.c.number == messages.c.ticket)
    .where(messages.c.thread_index_guid == bindparam("guid"), tickets.c.subject_key == bindparam("key"))
    .order_by(messages.c.id.desc())
    .limit(1)
)
_TICKET_FOR_SUBJECT = (
    select(tickets.c.number)
    .where(
        tickets.c.requester == bindparam("requester"),
        tickets.c.subject_key == bindparam("key"),
        tickets.c.status != "closed",
        tickets.c.merged_into.is_(None),
        tickets.c.updated_at >= bindparam("since"),
    )
    .order_by(tickets.c.number.desc())
    .limit(1)
)
_INSERT_TICKET = insert(tickets)
_INSERT_TAG = insert(ticket_tags)
_INSERT_PARTICIPANT = insert(ticket_participants)
_TICKET_TAGS = select(ticket_tags.c.tag).where(ticket_tags.c.ticket == bindparam("ticket"))
# Ticket updates by the set of columns they change, each statement built once.
_TICKET_UPDATES: dict[frozenset[str], object] = {}
# SQLite's default limit of bound parameters per statement is 999 before 3.32 and 32,766 after.
_IN_CHUNK = 500
# The cache of the batch running on a connection. Not in Connection.info, whose access
# raises once an interrupted statement has invalidated the connection.
_BATCHES: weakref.WeakKeyDictionary[Connection, BatchLookups] = weakref.WeakKeyDictionary()
# A merge chain longer than this is a loop or a mistake; threading stops following it.
MAX_MERGE_HOPS = 10


class StoredState:
    """The :class:`maildesk.threader.ThreadLookup` over the database.

    One instance serves one message's threading decision, so ticket rows it
    has read are kept for its lifetime, during which ingest writes nothing.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._infos: dict[int, TicketInfo | None] = {}

    def tickets_for_message_ids(self, ids: Sequence[str]) -> dict[str, int]:
        if not ids:
            return {}
        batch = batch_lookups(self.connection)
        if batch is not None:
            return batch.tickets_for_message_ids(ids)
        found: dict[str, int] = {}
        rows = self.connection.execute(_MESSAGE_TICKETS, {"ids": list(ids)})
        for message_id, ticket in rows:
            found.setdefault(message_id, ticket)
        rows = self.connection.execute(_OUTBOX_TICKETS, {"ids": list(ids)})
        for message_id, ticket in rows:
            found.setdefault(message_id, ticket)
        return found

    def ticket_info(self, number: int) -> TicketInfo | None:
        if number not in self._infos:
            self._infos[number] = self._read_ticket_info(number)
        return self._infos[number]

    def _read_ticket_info(self, number: int) -> TicketInfo | None:
        row = resolve_merged(self.connection, number)
        if row is None:
            return None
        return TicketInfo(
            row.number, row.requester, frozenset(participants(self.connection, row.number)),
            row.status, row.closed_at,
        )

    def ticket_for_thread_index(self, guid: str, subject_key: str) -> int | None:
        return self.connection.execute(_TICKET_FOR_THREAD_INDEX, {"guid": guid, "key": subject_key}).scalar()

    def ticket_for_subject(self, requester: str, subject_key: str, since: datetime) -> int | None:
        return self.connection.execute(
            _TICKET_FOR_SUBJECT, {"requester": requester, "key": subject_key, "since": since}
        ).scalar()


class BatchLookups:
    """Message-ID, outbox and participant lookups of one ingest batch, cached.

    ``prefetch`` reads the rows of every Message-ID a batch carries or refers
    to in a few ``IN`` queries, and the writes of the batch keep the cache
    current: ingest records each stored message, and :func:`add_participants`
    and :func:`insert_outbox` update or drop their entries. The cache is only
    valid inside the batch's transaction, whose ``BEGIN IMMEDIATE`` keeps
    other writers out, and must be dropped (:func:`end_batch`) when a
    savepoint rolls back.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        # Message-IDs whose rows in messages and outbox are all in the dicts below.
        self._read: set[str] = set()
        self._hashes: dict[str, set[str]] = {}
        self._tickets: dict[str, int] = {}
        self._outbox: dict[str, tuple[int, int | None]] = {}
        self._outbox_tickets: dict[str, int] = {}
        self._participants: dict[int, set[str]] = {}

    def prefetch(self, ids: Iterable[str]) -> None:
        """Read the stored rows of every Message-ID in ``ids`` not read yet."""
        missing = sorted({i for i in ids if i and i not in self._read})
        for start in range(0, len(missing), _IN_CHUNK):
            chunk = missing[start:start + _IN_CHUNK]
            for message_id, ticket, content_hash in self.connection.execute(
                _STORED_BY_MESSAGE_ID, {"ids": chunk}
            ):
                self._hashes.setdefault(message_id, set()).add(content_hash)
                if ticket is not None:
                    self._tickets.setdefault(message_id, ticket)
            for message_id, row_id, ticket in self.connection.execute(_OUTBOX_BY_MESSAGE_ID, {"ids": chunk}):
                self._outbox.setdefault(message_id, (row_id, ticket))
                if ticket is not None:
                    self._outbox_tickets.setdefault(message_id, ticket)
            self._read.update(chunk)

    def hashes_for_message_id(self, message_id: str) -> set[str]:
        self.prefetch([message_id])
        return set(self._hashes.get(message_id, ()))

    def outbox_row(self, message_id: str) -> tuple[int, int | None] | None:
        self.prefetch([message_id])
        return self._outbox.get(message_id)

    def tickets_for_message_ids(self, ids: Sequence[str]) -> dict[str, int]:
        self.prefetch(ids)
        found: dict[str, int] = {}
        for message_id in ids:
            if message_id in self._tickets:
                found[message_id] = self._tickets[message_id]
        for message_id in ids:
            if message_id not in found and message_id in self._outbox_tickets:
                found[message_id] = self._outbox_tickets[message_id]
        return found

    def record_message(self, message_id: str | None, ticket: int | None, content_hash: str) -> None:
        """Note a message the batch stored."""
        if not message_id or message_id not in self._read:
            # Not read yet: the next lookup reads it from the database, this row included.
            return
        self._hashes.setdefault(message_id, set()).add(content_hash)
        if ticket is not None:
            self._tickets.setdefault(message_id, ticket)

    def forget(self, message_id: str | None) -> None:
        """Drop what is known of ``message_id``, so the next lookup reads it again."""
        if not message_id:
            return
        self._read.discard(message_id)
        self._hashes.pop(message_id, None)
        self._tickets.pop(message_id, None)
        self._outbox.pop(message_id, None)
        self._outbox_tickets.pop(message_id, None)

    def participants(self, ticket: int) -> set[str]:
        if ticket not in self._participants:
            self._participants[ticket] = set(
                self.connection.execute(_PARTICIPANTS, {"ticket": ticket}).scalars()
            )
        return self._participants[ticket]

    def new_participants(self, ticket: int) -> set[str]:
        """Return the (empty) participant set of a ticket created in this batch."""
        return self._participants.setdefault(ticket, set())


def begin_batch(connection: Connection) -> BatchLookups:
    """Install a :class:`BatchLookups` on ``connection`` for the rest of its transaction."""
    lookups = BatchLookups(connection)
    _BATCHES[connection] = lookups
    return lookups


def end_batch(connection: Connection) -> None:
    """Drop the batch cache: at the end of the batch, or when a savepoint rolls back."""
    _BATCHES.pop(connection, None)


def batch_lookups(connection: Connection) -> BatchLookups | None:
    return _BATCHES.get(connection)


def participants(connection: Connection, ticket: int) -> set[str]:
    """Return the participant addresses of a ticket."""
    batch = batch_lookups(connection)
    if batch is not None:
        return set(batch.participants(ticket))
    return set(connection.execute(_PARTICIPANTS, {"ticket": ticket}).scalars())


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
    batch = batch_lookups(connection)
    if batch is not None:
        return batch.hashes_for_message_id(message_id)
    return set(connection.execute(_HASHES, {"message_id": message_id}).scalars())


def outbox_row_for_message_id(connection: Connection, message_id: str) -> tuple[int, int | None] | None:
    batch = batch_lookups(connection)
    if batch is not None:
        return batch.outbox_row(message_id)
    row = connection.execute(_OUTBOX_ROW, {"message_id": message_id}).first()
    return (row.id, row.ticket) if row else None


def create_ticket(connection: Connection, *, tags: Sequence[str] = (), **values: object) -> int:
    """Insert a ticket with its tags and return its number."""
    result = connection.execute(_INSERT_TICKET, values)
    number = result.inserted_primary_key[0]
    assert isinstance(number, int)
    unique_tags = list(dict.fromkeys(tags))
    if unique_tags:
        connection.execute(_INSERT_TAG, [{"ticket": number, "tag": tag} for tag in unique_tags])
    return number


def add_tags(connection: Connection, ticket: int, tags: Sequence[str]) -> None:
    existing = set(connection.execute(_TICKET_TAGS, {"ticket": ticket}).scalars())
    new_tags = [tag for tag in dict.fromkeys(tags) if tag not in existing]
    if new_tags:
        connection.execute(_INSERT_TAG, [{"ticket": ticket, "tag": tag} for tag in new_tags])


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


def add_participants(
    connection: Connection, ticket: int, addresses: Sequence[str], *, new_ticket: bool = False
) -> None:
    """Add the addresses the ticket does not list yet; ``new_ticket`` skips reading its (empty) list."""
    batch = batch_lookups(connection)
    if batch is not None:
        existing = batch.participants(ticket) if not new_ticket else batch.new_participants(ticket)
    elif new_ticket:
        existing = set()
    else:
        existing = set(connection.execute(_PARTICIPANTS, {"ticket": ticket}).scalars())
    added = [address for address in dict.fromkeys(addresses) if address and address not in existing]
    if added:
        connection.execute(_INSERT_PARTICIPANT, [{"ticket": ticket, "address": a} for a in added])
        existing.update(added)


def update_ticket(connection: Connection, number: int, **values: object) -> None:
    keys = frozenset(values)
    statement = _TICKET_UPDATES.get(keys)
    if statement is None:
        statement = (
            update(tickets)
            .where(tickets.c.number == bindparam("ticket_number"))
            .values({key: bindparam(key) for key in sorted(keys)})
        )
        _TICKET_UPDATES[keys] = statement
    connection.execute(statement, {"ticket_number": number, **values})  # type: ignore[call-overload]


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


def start_import(connection: Connection, name: str, uidvalidity: int, import_until: int) -> None:
    """Record the first start of a folder: nothing stored yet, and the import ending at ``import_until``."""
    connection.execute(delete(folders).where(folders.c.name == name))
    connection.execute(
        insert(folders).values(name=name, uidvalidity=uidvalidity, last_uid=0, import_until=import_until)
    )


def forget_import(connection: Connection, name: str) -> None:
    """Drop the recorded end of the folder's first-start import."""
    connection.execute(update(folders).where(folders.c.name == name).values(import_until=None))


def import_until(connection: Connection, name: str) -> int | None:
    """Return the highest UID of the folder's first-start import, or None when none was recorded."""
    return connection.execute(select(folders.c.import_until).where(folders.c.name == name)).scalar()


def save_folder_state(
    connection: Connection, name: str, uidvalidity: int, last_uid: int, now: datetime
) -> None:
    values = {"uidvalidity": uidvalidity, "last_uid": last_uid, "last_sync_at": now}
    result = connection.execute(update(folders).where(folders.c.name == name).values(**values))
    if result.rowcount == 0:
        connection.execute(insert(folders).values(name=name, **values))


def insert_outbox(connection: Connection, **values: object) -> int:
    batch = batch_lookups(connection)
    if batch is not None:
        message_id = values.get("message_id")
        batch.forget(message_id if isinstance(message_id, str) else None)
    result = connection.execute(insert(outbox).values(**values))
    row_id = result.inserted_primary_key[0]
    assert isinstance(row_id, int)
    return row_id


def json_list(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)
