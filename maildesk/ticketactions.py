"""Changes to a ticket that agents make by mail command or on the command line.

Mail commands (``#close``, ``support+close@``) and ``maildesk tickets close``
and its siblings call the same functions, so both follow the same rules. Each
function works inside the caller's transaction and raises
:class:`TicketActionError` for a value it cannot use.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy import Connection, select, update

from maildesk import repository as repo
from maildesk.autoreply import update_first_response_due
from maildesk.config import PRIORITIES, Config
from maildesk.db import messages, outbox, ticket_notes, ticket_participants, ticket_tags
from maildesk.errors import MaildeskError, TicketNotFoundError
from maildesk.threader import subject_key

log = logging.getLogger(__name__)

STATUSES = ("new", "open", "pending", "closed")
# Tags are stored in lower case, like the tags of [[rules]].
_TAG = re.compile(r"^[^\s,;]{1,64}$")


class TicketActionError(MaildeskError):
    """A ticket change was requested with a value that cannot be used."""


def require_ticket(connection: Connection, number: int):  # type: ignore[no-untyped-def]
    """Return the ticket row of ``number`` or raise TicketNotFoundError."""
    row = repo.ticket_row(connection, number)
    if row is None:
        raise TicketNotFoundError(number)
    return row


def set_status(connection: Connection, number: int, status: str, now: datetime) -> bool:
    """Set the status of a ticket; return whether it changed."""
    if status not in STATUSES:
        raise TicketActionError(f"invalid status {status!r}: expected one of {', '.join(STATUSES)}")
    row = require_ticket(connection, number)
    if row.status == status:
        return False
    repo.set_status(connection, number, status, now)
    log.info("ticket %s status %s -> %s", number, row.status, status)
    return True


def normalize_tag(tag: str) -> str:
    """Return ``tag`` in lower case, or raise TicketActionError for an unusable one."""
    cleaned = tag.strip().lower()
    if not _TAG.match(cleaned):
        raise TicketActionError(
            f"invalid tag {tag!r}: expected 1 to 64 characters without spaces, commas or semicolons"
        )
    return cleaned


def add_tag(connection: Connection, number: int, tag: str, now: datetime) -> bool:
    """Add a tag; return whether the ticket did not have it yet."""
    cleaned = normalize_tag(tag)
    require_ticket(connection, number)
    if cleaned in repo.ticket_tag_list(connection, number):
        return False
    repo.add_tags(connection, number, [cleaned])
    repo.update_ticket(connection, number, updated_at=now)
    return True


def remove_tag(connection: Connection, number: int, tag: str, now: datetime) -> bool:
    """Remove a tag; return whether the ticket had it."""
    cleaned = normalize_tag(tag)
    require_ticket(connection, number)
    removed = repo.remove_tag(connection, number, cleaned)
    if removed:
        repo.update_ticket(connection, number, updated_at=now)
    return removed


def set_priority(
    connection: Connection, config: Config, number: int, priority: str, now: datetime
) -> bool:
    """Set the priority and, while the first answer is still due, recompute when it is due."""
    priority = priority.strip().lower()
    if priority not in PRIORITIES:
        raise TicketActionError(
            f"invalid priority {priority!r}: expected one of {', '.join(PRIORITIES)}"
        )
    row = require_ticket(connection, number)
    if row.priority == priority:
        return False
    repo.update_ticket(connection, number, priority=priority, updated_at=now)
    if row.first_response_at is None:
        update_first_response_due(connection, config, number)
    log.info("ticket %s priority %s -> %s", number, row.priority, priority)
    return True


def resolve_agent(config: Config, name: str, actor: str = "") -> str:
    """Return the agent address that ``name`` names, or raise TicketActionError.

    ``name`` is an address, or a local part that is unique among the listed agent
    addresses or that forms an agent address with the domain of ``actor``.
    """
    name = name.strip().lower()
    if "@" in name:
        if not config.is_agent(name):
            raise TicketActionError(f"invalid agent {name!r}: not listed in desk.agents")
        return name
    listed = [a for a in config.agents if not a.startswith("@") and a.partition("@")[0] == name]
    if len(listed) == 1:
        return listed[0]
    if actor:
        candidate = f"{name}@{actor.rpartition('@')[2]}"
        if config.is_agent(candidate):
            return candidate
    raise TicketActionError(
        f"invalid agent {name!r}: expected an agent's address or a local part that names one agent"
    )


def assign(
    connection: Connection, config: Config, number: int, name: str, now: datetime, actor: str = ""
) -> str:
    """Make the named agent the owner of the ticket; return the agent's address."""
    agent = resolve_agent(config, name, actor)
    require_ticket(connection, number)
    repo.update_ticket(connection, number, owner=agent, updated_at=now)
    log.info("ticket %s assigned to %s", number, agent)
    return agent


