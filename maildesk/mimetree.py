"""Build the stdlib ``compat32`` MIME tree of a message faster than the feed parser.

``email.feedparser`` reads a message one line at a time in Python, also
through base64 attachments, and compiles a new regular expression for every
multipart boundary (about 0.2 ms each with Python 3.11). For well-formed
mail :func:`parse_tree` builds the same ``Message`` tree with ``str.find``
over whole bodies: the stdlib parser reads only each part's header block,
and bodies, preambles and epilogues are sliced out as the feed parser would
store them.

Anything the fast path does not reproduce exactly goes to the stdlib parser
instead: a header block with a non-header line, a multipart without a
boundary, a missing start or close delimiter, two delimiter lines in a row,
a multipart with a transfer encoding, multipart/digest and every message/*
part. The tests compare both trees on generated and hand-made mail.
"""

from __future__ import annotations

import email
import re
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message
from email.parser import Parser
from email.policy import compat32

# A line ends at CRLF, a lone LF or a lone CR, as in the feed parser.
_LINE_END = re.compile(r"\r\n|\n|\r")
_BLANK_LINE = re.compile(r"(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r(?!\n))")
_AFTER_SEPARATOR = re.compile(r"(--)?[ \t]*")
# Nesting depth handled on the fast path; deeper mail goes to the stdlib parser.
MAX_FAST_DEPTH = 16
_MULTIPART_ENCODINGS = ("7bit", "8bit", "binary")

_header_parser = Parser(policy=compat32)


class _Irregular(Exception):
    """The message needs the stdlib parser to get the same tree."""


def parse_tree(data: bytes) -> Message:
    """Return ``email.message_from_bytes(data, policy=compat32)``, on the fast path where it can.

    Raises what the stdlib parser raises for input the fast path hands over.
    """
    text = data.decode("ascii", "surrogateescape")
    try:
        return _message(text, 0)
    except _Irregular:
        return email.message_from_bytes(data, policy=compat32)


def _message(text: str, depth: int) -> Message:
    if depth > MAX_FAST_DEPTH:
        raise _Irregular
    header_text, body = _split_header_block(text)
    message = _header_parser.parsestr(header_text, headersonly=True)
    if message._payload or any(
        isinstance(defect, MissingHeaderBodySeparatorDefect) for defect in message.defects
    ):
        # A non-header line ended the header block early.
        raise _Irregular
    maintype = message.get_content_maintype()
    if maintype == "message":
        raise _Irregular
    if maintype == "multipart":
        _read_multipart(message, body, depth)
    else:
        message.set_payload(body)
    return message


def _split_header_block(text: str) -> tuple[str, str]:
    """Split at the first blank line: (header lines with their line ends, body)."""
    first_end = _LINE_END.match(text)
    if first_end is not None:
        # The message starts with a blank line: no header fields at all.
        return "", text[first_end.end():]
    blank = _BLANK_LINE.search(text)
    if blank is None:
        return text, ""
    second = _LINE_END.match(text, blank.start())
    assert second is not None
    return text[:second.end()], text[blank.end():]


def _read_multipart(message: Message, body: str, depth: int) -> None:
    boundary = message.get_boundary()
    if boundary is None or message.get_content_subtype() == "digest":
        raise _Irregular
    encoding = str(message.get("content-transfer-encoding", "8bit")).lower()
    if encoding not in _MULTIPART_ENCODINGS:
        raise _Irregular

    delimiters = _delimiters(body, "--" + boundary)
    if len(delimiters) < 2 or delimiters[0][2]:
        raise _Irregular
    first_start = delimiters[0][0]
    if first_start:
        message.preamble = _strip_eol(body[:first_start])

    parts: list[Message] = []
    for (_, end, _), (next_start, _, _) in zip(delimiters, delimiters[1:]):
        if next_start == end:
            # Consecutive delimiter lines, which the feed parser skips over.
            raise _Irregular
        part = _message(body[end:next_start], depth + 1)
        _strip_part_end(part)
        parts.append(part)
    message.set_payload(parts)
    message.epilogue = body[delimiters[-1][1]:]


def _delimiters(body: str, separator: str) -> list[tuple[int, int, bool]]:
    """Return (start, end after the line end, is close) of each delimiter line up to the close one.

    Raises _Irregular when no close delimiter follows.
    """
    found: list[tuple[int, int, bool]] = []
    position = body.find(separator)
    while position != -1:
        after = position + len(separator)
        if position == 0 or body[position - 1] in "\r\n":
            line_end = _LINE_END.search(body, after)
            rest_end = line_end.start() if line_end else len(body)
            rest = _AFTER_SEPARATOR.fullmatch(body, after, rest_end)
            if rest is not None:
                end = line_end.end() if line_end else len(body)
                is_close = rest.group(1) is not None
                found.append((position, end, is_close))
                if is_close:
                    return found
        position = body.find(separator, after)
    raise _Irregular


def _strip_eol(text: str) -> str:
    """Remove one line end (CRLF, LF or CR) from the end of ``text``."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith(("\n", "\r")):
        return text[:-1]
    return text


def _strip_part_end(part: Message) -> None:
    """Move the line end before the next delimiter to the delimiter (RFC 2046 5.1.1)."""
    if part.is_multipart():
        if part.epilogue == "":
            part.epilogue = None
        elif part.epilogue is not None:
            part.epilogue = _strip_eol(part.epilogue)
        return
    payload = part._payload
    if isinstance(payload, str):
        part._payload = _strip_eol(payload)
