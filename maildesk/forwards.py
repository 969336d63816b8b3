"""Find the original sender of a forwarded mail.

An agent or a colleague who forwards a customer's mail into the support
mailbox hands that customer over: the ticket belongs to the original
sender, not to the forwarder. Mail clients forward in two ways. Outlook's
"forward as attachment", Thunderbird's "Forward As > Attachment" and many
phone clients attach the original as a message/rfc822 part. The parser
keeps that part as an attachment whose content is the inner message's
bytes. Inline forwards quote a header block in the text instead, in the
client's language:

- Gmail: ``---------- Forwarded message ---------`` then From, Date, Subject, To.
- Outlook: From, Sent, To, Subject, or in Finnish Lähettäjä, Lähetetty,
  Vastaanottaja, Aihe, and in Swedish Från, Skickat, Till, Ämne.
- Thunderbird: ``-------- Forwarded Message --------`` then Subject, Date, From, To.
- Apple Mail: ``Begin forwarded message:`` then From, Subject, Date, To.

Everything here is pure: it reads a parsed message and returns what it found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

from maildesk.errors import MessageParseError
from maildesk.message import Address, ParsedMessage
from maildesk.parsing import FORWARDED_TYPES, parse_message

# Forward prefixes: English, Finnish (VL), Swedish (VB), German (WG), French (TR),
# Dutch (Doorst), Spanish and Portuguese (RV, ENC).
FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|fw|vl|vb|wg|tr|doorst|rv|enc)\s*[:\uff1a]", re.IGNORECASE)
_FORWARD_MARKER = re.compile(
    r"forwarded message|begin forwarded message|välitetty viesti|alkuperäinen viesti"
    r"|vidarebefordrat meddelande|weitergeleitete nachricht|original message",
    re.IGNORECASE,
)
_FROM_KEYS = ("from", "lähettäjä", "från", "von", "de", "van", "fra")
_OTHER_KEYS = (
    "subject", "aihe", "ämne", "betreff", "objet", "onderwerp",
    "sent", "lähetetty", "skickat", "gesendet", "envoyé", "verzonden",
    "date", "päivämäärä", "päiväys", "datum",
    "to", "vastaanottaja", "till", "an", "à", "aan", "cc", "kopio", "kopia",
)
_SUBJECT_KEYS = ("subject", "aihe", "ämne", "betreff", "objet", "onderwerp")
# One quoted header line: optional quote marks or bold markers, a key, a colon and a value.
_HEADER_LINE = re.compile(r"^[\s>*]*([^\W\d_]+)\s*\*?\s*[:\uff1a]\s*\*?\s*(.*?)\s*$")
_MAILTO = re.compile(r"\[mailto:([^\]\s]+)\]", re.IGNORECASE)
# How many lines after From the rest of the header block may start.
_BLOCK_LINES = 8


@dataclass(frozen=True, slots=True)
class ForwardedMail:
    """The customer's mail inside a forward."""

    sender: Address
    subject: str
    # The attached original, parsed, with its bytes; None for an inline forward.
    message: ParsedMessage | None = None
    raw: bytes | None = None


def looks_like_forward(parsed: ParsedMessage) -> bool:
    """Return whether the subject, the text or an attached message marks ``parsed`` as a forward.

    A reply quotes the same header block as an inline forward, so the block
    alone does not count.
    """
    if FORWARD_SUBJECT.match(parsed.subject):
        return True
    if any(a.content_type in FORWARDED_TYPES for a in parsed.attachments):
        return True
    return bool(_FORWARD_MARKER.search(parsed.text[:4000]))


def find_forwarded(parsed: ParsedMessage) -> ForwardedMail | None:
    """Return the first forwarded mail in ``parsed``, attached or quoted inline, or None."""
    if not looks_like_forward(parsed):
        return None
    for attachment in parsed.attachments:
        if attachment.content_type not in FORWARDED_TYPES:
            continue
        try:
            inner = parse_message(attachment.content)
        except MessageParseError:
            continue
        if inner.from_ is not None and inner.from_.addr:
            return ForwardedMail(inner.from_, inner.subject, inner, attachment.content)
    return quoted_forward(parsed.text)


def quoted_forward(text: str) -> ForwardedMail | None:
    """Return the sender and subject of the first quoted header block in ``text``, or None."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _HEADER_LINE.match(line)
        if match is None or match.group(1).casefold() not in _FROM_KEYS:
            continue
        sender = _address(match.group(2))
        if sender is None:
            continue
        block = _header_block(lines, index)
        if not any(key in _OTHER_KEYS for key in block):
            continue
        subject = next((block[key] for key in _SUBJECT_KEYS if key in block), "")
        return ForwardedMail(sender, subject)
    return None


def _header_block(lines: list[str], start: int) -> dict[str, str]:
    """Return the quoted header lines around line ``start``, keyed by case-folded name."""
    found: dict[str, str] = {}
    for line in lines[max(0, start - _BLOCK_LINES):start + _BLOCK_LINES]:
        match = _HEADER_LINE.match(line)
        if match is not None:
            found.setdefault(match.group(1).casefold(), match.group(2))
    return found


def _address(value: str) -> Address | None:
    """Return the address in a quoted From value: "Name <a@b>", "Name [mailto:a@b]" or "a@b"."""
    mailto = _MAILTO.search(value)
    if mailto is not None:
        name = value[: mailto.start()].strip().strip('"')
        return Address(mailto.group(1).lower(), name)
    for name, address in getaddresses([value]):
        if "@" in address and " " not in address:
            return Address(address.lower(), name)
    return None
