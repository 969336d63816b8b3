"""Decide which ticket a message belongs to.

The decision reads only the parsed message and a :class:`ThreadLookup` over
stored state, so it can be tested without a database. Rules, strongest
first:

1. ``in-reply-to``: the In-Reply-To id is a stored message or auto-reply.
2. ``references``: any References id is one, newest first.
3. ``own-message-id``: an id has the form of maildesk's own reply ids and
   its check value is valid, even when no stored row has that id.
4. ``subject-tag``: the subject carries ``[#N]`` and the sender is the
   requester, a participant of ticket N, or an agent.
5. ``thread-index``: Outlook's Thread-Index names the same conversation as
   a stored message of a ticket with the same subject, and the sender may
   join that ticket (as for the subject tag).
6. ``subject-sender``: the sender is the requester of a ticket that is not
   closed, has the same subject once prefixes and tags are stripped, and
   changed within the configured window. It can be switched off.
7. ``subject-recipient``: the same for an agent's mail without thread
   headers, with a customer it is addressed to as the requester.
8. ``new-ticket``: none of the above.

A ticket merged into another is followed to that ticket. After the choice,
:func:`apply_reopen_limit` turns a customer's reply to a ticket closed too
long ago into a new ticket that links the old one. Repairs by an operator
record ``split`` or ``merge`` as the rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from maildesk.message import ParsedMessage

TICKET_TAG = re.compile(r"\[#(\d{1,9})\]")

# Reply and forward prefixes of the languages shops meet: English (Re, Fwd, FW), Finnish
# (Vs, VL, Vast), Swedish (SV, VB, Svar), German (AW, WG), Dutch (Antw), French (TR),
# optionally numbered as "Re[2]:" or "Re(2):" and with a full-width colon. Only used for
# matching; tickets keep the subject as received.
_PREFIX = re.compile(
    r"^\s*(?:re|vs|vl|vast|sv|svar|vb|aw|wg|antw|antwort|fwd?|fw|tr|ref)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a]\s*",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")

THREAD_RULES = (
    "in-reply-to",
    "references",
    "own-message-id",
    "subject-tag",
    "thread-index",
    "subject-sender",
    "subject-recipient",
    "forwarded",
    "new-ticket",
    "split",
    "merge",
)


@dataclass(frozen=True, slots=True)
class TicketInfo:
    number: int
    requester: str
    participants: frozenset[str]
    status: str
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    ticket: int | None
    rule: str
    # For a new ticket: the closed ticket the message replied to, which the new one links.
    linked_ticket: int | None = None


@dataclass(frozen=True, slots=True)
class ThreadPolicy:
    """The configurable fallbacks; the defaults turn both off."""

    # Oldest ticket update the subject fallbacks may join; None turns them off.
    subject_since: datetime | None = None
    # For an agent's mail: the customers it is addressed to, for the subject-recipient rule.
    customers: tuple[str, ...] = ()


class ThreadLookup(Protocol):
    def tickets_for_message_ids(self, ids: Sequence[str]) -> dict[str, int]:
        """Map each id that is a stored message or auto-reply on a ticket to that ticket."""

    def ticket_info(self, number: int) -> TicketInfo | None:
        """Return the ticket with this number (or the ticket it was merged into), or None."""

    def ticket_for_thread_index(self, guid: str, subject_key: str) -> int | None:
        """Return the ticket of a stored message with this conversation GUID and subject key."""

    def ticket_for_subject(self, requester: str, subject_key: str, since: datetime) -> int | None:
        """Return the newest ticket of ``requester`` that is not closed, has this
        subject key and was updated at or after ``since``."""


def subject_key(subject: str) -> str:
    """Return the subject without reply prefixes and ticket tags, case-folded, for matching."""
    text = TICKET_TAG.sub(" ", subject)
    previous = None
    while previous != text:
        previous = text
        text = _PREFIX.sub("", text)
    return _SPACE.sub(" ", text).strip().casefold()


def thread_index_guid(thread_index: bytes | None) -> str | None:
    """Return the conversation GUID of an Outlook Thread-Index as hex, or None.

    The first 22 bytes are a 6-byte FILETIME fragment and a 16-byte GUID that
    every message of one conversation shares.
    """
    if thread_index is None or len(thread_index) < 22:
        return None
    return thread_index[:22].hex()


def choose_ticket(
    message: ParsedMessage,
    sender: str,
    lookup: ThreadLookup,
    *,
    own_ticket_for_id: Callable[[str], int | None],
    is_agent: Callable[[str], bool],
    policy: ThreadPolicy = ThreadPolicy(),
) -> ThreadDecision:
    """Return the ticket ``message`` joins and the rule that decided it.

    ``sender`` is the address that counts as the author (the Reply-To of a
    web form's mail). ``own_ticket_for_id`` returns the ticket number carried
    by a valid maildesk reply id, else None.
    """
    by_reference = _by_reference(message, lookup, own_ticket_for_id)
    if by_reference is not None:
        return by_reference

    for match in TICKET_TAG.finditer(message.subject):
        info = lookup.ticket_info(int(match.group(1)))
        if info is not None and _may_join(info, sender, is_agent):
            return ThreadDecision(info.number, "subject-tag")

    key = subject_key(message.subject)
    by_thread_index = _by_thread_index(message, sender, key, lookup, is_agent)
    if by_thread_index is not None:
        return by_thread_index

    by_subject = _by_subject(sender, key, lookup, is_agent, policy)
    if by_subject is not None:
        return by_subject

    return ThreadDecision(None, "new-ticket")


def apply_reopen_limit(
    decision: ThreadDecision, info: TicketInfo | None, now: datetime, limit: timedelta
) -> ThreadDecision:
    """Return a new-ticket decision that links ``info`` when it was closed longer than ``limit`` ago.

    Only for a customer's mail: an agent may still write on an old ticket. A
    zero ``limit`` keeps every decision.
    """
    if info is None or decision.ticket is None or not limit:
        return decision
    if info.status != "closed" or info.closed_at is None or now - info.closed_at <= limit:
        return decision
    return ThreadDecision(None, "new-ticket", linked_ticket=info.number)


def _by_reference(
    message: ParsedMessage,
    lookup: ThreadLookup,
    own_ticket_for_id: Callable[[str], int | None],
) -> ThreadDecision | None:
    references = tuple(reversed(message.references))
    known = lookup.tickets_for_message_ids(message.in_reply_to + references)
    for rule, ids in (("in-reply-to", message.in_reply_to), ("references", references)):
        for message_id in ids:
            if message_id in known:
                info = lookup.ticket_info(known[message_id])
                return ThreadDecision(info.number if info else known[message_id], rule)

    for message_id in message.in_reply_to + references:
        number = own_ticket_for_id(message_id)
        info = lookup.ticket_info(number) if number is not None else None
        if info is not None:
            return ThreadDecision(info.number, "own-message-id")
    return None


def _by_thread_index(
    message: ParsedMessage,
    sender: str,
    key: str,
    lookup: ThreadLookup,
    is_agent: Callable[[str], bool],
) -> ThreadDecision | None:
    guid = thread_index_guid(message.thread_index)
    if guid is None or not sender:
        return None
    # Outlook's Thread-Topic is the subject without prefixes; it survives a subject that
    # another client mangled, so either may match.
    keys = [key]
    if message.thread_topic:
        keys.append(subject_key(message.thread_topic))
    for candidate in dict.fromkeys(keys):
        ticket = lookup.ticket_for_thread_index(guid, candidate)
        info = lookup.ticket_info(ticket) if ticket is not None else None
        if info is not None and _may_join(info, sender, is_agent):
            return ThreadDecision(info.number, "thread-index")
    return None


def _by_subject(
    sender: str,
    key: str,
    lookup: ThreadLookup,
    is_agent: Callable[[str], bool],
    policy: ThreadPolicy,
) -> ThreadDecision | None:
    if policy.subject_since is None or not sender or not key:
        return None
    # Customers are given only for mail from the desk's side (an agent or the support address).
    for customer in policy.customers:
        ticket = lookup.ticket_for_subject(customer, key, policy.subject_since)
        if ticket is not None:
            return ThreadDecision(ticket, "subject-recipient")
    if policy.customers or is_agent(sender):
        return None
    ticket = lookup.ticket_for_subject(sender, key, policy.subject_since)
    return ThreadDecision(ticket, "subject-sender") if ticket is not None else None


def _may_join(info: TicketInfo, sender: str, is_agent: Callable[[str], bool]) -> bool:
    # A tag alone must not let one customer's mail join another customer's ticket.
    return sender == info.requester or sender in info.participants or is_agent(sender)
