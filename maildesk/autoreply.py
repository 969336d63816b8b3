"""The auto-replies of one desk: whether a mail gets one, and queueing it in the outbox.

The decisions themselves are pure (:mod:`maildesk.loopguard`, :mod:`maildesk.language`,
:mod:`maildesk.businesstime`); this module reads the stored state they need and writes
the reply row. Every row is inserted on the caller's connection, inside the transaction
that changes the ticket, so a ticket and its reply commit together.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import Connection

from maildesk import replyhistory
from maildesk import repository as repo
from maildesk.businesstime import calendar_for, percentile
from maildesk.config import LANGUAGES, Config
from maildesk.faq import FaqAnswer, faq_answers
from maildesk.language import choose_language
from maildesk.loopguard import (
    ReplyHistory,
    limit_reason,
    recipient_reason,
    suppression_reason,
)
from maildesk.message import Address, IncomingMessage, ParsedMessage
from maildesk.quotes import visible_text
from maildesk.replies import build_reply
from maildesk.rules import apply_rules

logger = logging.getLogger(__name__)


# How long a measured first-response estimate is reused. Measuring scans a month of
# tickets, which per new ticket would make ingest slower the bigger the desk grows.
ESTIMATE_CACHE_TIME = timedelta(minutes=10)


class AutoReplier:
    """The auto-reply decisions and the outbox writes of one desk."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.calendar = calendar_for(config.hours)
        # Priority -> (when computed, estimate): the measured first-response time.
        self._estimates: dict[str, tuple[datetime, timedelta | None]] = {}

    # Ticket fields that the replies depend on

    def choose_language(self, connection: Connection, parsed: ParsedMessage, requester: str) -> str:
        """Return the language for a new ticket opened by ``parsed`` from ``requester``."""
        text = visible_text(parsed.text, parsed.subject)
        choice = choose_language(
            content_language=parsed.content_language or parsed.header("Content-Language"),
            text=f"{parsed.subject}\n{text}",
            supported=LANGUAGES,
            earlier=lambda: replyhistory.earlier_ticket_language(connection, requester),
            default=self.config.language,
        )
        logger.debug(
            "language %s chosen by %s (Message-ID=%s)",
            choice.language, choice.source, parsed.message_id,
        )
        return choice.language

    def first_response_due(self, created_at: datetime, priority: str) -> datetime | None:
        """Return when the first answer to a ticket of ``priority`` created at ``created_at`` is due.

        The target of ``[autoreply.targets]`` counts business time. None when the
        priority has no target.
        """
        target = self.config.autoreply.targets.get(priority)
        return self.calendar.due_time(created_at, target) if target is not None else None

    # Loop guard

    def reply_recipient(
        self, connection: Connection, parsed: ParsedMessage, customer: Address, now: datetime
    ) -> Address:
        """Return where a reply to ``parsed`` goes: its Reply-To, unless that is guarded.

        A Reply-To address that is a robot, the desk's own, an agent's, or one that
        bounced within ``hard_bounce_block`` is passed over, and the reply goes to
        ``customer`` (the sender, or the web form's customer).
        """
        for candidate in parsed.reply_to:
            address = candidate.addr
            if not address or address == customer.addr:
                continue
            if self._is_guarded(connection, address, now):
                logger.info(
                    "Reply-To %s passed over by the loop guard (Message-ID=%s)",
                    address, parsed.message_id,
                )
                continue
            return Address(address, candidate.name or customer.name)

        return customer

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
        ticket: int | None = None,
    ) -> str | None:
        """Return why ``parsed`` gets no reply (a loop-guard reason code), or None to reply.

        ``ticket`` is the ticket the reply would be on, for its cap; None for a new one.
        """
        if not autoreply:
            return "import"
        recipient = self.reply_recipient(connection, parsed, customer, now).addr
        sent_at = item.received_at or parsed.date or parsed.received_header_date
        settings = self.config.autoreply
        return suppression_reason(
            parsed,
            recipient,
            self.config,
            age=(now - sent_at) if sent_at else None,
            check_age=check_age,
            rule_autoreply=rule_autoreply,
            replied_recently=replyhistory.replied_since(
                connection, recipient, now - settings.per_sender_window
            ),
            history=self._history(connection, recipient, ticket, now),
        )

    # Queueing

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
        return self._queue_reply(
            connection, "new_ticket", ticket, parsed, customer, priority, now, secret
        )

    def queue_reopened_reply(
        self,
        connection: Connection,
        item: IncomingMessage,
        parsed: ParsedMessage,
        customer: Address,
        ticket: int,
        now: datetime,
        secret: bytes,
        *,
        autoreply: bool,
        check_age: bool,
    ) -> str | None:
        """Queue the reply to a customer mail that reopened closed ``ticket``.

        Every loop-guard rule applies, and the ticket's cap. Returns the suppression
        reason, or None when the reply was queued.
        """
        if not self.config.autoreply.reopened_reply:
            return "disabled"
        reason = self.suppression_reason(
            connection, item, parsed, customer, now,
            autoreply=autoreply, check_age=check_age,
            rule_autoreply=apply_rules(self.config.rules, parsed).autoreply, ticket=ticket,
        )
        if reason is not None:
            logger.info("no reopened reply on ticket %s: %s", ticket, reason)
            return reason

        priority = repo.ticket_row(connection, ticket).priority
        self._queue_reply(connection, "reopened", ticket, parsed, customer, priority, now, secret)
        return None

    def queue_closed_reply(
        self, connection: Connection, ticket: int, now: datetime, secret: bytes
    ) -> int | None:
        """Queue the closed-ticket reply to the requester of ``ticket`` when it is enabled.

        The recipient checks of the loop guard, the bounce block and the rate limits
        apply. Returns the outbox row id, or None when nothing was queued.
        """
        settings = self.config.autoreply
        if not (settings.enabled and settings.closed_reply):
            return None
        row = repo.ticket_row(connection, ticket)
        if row is None:
            raise ValueError(f"ticket {ticket} not found")
        reason = recipient_reason(row.requester, self.config) or limit_reason(
            self._history(connection, row.requester, ticket, now), settings
        )
        if reason is not None:
            logger.info("no closed reply on ticket %s: %s", ticket, reason)
            return None

        parent = replyhistory.last_customer_message(connection, ticket)
        reply = build_reply(
            self.config,
            "closed",
            ticket_number=ticket,
            subject=row.subject,
            priority=row.priority,
            recipient=Address(row.requester, row.requester_name),
            parent_id=parent.message_id if parent else None,
            references=tuple(parent.references.split()) if parent else (),
            language=row.language,
            now=now,
            secret=secret,
        )
        return self.insert(
            connection, reply, ticket=ticket, kind="closed", recipient=row.requester, now=now
        )

    def note_bounce(self, connection: Connection, parsed: ParsedMessage, now: datetime) -> None:
        """Block auto-replies to the recipients a bounce of one of our replies names as failed."""
        for address in parsed.failed_recipients:
            replyhistory.record_bounce(connection, address.lower(), now, parsed.bounced_message_id)
            logger.info(
                "auto-replies to %s blocked for %s after a hard bounce",
                address.lower(), self.config.autoreply.hard_bounce_block,
            )

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

    def measured_first_response(
        self, connection: Connection, priority: str, now: datetime
    ) -> timedelta | None:
        """Return the configured percentile of recent first-response times, or None.

        None when the estimate is off (``estimate_percentile = 0``) or fewer than
        ``estimate_min_tickets`` tickets of ``priority`` were measured.
        """
        settings = self.config.autoreply
        if settings.estimate_percentile == 0:
            return None
        cached = self._estimates.get(priority)
        if cached is not None and timedelta(0) <= now - cached[0] < ESTIMATE_CACHE_TIME:
            return cached[1]
        samples = replyhistory.first_response_samples(
            connection, self.calendar, priority=priority,
            since=now - settings.estimate_window, now=now,
        )
        estimate = None
        if len(samples) >= settings.estimate_min_tickets:
            estimate = percentile(samples, settings.estimate_percentile)
        self._estimates[priority] = (now, estimate)
        return estimate

    def _queue_reply(
        self,
        connection: Connection,
        kind: str,
        ticket: int,
        parsed: ParsedMessage,
        customer: Address,
        priority: str,
        now: datetime,
        secret: bytes,
    ) -> int:
        recipient = self.reply_recipient(connection, parsed, customer, now)
        row = repo.ticket_row(connection, ticket)
        language = row.language
        reply = build_reply(
            self.config,
            kind,
            ticket_number=ticket,
            subject=row.subject,
            priority=priority,
            recipient=recipient,
            parent_id=parsed.message_id,
            references=parsed.references,
            language=language,
            now=now,
            secret=secret,
            measured=self.measured_first_response(connection, priority, now),
            faq=self._faq(parsed, language) if kind == "new_ticket" else (),
        )
        return self.insert(
            connection, reply, ticket=ticket, kind=kind, recipient=recipient.addr, now=now
        )

    def _faq(self, parsed: ParsedMessage, language: str) -> list[FaqAnswer]:
        text = visible_text(parsed.text, parsed.subject)
        return faq_answers(self.config.autoreply.faq, parsed.subject, text, language)

    def _history(
        self, connection: Connection, recipient: str, ticket: int | None, now: datetime
    ) -> ReplyHistory:
        settings = self.config.autoreply
        return replyhistory.reply_history(
            connection,
            recipient=recipient,
            ticket=ticket,
            now=now,
            domain_since=now - settings.per_domain_window,
            global_since=now - settings.global_window,
            bounced_since=now - settings.hard_bounce_block,
            is_agent=self.config.is_agent,
        )

    def _is_guarded(self, connection: Connection, address: str, now: datetime) -> bool:
        if recipient_reason(address, self.config) is not None:
            return True
        since = now - self.config.autoreply.hard_bounce_block
        return replyhistory.hard_bounced(connection, address, since)


def update_first_response_due(connection: Connection, config: Config, ticket: int) -> datetime | None:
    """Recompute the first-answer due time of ``ticket`` from its creation and current priority.

    Call it after changing a ticket's priority. The due time counts business time from
    the ticket's creation. Returns the new due time (None when the priority has no
    target). Raises ValueError when the ticket does not exist.
    """
    row = repo.ticket_row(connection, ticket)
    if row is None:
        raise ValueError(f"ticket {ticket} not found")
    due = AutoReplier(config).first_response_due(row.created_at, row.priority)
    repo.update_ticket(connection, ticket, first_response_due=due)
    logger.info("ticket %s first answer due %s (priority %s)", ticket, due, row.priority)
    return due
