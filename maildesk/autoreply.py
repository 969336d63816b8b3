"""Whether a new ticket gets an auto-reply, and queueing it in the outbox.

The reply row is inserted on the caller's connection, inside the transaction
that creates the ticket, so a ticket and its reply commit together.
"""

from __future__ import annotations

import json
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import Connection

from maildesk import repository as repo
from maildesk.config import Config
from maildesk.loopguard import suppression_reason
from maildesk.message import Address, IncomingMessage, ParsedMessage
from maildesk.replies import build_new_ticket_reply


class AutoReplier:
    """The auto-reply decisions of one desk."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def suppression_reason(
        self,
        connection: Connection,
        item: IncomingMessage,
        parsed: ParsedMessage,
        customer: Address,
        now: datetime,
        *,
        autoreply: bool,
        check_age: bool,
        rule_autoreply: bool,
    ) -> str | None:
        """Return why ``parsed`` gets no reply (a loop-guard reason code), or None to reply."""
        if not autoreply:
            return "import"
        sent_at = item.received_at or parsed.date or parsed.received_header_date
        return suppression_reason(
            parsed,
            customer.addr,
            self.config,
            age=(now - sent_at) if sent_at else None,
            check_age=check_age,
            rule_autoreply=rule_autoreply,
            replied_recently=repo.replied_recently(
                connection, customer.addr, now - self.config.autoreply.per_sender_window
            ),
        )

    def queue_new_ticket_reply(
        self,
        connection: Connection,
        ticket: int,
        parsed: ParsedMessage,
        customer: Address,
        priority: str,
        now: datetime,
        secret: bytes,
    ) -> int:
        """Render the new-ticket reply and insert it into the outbox; return the row id."""
        reply = build_new_ticket_reply(
            config=self.config,
            ticket_number=ticket,
            subject=parsed.subject,
            priority=priority,
            customer=customer,
            message=parsed,
            language=self.config.language,
            now=now,
            secret=secret,
        )
        return self.insert(connection, reply, ticket=ticket, kind="new_ticket", recipient=customer.addr, now=now)

    def insert(
        self,
        connection: Connection,
        reply: EmailMessage,
        *,
        ticket: int | None,
        kind: str,
        recipient: str,
        now: datetime,
    ) -> int:
        """Insert a rendered mail into the outbox, queued for the next outbox pass."""
        sent_copy = self.config.mailbox is not None and self.config.mailbox.append_to_sent
        return repo.insert_outbox(
            connection,
            ticket=ticket,
            kind=kind,
            message_id=str(reply["Message-ID"]).strip("<>"),
            recipient=recipient,
            to_addrs=repo.json_list([recipient]),
            subject=str(reply["Subject"]),
            headers=json.dumps({name: str(value) for name, value in reply.items()}, ensure_ascii=False),
            raw=reply.as_bytes(),
            status="queued",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            sent_copy="pending" if sent_copy else "off",
        )
