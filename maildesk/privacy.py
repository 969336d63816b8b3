"""Find everything stored about one e-mail address, for export and erasure.

Messages fall into three groups for a person:

- **their own**: mail they wrote, by From or, on mail from one of the
  shop's own addresses such as a web form, by Reply-To. Also mail that went
  to them and to no other customer (agents' replies, auto-replies, bounces
  of mail to them), and agents' mail without a customer recipient on a
  ticket they requested. These are exported in full and erased.
- **involved**: mail that belongs to another customer too but contains their
  data: every other message on a ticket they requested, mail that went to
  them and to other customers, and any message that names their address or
  name or quotes their lines. These are kept for the other customer; erasure
  removes the person's data from them.
- everything else, which is not theirs.

Agents, the support address and ``own_addresses`` are never customers.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, String, Text, func, or_, select

from maildesk.config import Config
from maildesk.db import (
    bounced_recipients,
    messages,
    outbox,
    ticket_notes,
    ticket_participants,
    tickets,
)
from maildesk.redaction import Redactor, authored_lines, contains_address, usable_names
from maildesk.storage import FileStore
from maildesk.threader import subject_key

log = logging.getLogger(__name__)

Row = Any  # a SQLAlchemy Row of one of the tables in maildesk.db


@dataclass(frozen=True)
class Parties:
    """The customers of one message: who wrote it, and who it went to."""

    author: str | None
    recipients: frozenset[str]


@dataclass
class PersonData:
    """The rows that contain one address's personal data, sorted by what happens to them."""

    address: str
    requested_tickets: list[Row] = field(default_factory=list)
    # Other customers' tickets they took part in.
    shared_tickets: list[Row] = field(default_factory=list)
    owned_messages: list[Row] = field(default_factory=list)
    involved_messages: list[Row] = field(default_factory=list)
    owned_outbox: list[Row] = field(default_factory=list)
    # Mail to someone else (an agent's digest or notice) that names them.
    mentioning_outbox: list[Row] = field(default_factory=list)
    # Notes on tickets they requested, and notes elsewhere that name them.
    owned_notes: list[Row] = field(default_factory=list)
    mentioning_notes: list[Row] = field(default_factory=list)
    # The record that auto-replies to the address bounced.
    bounces: list[Row] = field(default_factory=list)
    names: tuple[str, ...] = ()
    lines: frozenset[str] = frozenset()
    subject_keys: frozenset[str] = frozenset()

    def redactor(self, pseudonym: str) -> Redactor:
        return Redactor(self.address, pseudonym, self.names, self.lines, self.subject_keys)

    @property
    def ticket_numbers(self) -> set[int]:
        return {row.number for row in self.requested_tickets + self.shared_tickets}


def normalize_address(address: str) -> str:
    return address.strip().lower()


def is_customer(config: Config, address: str) -> bool:
    return bool(address) and not config.is_own(address) and not config.is_agent(address)


def parties(
    config: Config,
    *,
    direction: str,
    kind: str | None,
    sender: str,
    reply_to: Sequence[str] = (),
    recipients: Iterable[str] = (),
    failed_recipient: str | None = None,
) -> Parties:
    """Return the customers of a message from its addresses.

    Mail from an agent or the support address, auto-replies and bounces have
    no customer author. Mail from one of the shop's own senders (a web form)
    speaks for the first customer in its Reply-To.
    """
    author: str | None = None
    if direction == "inbound" and kind != "bounce":
        if config.is_own(sender):
            author = next((a for a in reply_to if is_customer(config, a)), None)
        elif is_customer(config, sender):
            author = sender
    customers = {a for a in recipients if is_customer(config, a)}
    if failed_recipient and is_customer(config, failed_recipient):
        customers.add(failed_recipient)
    customers.discard(author or "")
    return Parties(author, frozenset(customers))


def owns(found: Parties, address: str, *, on_requested_ticket: bool) -> bool:
    """Return whether a message with these parties is the person's own."""
    if found.author is not None:
        return found.author == address
    if not found.recipients <= {address}:
        return False
    return address in found.recipients or on_requested_ticket


