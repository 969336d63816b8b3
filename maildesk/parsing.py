"""Parsing of raw message bytes into a ``ParsedMessage``.

The stdlib ``email`` package reads the MIME structure under
``policy=compat32``, which keeps header values as undecoded strings (raw
8-bit bytes become lone surrogates). Reading six headers and every part's
type and filename of 54 real-world messages took an eighth of the time that
``policy.default`` and its header registry need (Python 3.11).
``maildesk.headers`` then decodes only what a ``ParsedMessage`` needs.
mail-parser is used for one job only: reading the date out of Received
headers when the Date header is unusable.

``parse_message`` accepts any bytes. It works around what it can, records
each workaround in ``defects`` and raises ``MessageParseError`` only for
input with nothing to read.
"""

from __future__ import annotations

import email
import functools
import hashlib
import logging
import mimetypes
import quopri
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.errors import InvalidBase64LengthDefect, MissingHeaderBodySeparatorDefect
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from io import BytesIO

from mailparser.utils import receiveds_parsing

from maildesk.bounces import detect_bounce
from maildesk.errors import MessageParseError
from maildesk.headers import (
    clean_text,
    decode_base64_lenient,
    decode_bytes,
    decode_filename_param,
    decode_header_value,
    decode_thread_index,
    extract_message_ids,
    header_params,
    parse_addresses,
    parse_content_language,
    parse_date,
    parse_return_path,
    raw_header,
    sanitize_filename,
)
from maildesk.htmltext import html_to_text
from maildesk.message import Address, Attachment, ParsedMessage
from maildesk.mimetree import parse_tree
from maildesk.tnef import unpack_tnef

logger = logging.getLogger(__name__)

# Deepest multipart nesting that is walked. Real mail rarely nests more than
# five levels; the limit keeps a hostile message from costing unbounded work.
MAX_MIME_DEPTH = 64
# Defects kept per message; fuzzed or hostile mail can produce thousands.
MAX_DEFECTS = 50

# A header field line: a field name of printable ASCII but ":", then ":" (RFC 5322 2.2).
_FIELD_LINE = re.compile(rb"[!-9;-~]+:")
_STANDARD_FIELD = re.compile(rb"[A-Za-z][A-Za-z0-9-]*:")
# Junk lines tolerated before the first header field (a pasted "---- Original
# message ----" line, for instance).
_MAX_JUNK_LINES = 3

# Received headers read for a date, topmost first; the newest dated hop is
# near the top, and a spam run can carry thousands.
_MAX_RECEIVED_READ = 5
# Longest Content-Description used as a filename; longer ones are prose.
_MAX_DESCRIPTION_NAME = 80

