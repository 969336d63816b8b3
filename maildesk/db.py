"""Database schema and engine set-up (SQLAlchemy Core).

The tables are defined here once; Alembic migrations under
``maildesk/migrations`` create and change them. Times are stored as ISO 8601
text in UTC, so the SQLite file stays readable with the sqlite3 shell.
"""

from __future__ import annotations

import logging
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
    Index("ix_tickets_status", "status"),
    Index("ix_tickets_requester", "requester"),
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
    # "pending", "done", "failed" or "off" for the copy in the Sent folder.
    Column("sent_copy", String(16), nullable=False, default="pending"),
    Index("ix_outbox_status", "status", "next_attempt_at"),
    Index("ix_outbox_recipient", "recipient", "created_at"),
)

folders = Table(
    "folders",
    metadata,
    Column("name", Text, primary_key=True),
    Column("uidvalidity", Integer, nullable=False),
    Column("last_uid", Integer, nullable=False),
    Column("last_sync_at", UtcDateTime),
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


def make_engine(url: str) -> Engine:
    """Create an engine; for SQLite, use WAL mode and a busy timeout.

    WAL lets the command line read while the daemon writes, and the busy
    timeout makes a writer wait for another instead of failing at once.
    """
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = create_engine(url, connect_args={"timeout": 30} if path is not None else {})
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
    cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so a second writer waits for the
    # busy timeout instead of failing when a read transaction tries to upgrade.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