def message_parties(config: Config, row: Row) -> Parties:
    return parties(
        config,
        direction=row.direction,
        kind=row.kind,
        sender=row.from_addr,
        reply_to=addresses_of(row.reply_to),
        recipients=addresses_of(row.to_addrs) + addresses_of(row.cc_addrs),
        failed_recipient=row.failed_recipient,
    )


def addresses_of(value: str) -> list[str]:
    """Return the addresses of a stored JSON list of [address, name] pairs."""
    return [address.lower() for address, _name in json.loads(value or "[]")]


# Message columns that hold identifiers, hashes and states, never a person's words or names.
_MESSAGE_IDENTIFIER_COLUMNS = frozenset({
    "direction", "kind", "dedupe_key", "message_id", "content_hash", "in_reply_to",
    "references", "raw_sha256", "folder", "moved_from", "thread_rule", "thread_index_guid",
    "autoreply_suppressed", "imap_keywords",
})


def personal_message_columns() -> list[str]:
    """Return the text columns of ``messages`` that may contain a person's data.

    Every text column counts unless it is a known identifier, so a column
    added later is searched and redacted without a change here.
    """
    return [
        column.name for column in messages.columns
        if isinstance(column.type, String) and column.name not in _MESSAGE_IDENTIFIER_COLUMNS
    ]


def message_haystack(row: Row) -> str:
    """Return the text fields of a message row that can name a person, joined."""
    return "\n".join(getattr(row, name) or "" for name in personal_message_columns())


