"""Threading decisions over a stored state held in memory."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from maildesk.message import Address, ParsedMessage
from maildesk.threader import (
    ThreadDecision,
    ThreadPolicy,
    TicketInfo,
    apply_reopen_limit,
    choose_ticket,
    subject_key,
    thread_index_guid,
)

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


class FakeState:
    """A ThreadLookup over dicts, standing in for the database."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.tickets: dict[int, TicketInfo] = {}
        self.thread_indexes: dict[tuple[str, str], int] = {}
        # (requester, subject key) -> (ticket, updated_at)
        self.subjects: dict[tuple[str, str], tuple[int, datetime]] = {}

    def tickets_for_message_ids(self, ids: Sequence[str]) -> dict[str, int]:
        return {i: self.ids[i] for i in ids if i in self.ids}

    def ticket_info(self, number: int) -> TicketInfo | None:
        return self.tickets.get(number)

    def ticket_for_thread_index(self, guid: str, key: str) -> int | None:
        return self.thread_indexes.get((guid, key))

    def ticket_for_subject(self, requester: str, key: str, since: datetime) -> int | None:
        found = self.subjects.get((requester, key))
        if found is None or found[1] < since or self.tickets[found[0]].status == "closed":
            return None
        return found[0]


def _message(**values: object) -> ParsedMessage:
    defaults: dict[str, object] = {"message_id": "new@example.com", "subject": "Kysymys", "from_": Address("a@example.com")}
    return ParsedMessage(**{**defaults, **values})  # type: ignore[arg-type]


