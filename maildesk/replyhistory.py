"""Reads and writes of stored state that the auto-reply decisions need.

Every function takes an open connection inside the caller's transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, insert, select, update

from maildesk.businesstime import BusinessCalendar
from maildesk.db import bounced_recipients, messages, outbox, tickets
from maildesk.loopguard import ReplyHistory


def reply_history(
    connection: Connection,
    *,
    recipient: str,
    ticket: int | None,
    now: datetime,
    domain_since: datetime,
    global_since: datetime,
    bounced_since: datetime,
    is_agent: Callable[[str], bool],
) -> ReplyHistory:
    """Count the desk's earlier mail for the rate limits, leaving out mail to agents."""
    domain = recipient.rpartition("@")[2]
    # Rows are counted here rather than with GROUP BY recipient: with it, SQLite scans
    # the whole (recipient, created_at) index instead of the created_at range, about
    # 20 ms per new ticket with 100,000 stored replies (SQLite 3.40).
    to_domain = Counter(
        connection.execute(
            select(outbox.c.recipient).where(
                outbox.c.recipient.endswith(f"@{domain}", autoescape=True),
                outbox.c.created_at > domain_since,
            )
        ).scalars()
    )
    recent = Counter(
        connection.execute(select(outbox.c.recipient).where(outbox.c.created_at > global_since)).scalars()
    )
    on_ticket: list[tuple[str, int]] = []
    if ticket is not None:
        on_ticket = [
            (row[0], row[1])
            for row in connection.execute(
                select(outbox.c.recipient, func.count())
                .where(outbox.c.ticket == ticket)
                .group_by(outbox.c.recipient)
            )
        ]

    def customers(rows: list[tuple[str, int]]) -> int:
        return sum(count for address, count in rows if not is_agent(address))

    return ReplyHistory(
        to_domain=customers(list(to_domain.items())),
        total=customers(list(recent.items())),
        on_ticket=customers(on_ticket),
        bounced=hard_bounced(connection, recipient, bounced_since),
    )


def replied_since(connection: Connection, recipient: str, since: datetime) -> bool:
    """Return whether any mail to ``recipient`` was queued after ``since``."""
    count = connection.execute(
        select(func.count())
        .select_from(outbox)
        .where(outbox.c.recipient == recipient, outbox.c.created_at > since)
    ).scalar_one()
    return count > 0


def hard_bounced(connection: Connection, address: str, since: datetime) -> bool:
    """Return whether mail to ``address`` bounced permanently after ``since``."""
    bounced_at = connection.execute(
        select(bounced_recipients.c.bounced_at).where(bounced_recipients.c.address == address)
    ).scalar()
    return bounced_at is not None and bounced_at > since


def record_bounce(
    connection: Connection, address: str, now: datetime, message_id: str | None
) -> None:
    """Store that mail to ``address`` bounced permanently at ``now``."""
    values = {"bounced_at": now, "message_id": message_id}
    result = connection.execute(
        update(bounced_recipients).where(bounced_recipients.c.address == address).values(**values)
    )
    if result.rowcount == 0:
        connection.execute(insert(bounced_recipients).values(address=address, **values))


def first_response_samples(
    connection: Connection,
    calendar: BusinessCalendar,
    *,
    priority: str,
    since: datetime,
    now: datetime,
) -> list[timedelta]:
    """Return the first-response times in open hours of tickets of ``priority`` since ``since``.

    An answered ticket counts with the open time from its creation to its first answer.
    An unanswered ticket that is past its due time counts with its open age so far,
    which is less than its real first-response time, so a backlog raises the measure
    only as far as it is known. Other unanswered tickets are left out, because nothing
    is known about them yet, and so are tickets answered when they were created
    (opened by an agent's own mail).
    """
    rows = connection.execute(
        select(
            tickets.c.created_at, tickets.c.first_response_at, tickets.c.first_response_due,
            tickets.c.status,
        ).where(
            tickets.c.priority == priority,
            tickets.c.created_at >= since,
            tickets.c.created_at < now,
        )
    ).all()
    samples = []
    for row in rows:
        if row.first_response_at is not None:
            if row.first_response_at > row.created_at:
                samples.append(calendar.working_time_between(row.created_at, row.first_response_at))
        elif (
            row.status != "closed"
            and row.first_response_due is not None
            and row.first_response_due < now
        ):
            samples.append(calendar.working_time_between(row.created_at, now))

    return samples


def earlier_ticket_language(connection: Connection, requester: str) -> str | None:
    """Return the language of the newest ticket of ``requester``, or None when there is none."""
    return connection.execute(
        select(tickets.c.language)
        .where(tickets.c.requester == requester)
        .order_by(tickets.c.number.desc())
        .limit(1)
    ).scalar()


def last_customer_message(connection: Connection, ticket: int):  # type: ignore[no-untyped-def]
    """Return the newest customer message of ``ticket`` (a row), or None."""
    return connection.execute(
        select(messages.c.message_id, messages.c.references)
        .where(messages.c.ticket == ticket, messages.c.kind == "customer")
        .order_by(messages.c.id.desc())
        .limit(1)
    ).first()