# type "/" subtype, each an RFC 2045 token (lower-case, as get_content_type returns it).
_CONTENT_TYPE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+/[a-z0-9!#$%&'*+.^_`|~-]+")

FORWARDED_TYPES = frozenset({"message/rfc822", "message/global"})
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_EXTENSIONS = {
    "text/calendar": ".ics",
    "text/rfc822-headers": ".txt",
    "message/delivery-status": ".txt",
    "message/global-delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "message/feedback-report": ".txt",
    "application/ms-tnef": ".dat",
    "application/vnd.ms-tnef": ".dat",
}
# Built-in table only, so names do not depend on the host's /etc/mime.types.
_MIME_TYPES = mimetypes.MimeTypes()


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one raw RFC 5322 message.

    Never raises for malformed content: the result then carries what could
    be read plus ``defects``. Raises ``MessageParseError`` when ``raw`` is
    empty or only white space, and ``TypeError`` when it is not bytes-like.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_message() needs bytes, not {type(raw).__name__}")
    data = bytes(raw)
    if not data.strip():
        raise MessageParseError(f"message is empty ({len(data)} bytes of white space)")
    try:
        return _parse(data)
    except Exception as exc:
        # The caller stores every message; a parser fault must not stop the poll.
        logger.exception("parser failed on a %d-byte message, kept as raw text", len(data))
        return _raw_text_message(data, exc)


def _raw_text_message(data: bytes, error: Exception) -> ParsedMessage:
    return ParsedMessage(
        message_id=None,
        subject="",
        from_=None,
        text=clean_text(decode_bytes(data, None, [])),
        defects=(f"internal parser error: {type(error).__name__}",),
        content_hash=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


# --- top level --------------------------------------------------------------------


def _parse(data: bytes) -> ParsedMessage:
    defects: list[str] = []
    root, body_readable = _read_mime(data, defects)
    headers = _Headers.read(root, defects)

    subject = headers.decoded_first("subject") or ""
    sender = _sender(headers, defects)
    to = headers.addresses("to", defects)
    cc = headers.addresses("cc", defects)
    date = parse_date(headers.raw_first("date"), defects)
    return_path = parse_return_path(headers.raw_first("return-path"), defects)

    linesep = "\r\n" if b"\r\n" in data else "\n"
    body = _walk(root, linesep, defects) if body_readable else _Body()
    html = _html_body(body.leaves)
    text = _text_body(body)
    attachments = _finish_attachments(body.attachments, html)
    from_text = headers.decoded_first("from") or ""
    bounce = detect_bounce(root, body.parts, sender, from_text, return_path, subject, text)
    thread_topic = headers.decoded_first("thread-topic")

    return ParsedMessage(
        message_id=_first(extract_message_ids(headers.raw_first("message-id"))),
        subject=subject,
        from_=sender,
        to=to,
        cc=cc,
        reply_to=headers.addresses("reply-to", defects),
        in_reply_to=extract_message_ids(headers.raw_first("in-reply-to")),
        references=extract_message_ids(" ".join(headers.raw_all("references"))),
        return_path=return_path,
        date=date,
        received_header_date=None if date else _received_date(headers.raw_all("received"), defects),
        text=text,
        html=html,
        attachments=attachments,
        headers=headers.pairs,
        content_language=parse_content_language(headers.decoded_first("content-language")),
        thread_index=decode_thread_index(headers.raw_first("thread-index"), defects),
        thread_topic=thread_topic,
        is_bounce=bounce.is_bounce,
        failed_recipients=bounce.failed_recipients,
        bounced_message_id=bounce.bounced_message_id,
        defects=tuple(dict.fromkeys(defects))[:MAX_DEFECTS],
        content_hash=_content_hash(sender, to, cc, headers.decoded_first("date"), subject, text),
        size=len(data),
    )


def _read_mime(data: bytes, defects: list[str]) -> tuple[Message, bool]:
    """Parse the MIME structure; return the root and whether its body can be walked."""
    try:
        root = parse_tree(data)
        return _with_repaired_headers(data, root, defects), True
    except RecursionError:
        # The stdlib parser recurses once per multipart level.
        defects.append("MIME nesting too deep for the parser; body not read")
    except (ValueError, TypeError) as exc:
        # Python 3.11's RFC 2231 decoding of the boundary parameter raises
        # both (see headers.header_params).
        defects.append(f"MIME structure unreadable ({exc.__class__.__name__}); body not read")

    return BytesParser(policy=compat32).parsebytes(data, headersonly=True), False


def _with_repaired_headers(data: bytes, root: Message, defects: list[str]) -> Message:
    """Re-parse a message whose header block the parser cut short, if a repair helps."""
    if not any(isinstance(defect, MissingHeaderBodySeparatorDefect) for defect in root.defects):
        return root
    repaired = _repair_header_block(data)
    if repaired is None:
        return root
    candidate = parse_tree(repaired)
    if len(candidate) <= len(root):
        return root
    defects.append("header block repaired: leading junk or unindented continuation lines")

    return candidate


def _repair_header_block(data: bytes) -> bytes | None:
    """Drop junk lines before the first header field and indent stray continuation lines.

    A line that is not a header field counts as a continuation only when a
    standard-looking field follows it in the same block. Otherwise the body
    starts there, as the parser assumed. Returns None when nothing changes.
    """
    lines = data.splitlines(keepends=True)
    end = next((i for i, line in enumerate(lines) if not line.strip(b"\r\n")), len(lines))
    start = next(
        (i for i in range(min(_MAX_JUNK_LINES + 1, end)) if _FIELD_LINE.match(lines[i])), 0
    )
    last_field = max((i for i in range(start, end) if _STANDARD_FIELD.match(lines[i])), default=-1)

    repaired = lines[start:end]
    for index in range(start, min(end, last_field)):
        line = lines[index]
        if not _FIELD_LINE.match(line) and line[:1] not in (b" ", b"\t"):
            repaired[index - start] = b" " + line
    if start == 0 and repaired == lines[:end]:
        return None

    return b"".join(repaired + lines[end:])


@dataclass(slots=True)
class _Headers:
    """The top-level header fields, raw and decoded."""

    pairs: tuple[tuple[str, str], ...]
    raw: dict[str, list[str]]
    decoded: dict[str, list[str]]

    @classmethod
    def read(cls, root: Message, defects: list[str]) -> _Headers:
        pairs: list[tuple[str, str]] = []
        raw: dict[str, list[str]] = {}
        decoded: dict[str, list[str]] = {}
        for name, value in root.raw_items():
            clean_name = decode_header_value(str(name), defects)
            clean_value = decode_header_value(str(value), defects)
            pairs.append((clean_name, clean_value))
            key = clean_name.lower()
            raw.setdefault(key, []).append(str(value))
            decoded.setdefault(key, []).append(clean_value)

        return cls(tuple(pairs), raw, decoded)

    def raw_first(self, name: str) -> str | None:
        values = self.raw.get(name)
        return values[0] if values else None

    def raw_all(self, name: str) -> list[str]:
        return self.raw.get(name, [])

    def addresses(self, name: str, defects: list[str]) -> tuple[Address, ...]:
        """Parse every instance of an address header, each on its own."""
        found: list[Address] = []
        for value in self.raw.get(name, []):
            found.extend(parse_addresses(value, defects))

        return tuple(found)

    def decoded_first(self, name: str) -> str | None:
        values = self.decoded.get(name)
        return values[0] if values else None


def _sender(headers: _Headers, defects: list[str]) -> Address | None:
    """Return the From address; without a usable one, the Sender or Reply-To address."""
    for name in ("from", "sender", "reply-to"):
        found = headers.addresses(name, defects)
        if found:
            if name != "from":
                defects.append(f"no usable From address; sender taken from {name.title()}")
            return found[0]

    return None


def _first(values: Sequence[str]) -> str | None:
    return values[0] if values else None


def _received_date(received: list[str], defects: list[str]) -> datetime | None:
    """Return the date of the newest (topmost) Received header with a readable date.

    Only the first ``_MAX_RECEIVED_READ`` headers are read.
    """
    if not received:
        return None
    try:
        # mail-parser returns the hops oldest first, so read them from the end.
        hops = receiveds_parsing(received[:_MAX_RECEIVED_READ])
    except Exception as exc:
        # mail-parser 4.8 records its own defects, but it parses hostile
        # text and its error types are not documented.
        defects.append(f"Received headers unreadable ({exc.__class__.__name__})")
        return None
    for hop in reversed(hops):
        value = hop.get("date_utc") if isinstance(hop, dict) else None
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                continue

    return None


def _content_hash(
    sender: Address | None,
    to: Sequence[Address],
    cc: Sequence[Address],
    date_value: str | None,
    subject: str,
    text: str,
) -> str:
    """Hash what stays the same when one message is delivered twice.

    Fields are joined with NUL, which none of them can contain.
    """
    fields = (
        sender.addr if sender else "",
        ",".join(address.addr for address in to),
        ",".join(address.addr for address in cc),
        " ".join((date_value or "").split()),
        " ".join(subject.split()),
        " ".join(text.split()),
    )

    return hashlib.sha256("\x00".join(fields).encode("utf-8", "surrogatepass")).hexdigest()


# --- MIME walk ----------------------------------------------------------------------


@dataclass(slots=True)
class _PendingAttachment:
    """An attachment before its filename is made safe and its inline flag is known."""

    name: str | None
    content_type: str
    content: bytes
    disposition: str | None = None
    content_id: str | None = None


@dataclass(slots=True)
class _BodyLeaf:
    """A text/plain or text/html part that is not an attachment."""

    content_type: str
    text: str
    # One (multipart/alternative number, child index) pair per alternative
    # on the way down from the root, outermost first.
    path: tuple[tuple[int, int], ...]


@dataclass(slots=True)
class _Body:
    """Body parts, attachments and MIME parts collected by ``_walk``, in message order."""

    leaves: list[_BodyLeaf] = field(default_factory=list)
    attachments: list[_PendingAttachment] = field(default_factory=list)
    tnef_texts: list[str] = field(default_factory=list)
    # Every part reached, for bounce detection; never parts of attached messages.
    parts: list[Message] = field(default_factory=list)


def _walk(root: Message, linesep: str, defects: list[str]) -> _Body:
    """Walk the MIME tree depth-first without recursion, up to ``MAX_MIME_DEPTH``.

    ``linesep`` is the line ending that attached messages are regenerated with.
    """
    body = _Body()
    alternatives = 0
    stack: list[tuple[Message, int, tuple[tuple[int, int], ...]]] = [(root, 0, ())]
    while stack:
        part, depth, path = stack.pop()
        body.parts.append(part)
        content_type = _content_type(part, defects)
        if content_type.startswith("message/"):
            body.attachments.append(_message_attachment(part, content_type, linesep, defects))
            continue
        if not part.is_multipart():
            _add_leaf(part, content_type, path, body, defects)
            continue
        if depth >= MAX_MIME_DEPTH:
            defects.append(f"MIME nesting deeper than {MAX_MIME_DEPTH} levels; inner parts skipped")
            continue
        children = [child for child in part.get_payload() if isinstance(child, Message)]
        if content_type == "multipart/alternative":
            alternatives += 1
            paths = [(*path, (alternatives, index)) for index in range(len(children))]
        else:
            paths = [path] * len(children)
        for child, child_path in zip(reversed(children), reversed(paths), strict=True):
            stack.append((child, depth + 1, child_path))

    # Collected last: decoding a payload adds its own defects to the part.
    for part in body.parts:
        defects.extend(f"MIME defect: {type(defect).__name__}" for defect in part.defects)

    return body


def _add_leaf(
    part: Message,
    content_type: str,
    path: tuple[tuple[int, int], ...],
    body: _Body,
    defects: list[str],
) -> None:
    disposition = part.get_content_disposition()
    name = _part_filename(part, defects)
    if content_type in _TNEF_TYPES or (name or "").lower() == "winmail.dat":
        _add_tnef(part, name, content_type, body, defects)
        return
    if disposition != "attachment" and name is None:
        if content_type.startswith("multipart/"):
            # A multipart without a usable boundary arrives as one text leaf.
            content_type = "text/plain"
        if content_type in ("text/plain", "text/html"):
            body.leaves.append(_BodyLeaf(content_type, _part_text(part, defects), path))
            return

    content_id = _content_id(part)
    body.attachments.append(
        _PendingAttachment(
            name or _fallback_name(part, content_type, content_id),
            content_type,
            _payload_bytes(part),
            disposition,
            content_id,
        )
    )


def _shown_leaves(leaves: list[_BodyLeaf], preferred: str) -> list[_BodyLeaf]:
    """Return the leaves a mail client shows when every multipart/alternative shows one child.

    With ``preferred`` "text/plain" an alternative shows its first child
    that contains plain text, else its first with HTML; with "text/html"
    its last child with HTML (RFC 2046 5.1.4 puts the richest last), else
    its first with plain text. Leaves outside alternatives are all shown.
    """
    offered: dict[int, dict[str, list[int]]] = {}
    for leaf in leaves:
        for alternative, index in leaf.path:
            offered.setdefault(alternative, {}).setdefault(leaf.content_type, []).append(index)

    chosen: dict[int, int] = {}
    for alternative, by_type in offered.items():
        if preferred == "text/html" and "text/html" in by_type:
            chosen[alternative] = max(by_type["text/html"])
        elif "text/plain" in by_type:
            chosen[alternative] = min(by_type["text/plain"])
        else:
            chosen[alternative] = min(by_type["text/html"])

    return [leaf for leaf in leaves if all(chosen[alt] == index for alt, index in leaf.path)]


def _text_body(body: _Body) -> str:
    """Return the text a mail client shows: plain parts as they are, HTML parts converted.

    Falls back to the HTML alternatives when the plain text is blank, then to
    a body found in winmail.dat.
    """
    text = _joined_text(_shown_leaves(body.leaves, "text/plain"))
    if not text.strip():
        text = _joined_text(_shown_leaves(body.leaves, "text/html"))
    if not text.strip() and body.tnef_texts:
        text = body.tnef_texts[0]

    return text


def _joined_text(leaves: list[_BodyLeaf]) -> str:
    """Join the text of ``leaves``, a blank line between parts."""
    pieces: list[str] = []
    seen: set[str] = set()
    for leaf in leaves:
        piece = leaf.text if leaf.content_type == "text/plain" else html_to_text(leaf.text)
        # Some mailers put the same text as plain and HTML into multipart/mixed.
        normalized = " ".join(piece.split())
        if normalized in seen:
            continue
        seen.add(normalized)
        pieces.append(piece)
    if len(pieces) == 1:
        return pieces[0]

    return "\n\n".join(piece.strip("\n") for piece in pieces)


def _html_body(leaves: list[_BodyLeaf]) -> str | None:
    html = [
        leaf.text for leaf in _shown_leaves(leaves, "text/html") if leaf.content_type == "text/html"
    ]

    return "\n".join(html) if html else None


# --- parts ------------------------------------------------------------------------


def _content_type(part: Message, defects: list[str]) -> str:
    """Return the part's content type, or application/octet-stream when it is not a valid token pair."""
    content_type = part.get_content_type()
    if _CONTENT_TYPE.fullmatch(content_type):
        return content_type
    declared = decode_header_value(raw_header(part, "Content-Type") or "", [])
    defects.append(f"invalid content type {declared[:60]!r}")

    return "application/octet-stream"


def _part_filename(part: Message, defects: list[str]) -> str | None:
    """Return the decoded filename of a part, RFC 2231 forms first, or None."""
    for header, parameter in (("content-disposition", "filename"), ("content-type", "name")):
        plain: str | None = None
        extended: tuple[str | None, str | None, str] | None = None
        for key, value in header_params(part, header):
            if key != parameter:
                continue
            if isinstance(value, tuple) and extended is None:
                extended = value
            elif isinstance(value, str) and plain is None:
                plain = value
        chosen = extended if extended is not None else plain
        if chosen is not None:
            name = decode_filename_param(chosen, defects)
            if name:
                return name

    return None


def _fallback_name(part: Message, content_type: str, content_id: str | None) -> str | None:
    """Name a part that has no filename after its Content-Description or Content-ID."""
    description = decode_header_value(raw_header(part, "Content-Description") or "", [])
    if description and len(description) <= _MAX_DESCRIPTION_NAME:
        return description + _extension(content_type)
    # Outlook names embedded images "image001.png@01DA1234.56789ABC".
    local_part = (content_id or "").partition("@")[0]
    if "." in local_part.strip("."):
        return local_part

    return None


def _content_id(part: Message) -> str | None:
    value = raw_header(part, "Content-ID")
    if value is None:
        return None
    cleaned = decode_header_value(value, []).strip("<> ")

    return "".join(cleaned.split()) or None


def _charset(part: Message) -> str | None:
    for key, value in header_params(part, "content-type"):
        if key == "charset":
            return value[2] if isinstance(value, tuple) else value

    return None


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if any(isinstance(defect, InvalidBase64LengthDefect) for defect in part.defects):
        # The stdlib returns the undecoded text when the base64 length is off
        # by one; dropping the dangling character recovers the rest.
        raw = part.get_payload()
        if isinstance(raw, str):
            # Non-ASCII characters cannot be base64 text; the decoder skips them anyway.
            return decode_base64_lenient(raw.encode("ascii", "ignore"), [])

    return payload if isinstance(payload, bytes) else b""


def _part_text(part: Message, defects: list[str]) -> str:
    text = clean_text(decode_bytes(_payload_bytes(part), _charset(part), defects))

    return text.replace("\r\n", "\n").replace("\r", "\n")


def _add_tnef(
    part: Message, name: str | None, content_type: str, body: _Body, defects: list[str]
) -> None:
    """Replace winmail.dat with the files packed in it; keep it when nothing unpacks."""
    content = _payload_bytes(part)
    unpacked = unpack_tnef(content)
    if unpacked is None:
        defects.append("winmail.dat could not be unpacked; kept as is")
    elif unpacked.body:
        body.tnef_texts.append(unpacked.body)

    if unpacked is None or not unpacked.files:
        body.attachments.append(
            _PendingAttachment(name or "winmail.dat", content_type, content, "attachment")
        )
        return
    for file_name, file_content in unpacked.files:
        guessed = _MIME_TYPES.guess_type(file_name, strict=False)[0] if file_name else None
        body.attachments.append(
            _PendingAttachment(
                file_name or None, guessed or "application/octet-stream", file_content, "attachment"
            )
        )


def _message_attachment(
    part: Message, content_type: str, linesep: str, defects: list[str]
) -> _PendingAttachment:
    """Keep a message/* part whole: a forwarded mail becomes one .eml attachment."""
    content = _message_bytes(part, linesep, defects)
    name = _part_filename(part, defects)
    if name is None and content_type in FORWARDED_TYPES:
        inner = BytesHeaderParser(policy=compat32).parsebytes(content)
        subject = decode_header_value(raw_header(inner, "Subject") or "", defects)
        name = f"{subject}.eml" if subject else None
    content_id = _content_id(part)

    return _PendingAttachment(
        name or _fallback_name(part, content_type, content_id),
        content_type,
        content,
        part.get_content_disposition(),
        content_id,
    )


def _message_bytes(part: Message, linesep: str, defects: list[str]) -> bytes:
    """Return the bytes of an attached message, regenerated from the parsed tree.

    compat32 keeps header folding and bodies as read, so with the message's
    own line ending the result matches the original bytes in common cases.
    """
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _payload_bytes(part)
    buffer = BytesIO()
    generator = BytesGenerator(buffer, mangle_from_=False, policy=compat32.clone(linesep=linesep))
    try:
        for index, inner in enumerate(payload):
            if index:
                buffer.write(linesep.encode())
            generator.flatten(inner)
    except (RecursionError, LookupError, UnicodeError, ValueError, TypeError) as exc:
        defects.append(f"attached message could not be regenerated ({exc.__class__.__name__})")
    content = buffer.getvalue()

    # Some servers base64- or QP-encode message/rfc822 (RFC 2046 5.2.1
    # forbids it); the parser then read the encoded text as the message.
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":
        return decode_base64_lenient(content, defects)
    if encoding == "quoted-printable":
        return quopri.decodestring(content)

    return content


# --- attachments ------------------------------------------------------------------


def _finish_attachments(
    pending: list[_PendingAttachment], html: str | None
) -> tuple[Attachment, ...]:
    """Give every attachment a safe filename and mark the images the HTML body shows."""
    html_lower = html.lower() if html else ""
    attachments: list[Attachment] = []
    for index, item in enumerate(pending, start=1):
        inline = (
            item.content_type.startswith("image/")
            and item.disposition != "attachment"
            and item.content_id is not None
            and f"cid:{item.content_id.lower()}" in html_lower
        )
        attachments.append(
            Attachment(
                filename=sanitize_filename(item.name, _extension(item.content_type), index),
                content_type=item.content_type,
                content=item.content,
                inline=inline,
                content_id=item.content_id,
            )
        )

    return tuple(attachments)


@functools.lru_cache(maxsize=256)
def _extension(content_type: str) -> str:
    if content_type in _EXTENSIONS:
        return _EXTENSIONS[content_type]

    return _MIME_TYPES.guess_extension(content_type, strict=False) or ".bin"