def add_note(
    connection: Connection,
    number: int,
    author: str,
    text: str,
    now: datetime,
    message: int | None = None,
) -> int:
    """Store an internal note on the ticket; return its id. Notes are never sent."""
    text = text.strip()
    if not text:
        raise TicketActionError("empty note: expected some text after #note")
    require_ticket(connection, number)
    note = repo.add_note(connection, number, author, text, now, message)
    repo.update_ticket(connection, number, updated_at=now)
    return note


def find_message(connection: Connection, number: int, reference: str):  # type: ignore[no-untyped-def]
    """Return the message of ticket ``number`` named by its id (``tickets show``) or Message-ID."""
    reference = reference.strip()
    condition = messages.c.message_id == reference.strip("<>")
    if reference.isdigit():
        condition = messages.c.id == int(reference)
    row = connection.execute(
        select(messages).where(condition, messages.c.ticket == number).order_by(messages.c.id)
    ).first()
    if row is None:
        raise TicketActionError(f"message {reference!r} not found on ticket {number}")
    return row


def split(connection: Connection, number: int, reference: str, now: datetime) -> int:
    """Move one message of a ticket into a new ticket of its own; return the new number.

    The new ticket's requester is the message's sender, or for an agent's
    message the old ticket's requester. Later replies that name the moved
    message follow it to the new ticket.
    """
    old = require_ticket(connection, number)
    message = find_message(connection, number, reference)
    if len(repo.ticket_messages(connection, number)) < 2:
        raise TicketActionError(f"ticket {number} has only one message; nothing to split off")
    inbound = message.direction == "inbound" and message.from_addr
    new = repo.create_ticket(
        connection,
        subject=message.subject or old.subject,
        subject_key=subject_key(message.subject or old.subject),
        requester=message.from_addr if inbound else old.requester,
        requester_name=message.from_name if inbound else old.requester_name,
        status="open",
        priority=old.priority,
        language=old.language,
        created_at=now,
        updated_at=now,
        status_changed_at=now,
        first_response_due=old.first_response_due,
        first_response_at=old.first_response_at if not inbound else None,
    )
    connection.execute(
        update(messages).where(messages.c.id == message.id).values(ticket=new, thread_rule="split")
    )
    repo.update_ticket(connection, number, updated_at=now)
    log.info("message %s split from ticket %s into new ticket %s", message.id, number, new)
    return new


def merge(connection: Connection, target: int, source: int, now: datetime) -> int:
    """Move every message, note and tag of ticket ``source`` into ``target``; return the count moved.

    ``source`` is closed and remembers ``target``, so mail that names it
    (its tag, its replies' Message-IDs) joins ``target`` from then on.
    """
    if target == source:
        raise TicketActionError(f"cannot merge ticket {target} into itself")
    into = require_ticket(connection, target)
    old = require_ticket(connection, source)
    if old.merged_into is not None:
        raise TicketActionError(f"ticket {source} was already merged into {old.merged_into}")
    if into.merged_into is not None:
        raise TicketActionError(f"ticket {target} was merged into {into.merged_into}; merge into that one")

    moved = connection.execute(
        update(messages).where(messages.c.ticket == source).values(ticket=target)
    ).rowcount
    connection.execute(update(outbox).where(outbox.c.ticket == source).values(ticket=target))
    connection.execute(update(ticket_notes).where(ticket_notes.c.ticket == source).values(ticket=target))
    repo.add_tags(connection, target, repo.ticket_tag_list(connection, source))
    connection.execute(ticket_tags.delete().where(ticket_tags.c.ticket == source))
    participants = repo.participant_list(connection, source)
    if old.requester != into.requester:
        participants.append(old.requester)
    repo.add_participants(connection, target, participants)
    connection.execute(
        ticket_participants.delete().where(ticket_participants.c.ticket == source)
    )
    repo.set_status(connection, source, "closed", now)
    repo.update_ticket(connection, source, merged_into=target)
    repo.update_ticket(connection, target, updated_at=now)
    log.info("ticket %s merged into %s (%d messages moved)", source, target, moved)
    return moved
