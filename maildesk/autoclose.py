"""Close tickets that have waited on the customer too long.

A ticket is pending after an agent's answer. When the customer has not
replied within ``[agents] auto_close_after``, the ticket is closed; with
``auto_close_notice`` the customer gets the ``auto_close`` template in the
ticket's language, threaded under the conversation. A later reply from the
customer reopens the ticket as usual, or opens a linked new ticket after
``[threading] reopen_limit``.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from maildesk import mailtemplates
from maildesk import repository as repo
from maildesk.autoreply import AutoReplier
from maildesk.config import Config
from maildesk.db import tickets
from maildesk.loopguard import is_robot_address
from maildesk.message import Address
from maildesk.replies import MAX_REFERENCES, make_message_id, reply_subject

if TYPE_CHECKING:
    from maildesk.service import Desk

log = logging.getLogger(__name__)

TEMPLATE = "auto_close"
# Printable US-ASCII without angle brackets: ids that can be written back into References.
_HEADER_SAFE_ID = re.compile(r"^[!-;=?-~]+$")


def close_stale(config: Config, connection: Connection, now: datetime) -> list[int]:
    """Close the pending tickets older than ``auto_close_after``; return their numbers."""
    after = config.agent_settings.auto_close_after
    if not after:
        return []
    pending_since = func.coalesce(tickets.c.status_changed_at, tickets.c.updated_at)
    rows = connection.execute(
        select(tickets).where(
            tickets.c.status == "pending",
            tickets.c.merged_into.is_(None),
            pending_since <= now - after,
        ).order_by(tickets.c.number)
    ).all()
    closed = []
    for row in rows:
        repo.set_status(connection, row.number, "closed", now)
        closed.append(row.number)
        if config.agent_settings.auto_close_notice:
            _queue_notice(connection, config, row, now)
    if closed:
        log.info(
            "closed %d tickets pending longer than %s: %s",
            len(closed), after, ", ".join(str(n) for n in closed),
        )
    return closed


def _queue_notice(connection: Connection, config: Config, ticket: Any, now: datetime) -> None:
    requester = ticket.requester
    if is_robot_address(requester) or config.is_own(requester) or config.is_agent(requester):
        log.info("no closing notice for ticket %s: %s gets no automatic mail", ticket.number, requester)
        return
    ids = [
        row.message_id for row in repo.ticket_messages(connection, ticket.number)
        if row.message_id and _HEADER_SAFE_ID.match(row.message_id)
    ]
    context = {
        "desk_name": config.name,
        "ticket_number": ticket.number,
        "subject": ticket.subject,
        "reply_subject": reply_subject(ticket.subject, ticket.number),
        "customer_name": ticket.requester_name,
        "support_address": config.support_address,
        "days": config.agent_settings.auto_close_after.days,
    }
    subject, body, language = mailtemplates.render(config, TEMPLATE, ticket.language, context)
    mail = mailtemplates.build_mail(
        config, to=Address(requester, ticket.requester_name), subject=subject, body=body,
        language=language, now=now,
        message_id=make_message_id(ticket.number, config.support_domain, repo.message_id_secret(connection)),
        in_reply_to=ids[-1] if ids else None,
        references=tuple(ids[-MAX_REFERENCES:]),
    )
    AutoReplier(config).insert(connection, mail, ticket=ticket.number, kind=TEMPLATE, recipient=requester, now=now)


def job(desk: Desk, now: datetime) -> None:
    """Periodic job: close stale pending tickets."""
    with desk.engine.begin() as connection:
        close_stale(desk.config, connection, now)
