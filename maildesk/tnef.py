"""Unpacking of Outlook's winmail.dat (application/ms-tnef) with ``tnefparse``.

tnefparse 1.4 trusts the counts inside the stream: a property count of
0xFFFFFFFF makes it loop four billion times, and every object it reads copies
the rest of the stream. ``unpack_tnef`` therefore walks the stream structure
first (``_is_plausible``) and hands only plausible streams to tnefparse.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from tnefparse.tnef import TNEF

from maildesk.headers import clean_text, decode_bytes
from maildesk.htmltext import html_to_text

logger = logging.getLogger(__name__)

_SIGNATURE = 0x223E9F78
_IMESSAGE_SIGNATURE = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
_MIN_OBJECT_SIZE = 12
# TNEF attribute IDs whose data tnefparse decodes as a MAPI property list.
_ATT_MAPI_PROPS = 0x9003
_ATT_RECIPIENT_TABLE = 0x9004
_ATT_ATTACHMENT = 0x9005
_MAPI_ATTACH_DATA_OBJ = 0x3701
_MAPI_ATTACH_LONG_FILENAME = 0x3707
_MULTI_VALUE_FLAG = 0x1000
_NAMED_PROPERTY_FLAG = 0x8000
# Byte size of each fixed-size MAPI property type; the others carry a length.
_FIXED_SIZES = {
    0x0002: 2, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8,
    0x000A: 4, 0x000B: 2, 0x0014: 8, 0x0040: 8, 0x0048: 16,
}  # fmt: skip
_VARIABLE_TYPES = frozenset({0x0000, 0x000D, 0x001E, 0x001F, 0x0102})
# tnefparse copies the remaining stream for every object it reads; past this
# many copied bytes a stream is kept packed rather than unpacked slowly.
_MAX_COPIED_BYTES = 512 * 1024 * 1024
_MAX_NESTING = 4
_MAX_MISSING_PROPERTIES = 16


@dataclass(frozen=True, slots=True)
class TnefContent:
    """Files and body text found in a TNEF stream."""

    files: tuple[tuple[str, bytes], ...]
    body: str | None


def unpack_tnef(data: bytes) -> TnefContent | None:
    """Return the files and body of a winmail.dat stream, or None when it cannot be read.

    File names are returned as stored (not yet sanitized); the caller keeps
    winmail.dat itself when this returns None or no files.
    """
    if not _is_plausible(data, 0):
        logger.debug("TNEF stream rejected before decoding (%d bytes)", len(data))
        return None
    try:
        tnef = TNEF(data, do_checksum=False)
    except Exception as exc:
        # tnefparse raises whatever its byte slicing hits on a damaged stream
        # (struct.error, ValueError, UnicodeDecodeError, UnboundLocalError).
        logger.debug("TNEF stream could not be decoded: %r", exc)
        return None

    codepage = tnef.codepage or "cp1252"
    files = tuple(_attachment_file(attachment, codepage) for attachment in tnef.attachments)

    return TnefContent(
        files=tuple(item for item in files if item[0] or item[1]),
        body=_body_text(tnef, codepage),
    )


def _attachment_file(attachment: object, codepage: str) -> tuple[str, bytes]:
    content = getattr(attachment, "data", b"")
    if not isinstance(content, bytes):
        content = b""

    return _attachment_name(attachment, codepage), content


def _attachment_name(attachment: object, codepage: str) -> str:
    for attribute in getattr(attachment, "mapi_attrs", ()):
        if attribute.name != _MAPI_ATTACH_LONG_FILENAME:
            continue
        try:
            # ``data`` converts the raw value by its declared MAPI type.
            return _as_text(attribute.data, codepage)
        except (struct.error, ValueError, TypeError, OverflowError):
            break
    # tnefparse's ``name`` property decodes the 8-bit title as UTF-8 and
    # raises on other bytes, so read the stored value and decode it here.
    return _as_text(getattr(attachment, "_name", b""), codepage)


def _body_text(tnef: TNEF, codepage: str) -> str | None:
    body = _as_text(tnef.body, codepage) if tnef.body else ""
    if not body.strip() and tnef.htmlbody:
        body = html_to_text(_as_text(tnef.htmlbody, codepage))

    return body.strip() or None


def _as_text(value: object, codepage: str) -> str:
    if isinstance(value, bytes):
        text = decode_bytes(value, codepage, [])
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list):
        text = "".join(_as_text(item, codepage) for item in value)
    else:
        return ""

    return clean_text(text.rstrip("\x00"))


# --- structure check ------------------------------------------------------------


def _uint32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


def _uint16(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<H", data, offset)[0])


def _is_plausible(data: bytes, depth: int) -> bool:
    """Walk the objects of a TNEF stream and check every count against the bytes left."""
    if depth > _MAX_NESTING or len(data) < 6 or _uint32(data, 0) != _SIGNATURE:
        return False
    offset = 6
    copied = 0
    while offset + _MIN_OBJECT_SIZE < len(data):
        copied += len(data) - offset
        if copied > _MAX_COPIED_BYTES:
            return False
        name = _uint16(data, offset + 1)
        length = min(len(data) - offset, _uint32(data, offset + 5) + 11)
        body = data[offset + 9 : offset + length - 2]
        offset += length
        if not _object_is_plausible(name, body, depth):
            return False

    return True


def _object_is_plausible(name: int, body: bytes, depth: int) -> bool:
    try:
        if name in (_ATT_MAPI_PROPS, _ATT_ATTACHMENT):
            return _mapi_end(body, 0, depth) is not None
        if name == _ATT_RECIPIENT_TABLE:
            return _recipient_table_is_plausible(body, depth)
    except struct.error:
        # tnefparse stops at the same truncated field; nothing unbounded follows.
        return True

    return True


def _recipient_table_is_plausible(body: bytes, depth: int) -> bool:
    rows = _uint32(body, 0)
    if rows > len(body):
        return False
    offset: int | None = 4
    for _ in range(rows):
        if offset is None or offset >= len(body):
            break
        offset = _mapi_end(body, offset, depth)

    return offset is not None


def _mapi_end(body: bytes, offset: int, depth: int) -> int | None:
    """Return the offset after a MAPI property list, or None if a count is implausible."""
    count = _uint32(body, offset)
    offset += 4
    if count > len(body):
        return None
    for index in range(count):
        if offset >= len(body):
            # tnefparse logs a warning for every property that is missing.
            return offset if count - index <= _MAX_MISSING_PROPERTIES else None
        next_offset = _property_end(body, offset, depth)
        if next_offset is None:
            return None
        offset = next_offset

    return offset


def _property_end(body: bytes, offset: int, depth: int) -> int | None:
    value_type = _uint16(body, offset)
    name = _uint16(body, offset + 2)
    offset += 4
    if name >= _NAMED_PROPERTY_FLAG:
        offset += 16
        kind = _uint32(body, offset)
        offset += 4
        offset += 4 if kind == 0 else 4 + _padded(_uint32(body, offset))

    values: int | None = None
    if value_type & _MULTI_VALUE_FLAG:
        value_type ^= _MULTI_VALUE_FLAG
        values = _uint32(body, offset)
        offset += 4
        if values > len(body):
            return None

    for _ in range(values or 1):
        if value_type in _FIXED_SIZES:
            offset += _FIXED_SIZES[value_type]
        elif value_type in _VARIABLE_TYPES:
            end = _variable_value_end(body, offset, name, values is not None, depth)
            if end is None:
                return None
            offset = end
        else:
            # tnefparse stops at an unknown type; so does this walk.
            return len(body)
        if offset > len(body):
            break
    if (values or 1) % 2 and value_type in (0x0002, 0x000B):
        offset += 2

    return offset


def _variable_value_end(body: bytes, offset: int, name: int, multi: bool, depth: int) -> int | None:
    items = 1
    if not multi:
        items = _uint32(body, offset)
        offset += 4
        if items > len(body):
            return None
    for _ in range(items):
        size = _padded(_uint32(body, offset))
        offset += 4
        value = body[offset : offset + size]
        embedded = name == _MAPI_ATTACH_DATA_OBJ and value.startswith(_IMESSAGE_SIGNATURE)
        if embedded and not _is_plausible(value[len(_IMESSAGE_SIGNATURE) :], depth + 1):
            return None
        offset += size

    return offset


def _padded(size: int) -> int:
    return size + (-size % 4)
