"""``maildesk sync --dry-run``: what a real sync would do, with nothing written or sent.

The real pipeline runs against a private copy. The database is copied with
SQLite's online backup API into a temporary folder, which also receives the
new stored files. The mailbox is read with the same read-only SELECT and
``BODY.PEEK[]`` as a real sync. The outbox is never sent. Afterwards the new
rows of the copy are the report, and the folder is deleted. The numbers of
new tickets are the ones a real sync started now would give.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from maildesk.backup import backup_database
from maildesk.config import Config
from maildesk.db import messages, outbox, sqlite_path, tickets
from maildesk.errors import MaildeskError
from maildesk.ingest import BatchStats

log = logging.getLogger(__name__)


@dataclass
class DryRunReport:
    """The new tickets, threaded messages, ticketless mail and replies of a trial sync."""

    stats: BatchStats
    new_tickets: list[dict[str, Any]] = field(default_factory=list)
    joined: list[dict[str, Any]] = field(default_factory=list)
    ticketless: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "stored": self.stats.stored,
            "duplicates": self.stats.duplicates,
            "quarantined": self.stats.quarantined,
            "new_tickets": self.new_tickets,
            "joined": self.joined,
            "ticketless": self.ticketless,
            "replies": self.replies,
            "suppressed": self.suppressed,
        }


def dry_run(config: Config) -> DryRunReport:
    """Sync the real mailbox into a throwaway copy of the desk and report what changed."""
    from maildesk.service import Desk

    config.require_mailbox()
    source = sqlite_path(config.database_url)
    if source is None:
        raise MaildeskError("sync --dry-run supports SQLite databases only")
    with tempfile.TemporaryDirectory(prefix="maildesk-dry-run-") as folder:
        trial = _trial_config(config, Path(folder))
        if source.exists():
            backup_database(config.database_url, Path(folder) / "maildesk.sqlite3")
        desk = Desk.open(trial)
        with desk.engine.connect() as connection:
            before = _high_marks(connection)
        stats = desk.mailbox_sync().sync_once()
        with desk.engine.connect() as connection:
            report = _report(connection, before, stats)
        desk.engine.dispose()
    return report


def _trial_config(config: Config, folder: Path) -> Config:
    return dataclasses.replace(
        config,
        state_dir=folder,
        database_url=f"sqlite:///{folder / 'maildesk.sqlite3'}",
        # New files go to the trial folder; stored files are not needed, because
        # a dry run only adds messages.
        storage_path=folder / "storage",
    )


def _high_marks(connection: Connection) -> dict[str, int]:
    return {
        "message": connection.execute(select(func.max(messages.c.id))).scalar() or 0,
        "ticket": connection.execute(select(func.max(tickets.c.number))).scalar() or 0,
        "outbox": connection.execute(select(func.max(outbox.c.id))).scalar() or 0,
    }


def _report(connection: Connection, before: dict[str, int], stats: BatchStats) -> DryRunReport:
    report = DryRunReport(stats=stats, suppressed=dict(stats.suppressed))
    for row in connection.execute(
        select(tickets).where(tickets.c.number > before["ticket"]).order_by(tickets.c.number)
    ):
        report.new_tickets.append(
            {
                "number": row.number,
                "subject": row.subject,
                "requester": row.requester,
                "priority": row.priority,
                "status": row.status,
            }
        )
    for row in connection.execute(
        select(messages).where(messages.c.id > before["message"]).order_by(messages.c.id)
    ):
        entry = {
            "folder": row.folder,
            "uid": row.uid,
            "from": row.from_addr,
            "subject": row.subject,
            "kind": row.kind,
        }
        if row.ticket is None:
            report.ticketless.append(dict(entry, reason=row.reason))
        elif row.ticket <= before["ticket"] or row.thread_rule != "new-ticket":
            report.joined.append(dict(entry, ticket=row.ticket, thread_rule=row.thread_rule))
    for row in connection.execute(
        select(outbox).where(outbox.c.id > before["outbox"]).order_by(outbox.c.id)
    ):
        report.replies.append(
            {
                "ticket": row.ticket,
                "kind": row.kind,
                "to": json.loads(row.to_addrs),
                "subject": row.subject,
            }
        )
    return report
