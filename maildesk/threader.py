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
   a stored message from the same sender with the same subject.
6. ``new-ticket``: none of the above.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from maildesk.message import ParsedMessage

TICKET_TAG = re.compile(r"\[#(\d{1,9})\]")

# Reply and forward prefixes of the languages shops meet: English, Finnish (Vs, VL),
# Swedish (SV, VB), German (AW, WG), Dutch (Antw), French (TR), optionally numbered
# as "Re[2]:" or "Re(2):". Only used for matching; tickets keep the subject as received.
_PREFIX = re.compile(
    r"^\s*(?:re|vs|vl|sv|vb|aw|wg|antw|antwort|fwd?|fw|tr|ref)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")

THREAD_RULES = (
    "in-reply-to",
    "references",
    "own-message-id",
    "subject-tag",
    "thread-index",
    "new-ticket",
)


@dataclass(frozen=True, slots=True)
class TicketInfo:
    number: int
    requester: str
    participants: frozenset[str]
    status: str


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    ticket: int | None
    rule: str


class ThreadLookup(Protocol):
    def tickets_for_message_ids(self, ids: Sequence[str]) -> dict[str, int]:
        """Map each id that is a stored message or auto-reply on a ticket to that ticket."""

    def ticket_info(self, number: int) -> TicketInfo | None:
        """Return the ticket with this number, or None."""

    def ticket_for_thread_index(self, guid: str, sender: str, subject_key: str) -> int | None:
        """Return the ticket of a message with this conversation GUID, sender and subject key."""


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
        if info is not None and _may_use_tag(info, sender, is_agent):
            return ThreadDecision(info.number, "subject-tag")

    guid = thread_index_guid(message.thread_index)
    if guid is not None and sender:
        ticket = lookup.ticket_for_thread_index(guid, sender, subject_key(message.subject))
        if ticket is not None:
            return ThreadDecision(ticket, "thread-index")

    return ThreadDecision(None, "new-ticket")


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
                return ThreadDecision(known[message_id], rule)

    for message_id in message.in_reply_to + references:
        number = own_ticket_for_id(message_id)
        if number is not None and lookup.ticket_info(number) is not None:
            return ThreadDecision(number, "own-message-id")
    return None


def _may_use_tag(info: TicketInfo, sender: str, is_agent: Callable[[str], bool]) -> bool:
    # A tag alone must not let one customer's mail join another customer's ticket.
    return sender == info.requester or sender in info.participants or is_agent(sender)
