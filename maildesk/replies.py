"""Build the auto-replies that acknowledge a customer's mail.

A reply's Message-ID carries the ticket number and an HMAC check value, so a customer's
reply that keeps only In-Reply-To still finds its ticket, and a made-up id does not. The
body comes from the templates of :mod:`maildesk.templating`, with a text part and an
optional HTML alternative rendered from the same context. Headers are built with the
email package: every text that came from the customer is cleaned of line breaks and
control characters first, long subjects are folded, and non-ASCII names are encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from maildesk.businesstime import AnswerTime, calendar_for
from maildesk.config import Config
from maildesk.faq import FaqAnswer
from maildesk.message import Address, ParsedMessage
from maildesk.templating import (
    RenderedTemplates,
    find_templates_dir,
    render_templates,
    resolve_language,
)
from maildesk.timephrase import format_moment

logger = logging.getLogger(__name__)

__all__ = [
    "REPLY_KINDS",
    "build_new_ticket_reply",
    "build_reply",
    "clean_header_text",
    "find_templates_dir",
    "make_message_id",
    "reply_context",
    "reply_subject",
    "sample_reply_context",
    "ticket_from_message_id",
]

# The auto-replies to customers: a new ticket, a customer reply that reopened a closed
# ticket, and (when enabled) a closed ticket.
REPLY_KINDS = ("new_ticket", "reopened", "closed")
# Variables that every reply template receives; see reply_context().
REPLY_VARIABLES = (
    "desk_name", "support_address", "ticket_number", "subject", "customer_name", "priority",
    "expected_by", "open_now", "opens_at", "busy", "faq",
)
# The longest id written back into In-Reply-To or References, leaving room on its
# header line for the field name and the angle brackets.
MAX_REFERENCE_LENGTH = 900
# A References header keeps the thread's first id and the newest ones up to this count,
# so that a long thread does not grow the header without bound.
MAX_REFERENCES = 20

_MESSAGE_ID_PREFIX = "maildesk"
_RANDOM_BYTES = 5  # base32 of 5 bytes is 8 characters
_CHECK_LENGTH = 10  # 10 base32 characters carry 50 bits of the HMAC
# maildesk.<ticket>.<random>.<check>@<domain>, matched after lower-casing.
_OWN_MESSAGE_ID = re.compile(
    rf"^{_MESSAGE_ID_PREFIX}\.([1-9][0-9]{{0,17}})"
    rf"\.([a-z2-7]{{8}})"
    rf"\.([a-z2-7]{{{_CHECK_LENGTH}}})"
    r"@[^@\s]+$"
)
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")

# "Re:", "RE:", "Vs:", "Vast:", "SV:", "Svar:", "AW:", "Antw:", in any case and optionally
# with a count such as "Re[2]:".
_REPLY_PREFIX = re.compile(
    r"^(?:re|vs|vast|sv|svar|aw|antw)\s*(?:\[\d+\]|\(\d+\))?\s*:", re.IGNORECASE
)
_TICKET_TAG = re.compile(r"\[#\s*(\d+)\s*\]")
# Characters that are printable US-ASCII, except the angle brackets that delimit an id.
_MESSAGE_ID_TEXT = re.compile(r"^[!-;=?-~]+$")

def make_message_id(ticket: int, domain: str, secret: bytes) -> str:
    """Return a new Message-ID for a reply on ``ticket``, without angle brackets.

    The form is ``maildesk.<ticket>.<random>.<check>@<domain>``. ``random`` is 8 base32
    characters from :mod:`secrets`, and ``check`` the first 10 characters of the base32
    HMAC-SHA256 of ``<ticket>.<random>`` under ``secret``. Every character left of the
    ``@`` is lower-case, so a system that changes the case of the id does not break it.
    Raises ValueError for a ticket below 1, an invalid domain or an empty secret.
    """
    if ticket < 1:
        raise ValueError(f"invalid ticket number {ticket}: expected 1 or more")
    if not _DOMAIN.match(domain):
        raise ValueError(
            f"invalid Message-ID domain {domain!r}: expected a domain such as example.fi"
        )
    _require_secret(secret)

    random_part = base64.b32encode(secrets.token_bytes(_RANDOM_BYTES)).decode("ascii").lower()
    check = _message_id_check(ticket, random_part, secret)

    return f"{_MESSAGE_ID_PREFIX}.{ticket}.{random_part}.{check}@{domain}"


def ticket_from_message_id(message_id: str, secret: bytes) -> int | None:
    """Return the ticket number of a Message-ID made by :func:`make_message_id`, else None.

    Angle brackets, surrounding whitespace and case changes are tolerated. An id whose
    check value does not match its ticket number and random part returns None. The
    comparison runs in constant time. Raises ValueError for an empty secret.
    """
    _require_secret(secret)
    match = _OWN_MESSAGE_ID.match(message_id.strip().removeprefix("<").removesuffix(">").lower())
    if match is None:
        return None

    ticket = int(match.group(1))
    expected = _message_id_check(ticket, match.group(2), secret)
    if not hmac.compare_digest(expected, match.group(3)):
        return None

    return ticket


def _message_id_check(ticket: int, random_part: str, secret: bytes) -> str:
    # The "message-id:" prefix keeps these values apart from any other HMAC made with the
    # same secret.
    data = f"message-id:{ticket}.{random_part}".encode("ascii")
    digest = hmac.new(secret, data, hashlib.sha256).digest()

    return base64.b32encode(digest).decode("ascii").lower()[:_CHECK_LENGTH]


def _require_secret(secret: bytes) -> None:
    if not secret:
        raise ValueError("empty Message-ID secret: expected the desk's random secret bytes")


def clean_header_text(text: str) -> str:
    """Return ``text`` with line breaks and control characters replaced, safe for a header.

    Each C0 or C1 control character, U+2028 and U+2029 becomes a space, because a line
    break that reaches a header would start a new header line (header injection).
    Runs of whitespace are then collapsed to one space, and the ends are stripped.
    """
    characters = [
        " " if unicodedata.category(character) in ("Cc", "Zl", "Zp") else character
        for character in text
    ]

    return " ".join("".join(characters).split())


def reply_subject(subject: str, number: int) -> str:
    """Return the Subject of a reply on ticket ``number`` to a message with ``subject``.

    The result is ``Re: <subject> [#<number>]``. No "Re:" is added when the subject
    already starts with a reply prefix (Re, Vs, Vast, SV, Svar, AW, Antw, in any case and
    with an optional count such as ``Re[2]:``). The tag is not repeated when the subject carries
    it already, and tags of other tickets are removed so that the customer's next reply
    names only this ticket. The subject is cleaned with :func:`clean_header_text`.
    """
    own_tag = f"[#{number}]"
    has_own_tag = False

    def keep_own_tag(match: re.Match[str]) -> str:
        nonlocal has_own_tag
        if int(match.group(1)) != number or has_own_tag:
            return ""
        has_own_tag = True
        return own_tag

    text = clean_header_text(_TICKET_TAG.sub(keep_own_tag, clean_header_text(subject)))
    if not has_own_tag:
        text = f"{text} {own_tag}".lstrip()
    if not _REPLY_PREFIX.match(text):
        text = f"Re: {text}"

    return text


def reply_context(
    config: Config,
    *,
    ticket_number: int,
    subject: str,
    customer_name: str,
    priority: str,
    language: str,
    now: datetime,
    answer: AnswerTime,
    faq: Sequence[FaqAnswer] = (),
) -> dict[str, Any]:
    """Return the variables of a reply template; :data:`REPLY_VARIABLES` lists them.

    ``expected_by`` and ``opens_at`` are phrases in ``language`` such as "keskiviikkona
    9.12. klo 12"; ``opens_at`` is "" while the shop is open. ``busy`` is True when the
    measured answer time, not the target, set ``expected_by``. ``faq`` is a list of
    dicts with ``name``, ``text`` and ``url``.
    """
    zone = calendar_for(config.hours).zone
    return {
        "desk_name": config.name,
        "support_address": config.support_address,
        "ticket_number": ticket_number,
        "subject": clean_header_text(subject),
        "customer_name": clean_header_text(customer_name),
        "priority": priority,
        "expected_by": format_moment(answer.expected_by, language, zone, now),
        "open_now": answer.open_now,
        "opens_at": format_moment(answer.opens_at, language, zone, now) if answer.opens_at else "",
        "busy": answer.busy,
        "faq": [item.as_context() for item in faq],
    }


def sample_reply_context(config: Config, language: str, now: datetime) -> dict[str, Any]:
    """Return a reply context for a made-up ticket, for checks and previews of templates."""
    answer = answer_time(config, "normal", now)
    sample_faq = [
        FaqAnswer("sample", "Toimitusajat / Leveranstider / Delivery times", "https://example.fi/")
    ]
    return reply_context(
        config,
        ticket_number=1234,
        subject="Tilaus 1001 / Order 1001",
        customer_name="Maija Meikäläinen",
        priority="normal",
        language=language,
        now=now,
        answer=answer,
        faq=sample_faq,
    )


def answer_time(
    config: Config, priority: str, now: datetime, measured: timedelta | None = None
) -> AnswerTime:
    """Return the answer time to promise for ``priority`` at ``now``.

    Raises ValueError for a priority without a target in ``[autoreply.targets]`` and for
    a naive ``now``.
    """
    target = config.autoreply.targets.get(priority)
    if target is None:
        raise ValueError(
            f"invalid priority {priority!r}: expected one of {', '.join(config.autoreply.targets)}"
        )

    return calendar_for(config.hours).answer_time(now, target, measured)


def build_reply(
    config: Config,
    kind: str,
    *,
    ticket_number: int,
    subject: str,
    priority: str,
    recipient: Address,
    parent_id: str | None,
    references: Sequence[str],
    language: str,
    now: datetime,
    secret: bytes,
    measured: timedelta | None = None,
    faq: Sequence[FaqAnswer] = (),
) -> EmailMessage:
    """Render the reply ``kind`` (one of :data:`REPLY_KINDS`) and return a complete message.

    ``recipient`` gets the reply and is greeted by name. ``parent_id`` and
    ``references`` are the Message-ID and References of the mail answered.
    ``language`` is the preferred language (a tag such as "fi" or "sv-FI"); the
    templates fall back to ``config.language`` and then English. ``now`` must carry a
    time zone. ``measured`` is a recent first-response time in open hours.

    Raises ValueError for a priority without a target in ``[autoreply.targets]``, a naive
    ``now``, or a recipient with a non-ASCII local part (that needs SMTPUTF8, which
    maildesk does not use). Raises FileNotFoundError when no template is found.
    """
    answer = answer_time(config, priority, now, measured)
    template_language = resolve_language(config, kind, language)
    context = reply_context(
        config,
        ticket_number=ticket_number,
        subject=subject,
        customer_name=recipient.name,
        priority=priority,
        language=template_language,
        now=now,
        answer=answer,
        faq=faq,
    )
    rendered = render_templates(config, kind, template_language, context)

    return compose_reply(
        config,
        rendered,
        ticket_number=ticket_number,
        subject=subject,
        recipient=recipient,
        parent_id=parent_id,
        references=references,
        now=now,
        secret=secret,
    )


def build_new_ticket_reply(
    *,
    config: Config,
    ticket_number: int,
    subject: str,
    priority: str,
    customer: Address,
    message: ParsedMessage,
    language: str,
    now: datetime,
    secret: bytes,
    measured: timedelta | None = None,
    faq: Sequence[FaqAnswer] = (),
) -> EmailMessage:
    """Return the acknowledgement of a new ticket opened by ``message``, sent to ``customer``.

    The arguments and errors are those of :func:`build_reply`.
    """
    return build_reply(
        config,
        "new_ticket",
        ticket_number=ticket_number,
        subject=subject,
        priority=priority,
        recipient=customer,
        parent_id=message.message_id,
        references=message.references,
        language=language,
        now=now,
        secret=secret,
        measured=measured,
        faq=faq,
    )


def compose_reply(
    config: Config,
    rendered: RenderedTemplates,
    *,
    ticket_number: int,
    subject: str,
    recipient: Address,
    parent_id: str | None,
    references: Sequence[str],
    now: datetime,
    secret: bytes,
) -> EmailMessage:
    """Return a message with the rendered parts and the headers of an auto-reply."""
    reply = EmailMessage(policy=policy.SMTP)
    _set_address_headers(reply, config, recipient)
    reply["Subject"] = reply_subject(subject, ticket_number)
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = f"<{make_message_id(ticket_number, config.support_domain, secret)}>"
    _set_thread_headers(reply, parent_id, tuple(references))
    # RFC 3834 section 3.1.7: every automatic response SHOULD carry this field.
    reply["Auto-Submitted"] = "auto-replied"
    # Asks Exchange and Outlook not to send out-of-office or other automatic replies back.
    reply["X-Auto-Response-Suppress"] = "All"
    # No Precedence field: RFC 3834 section 3.1.8 only allows it (MAY), RFC 2076 lists the
    # field as non-standard and discouraged, and "bulk" makes some providers file the mail
    # as a mass mailing. Auto-Submitted already stops responders that follow RFC 3834.

    # Quoted-printable keeps the body 7-bit, so relays without 8BITMIME pass it unchanged.
    reply.set_content(rendered.text, cte="quoted-printable")
    if rendered.html is not None:
        reply.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    # Set after set_content, which removes every Content-* header it did not write itself.
    reply["Content-Language"] = rendered.language

    return reply

def _set_address_headers(reply: EmailMessage, config: Config, recipient: Address) -> None:
    sender = config.smtp.from_address if config.smtp is not None else config.support_address
    reply["From"] = _header_address(config.name, sender)
    reply["To"] = _header_address(recipient.name, recipient.addr)
    # Customer replies must reach the support mailbox to join the ticket, even when the
    # desk sends from another address.
    if sender != config.support_address:
        reply["Reply-To"] = _header_address(config.name, config.support_address)


def _header_address(name: str, address: str) -> HeaderAddress:
    local_part, _, domain = address.rpartition("@")
    if not local_part or not domain:
        raise ValueError(
            f"invalid recipient {address!r}: expected an address such as name@example.fi"
        )
    if not local_part.isascii():
        raise ValueError(
            f"invalid recipient {address!r}: a non-ASCII local part needs SMTPUTF8, "
            "which maildesk does not use"
        )
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")

    return HeaderAddress(display_name=clean_header_text(name), username=local_part, domain=domain)


def _set_thread_headers(
    reply: EmailMessage, parent_id: str | None, references: tuple[str, ...]
) -> None:
    """Set In-Reply-To and References (RFC 5322 section 3.6.4) from the mail answered."""
    parent = parent_id if _is_header_safe_id(parent_id) else None
    ids = _reference_ids(references, parent)
    if parent is not None:
        reply["In-Reply-To"] = f"<{parent}>"
    if ids:
        reply["References"] = " ".join(f"<{reference}>" for reference in ids)


def _reference_ids(references: tuple[str, ...], parent: str | None) -> list[str]:
    """Return the ids for References: the parent's References plus the parent, each once."""
    ids: list[str] = []
    for reference in (*references, parent):
        if reference is not None and _is_header_safe_id(reference) and reference not in ids:
            ids.append(reference)
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]

    return ids


def _is_header_safe_id(message_id: str | None) -> bool:
    # An id with spaces, angle brackets or non-ASCII text could not be written back
    # unchanged, and another mail client would not match it anyway.
    # One longer than a header line may be (RFC 5322 section 2.1.1: 998 characters)
    # would be folded or encoded, which breaks it, so such ids are left out too.
    return (
        message_id is not None
        and len(message_id) <= MAX_REFERENCE_LENGTH
        and bool(_MESSAGE_ID_TEXT.match(message_id))
    )