def mail_text(raw: bytes) -> str:
    """Return the decoded headers and text parts of a mail, for searching."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if part.get_content_maintype() != "text":
            continue
        try:
            parts.append(part.get_content())
        except (LookupError, ValueError):
            payload = part.get_payload(decode=True) or b""
            parts.append(payload.decode("utf-8", "replace"))
    return "\n".join(parts)


def read_raw(files: FileStore, digest: str) -> bytes | None:
    """Return a stored raw message, or None when it was removed or is missing."""
    if not digest:
        return None
    try:
        return files.get("raw", digest)
    except FileNotFoundError:
        log.warning("stored raw message %s is missing", digest)
        return None


def find_person_data(
    connection: Connection, config: Config, files: FileStore, address: str
) -> PersonData:
    """Collect every row that contains personal data of ``address``.

    NOTE: a new table that stores addresses, names or mail text must be
    searched here and handled in maildesk.erasure, maildesk.export and
    maildesk.retention. New text columns of ``messages`` are covered already.
    """
    data = PersonData(normalize_address(address))
    data.requested_tickets = connection.execute(
        select(tickets).where(tickets.c.requester == data.address).order_by(tickets.c.number)
    ).all()
    requested = {row.number for row in data.requested_tickets}
    participant = set(
        connection.execute(
            select(ticket_participants.c.ticket).where(ticket_participants.c.address == data.address)
        ).scalars()
    )

    candidates = _candidate_messages(connection, files, data.address, requested | participant)
    others = []
    for row in candidates:
        found = message_parties(config, row)
        # Unparsed mail is a candidate only when its raw bytes contain the address.
        unparsed = row.kind == "quarantined" and not row.from_addr
        if unparsed or owns(found, data.address, on_requested_ticket=row.ticket in requested):
            data.owned_messages.append(row)
        else:
            others.append((row, found))

    _collect_profile(data, config, candidates)
    matcher = data.redactor("")
    for row, found in others:
        if _involves(row, found, data.address, requested, matcher, files):
            data.involved_messages.append(row)

    shared = (participant | {row.ticket for row in data.owned_messages if row.ticket}) - requested
    data.shared_tickets = connection.execute(
        select(tickets).where(tickets.c.number.in_(shared)).order_by(tickets.c.number)
    ).all()
    _find_outbox(connection, data, matcher)
    _find_notes(connection, data, matcher)
    data.bounces = connection.execute(
        select(bounced_recipients).where(bounced_recipients.c.address == data.address)
    ).all()
    return data


def _candidate_messages(
    connection: Connection, files: FileStore, address: str, ticket_numbers: set[int]
) -> list[Row]:
    searched = [messages.c[name] for name in personal_message_columns()]
    conditions = [
        messages.c.ticket.in_(ticket_numbers),
        *(func.lower(column, type_=Text).contains(address, autoescape=True) for column in searched),
    ]
    rows = connection.execute(select(messages).where(or_(*conditions)).order_by(messages.c.id)).all()
    seen = {row.id for row in rows}
    # Mail that could not be parsed has no addresses in the database: search its raw bytes.
    quarantined = connection.execute(
        select(messages).where(messages.c.kind == "quarantined", messages.c.from_addr == "")
    ).all()
    for row in quarantined:
        if row.id not in seen and _raw_contains(files, row.raw_sha256, address):
            rows.append(row)
    return rows


def _collect_profile(data: PersonData, config: Config, candidates: list[Row]) -> None:
    """Set the names, own lines and subject keys of the person from their rows."""
    names = [row.requester_name for row in data.requested_tickets]
    for row in candidates:
        if row.from_addr == data.address:
            names.append(row.from_name)
        for column in (row.to_addrs, row.cc_addrs, row.reply_to):
            names += [name for addr, name in json.loads(column or "[]") if addr.lower() == data.address]
    data.names = usable_names(names, data.address)
    authored = [
        row.text for row in data.owned_messages
        if message_parties(config, row).author == data.address
    ]
    data.lines = authored_lines(authored)
    keys = {subject_key(row.subject) for row in data.requested_tickets}
    data.subject_keys = frozenset(key for key in keys if key)


def _involves(
    row: Row,
    found: Parties,
    address: str,
    requested: set[int],
    matcher: Redactor,
    files: FileStore,
) -> bool:
    if row.ticket in requested or address in found.recipients:
        return True
    if matcher.mentions(message_haystack(row)):
        return True
    return _raw_contains(files, row.raw_sha256, address)


def _raw_contains(files: FileStore, digest: str, address: str) -> bool:
    raw = read_raw(files, digest)
    # Latin-1 maps every byte to one character, so no byte of the mail is lost.
    return raw is not None and contains_address(raw.decode("latin-1"), address)


def _find_outbox(connection: Connection, data: PersonData, matcher: Redactor) -> None:
    rows = connection.execute(
        select(outbox)
        .where(
            or_(
                outbox.c.recipient == data.address,
                outbox.c.ticket.in_(data.ticket_numbers),
                outbox.c.ticket.is_(None),
                func.lower(outbox.c.to_addrs, type_=Text).contains(data.address, autoescape=True),
                func.lower(outbox.c.subject, type_=Text).contains(data.address, autoescape=True),
            )
        )
        .order_by(outbox.c.id)
    ).all()
    for row in rows:
        recipients = [address.lower() for address in json.loads(row.to_addrs or "[]")]
        if row.recipient == data.address or data.address in recipients:
            data.owned_outbox.append(row)
            continue
        text = "\n".join((row.subject, row.headers, row.last_error or "", mail_text(row.raw)))
        if matcher.mentions(text):
            data.mentioning_outbox.append(row)


def _find_notes(connection: Connection, data: PersonData, matcher: Redactor) -> None:
    requested = {row.number for row in data.requested_tickets}
    rows = connection.execute(
        select(ticket_notes)
        .where(
            or_(
                ticket_notes.c.ticket.in_(data.ticket_numbers),
                func.lower(ticket_notes.c.text, type_=Text).contains(data.address, autoescape=True),
            )
        )
        .order_by(ticket_notes.c.id)
    ).all()
    for row in rows:
        if row.ticket in requested:
            data.owned_notes.append(row)
        elif matcher.mentions(row.text):
            data.mentioning_notes.append(row)
