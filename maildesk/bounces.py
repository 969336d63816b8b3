"""Detection of delivery status reports (bounces).

Two kinds are recognized:

* RFC 3464 delivery status notifications: ``multipart/report;
  report-type=delivery-status`` or any ``message/delivery-status`` part. The
  failed recipients come from the per-recipient fields, the bounced
  Message-ID from the returned message or headers.
* Plain-text bounces that predate RFC 3464 or ignore it: qmail's "Hi. This is
  the qmail-send program" and notices from MAILER-DAEMON or postmaster sent
  with the null Return-Path ``<>``. Recipients are read from the text only
  where the layout is unambiguous.

Feedback-loop reports (``report-type=feedback-report``) and read receipts are
reports but not bounces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from maildesk.headers import (
    decode_raw_text,
    extract_message_ids,
    header_params,
    parse_addresses,
    raw_header,
)
from maildesk.message import Address

_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_RETURNED_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)
_NOT_BOUNCE_REPORTS = frozenset({"feedback-report", "disposition-notification"})
_DAEMON_LOCAL_PARTS = frozenset({"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster"})
_QMAIL_GREETING = "hi. this is the qmail-send program"
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status notification|failure|has failed)|"
    r"returned mail|mail delivery failed|failure notice|nicht zustellbar|"
    r"non remis|onnistumaton|ei voitu toimittaa",
    re.IGNORECASE,
)

# "<user@example.com>: host ... said" (Postfix) and "<user@example.com>:" (qmail).
_ANGLE_LINE = re.compile(r"^[ \t]*<([^<>\s]+@[^<>\s]+)>:", re.MULTILINE)
# "Your message to user@example.com couldn't be delivered" (Exchange, Gmail).
_INLINE_RECIPIENT = re.compile(
    r"your message (?:to|wasn't delivered to|was not delivered to|could not be delivered to)"
    r"\s+<?([^\s<>()\"]+@[^\s<>()\"]+?)>?(?=[\s.,])",
    re.IGNORECASE,
)
# "The following address(es) failed:" (Exim), "Delivery to the following
# recipient failed permanently:" (Gmail), "... to these recipients or groups:" (Exchange).
_LIST_INTRO = re.compile(
    r"(?:following (?:recipients?|address(?:es|\(es\))?)|these recipients(?: or groups)?)[^\n:]*:[ \t]*\n",
    re.IGNORECASE,
)
_LISTED_ADDRESS = re.compile(r"[ \t]*(?:mailto:)?<?([^\s<>()\"]+@[^\s<>()\"]+?)>?(?:[\s(]|$)")
_QUOTED_MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(<[^<>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class BounceInfo:
    """Bounce classification of a message and the failure details it reports."""

    is_bounce: bool
    failed_recipients: tuple[str, ...] = ()
    bounced_message_id: str | None = None


NOT_A_BOUNCE = BounceInfo(is_bounce=False)


def detect_bounce(
    root: Message,
    parts: Sequence[Message],
    sender: Address | None,
    from_text: str,
    return_path: str | None,
    subject: str,
    text: str,
) -> BounceInfo:
    """Classify a parsed message as a bounce and read what failed.

    ``parts`` are the MIME parts of the message itself: the caller must not
    include parts from inside an attached message/rfc822, so a forwarded
    bounce does not make the forward a bounce. ``from_text`` is the decoded
    From header, read when it contains no valid address ("MAILER-DAEMON").
    ``text`` is the decoded body.
    """
    report_type = _report_type(root)
    if report_type in _NOT_BOUNCE_REPORTS:
        return NOT_A_BOUNCE

    status_parts = [part for part in parts if part.get_content_type() in _STATUS_TYPES]
    if report_type == "delivery-status" or status_parts:
        reports = [report for part in status_parts for report in _recipient_reports(part)]
        failed = _unique(recipient for recipient, is_failed in reports if is_failed)
        return BounceInfo(
            is_bounce=True,
            # The text is read only when no recipient fields could be read, so
            # a delay report never lists its delayed recipients as failed.
            failed_recipients=failed if reports else _failed_in_text(text),
            bounced_message_id=_returned_message_id(parts) or _quoted_message_id(text),
        )

    if not _is_text_bounce(_from_daemon(sender, from_text), return_path, subject, text):
        return NOT_A_BOUNCE

    return BounceInfo(
        is_bounce=True,
        failed_recipients=_failed_in_text(text),
        bounced_message_id=_returned_message_id(parts) or _quoted_message_id(text),
    )


def _report_type(root: Message) -> str | None:
    if root.get_content_type() != "multipart/report":
        return None
    for key, value in header_params(root, "content-type"):
        if key == "report-type" and isinstance(value, str):
            return value.strip().lower()

    return None


# --- RFC 3464 -------------------------------------------------------------------


def _recipient_reports(part: Message) -> Iterable[tuple[str, bool]]:
    """Yield (recipient, whether delivery failed) for each recipient block of a status part.

    A block without an Action field counts as failed when its Status is 5.x.x.
    """
    for fields in _status_blocks(part):
        recipient = _status_recipient(fields.get("final-recipient")) or _status_recipient(
            fields.get("original-recipient")
        )
        if recipient is None:
            continue
        action = fields.get("action", "").split()
        status = fields.get("status", "").strip()
        yield recipient, action[:1] == ["failed"] or (not action and status.startswith("5"))


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """Return the field blocks of a delivery-status part, names lower-case."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # compat32 parses each block of a message/delivery-status into a Message.
        return [_fields(block.raw_items()) for block in payload if isinstance(block, Message)]
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return []
    blocks = re.split(r"\r?\n[ \t]*\r?\n", raw.decode("utf-8", "surrogateescape"))

    return [_fields(_block_items(block)) for block in blocks]


