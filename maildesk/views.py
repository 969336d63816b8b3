"""Read-only views of stored state, as plain dicts for JSON and tables.

The JSON field names are an interface that users' scripts rely on: keep
them. Addresses are plain lower-case addresses, display names go in the
``*_name`` fields, and times are ISO 8601 with an offset.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from maildesk.db import attachments, messages, outbox, ticket_notes, ticket_tags, tickets
from maildesk.errors import TicketNotFoundError


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _addresses(value: str) -> list[str]:
    return [address for address, _name in json.loads(value)]


def _tags(connection: Connection, numbers: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {number: [] for number in numbers}
    if numbers:
        rows = connection.execute(
            select(ticket_tags.c.ticket, ticket_tags.c.tag)
            .where(ticket_tags.c.ticket.in_(numbers))
            .order_by(ticket_tags.c.tag)
        )
        for number, tag in rows:
            found[number].append(tag)
    return found


def list_tickets(connection: Connection, status: str | None = None) -> list[dict[str, Any]]:
    """Return tickets, newest first, optionally only those with ``status``."""
    counts = (
        select(messages.c.ticket, func.count().label("message_count"))
        .group_by(messages.c.ticket)
        .subquery()
    )
    query = (
        select(tickets, func.coalesce(counts.c.message_count, 0).label("message_count"))
        .outerjoin(counts, counts.c.ticket == tickets.c.number)
        .order_by(tickets.c.number.desc())
    )
    if status is not None:
        query = query.where(tickets.c.status == status)
    rows = connection.execute(query).all()
    tags = _tags(connection, [row.number for row in rows])
    return [_ticket(row, tags[row.number]) for row in rows]


def _ticket(row: Any, tags: list[str]) -> dict[str, Any]:
    return {
        "number": row.number,
        "subject": row.subject,
        "status": row.status,
        "priority": row.priority,
        "tags": tags,
        "requester": row.requester,
        "requester_name": row.requester_name,
        "owner": row.owner,
        "message_count": row.message_count,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "first_response_due": _iso(row.first_response_due),
        "language": row.language,
        "first_response_at": _iso(row.first_response_at),
        "closed_at": _iso(row.closed_at),
        # The closed ticket this one continues, and the ticket this one was merged into.
        "linked_ticket": row.linked_ticket,
        "merged_into": row.merged_into,
        # Set when erasure or retention removed the requester's personal data.
        "redacted_at": _iso(row.redacted_at),
    }


def show_ticket(connection: Connection, number: int) -> dict[str, Any]:
    """Return one ticket with its messages in the order they were stored."""
    found = [t for t in list_tickets(connection) if t["number"] == number]
    if not found:
        raise TicketNotFoundError(number)
    ticket = found[0]
    rows = connection.execute(
        select(messages).where(messages.c.ticket == number).order_by(messages.c.id)
    ).all()
    ticket["messages"] = [_message(connection, row) for row in rows]
    ticket["notes"] = _notes(connection, number)
    return ticket


def _notes(connection: Connection, number: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(ticket_notes).where(ticket_notes.c.ticket == number).order_by(ticket_notes.c.id)
    ).all()
    return [
        {"author": row.author, "text": row.text, "created_at": _iso(row.created_at)}
        for row in rows
    ]


def message_view(connection: Connection, row: Any) -> dict[str, Any]:
    """Return one stored message row with the fields of ``tickets show --json``."""
    return _message(connection, row)


def _message(connection: Connection, row: Any) -> dict[str, Any]:
    files = connection.execute(
        select(attachments).where(attachments.c.message == row.id).order_by(attachments.c.id)
    ).all()
    return {
        "direction": row.direction,
        "kind": row.kind,
        "from": row.from_addr,
        "from_name": row.from_name,
        "to": _addresses(row.to_addrs),
        "cc": _addresses(row.cc_addrs),
        "subject": row.subject,
        "date": _iso(row.date),
        "message_id": row.message_id,
        "thread_rule": row.thread_rule,
        # The message's number in this database, for ``tickets split``; mail without a
        # Message-ID is named by it.
        "id": row.id,
        "commands": json.loads(row.commands or "[]"),
        "autoreply_suppressed": row.autoreply_suppressed,
        "text": row.text,
        # Rows stored before visible_text existed have "" there.
        "visible_text": row.visible_text or row.text,
        "attachments": [
            {
                "filename": f.filename,
                "content_type": f.content_type,
                "size": f.size,
                "inline": bool(f.inline),
                "content_id": f.content_id,
            }
            for f in files
        ],
    }


def list_outbox(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(select(outbox).order_by(outbox.c.id)).all()
    return [
        {
            "id": row.id,
            "ticket": row.ticket,
            "kind": row.kind,
            "to": json.loads(row.to_addrs),
            "subject": row.subject,
            "status": row.status,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "created_at": _iso(row.created_at),
            "sent_at": _iso(row.sent_at),
            "headers": json.loads(row.headers),
        }
        for row in rows
    ]


def list_ticketless(connection: Connection) -> list[dict[str, Any]]:
    """Return stored mail that is on no ticket: bounces, robots' mail, quarantined mail."""
    rows = connection.execute(
        select(messages).where(messages.c.ticket.is_(None)).order_by(messages.c.id)
    ).all()
    return [
        {
            "message_id": row.message_id,
            "from": row.from_addr,
            "from_name": row.from_name,
            "subject": row.subject,
            "date": _iso(row.date),
            "kind": row.kind,
            "failed_recipient": row.failed_recipient,
            "reason": row.reason,
        }
        for row in rows
    ]
