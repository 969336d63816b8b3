"""The overdue digest: one mail to the agents listing what is about to be lost.

At each time of ``[digest] times`` on a business day of ``[hours]`` (public
holidays and closed dates excluded), agents get one mail with three lists:
tickets whose first answer is overdue, tickets waiting on an agent the
longest, and tickets with no owner. Each line has the number, subject,
customer, age and priority. No mail goes out when all three are empty.
The last time slot handled is stored, so a restart sends no second digest
for the same slot, and a slot missed by more than an hour is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, insert, select, update

from maildesk import mailtemplates
from maildesk.autoreply import AutoReplier
from maildesk.businesstime import calendar_for
from maildesk.config import Config
from maildesk.db import outbox, settings, tickets
from maildesk.message import Address

if TYPE_CHECKING:
    from maildesk.service import Desk

log = logging.getLogger(__name__)

TEMPLATE = "digest"
SLOT_KEY = "digest_last_slot"
# A slot is still sent this long after its time, for a daemon that was briefly down.
MAX_LATE = timedelta(hours=1)
# Lines per list, so a desk far behind gets a readable mail.
MAX_LINES = 20
_WAITING = ("new", "open")


@dataclass
class DigestContent:
    overdue: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    unowned: list[dict[str, Any]] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.overdue or self.waiting or self.unowned)


def due_slot(config: Config, now: datetime) -> datetime | None:
    """Return the latest digest time at or before ``now`` today, or None when none is due."""
    if not config.digest.times:
        return None
    zone = ZoneInfo(config.hours.time_zone)
    local = now.astimezone(zone)
    if calendar_for(config.hours).is_closed_day(local.date()):
        return None
    slots = [
        datetime.combine(local.date(), moment, tzinfo=zone)
        for moment in config.digest.times
        if datetime.combine(local.date(), moment, tzinfo=zone) <= local
    ]
    if not slots or local - max(slots) > MAX_LATE:
        return None
    return max(slots)


def format_age(age: timedelta, language: str) -> str:
    """Return ``age`` as days and hours the way ``language`` abbreviates them ("2 pv 3 h")."""
    days, seconds = divmod(max(int(age.total_seconds()), 0), 86400)
    hours = seconds // 3600
    day_unit = {"fi": "pv", "sv": "d"}.get(language, "d")
    if days:
        return f"{days} {day_unit} {hours} h"
    minutes = (seconds % 3600) // 60
    return f"{hours} h {minutes} min"


def collect(connection: Connection, config: Config, now: datetime) -> DigestContent:
    """Return the three lists of the digest at ``now``."""
    live = tickets.c.merged_into.is_(None)
    overdue = connection.execute(
        select(tickets)
        .where(
            live,
            tickets.c.status.in_(_WAITING),
            tickets.c.first_response_at.is_(None),
            tickets.c.first_response_due < now,
        )
        .order_by(tickets.c.first_response_due)
        .limit(MAX_LINES)
    ).all()
    waiting_since = func.coalesce(tickets.c.status_changed_at, tickets.c.created_at)
    waiting = connection.execute(
        select(tickets)
        .where(live, tickets.c.status.in_(_WAITING))
        .order_by(waiting_since, tickets.c.number)
        .limit(MAX_LINES)
    ).all()
    unowned = connection.execute(
        select(tickets)
        .where(live, tickets.c.status != "closed", tickets.c.owner.is_(None))
        .order_by(tickets.c.created_at, tickets.c.number)
        .limit(MAX_LINES)
    ).all()
    language = config.language
    return DigestContent(
        overdue=[_line(row, now, language, row.created_at) for row in overdue],
        waiting=[_line(row, now, language, row.status_changed_at or row.created_at) for row in waiting],
        unowned=[_line(row, now, language, row.created_at) for row in unowned],
    )


def _line(row: Any, now: datetime, language: str, since: datetime) -> dict[str, Any]:
    return {
        "number": row.number,
        "subject": row.subject,
        "customer": row.requester,
        "age": format_age(now - since, language),
        "priority": row.priority,
    }


def recipients(config: Config) -> tuple[str, ...]:
    """Return the digest's recipients: ``[digest] recipients``, else the listed agent addresses."""
    if config.digest.recipients:
        return config.digest.recipients
    return tuple(agent for agent in config.agents if not agent.startswith("@"))


def send_if_due(config: Config, connection: Connection, now: datetime) -> int:
    """Queue the digest when a slot is due and not yet handled; return how many mails were queued."""
    slot = due_slot(config, now)
    if slot is None or _last_slot(connection) >= slot:
        return 0
    _save_slot(connection, slot)
    content = collect(connection, config, now)
    if content.is_empty():
        log.info("digest for %s skipped: no overdue, waiting or unowned tickets", slot.isoformat())
        return 0
    addresses = recipients(config)
    if not addresses:
        log.warning("digest not sent: set [digest] recipients or list agents' addresses in desk.agents")
        return 0
    replier = AutoReplier(config)
    for address in addresses:
        _queue(connection, config, replier, address, content, slot, now)
    log.info(
        "digest queued for %d agents: %d overdue, %d waiting, %d without owner",
        len(addresses), len(content.overdue), len(content.waiting), len(content.unowned),
    )
    return len(addresses)


def _queue(
    connection: Connection,
    config: Config,
    replier: AutoReplier,
    address: str,
    content: DigestContent,
    slot: datetime,
    now: datetime,
) -> None:
    context = {
        "desk_name": config.name,
        "date": f"{slot.day}.{slot.month}.{slot.year}",
        "overdue": content.overdue,
        "waiting": content.waiting,
        "unowned": content.unowned,
    }
    subject, body, language = mailtemplates.render(config, TEMPLATE, config.language, context)
    mail = mailtemplates.build_mail(
        config, to=Address(address), subject=subject, body=body, language=language, now=now,
        message_id=mailtemplates.new_message_id(config),
    )
    row = replier.insert(connection, mail, ticket=None, kind=TEMPLATE, recipient=address, now=now)
    connection.execute(update(outbox).where(outbox.c.id == row).values(sent_copy="off"))


def _last_slot(connection: Connection) -> datetime:
    value = connection.execute(select(settings.c.value).where(settings.c.key == SLOT_KEY)).scalar()
    return datetime.fromisoformat(value.decode("ascii")) if value else datetime.min.replace(tzinfo=ZoneInfo("UTC"))


def _save_slot(connection: Connection, slot: datetime) -> None:
    value = slot.isoformat().encode("ascii")
    result = connection.execute(update(settings).where(settings.c.key == SLOT_KEY).values(value=value))
    if result.rowcount == 0:
        connection.execute(insert(settings).values(key=SLOT_KEY, value=value))


def job(desk: Desk, now: datetime) -> None:
    """Periodic job: queue the digest when one is due."""
    with desk.engine.begin() as connection:
        send_if_due(desk.config, connection, now)
