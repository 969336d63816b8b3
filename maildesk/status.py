"""``maildesk status``: what ops need to know, and whether anything needs attention.

The report is read from the database only, so it works while the daemon
runs and also shows a daemon that has stopped (its folders go stale).
Something needs attention when:

- a configured folder was never synced, or its last successful sync is
  older than three poll intervals (at least 15 minutes);
- a folder's last sync failed (``folder_errors``);
- a reply failed for a reason other than a bounce within the last 24 hours;
- a reply has been queued for more than an hour, or has been "sending" for
  more than 10 minutes.

Overdue tickets are listed too, but count as needing attention only when the
caller asks for it (``--strict``), since they are the agents' work and not a
fault of the service.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from maildesk.config import PRIORITIES, Config
from maildesk.db import folder_errors, folders, outbox, tickets

MIN_STALE_AFTER = timedelta(minutes=15)
STALE_POLL_INTERVALS = 3
FAILURE_WINDOW = timedelta(hours=24)
QUEUED_TOO_LONG = timedelta(hours=1)
SENDING_TOO_LONG = timedelta(minutes=10)
# Failed outbox rows whose last_error starts with this were bounced by the recipient's server.
BOUNCE_PREFIX = "bounced"


@dataclass
class FolderStatus:
    name: str
    last_sync_at: str | None
    error: str | None = None
    failing_since: str | None = None
    failures: int = 0
    # Highest UID stored, and the UID where an unfinished first import ends (else None).
    last_uid: int | None = None
    import_until: int | None = None


@dataclass
class FailedReply:
    id: int
    ticket: int | None
    to: list[str]
    last_error: str | None
    failed_at: str | None


@dataclass
class StatusReport:
    """The whole report; ``as_json`` gives its public JSON form."""

    checked_at: str
    folders: list[FolderStatus] = field(default_factory=list)
    outbox_queued: int = 0
    outbox_sending: int = 0
    outbox_oldest_queued_at: str | None = None
    outbox_failed: list[FailedReply] = field(default_factory=list)
    open_tickets: dict[str, int] = field(default_factory=dict)
    overdue_tickets: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def collect_status(
    connection: Connection, config: Config, now: datetime, *, strict: bool = False
) -> StatusReport:
    """Read the state of the desk and list what needs attention."""
    report = StatusReport(checked_at=_iso(now))
    if config.mailbox is not None:
        stale_after = max(
            MIN_STALE_AFTER, timedelta(seconds=STALE_POLL_INTERVALS * config.mailbox.poll_interval)
        )
        _check_folders(connection, report, config.mailbox.folders, now, stale_after)
    _check_outbox(connection, report, now)
    _count_tickets(connection, report, now)
    if strict and report.overdue_tickets:
        report.problems.append(
            f"{len(report.overdue_tickets)} tickets are past their first-answer time"
        )
    return report


def _check_folders(
    connection: Connection,
    report: StatusReport,
    names: Sequence[str],
    now: datetime,
    stale_after: timedelta,
) -> None:
    synced = {row.name: row for row in connection.execute(select(folders))}
    errors = {row.name: row for row in connection.execute(select(folder_errors))}
    for name in names:
        row = synced.get(name)
        last = row.last_sync_at if row is not None else None
        status = FolderStatus(name=name, last_sync_at=_iso(last))
        if row is not None:
            status.last_uid = row.last_uid
            if row.import_until is not None and row.last_uid < row.import_until:
                status.import_until = row.import_until
        error = errors.get(name)
        if error is not None:
            status.error = error.error
            status.failing_since = _iso(error.first_failed_at)
            status.failures = error.failures
            report.problems.append(
                f"folder {name}: sync failing since {status.failing_since} "
                f"({error.failures} attempts): {error.error}"
            )
        elif last is None:
            report.problems.append(f"folder {name}: never synced")
        elif now - last > stale_after:
            report.problems.append(
                f"folder {name}: last successful sync {_ago(now - last)} ago; "
                "is maildesk run running?"
            )
        report.folders.append(status)


def _check_outbox(connection: Connection, report: StatusReport, now: datetime) -> None:
    counts = dict(
        connection.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status)
        ).all()
    )
    report.outbox_queued = counts.get("queued", 0)
    report.outbox_sending = counts.get("sending", 0)
    oldest = connection.execute(
        select(func.min(outbox.c.created_at)).where(outbox.c.status == "queued")
    ).scalar()
    report.outbox_oldest_queued_at = _iso(oldest)
    if oldest is not None and now - oldest > QUEUED_TOO_LONG:
        report.problems.append(
            f"outbox: {report.outbox_queued} replies queued, the oldest for {_ago(now - oldest)}"
        )
    stuck = connection.execute(
        select(func.count())
        .select_from(outbox)
        .where(outbox.c.status == "sending", outbox.c.claimed_at < now - SENDING_TOO_LONG)
    ).scalar_one()
    if stuck:
        report.problems.append(
            f"outbox: {stuck} replies have been sending for more than "
            f"{_ago(SENDING_TOO_LONG)}; is a maildesk process hanging?"
        )
    rows = connection.execute(
        select(outbox)
        .where(
            outbox.c.status == "failed",
            or_(outbox.c.last_error.is_(None), ~outbox.c.last_error.startswith(BOUNCE_PREFIX)),
            and_(outbox.c.claimed_at.is_not(None), outbox.c.claimed_at >= now - FAILURE_WINDOW),
        )
        .order_by(outbox.c.id)
    ).all()
    for row in rows:
        report.outbox_failed.append(
            FailedReply(row.id, row.ticket, json.loads(row.to_addrs), row.last_error, _iso(row.claimed_at))
        )
    if rows:
        report.problems.append(
            f"outbox: {len(rows)} replies failed in the last {_ago(FAILURE_WINDOW)} "
            "and are not retried (see maildesk outbox list)"
        )


def _count_tickets(connection: Connection, report: StatusReport, now: datetime) -> None:
    counts = dict(
        connection.execute(
            select(tickets.c.priority, func.count())
            .where(tickets.c.status != "closed")
            .group_by(tickets.c.priority)
        ).all()
    )
    report.open_tickets = {priority: counts.get(priority, 0) for priority in reversed(PRIORITIES)}
    report.overdue_tickets = list(
        connection.execute(
            select(tickets.c.number)
            .where(
                tickets.c.status.in_(("new", "open")),
                tickets.c.first_response_at.is_(None),
                tickets.c.first_response_due < now,
            )
            .order_by(tickets.c.first_response_due)
        ).scalars()
    )


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else None


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