def _block_items(block: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and items:
            items[-1] = (items[-1][0], items[-1][1] + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            items.append((name, value))

    return items


def _fields(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in items:
        fields.setdefault(
            str(name).strip().lower(), decode_raw_text(str(value), []).strip().lower()
        )

    return fields


def _status_recipient(value: str | None) -> str | None:
    """Return the address of a "rfc822; user@example.com" recipient field."""
    if not value:
        return None
    address_type, separator, address = value.partition(";")
    if not separator:
        address = address_type
    found = parse_addresses(address, [])

    return found[0].addr if found else None


def _returned_message_id(parts: Sequence[Message]) -> str | None:
    for part in parts:
        if part.get_content_type() not in _RETURNED_TYPES:
            continue
        headers = _returned_headers(part)
        if headers is None:
            continue
        ids = extract_message_ids(raw_header(headers, "Message-ID"))
        if ids:
            return ids[0]

    return None


def _returned_headers(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        first = payload[0] if payload else None
        return first if isinstance(first, Message) else None
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return None

    return BytesHeaderParser(policy=compat32).parsebytes(raw)


# --- plain-text bounces -----------------------------------------------------------


def _from_daemon(sender: Address | None, from_text: str) -> bool:
    if sender is not None:
        return sender.local_part in _DAEMON_LOCAL_PARTS
    words = re.split(r"[\s<>()\"@,]+", from_text.lower())

    return any(word in _DAEMON_LOCAL_PARTS for word in words)


def _is_text_bounce(from_daemon: bool, return_path: str | None, subject: str, text: str) -> bool:
    null_path = return_path == ""
    if text.lstrip()[: len(_QMAIL_GREETING)].lower() == _QMAIL_GREETING:
        return from_daemon or null_path
    if from_daemon and null_path:
        return True
    # Some stores drop Return-Path; then the subject has to agree.
    return from_daemon and return_path is None and _BOUNCE_SUBJECT.search(subject) is not None


def _failed_in_text(text: str) -> tuple[str, ...]:
    """Read failed recipients from the layouts of Postfix, qmail, Exim, Exchange and Gmail."""
    found = [match.group(1) for match in _ANGLE_LINE.finditer(text)]
    found += [match.group(1) for match in _INLINE_RECIPIENT.finditer(text)]
    for intro in _LIST_INTRO.finditer(text):
        found += _listed_addresses(text[intro.end() : intro.end() + 4000])

    return _unique(_normalize(candidate) for candidate in found)


def _listed_addresses(block: str) -> list[str]:
    """Return the addresses that start the lines of the first paragraph in ``block``."""
    addresses: list[str] = []
    lines = block.lstrip("\r\n").splitlines()
    for line in lines:
        if not line.strip():
            break
        match = _LISTED_ADDRESS.match(line)
        if match:
            addresses.append(match.group(1))

    return addresses


def _normalize(candidate: str) -> str | None:
    found = parse_addresses(candidate, [])

    return found[0].addr if found else None


def _quoted_message_id(text: str) -> str | None:
    match = _QUOTED_MESSAGE_ID.search(text)
    if match is None:
        return None
    ids = extract_message_ids(match.group(1))

    return ids[0] if ids else None


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))
