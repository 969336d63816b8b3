"""The notice to an agent who answers a customer mail that another agent already answered.

Two people answering the same customer one after the other is what makes
customers get different promises. When an agent's reply is stored and a
different agent already replied to the same customer mail, the later agent
gets a short mail in the desk's language: who answered, when, and the first
lines of that answer. The notice goes through the outbox like every other
mail maildesk sends, and it is not copied to the Sent folder.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select, update

from maildesk import mailtemplates
from maildesk import repository as repo
from maildesk.autoreply import AutoReplier
from maildesk.config import Config
from maildesk.db import outbox
from maildesk.mailcommands import QUOTE_START
from maildesk.message import Address
from maildesk.quotes import visible_text
from maildesk.replies import make_message_id
from maildesk.timephrase import format_moment

log = logging.getLogger(__name__)

TEMPLATE = "agent_notice"
EXCERPT_LINES = 5
EXCERPT_LINE_LENGTH = 200


def earlier_answer(rows: list[Any], message_row: int, agent: str, in_reply_to: tuple[str, ...]) -> Any | None:
    """Return another agent's answer to the customer mail that ``message_row`` answers, or None.

    ``rows`` are the ticket's messages in stored order. The answered mail is
    the inbound customer mail that In-Reply-To names, else the newest one
    stored before the reply.
    """
    before = [row for row in rows if row.id < message_row]
    customer_mails = [row for row in before if row.direction == "inbound" and row.kind == "customer"]
    answered = next((row for row in customer_mails if row.message_id in in_reply_to), None)
    if answered is None and customer_mails:
        answered = customer_mails[-1]
    if answered is None:
        return None
    for row in before:
        if row.id > answered.id and row.kind == "agent" and row.from_addr and row.from_addr != agent:
            return row
    return None


def excerpt(text: str) -> str:
    """Return the first lines of an answer, without blank lines, quoted history and signature."""
    lines: list[str] = []
    for line in visible_text(text).splitlines():
        if QUOTE_START.match(line):
            break
        if line.strip():
            lines.append(line.strip()[:EXCERPT_LINE_LENGTH])
        if len(lines) == EXCERPT_LINES:
            break
    return "\n".join(lines)


def queue_notice(
    connection: Connection,
    config: Config,
    replier: AutoReplier,
    *,
    ticket: int,
    message_row: int,
    agent: Address,
    in_reply_to: tuple[str, ...],
    now: datetime,
    secret: bytes,
) -> int | None:
    """Queue the notice for ``agent`` when another agent already answered; return the outbox id."""
    rows = repo.ticket_messages(connection, ticket)
    first = earlier_answer(rows, message_row, agent.addr, in_reply_to)
    if first is None or _already_noticed(connection, ticket, agent.addr, first.stored_at):
        return None
    ticket_row = repo.ticket_row(connection, ticket)
    answered_at = first.date or first.received_at or first.stored_at
    context = {
        "desk_name": config.name,
        "ticket_number": ticket,
        "subject": ticket_row.subject,
        "customer": ticket_row.requester,
        "first_agent": first.from_addr,
        "first_agent_name": first.from_name or first.from_addr,
        "answered_at": format_moment(answered_at, config.language, ZoneInfo(config.hours.time_zone), now),
        "excerpt": excerpt(first.text),
    }
    subject, body, language = mailtemplates.render(config, TEMPLATE, config.language, context)
    mail = mailtemplates.build_mail(
        config, to=agent, subject=subject, body=body, language=language, now=now,
        message_id=make_message_id(ticket, config.support_domain, secret),
    )
    outbox_id = replier.insert(
        connection, mail, ticket=ticket, kind=TEMPLATE, recipient=agent.addr, now=now
    )
    # Agents read notices in their own inbox; a copy in the shared Sent folder would be noise.
    connection.execute(update(outbox).where(outbox.c.id == outbox_id).values(sent_copy="off"))
    log.info(
        "second-agent notice queued for %s on ticket %s (first answer by %s)",
        agent.addr, ticket, first.from_addr,
    )
    return outbox_id


def _already_noticed(connection: Connection, ticket: int, agent: str, since: datetime) -> bool:
    count = connection.execute(
        select(func.count()).select_from(outbox).where(
            outbox.c.ticket == ticket,
            outbox.c.kind == TEMPLATE,
            outbox.c.recipient == agent,
            outbox.c.created_at >= since,
        )
    ).scalar_one()
    return count > 0
