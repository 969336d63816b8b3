"""Threading decisions over a stored state held in memory."""

from __future__ import annotations

from collections.abc import Sequence

from maildesk.message import Address, ParsedMessage
from maildesk.threader import TicketInfo, choose_ticket, subject_key, thread_index_guid


class FakeState:
    """A ThreadLookup over dicts, standing in for the database."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.tickets: dict[int, TicketInfo] = {}
        self.thread_indexes: dict[tuple[str, str, str], int] = {}

    def tickets_for_message_ids(self, ids: Sequence[str]) -> dict[str, int]:
        return {i: self.ids[i] for i in ids if i in self.ids}

    def ticket_info(self, number: int) -> TicketInfo | None:
        return self.tickets.get(number)

    def ticket_for_thread_index(self, guid: str, sender: str, key: str) -> int | None:
        return self.thread_indexes.get((guid, sender, key))


def _message(**values: object) -> ParsedMessage:
    defaults: dict[str, object] = {"message_id": "new@example.com", "subject": "Kysymys", "from_": Address("a@example.com")}
    return ParsedMessage(**{**defaults, **values})  # type: ignore[arg-type]


def _choose(message: ParsedMessage, state: FakeState, sender: str = "a@example.com", own: dict[str, int] | None = None):
    return choose_ticket(
        message, sender, state,
        own_ticket_for_id=lambda i: (own or {}).get(i),
        is_agent=lambda address: address.endswith("@example.fi"),
    )


def _state_with_ticket() -> FakeState:
    state = FakeState()
    state.tickets[7] = TicketInfo(7, "a@example.com", frozenset({"cc@example.net"}), "open")
    state.ids["first@example.com"] = 7
    return state


def test_in_reply_to_joins_ticket() -> None:
    """In-Reply-To naming a stored message joins its ticket."""
    decision = _choose(_message(in_reply_to=("first@example.com",)), _state_with_ticket())

    assert 7 == decision.ticket
    assert "in-reply-to" == decision.rule


def test_references_join_ticket() -> None:
    """Any References id that is stored joins its ticket."""
    message = _message(references=("unknown@x", "first@example.com", "later-unknown@x"))

    decision = _choose(message, _state_with_ticket())

    assert 7 == decision.ticket
    assert "references" == decision.rule


def test_own_message_id_without_row() -> None:
    """A valid maildesk reply id finds its ticket even without a stored row."""
    message = _message(in_reply_to=("maildesk.7.abc.def@example.fi",))

    decision = _choose(message, _state_with_ticket(), own={"maildesk.7.abc.def@example.fi": 7})

    assert 7 == decision.ticket
    assert "own-message-id" == decision.rule


def test_subject_tag_from_requester() -> None:
    """The requester's subject tag joins the ticket."""
    decision = _choose(_message(subject="Re: Kysymys [#7]"), _state_with_ticket())

    assert 7 == decision.ticket
    assert "subject-tag" == decision.rule


def test_subject_tag_from_participant() -> None:
    """A Cc participant's subject tag joins the ticket."""
    decision = _choose(_message(subject="[#7] lisää"), _state_with_ticket(), sender="cc@example.net")

    assert 7 == decision.ticket


def test_subject_tag_from_agent() -> None:
    """An agent's subject tag joins the ticket."""
    decision = _choose(_message(subject="[#7]"), _state_with_ticket(), sender="myyja@example.fi")

    assert 7 == decision.ticket


def test_subject_tag_from_stranger_opens_new() -> None:
    """A stranger's subject tag never joins another customer's ticket."""
    decision = _choose(_message(subject="Re: [#7] minäkin"), _state_with_ticket(), sender="b@example.org")

    assert decision.ticket is None
    assert "new-ticket" == decision.rule


def test_unknown_tag_opens_new() -> None:
    """A tag of a ticket that does not exist opens a new ticket."""
    decision = _choose(_message(subject="[#99] hei"), _state_with_ticket())

    assert decision.ticket is None


def test_thread_index_joins_same_sender() -> None:
    """Outlook's Thread-Index with the same sender and subject joins the ticket."""
    index = bytes(range(22)) + b"\x01\x02\x03\x04\x05"
    state = _state_with_ticket()
    state.thread_indexes[(bytes(range(22)).hex(), "a@example.com", "laskun eräpäivä")] = 7

    decision = _choose(_message(subject="VS: Laskun eräpäivä", thread_index=index), state)

    assert 7 == decision.ticket
    assert "thread-index" == decision.rule


def test_subject_key_strips_prefixes() -> None:
    """Reply and forward prefixes of many languages and ticket tags are stripped."""
    assert "laskun eräpäivä" == subject_key("VS: Re[2]: AW:  Laskun   eräpäivä [#12]")
    assert "tilaus" == subject_key("SV: VL: Fwd: TR: Tilaus")
    assert "resepti" == subject_key("Resepti")


def test_thread_index_guid_needs_22_bytes() -> None:
    """A Thread-Index shorter than 22 bytes has no conversation GUID."""
    assert thread_index_guid(b"\x00" * 21) is None
    assert "00" * 22 == thread_index_guid(b"\x00" * 27)