def _choose(
    message: ParsedMessage,
    state: FakeState,
    sender: str = "a@example.com",
    own: dict[str, int] | None = None,
    policy: ThreadPolicy = ThreadPolicy(),
) -> ThreadDecision:
    return choose_ticket(
        message, sender, state,
        own_ticket_for_id=lambda i: (own or {}).get(i),
        is_agent=lambda address: address.endswith("@example.fi"),
        policy=policy,
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
    state.thread_indexes[(bytes(range(22)).hex(), "laskun eräpäivä")] = 7

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


def test_subject_key_strips_listed_prefixes() -> None:
    """Every listed reply and forward prefix, in any case, is stripped for matching."""
    for prefix in ("Re", "RE", "Vs", "VS", "VL", "SV", "AW", "Antw", "Fwd", "FW", "TR", "VB", "Vast", "Svar"):
        assert "tilaus 5" == subject_key(f"{prefix}: Tilaus 5"), prefix


def test_subject_key_full_width_colon() -> None:
    """A full-width colon after a prefix counts as a colon."""
    assert "tilaus" == subject_key("Re\uff1a Tilaus")


def test_subject_key_keeps_words_starting_like_prefix() -> None:
    """A subject word that only starts like a prefix is kept."""
    assert "reklamaatio: kenkä" == subject_key("Reklamaatio: kenkä")


def _fallback_state(updated: datetime, status: str = "open") -> FakeState:
    state = FakeState()
    state.tickets[7] = TicketInfo(7, "a@example.com", frozenset(), status)
    state.subjects[("a@example.com", "kysymys")] = (7, updated)
    return state


def test_subject_fallback_joins_recent() -> None:
    """Same sender and subject within the window joins the open ticket."""
    policy = ThreadPolicy(subject_since=NOW - timedelta(days=7))

    decision = _choose(_message(subject="Vs: Kysymys"), _fallback_state(NOW - timedelta(days=2)), policy=policy)

    assert 7 == decision.ticket
    assert "subject-sender" == decision.rule


def test_subject_fallback_off_by_default_policy() -> None:
    """Without a window the subject alone never joins a ticket."""
    decision = _choose(_message(subject="Kysymys"), _fallback_state(NOW))

    assert decision.ticket is None


def test_subject_fallback_outside_window() -> None:
    """A ticket last updated before the window is not joined by subject."""
    policy = ThreadPolicy(subject_since=NOW - timedelta(days=7))

    decision = _choose(_message(subject="Kysymys"), _fallback_state(NOW - timedelta(days=8)), policy=policy)

    assert decision.ticket is None


def test_subject_fallback_skips_closed() -> None:
    """A closed ticket is not joined by subject."""
    policy = ThreadPolicy(subject_since=NOW - timedelta(days=7))

    decision = _choose(_message(subject="Kysymys"), _fallback_state(NOW, "closed"), policy=policy)

    assert decision.ticket is None


def test_subject_fallback_other_sender() -> None:
    """Another sender with the same subject opens a new ticket."""
    policy = ThreadPolicy(subject_since=NOW - timedelta(days=7))

    decision = _choose(_message(subject="Kysymys"), _fallback_state(NOW), sender="b@example.org", policy=policy)

    assert decision.ticket is None


def test_subject_fallback_empty_subject() -> None:
    """An empty subject never joins by subject."""
    state = FakeState()
    state.tickets[7] = TicketInfo(7, "a@example.com", frozenset(), "open")
    state.subjects[("a@example.com", "")] = (7, NOW)

    decision = _choose(_message(subject="Re: "), state, policy=ThreadPolicy(subject_since=NOW - timedelta(days=7)))

    assert decision.ticket is None


def test_thread_index_joins_agent_conversation() -> None:
    """The requester's Outlook reply to an agent's Outlook mail joins by Thread-Index."""
    state = _state_with_ticket()
    state.thread_indexes[(bytes(range(22)).hex(), "laskun eräpäivä")] = 7
    index = bytes(range(22)) + b"\x09\x08\x07\x06\x05"

    decision = _choose(_message(subject="VS: Laskun eräpäivä", thread_index=index), state)

    assert 7 == decision.ticket


def test_thread_index_stranger_opens_new() -> None:
    """A stranger's mail in the same Outlook conversation does not join another customer's ticket."""
    state = _state_with_ticket()
    state.thread_indexes[(bytes(range(22)).hex(), "laskun eräpäivä")] = 7
    index = bytes(range(22)) + b"\x01"

    decision = _choose(_message(subject="VS: Laskun eräpäivä", thread_index=index), state, sender="b@example.org")

    assert decision.ticket is None


def test_thread_topic_matches_changed_subject() -> None:
    """Thread-Topic matches when a client changed the visible subject."""
    state = _state_with_ticket()
    state.thread_indexes[(bytes(range(22)).hex(), "laskun eräpäivä")] = 7
    message = _message(
        subject="VS: [EXTERNAL] Laskun eräpäivä", thread_topic="Laskun eräpäivä",
        thread_index=bytes(range(22)) + b"\x01",
    )

    decision = _choose(message, state)

    assert 7 == decision.ticket
    assert "thread-index" == decision.rule


def test_merged_ticket_followed() -> None:
    """A reference to a merged ticket's message joins the ticket it was merged into."""
    state = _state_with_ticket()
    state.tickets[3] = TicketInfo(7, "a@example.com", frozenset(), "open")
    state.ids["old@example.com"] = 3

    decision = _choose(_message(in_reply_to=("old@example.com",)), state)

    assert 7 == decision.ticket


def test_reopen_limit_links_old_ticket() -> None:
    """A reply to a ticket closed longer than the limit becomes a new ticket linking it."""
    info = TicketInfo(7, "a@example.com", frozenset(), "closed", NOW - timedelta(days=31))

    decision = apply_reopen_limit(ThreadDecision(7, "in-reply-to"), info, NOW, timedelta(days=30))

    assert ThreadDecision(None, "new-ticket", linked_ticket=7) == decision


def test_reopen_limit_recent_close_kept() -> None:
    """A reply to a ticket closed within the limit keeps joining it."""
    info = TicketInfo(7, "a@example.com", frozenset(), "closed", NOW - timedelta(days=29))

    decision = apply_reopen_limit(ThreadDecision(7, "in-reply-to"), info, NOW, timedelta(days=30))

    assert 7 == decision.ticket


def test_reopen_limit_zero_keeps() -> None:
    """A zero limit lets every reply reopen its ticket."""
    info = TicketInfo(7, "a@example.com", frozenset(), "closed", NOW - timedelta(days=400))

    decision = apply_reopen_limit(ThreadDecision(7, "references"), info, NOW, timedelta(0))

    assert 7 == decision.ticket


def test_subject_recipient_for_agent_mail() -> None:
    """An agent's mail without thread headers joins the addressed customer's open ticket by subject."""
    policy = ThreadPolicy(subject_since=NOW - timedelta(days=7), customers=("a@example.com",))

    decision = _choose(_message(subject="Re: Kysymys"), _fallback_state(NOW), sender="myyja@example.fi", policy=policy)

    assert 7 == decision.ticket
    assert "subject-recipient" == decision.rule


def test_agent_subject_alone_no_join() -> None:
    """An agent's mail with a matching subject but no customer recipient opens nothing by subject."""
    policy = ThreadPolicy(subject_since=NOW - timedelta(days=7))

    decision = _choose(_message(subject="Kysymys"), _fallback_state(NOW), sender="myyja@example.fi", policy=policy)

    assert decision.ticket is None
