"""Database schema and engine set-up (SQLAlchemy Core).

The tables are defined here once; Alembic migrations under
``maildesk/migrations`` create and change them. Times are stored as ISO 8601
text in UTC, so the SQLite file stays readable with the sqlite3 shell.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
)

log = logging.getLogger(__name__)

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as ISO 8601 text in UTC, read back aware."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; attach a time zone")
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def process_result_value(self, value: str | None, dialect: object) -> datetime | None:
        return datetime.fromisoformat(value) if value is not None else None


TICKET_STATUSES = ("new", "open", "pending", "closed")

tickets = Table(
    "tickets",
    metadata,
    # The number shown to customers as [#N]; sequential from 1.
    Column("number", Integer, primary_key=True, autoincrement=True),
    Column("subject", Text, nullable=False),
    # The subject without reply prefixes and ticket tags, for matching.
    Column("subject_key", Text, nullable=False),
    Column("requester", String(320), nullable=False),
    Column("requester_name", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("language", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("first_response_due", UtcDateTime),
    Column("first_response_at", UtcDateTime),
    Column("owner", String(320)),
    # The earlier ticket this one continues: a reply came after the old one was closed too long.
    Column("linked_ticket", Integer),
    # Set on a ticket merged into another; threading then follows it to that ticket.
    Column("merged_into", Integer),
    Column("closed_at", UtcDateTime),
    # When the status last changed, for closing pending tickets after a while.
    Column("status_changed_at", UtcDateTime),
    # When erasure or retention removed the requester's personal data; the row stays for counts.
    Column("redacted_at", UtcDateTime),
    Index("ix_tickets_status", "status"),
    Index("ix_tickets_requester", "requester"),
    # For the measured first-response estimate, which reads a month of one priority.
    Index("ix_tickets_priority_created", "priority", "created_at"),
    # AUTOINCREMENT keeps SQLite from reusing the number of a deleted ticket.
    sqlite_autoincrement=True,
)

ticket_tags = Table(
    "ticket_tags",
    metadata,
    Column("ticket", Integer, ForeignKey("tickets.number", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(64), primary_key=True),
)

# Everyone besides the requester who took part in a ticket (Cc and other To
# addresses), so a subject tag from them may join the ticket.
ticket_participants = Table(
    "ticket_participants",
    metadata,
    Column("ticket", Integer, ForeignKey("tickets.number", ondelete="CASCADE"), primary_key=True),
    Column("address", String(320), primary_key=True),
)

MESSAGE_DIRECTIONS = ("inbound", "agent", "auto")
# What a message is. Messages on no ticket are of the kinds "bounce", "robot",
# "quarantined" (could not be parsed or stored normally) or "internal" (agent
# mail with no customer in it).
MESSAGE_KINDS = ("customer", "agent", "auto", "bounce", "robot", "quarantined", "internal")

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket", Integer, ForeignKey("tickets.number", ondelete="SET NULL")),
    Column("direction", String(16), nullable=False),
    Column("kind", String(16)),
    # Unique per stored message: "mid:<Message-ID>", "mid:<Message-ID>#<hash>" for a
    # different mail that reuses a known Message-ID, or "hash:<content hash>".
    Column("dedupe_key", String(1024), nullable=False, unique=True),
    Column("message_id", String(998)),
    Column("content_hash", String(64), nullable=False),
    Column("in_reply_to", Text, nullable=False, default=""),
    Column("references", Text, nullable=False, default=""),
    Column("from_addr", String(320), nullable=False, default=""),
    Column("from_name", Text, nullable=False, default=""),
    Column("to_addrs", Text, nullable=False, default="[]"),
    Column("cc_addrs", Text, nullable=False, default="[]"),
    Column("reply_to", Text, nullable=False, default="[]"),
    Column("subject", Text, nullable=False, default=""),
    Column("date", UtcDateTime),
    Column("received_at", UtcDateTime),
    Column("stored_at", UtcDateTime, nullable=False),
    Column("text", Text, nullable=False, default=""),
    Column("raw_sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("folder", Text),
    Column("uid", Integer),
    # Which rule joined the message to its ticket ("in-reply-to", "references", ...).
    Column("thread_rule", String(32)),
    Column("thread_index_guid", String(44)),
    Column("failed_recipient", String(320)),
    # Free text: the parse error of a quarantined message, the robot reason, and so on.
    Column("reason", Text),
    Column("autoreply_suppressed", String(32)),
    Column("defects", Text, nullable=False, default="[]"),
    # The text without quoted history and signature (maildesk.quotes); "" in rows stored
    # before it existed, where readers fall back to ``text``.
    Column("visible_text", Text, nullable=False, default=""),
    # Keywords and flags maildesk set on the IMAP copy (JSON list); NULL before the first time.
    Column("imap_keywords", Text),
    # The folder a message came from before maildesk moved it to the closed-ticket folder.
    Column("moved_from", Text),
    # Commands found in an agent's mail, with their outcome (JSON list of objects).
    Column("commands", Text, nullable=False, default="[]"),
    # When an erasure or retention removed personal data from this kept message.
    # raw_sha256 is then "" if the raw file was removed too.
    Column("redacted_at", UtcDateTime),
    Index("ix_messages_message_id", "message_id"),
    Index("ix_messages_ticket", "ticket"),
    Index("ix_messages_thread_index", "thread_index_guid"),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message", Integer, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("filename", Text, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("inline", Boolean, nullable=False, default=False),
    Column("content_id", Text),
    # Name of the file under [storage] path; generated, never the sender's name.
    Column("sha256", String(64), nullable=False),
    Index("ix_attachments_message", "message"),
)

# Internal notes on a ticket: shown to agents, never sent to the customer.
ticket_notes = Table(
    "ticket_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket", Integer, ForeignKey("tickets.number", ondelete="CASCADE"), nullable=False),
    Column("author", String(320), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The stored message the note came from, or NULL for a note from the command line.
    Column("message", Integer, ForeignKey("messages.id", ondelete="SET NULL")),
    Index("ix_ticket_notes_ticket", "ticket"),
)

# Columns that name files under [storage] path, by FileStore kind. Erasure and
# retention delete a stored file only when no row names it in these columns,
# so a new column that refers to stored files must be listed here.
STORED_FILE_COLUMNS = {
    "raw": (messages.c.raw_sha256,),
    "attachments": (attachments.c.sha256,),
}

# Addresses an auto-reply bounced for: no auto-reply goes to them for a while.
bounced_recipients = Table(
    "bounced_recipients",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("bounced_at", UtcDateTime, nullable=False),
    # The Message-ID of the auto-reply that bounced.
    Column("message_id", String(998)),
)

OUTBOX_STATUSES = ("queued", "sending", "sent", "failed")

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket", Integer, ForeignKey("tickets.number", ondelete="SET NULL")),
    Column("kind", String(32), nullable=False),
    Column("message_id", String(998), nullable=False, unique=True),
    Column("recipient", String(320), nullable=False),
    Column("to_addrs", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("headers", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("claimed_at", UtcDateTime),
    Column("sent_at", UtcDateTime),
    # The copy in the Sent folder: "pending", "copying" (APPEND under way), "done",
    # "failed" or "off".
    Column("sent_copy", String(16), nullable=False, default="pending"),
    Index("ix_outbox_status", "status", "next_attempt_at"),
    Index("ix_outbox_recipient", "recipient", "created_at"),
    # For the per-domain and global reply limits, which count a recent time window.
    Index("ix_outbox_created", "created_at"),
)

folders = Table(
    "folders",
    metadata,
    Column("name", Text, primary_key=True),
    Column("uidvalidity", Integer, nullable=False),
    Column("last_uid", Integer, nullable=False),
    Column("last_sync_at", UtcDateTime),
    # Highest UID of the first-start import, which gets no auto-replies; an
    # interrupted import is finished by the next run up to this UID.
    Column("import_until", Integer),
)

# The last failed sync of a folder, for ``maildesk status``; the row is deleted
# when the folder syncs again. Kept apart from ``folders``, whose row must not
# exist before a folder's first successful sync.
folder_errors = Table(
    "folder_errors",
    metadata,
    Column("name", Text, primary_key=True),
    Column("error", Text, nullable=False),
    Column("first_failed_at", UtcDateTime, nullable=False),
    Column("last_failed_at", UtcDateTime, nullable=False),
    Column("failures", Integer, nullable=False),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)


def sqlite_path(url: str) -> Path | None:
    """Return the file of a ``sqlite:///`` URL, or None for other databases."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        return Path(url[len(prefix):])
    return None


