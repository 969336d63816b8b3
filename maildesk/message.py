"""Value types for a parsed message.

The parser (``maildesk.parsing``) produces these from raw bytes; everything
after it (dedupe, threading, rules, the loop guard) reads only these values,
so each decision can be tested without a mail server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: ``addr`` is the plain lower-case address, ``name`` the decoded display name."""

    addr: str
    name: str = ""

    @property
    def domain(self) -> str:
        return self.addr.rpartition("@")[2]

    @property
    def local_part(self) -> str:
        return self.addr.rpartition("@")[0]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A MIME part kept as a file.

    ``filename`` is already safe to show: the last path component only, with
    control characters removed, never empty. It is never used as a path on
    disk; storage picks its own names.
    """

    filename: str
    content_type: str
    content: bytes
    inline: bool = False
    content_id: str | None = None
    # The sha256 and size of the content once it is in the file store, set where messages
    # are prepared; ``content`` may then be empty.
    stored_sha256: str | None = None
    stored_size: int | None = None

    @property
    def size(self) -> int:
        return len(self.content) if self.stored_size is None else self.stored_size


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything maildesk reads from one message.

    Text fields contain no NUL, no CR or LF in header values, and no lone
    surrogates, so they can be stored and echoed into headers as they are.
    Message-IDs are kept without angle brackets.
    """

    message_id: str | None
    subject: str
    from_: Address | None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    # None when the header is absent, "" for the null reverse-path "<>".
    return_path: str | None = None
    date: datetime | None = None
    # Date of the newest Received header, for mail whose Date header is missing or broken.
    received_header_date: datetime | None = None
    text: str = ""
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    # Every header as (name, decoded value) in message order, for rules and the loop guard.
    headers: tuple[tuple[str, str], ...] = ()
    content_language: str | None = None
    # Outlook's Thread-Index decoded from base64; its first 22 bytes name the conversation.
    thread_index: bytes | None = None
    thread_topic: str | None = None
    # Set for a delivery status notification (RFC 3464) or a recognized non-standard bounce.
    is_bounce: bool = False
    failed_recipients: tuple[str, ...] = ()
    # Message-ID of the message that bounced, from the returned headers.
    bounced_message_id: str | None = None
    # Problems the parser worked around; the message is still stored.
    defects: tuple[str, ...] = ()
    # sha256 hex of the stable headers (From, To, Cc, Date, Subject) and the body; a second
    # delivery of the same message has the same value even though its Received lines differ.
    content_hash: str = ""
    size: int = 0

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """Return every value of header ``name`` (case-insensitive) in message order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A raw message with where it came from, as the pipeline receives it."""

    raw: bytes
    # When the mailbox received it: IMAP INTERNALDATE, or None for imported files.
    received_at: datetime | None = None
    folder: str | None = None
    uid: int | None = None
    source: str = field(default="imap")
