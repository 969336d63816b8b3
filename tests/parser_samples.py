"""Builders for small raw messages used by the parser tests.

Messages are assembled from bytes, so every quirk a test needs (raw 8-bit
headers, bare LF, a missing boundary) is visible in the test itself.
"""

from __future__ import annotations

import struct

CRLF = b"\r\n"

DEFAULT_HEADERS: tuple[bytes, ...] = (
    b"From: Aino Asiakas <aino@example.com>",
    b"To: Tuki <tuki@example.fi>",
    b"Subject: Tilaus 1001",
    b"Date: Mon, 16 Nov 2026 09:14:05 +0200",
    b"Message-ID: <sample-1@example.com>",
    b"MIME-Version: 1.0",
)


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def build_message(
    *headers: str | bytes,
    body: str | bytes = b"Hei, tilaus 1001 puuttuu.\r\n",
    eol: bytes = CRLF,
) -> bytes:
    """Join header lines and a body into a message with ``eol`` line ends."""
    head = eol.join(_as_bytes(line) for line in headers)
    text = _as_bytes(body).replace(CRLF, b"\n").replace(b"\n", eol)

    return head + eol + eol + text


def simple_message(
    *extra_headers: str | bytes, body: str | bytes = b"Hei.\r\n", **replace: str
) -> bytes:
    """Return a text/plain message with the default headers, some replaced or added.

    ``replace`` maps a header name with "_" for "-" (``Message_ID``) to its
    new value; the value "" removes that header.
    """
    replaced = {name.replace("_", "-").lower(): value for name, value in replace.items()}
    headers: list[str | bytes] = []
    for line in DEFAULT_HEADERS:
        name = line.split(b":", 1)[0].decode().lower()
        if name in replaced:
            if replaced[name]:
                headers.append(f"{line.split(b':', 1)[0].decode()}: {replaced.pop(name)}")
            else:
                replaced.pop(name)
            continue
        headers.append(line)
    headers.extend(f"{name}: {value}" for name, value in replaced.items() if value)
    headers.extend(extra_headers)
    if not any(_as_bytes(h).lower().startswith(b"content-type:") for h in headers):
        headers.append(b"Content-Type: text/plain; charset=utf-8")

    return build_message(*headers, body=body)


def mime_part(*headers: str | bytes, body: str | bytes) -> bytes:
    """Return one MIME body part: its header lines, a blank line and its body."""
    return build_message(*headers, body=body)


def multipart_body(boundary: str, *parts: bytes, close: bool = True) -> bytes:
    """Return the body of a multipart entity holding ``parts``."""
    marker = b"--" + boundary.encode()
    chunks = [b"This is a multi-part message in MIME format.\r\n"]
    for part in parts:
        chunks.append(marker + CRLF + part.rstrip(b"\r\n") + CRLF)
    if close:
        chunks.append(marker + b"--" + CRLF)

    return b"".join(chunks)


def multipart_message(
    subtype: str, *parts: bytes, boundary: str = "b-outer", extra_headers: tuple[str, ...] = ()
) -> bytes:
    """Return a message with the default headers whose body is a multipart of ``parts``."""
    headers = [
        *DEFAULT_HEADERS,
        *extra_headers,
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"',
    ]

    return build_message(*headers, body=multipart_body(boundary, *parts))


# --- TNEF -------------------------------------------------------------------------

_TNEF_SIGNATURE = 0x223E9F78
_LEVEL_MESSAGE = 1
_LEVEL_ATTACHMENT = 2


def _tnef_object(level: int, name: int, value_type: int, data: bytes) -> bytes:
    header = struct.pack("<BHHI", level, name, value_type, len(data))

    return header + data + struct.pack("<H", sum(data) & 0xFFFF)


def build_tnef(files: list[tuple[bytes, bytes]], body: bytes | None = None) -> bytes:
    """Return a minimal winmail.dat stream with ``files`` as (name, content) and an optional body.

    Names are windows-1252 bytes, as Outlook writes attAttachTitle.
    """
    objects = [
        _tnef_object(_LEVEL_MESSAGE, 0x9006, 0x0008, struct.pack("<I", 0x10000)),
        _tnef_object(_LEVEL_MESSAGE, 0x9007, 0x0006, struct.pack("<II", 1252, 0)),
    ]
    if body is not None:
        objects.append(_tnef_object(_LEVEL_MESSAGE, 0x800C, 0x0002, body))
    for name, content in files:
        objects.append(_tnef_object(_LEVEL_ATTACHMENT, 0x9002, 0x0006, bytes(14)))
        objects.append(_tnef_object(_LEVEL_ATTACHMENT, 0x8010, 0x0001, name + b"\x00"))
        objects.append(_tnef_object(_LEVEL_ATTACHMENT, 0x800F, 0x0006, content))

    return struct.pack("<IH", _TNEF_SIGNATURE, 0x0001) + b"".join(objects)


def build_tnef_with_property_count(count: int) -> bytes:
    """Return a TNEF stream whose MAPI property list claims ``count`` properties but contains none."""
    objects = [
        _tnef_object(_LEVEL_MESSAGE, 0x9006, 0x0008, struct.pack("<I", 0x10000)),
        _tnef_object(_LEVEL_MESSAGE, 0x9003, 0x0006, struct.pack("<I", count) + bytes(8)),
    ]

    return struct.pack("<IH", _TNEF_SIGNATURE, 0x0001) + b"".join(objects)