# Prepared statements that Python's sqlite3 keeps per connection (its default is
# 128). Ingest and sending run about 20 distinct statements per message. Batch
# lookups with IN lists of varying length are each prepared once and take up to
# about 60 KB. After a first import of 20,000 messages the default cache used
# 5.6 MiB and a cache of 32 used 1.2 MiB, at the same speed (2 cores, SQLite 3.40).
SQLITE_CACHED_STATEMENTS = 32


def make_engine(url: str) -> Engine:
    """Create an engine; for SQLite, use WAL mode and a busy timeout.

    WAL lets the command line read while the daemon writes, and the busy
    timeout makes a writer wait for another instead of failing at once.
    """
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # SQLite would create the file with the umask's mode and gives its -wal
        # and -shm files the mode of the database file, so create it private.
        # Only when it is missing: closing any descriptor of the file drops every
        # POSIX lock this process holds on it, SQLite's included, and another
        # process may then delete the WAL under this process's open connections.
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    connect_args = {"timeout": 30, "cached_statements": SQLITE_CACHED_STATEMENTS}
    engine = create_engine(url, connect_args=connect_args if path is not None else {})
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: object, connection_record: object) -> None:
    # Python 3.11's sqlite3 opens transactions itself and breaks SAVEPOINT;
    # turn that off and let SQLAlchemy's "begin" event issue BEGIN instead.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted rows are overwritten with zeros instead of lingering in free
    # pages, so erasure and retention leave no copy in the database file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so a second writer waits for the
    # busy timeout instead of failing when a read transaction tries to upgrade.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
