"""Replies and forwards written the way common mail clients write them.

Each builder keeps or drops the threading headers as that client does:

- Outlook (desktop and Exchange): Thread-Index and Thread-Topic always, subject
  prefix in the user's language ("VS:" in Finnish), In-Reply-To kept but
  References often missing; mail that passed some Exchange connectors keeps
  only Thread-Index.
- Gmail: In-Reply-To and the full References chain, "Re:", multipart/alternative.
- Thunderbird: In-Reply-To and the full References chain, User-Agent, "Re:".
- Apple Mail (iPhone): In-Reply-To and References, X-Mailer "iPhone Mail",
  "Mime-Version: 1.0 (1.0)".
- A basic phone or webmail client: no In-Reply-To, no References, only "Vs:".
"""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

_counter = itertools.count(1)
# The 22 bytes that name one Outlook conversation: a FILETIME fragment and a GUID.
CONVERSATION = bytes.fromhex("01db4a6f2c3e") + bytes(range(16))


def thread_index(extra: bytes = b"") -> str:
    """Return a Thread-Index value of the test conversation, with ``extra`` child blocks."""
    return base64.b64encode(CONVERSATION + extra).decode("ascii")


def _base(sender: str, to: str, subject: str, message_id: str | None, date: datetime | None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = f"<{message_id or f'client-{next(_counter)}@example.com'}>"
    return message


def outlook_mail(
    *,
    sender: str,
    to: str = "tuki@example.fi",
    subject: str,
    body: str = "Hei,\n\nlasku on väärin.\n",
    in_reply_to: str | None = None,
    index_extra: bytes = b"",
    message_id: str | None = None,
    topic: str | None = None,
) -> bytes:
    """Return a mail as Outlook writes it: Thread-Index always, References never."""
    message = _base(sender, to, subject, message_id, None)
    message["Thread-Topic"] = topic or subject.split(": ", 1)[-1]
    message["Thread-Index"] = thread_index(index_extra)
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
    message["Content-Language"] = "fi-FI"
    message["X-MS-Has-Attach"] = ""
    message["X-MS-TNEF-Correlator"] = ""
    message.set_content(body)
    return message.as_bytes()


def gmail_reply(*, sender: str, to: str = "tuki@example.fi", subject: str, references: list[str],
                body: str = "Kiitos vastauksesta!") -> bytes:
    """Return a Gmail reply: In-Reply-To the last reference and the whole References chain."""
    message = _base(sender, to, subject, f"CAF{next(_counter):08d}x@mail.gmail.com", None)
    message["In-Reply-To"] = f"<{references[-1]}>"
    message["References"] = " ".join(f"<{reference}>" for reference in references)
    message.set_content(body + "\n\n> lainaus\n")
    message.add_alternative(f"<div dir=\"ltr\">{body}</div><blockquote>lainaus</blockquote>", subtype="html")
    return message.as_bytes()


def thunderbird_reply(*, sender: str, to: str = "tuki@example.fi", subject: str, references: list[str],
                      body: str = "Kiitos!", date: datetime | None = None) -> bytes:
    """Return a Thunderbird reply with User-Agent and the full References chain."""
    message = _base(sender, to, subject, None, date)
    message["User-Agent"] = "Mozilla Thunderbird"
    message["In-Reply-To"] = f"<{references[-1]}>"
    message["References"] = " ".join(f"<{reference}>" for reference in references)
    message["Content-Language"] = "fi"
    message.set_content(f"{body}\n\n7.12.2026 9.12, Tuki kirjoitti:\n> lainaus\n")
    return message.as_bytes()


def apple_mail_reply(*, sender: str, to: str = "tuki@example.fi", subject: str, parent: str,
                     body: str = "Selvä, kiitos") -> bytes:
    """Return an iPhone Mail reply: In-Reply-To and References to the parent only."""
    message = _base(sender, to, subject, f"{next(_counter):04X}-APPLE@example.com", None)
    message["In-Reply-To"] = f"<{parent}>"
    message["References"] = f"<{parent}>"
    message["X-Mailer"] = "iPhone Mail (20A362)"
    message.set_content(f"{body}\n\nLähetetty iPhonesta\n\n> 7.12.2026 kello 9.12 Tuki kirjoitti:\n> lainaus\n")
    raw = message.as_bytes()
    return raw.replace(b"MIME-Version: 1.0\n", b"Mime-Version: 1.0 (1.0)\n", 1)


def basic_client_reply(*, sender: str, to: str = "tuki@example.fi", subject: str,
                       body: str = "Onko tilaus jo lähtenyt?") -> bytes:
    """Return a reply from a client that drops In-Reply-To and References."""
    message = _base(sender, to, subject, None, None)
    message.set_content(body)
    return message.as_bytes()
