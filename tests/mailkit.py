"""Build small test messages."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

_counter = itertools.count(1)


def make_mail(
    *,
    sender: str = "Maija Asiakas <maija@example.com>",
    to: str = "tuki@example.fi",
    subject: str = "Tilaus 1001",
    body: str = "Hei, missä tilaukseni on?",
    date: datetime | None = None,
    message_id: str | None = "auto",
    headers: dict[str, str] | None = None,
    charset: str = "utf-8",
) -> bytes:
    """Return the bytes of a plain-text mail; ``message_id="auto"`` makes a unique one."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime.now(UTC))
    if message_id == "auto":
        message_id = f"test-{next(_counter)}-{id(message)}@example.com"
    if message_id is not None:
        message["Message-ID"] = f"<{message_id}>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body, charset=charset)
    return message.as_bytes()


def message_id_of(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().strip(b"<>").decode()
    raise ValueError("no Message-ID")
