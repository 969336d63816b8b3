"""The ingest pipeline: raw message in, stored message, ticket change and queued reply out.

``run``, ``sync``, ``import`` and ``demo`` all feed messages through
:meth:`Ingestor.ingest_batch`. One batch is one database transaction and
each message runs in its own savepoint, so a message counts as done exactly
when the transaction that stores its ticket change commits, and a message
that fails is quarantined instead of stopping the batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert

from maildesk import repository as repo
from maildesk.config import Config
from maildesk.db import attachments, messages
from maildesk.errors import MessageParseError
from maildesk.autoreply import AutoReplier
from maildesk.loopguard import automatic_reason
from maildesk.message import Address, IncomingMessage, ParsedMessage
from maildesk.parsing import parse_message
from maildesk.replies import ticket_from_message_id
from maildesk.rules import apply_rules
from maildesk.storage import FileStore
from maildesk.threader import ThreadDecision, choose_ticket, subject_key, thread_index_guid

log = logging.getLogger(__name__)


@dataclass
class BatchStats:
    """Counts of one batch, for the log line and the command line."""

    stored: int = 0
    duplicates: int = 0
    new_tickets: int = 0
    quarantined: int = 0
    replies_queued: int = 0
    # UID of the last message handled, for the folder state; None when none was.
    last_uid: int | None = None
    stopped: bool = False
    suppressed: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchStats) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.new_tickets += other.new_tickets
        self.quarantined += other.quarantined
        self.replies_queued += other.replies_queued
        for reason, count in other.suppressed.items():
            self.suppressed[reason] = self.suppressed.get(reason, 0) + count


@dataclass(frozen=True)
class IngestOptions:
    """How a batch treats auto-replies.

    ``autoreply`` False means no reply at all (first-start import of old
    mail, ``import`` without ``--auto-reply``). ``check_age`` False skips the
    ``max_age`` rule, for explicit imports of files.
    """

    autoreply: bool = True
    check_age: bool = True


@dataclass
class _Classified:
    kind: str  # "customer", "agent", "bounce", "robot"
    direction: str
    # The customer the mail speaks for: From, or Reply-To for mail from own addresses.
    author: Address | None
    reason: str | None = None


class Ingestor:
    """Store messages, thread them into tickets and queue auto-replies."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.engine = engine
        self.files = FileStore(config.storage_path)
        self.replies = AutoReplier(config)
        self.clock = clock

    def ingest_batch(
        self,
        items: Iterable[IncomingMessage],
        options: IngestOptions,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_commit: Callable[[Connection, BatchStats], None] | None = None,
    ) -> BatchStats:
        """Ingest ``items`` in one transaction and return the counts.

        ``on_commit`` runs inside the transaction after the last message, so
        a folder's highest UID is saved together with the messages.
        ``should_stop`` is checked between messages.
        """
        stats = BatchStats()
        with self.engine.begin() as connection:
            secret = repo.message_id_secret(connection)
            for item in items:
                if should_stop():
                    stats.stopped = True
                    break
                self._ingest_one(connection, item, options, secret, stats)
                if item.uid is not None:
                    stats.last_uid = item.uid
            if on_commit is not None:
                on_commit(connection, stats)
        return stats

    def _ingest_one(
        self,
        connection: Connection,
        item: IncomingMessage,
        options: IngestOptions,
        secret: bytes,
        stats: BatchStats,
    ) -> None:
        raw_sha = self.files.put("raw", item.raw)
        try:
            parsed = parse_message(item.raw)
        except MessageParseError as exc:
            self._quarantine(connection, item, raw_sha, f"parse error: {exc}", stats)
            return

        savepoint = connection.begin_nested()
        try:
            outcome = self._store(connection, item, parsed, raw_sha, options, secret)
        except Exception as exc:  # noqa: BLE001 - any failure quarantines this message only
            savepoint.rollback()
            log.exception(
                "storing message failed; quarantined (folder=%s UID=%s Message-ID=%s)",
                item.folder, item.uid, parsed.message_id,
            )
            self._quarantine(connection, item, raw_sha, f"{type(exc).__name__}: {exc}", stats)
            return
        savepoint.commit()
        _count(stats, outcome)

    def _store(
        self,
        connection: Connection,
        item: IncomingMessage,
        parsed: ParsedMessage,
        raw_sha: str,
        options: IngestOptions,
        secret: bytes,
    ) -> dict[str, object]:
        dedupe_key = self._dedupe_key(connection, parsed)
        if dedupe_key is None:
            log.debug(
                "duplicate skipped (folder=%s UID=%s Message-ID=%s)",
                item.folder, item.uid, parsed.message_id,
            )
            return {"duplicate": True}

        now = self.clock()
        own_reply = (
            repo.outbox_row_for_message_id(connection, parsed.message_id)
            if parsed.message_id
            else None
        )
        if own_reply is not None:
            # Our own auto-reply, seen again in the Sent folder or through a Bcc.
            row = self._insert_message(
                connection, item, parsed, raw_sha, dedupe_key, now,
                ticket=own_reply[1], direction="auto", kind="auto", thread_rule="own-message-id",
            )
            return {"message": row}

        classified = self._classify(parsed)
        decision = choose_ticket(
            parsed,
            classified.author.addr if classified.author else "",
            repo.StoredState(connection),
            own_ticket_for_id=lambda message_id: ticket_from_message_id(message_id, secret),
            is_agent=self.config.is_agent,
        )
        if classified.kind == "bounce":
            decision = self._bounce_ticket(connection, parsed, decision)
        handler = {
            "customer": self._store_customer,
            "agent": self._store_agent,
            "bounce": self._store_automatic,
            "robot": self._store_automatic,
        }[classified.kind]
        return handler(
            connection, item, parsed, raw_sha, dedupe_key, now, classified, decision, options, secret
        )

    def _dedupe_key(self, connection: Connection, parsed: ParsedMessage) -> str | None:
        """Return the key to store ``parsed`` under, or None when it is already stored."""
        if parsed.message_id is None:
            key = f"hash:{parsed.content_hash}"
            return None if repo.find_duplicate(connection, key) else key

        known_hashes = repo.hashes_for_message_id(connection, parsed.message_id)
        if not known_hashes:
            return f"mid:{parsed.message_id}"
        if parsed.content_hash in known_hashes:
            return None
        log.warning(
            "Message-ID %s reused by a different message; storing it as its own message",
            parsed.message_id,
        )
        key = f"mid:{parsed.message_id}#{parsed.content_hash}"
        return None if repo.find_duplicate(connection, key) else key

    def _classify(self, parsed: ParsedMessage) -> _Classified:
        sender = parsed.from_.addr if parsed.from_ else ""
        if sender and sender in self.config.own_addresses:
            # A web form or shop system: the customer is in Reply-To.
            customer = next(
                (a for a in parsed.reply_to if a.addr and not self.config.is_own(a.addr)), None
            )
            return _Classified("customer", "inbound", customer)
        if sender and (self.config.is_agent(sender) or sender == self.config.support_address):
            return _Classified("agent", "agent", parsed.from_)
        if parsed.is_bounce:
            return _Classified("bounce", "inbound", parsed.from_, "bounce")
        reason = automatic_reason(parsed)
        if reason is not None:
            return _Classified("robot", "inbound", parsed.from_, reason)
        return _Classified("customer", "inbound", parsed.from_)

    def _bounce_ticket(
        self, connection: Connection, parsed: ParsedMessage, decision: ThreadDecision
    ) -> ThreadDecision:
        if parsed.bounced_message_id is None:
            return decision
        row = repo.outbox_row_for_message_id(connection, parsed.bounced_message_id)
        if row is None:
            return decision
        recipient = parsed.failed_recipients[0] if parsed.failed_recipients else "recipient"
        repo.mark_outbox_bounced(connection, row[0], recipient)
        log.warning("auto-reply %s bounced for %s", parsed.bounced_message_id, recipient)
        if decision.ticket is None and row[1] is not None:
            return ThreadDecision(row[1], "bounced-reply")
        return decision

    def _store_automatic(
        self, connection, item, parsed, raw_sha, dedupe_key, now, classified, decision, options, secret
    ) -> dict[str, object]:  # type: ignore[no-untyped-def]
        # Automatic mail never opens a ticket and never changes a ticket's status.
        row = self._insert_message(
            connection, item, parsed, raw_sha, dedupe_key, now,
            ticket=decision.ticket, direction="inbound", kind=classified.kind,
            thread_rule=decision.rule if decision.ticket else None,
            reason=classified.reason,
            failed_recipient=parsed.failed_recipients[0] if parsed.failed_recipients else None,
            autoreply_suppressed=classified.reason,
        )
        if decision.ticket is None:
            log.info(
                "%s stored without a ticket (reason=%s Message-ID=%s)",
                classified.kind, classified.reason, parsed.message_id,
            )
        return {"message": row, "suppressed": classified.reason}

    def _store_agent(
        self, connection, item, parsed, raw_sha, dedupe_key, now, classified, decision, options, secret
    ) -> dict[str, object]:  # type: ignore[no-untyped-def]
        agent = classified.author.addr if classified.author else ""
        ticket = decision.ticket
        rule = decision.rule
        if ticket is None:
            customers = [
                a for a in parsed.to + parsed.cc
                if not self.config.is_own(a.addr) and not self.config.is_agent(a.addr)
            ]
            if not customers:
                row = self._insert_message(
                    connection, item, parsed, raw_sha, dedupe_key, now,
                    ticket=None, direction="agent", kind="internal", thread_rule=None,
                    reason="agent mail with no customer recipient",
                )
                return {"message": row}
            # An agent started a conversation with a customer: it becomes a ticket.
            ticket = self._create_ticket(
                connection, parsed, customers[0], now, priority="normal", tags=(), status="pending"
            )
            rule = "new-ticket"
        self._agent_answered(connection, ticket, agent, now)
        row = self._insert_message(
            connection, item, parsed, raw_sha, dedupe_key, now,
            ticket=ticket, direction="agent", kind="agent", thread_rule=rule,
        )
        return {"message": row, "new_ticket": decision.ticket is None}

    def _agent_answered(self, connection: Connection, ticket: int, agent: str, now: datetime) -> None:
        row = repo.ticket_row(connection, ticket)
        values: dict[str, object] = {"status": "pending", "updated_at": now}
        if row.first_response_at is None:
            values["first_response_at"] = now
        if row.owner is None and agent:
            values["owner"] = agent
        repo.update_ticket(connection, ticket, **values)

    def _store_customer(
        self, connection, item, parsed, raw_sha, dedupe_key, now, classified, decision, options, secret
    ) -> dict[str, object]:  # type: ignore[no-untyped-def]
        customer = classified.author
        if decision.ticket is not None:
            row = repo.ticket_row(connection, decision.ticket)
            if row.status in ("pending", "closed"):
                log.info("ticket %s reopened by a customer reply", decision.ticket)
                repo.update_ticket(connection, decision.ticket, status="open", updated_at=now)
            else:
                repo.update_ticket(connection, decision.ticket, updated_at=now)
            self._add_participants(connection, decision.ticket, parsed, row.requester)
            message_row = self._insert_message(
                connection, item, parsed, raw_sha, dedupe_key, now,
                ticket=decision.ticket, direction="inbound", kind="customer",
                thread_rule=decision.rule,
            )
            return {"message": message_row}

        if customer is None or not customer.addr:
            message_row = self._insert_message(
                connection, item, parsed, raw_sha, dedupe_key, now,
                ticket=None, direction="inbound", kind="quarantined", thread_rule=None,
                reason="no usable sender address",
            )
            log.warning("message without a usable sender quarantined (Message-ID=%s)", parsed.message_id)
            return {"message": message_row, "quarantined": True}

        outcome = apply_rules(self.config.rules, parsed)
        ticket = self._create_ticket(
            connection, parsed, customer, now,
            priority=outcome.priority, tags=outcome.tags, status="new",
        )
        reason = self.replies.suppression_reason(
            connection, item, parsed, customer, now, autoreply=options.autoreply,
            check_age=options.check_age, rule_autoreply=outcome.autoreply,
        )
        message_row = self._insert_message(
            connection, item, parsed, raw_sha, dedupe_key, now,
            ticket=ticket, direction="inbound", kind="customer", thread_rule="new-ticket",
            autoreply_suppressed=reason,
        )
        queued = False
        if reason is None:
            self.replies.queue_new_ticket_reply(
                connection, ticket, parsed, customer, outcome.priority, now, secret
            )
            queued = True
        log.info(
            "ticket %s opened for %s (rules=%s priority=%s auto-reply=%s)",
            ticket, customer.addr, ",".join(outcome.matched) or "-", outcome.priority,
            "queued" if queued else f"suppressed: {reason}",
        )
        return {"message": message_row, "new_ticket": True, "queued": queued, "suppressed": reason}

    def _create_ticket(
        self,
        connection: Connection,
        parsed: ParsedMessage,
        customer: Address,
        now: datetime,
        *,
        priority: str,
        tags: tuple[str, ...],
        status: str,
    ) -> int:
        target = self.config.autoreply.targets.get(priority)
        ticket = repo.create_ticket(
            connection,
            subject=parsed.subject,
            subject_key=subject_key(parsed.subject),
            requester=customer.addr,
            requester_name=customer.name,
            status=status,
            priority=priority,
            language=self.config.language,
            created_at=now,
            updated_at=now,
            first_response_due=(now + target) if target else None,
        )
        repo.add_tags(connection, ticket, tags)
        self._add_participants(connection, ticket, parsed, customer.addr)
        return ticket

    def _add_participants(
        self, connection: Connection, ticket: int, parsed: ParsedMessage, requester: str
    ) -> None:
        candidates = [a.addr for a in (parsed.from_,) + parsed.to + parsed.cc if a is not None]
        outsiders = [
            address for address in candidates
            if address != requester and not self.config.is_own(address) and not self.config.is_agent(address)
        ]
        repo.add_participants(connection, ticket, outsiders)

    def _insert_message(
        self,
        connection: Connection,
        item: IncomingMessage,
        parsed: ParsedMessage,
        raw_sha: str,
        dedupe_key: str,
        now: datetime,
        *,
        ticket: int | None,
        direction: str,
        kind: str,
        thread_rule: str | None,
        reason: str | None = None,
        failed_recipient: str | None = None,
        autoreply_suppressed: str | None = None,
    ) -> int:
        result = connection.execute(
            insert(messages).values(
                ticket=ticket,
                direction=direction,
                kind=kind,
                dedupe_key=dedupe_key,
                message_id=parsed.message_id,
                content_hash=parsed.content_hash,
                in_reply_to=" ".join(parsed.in_reply_to),
                references=" ".join(parsed.references),
                from_addr=parsed.from_.addr if parsed.from_ else "",
                from_name=parsed.from_.name if parsed.from_ else "",
                to_addrs=_addresses_json(parsed.to),
                cc_addrs=_addresses_json(parsed.cc),
                reply_to=_addresses_json(parsed.reply_to),
                subject=parsed.subject,
                date=parsed.date,
                received_at=item.received_at,
                stored_at=now,
                text=parsed.text,
                raw_sha256=raw_sha,
                size=len(item.raw),
                folder=item.folder,
                uid=item.uid,
                thread_rule=thread_rule,
                thread_index_guid=thread_index_guid(parsed.thread_index),
                failed_recipient=failed_recipient,
                reason=reason,
                autoreply_suppressed=autoreply_suppressed,
                defects=json.dumps(list(parsed.defects), ensure_ascii=False),
            )
        )
        message_row = result.inserted_primary_key[0]
        for attachment in parsed.attachments:
            connection.execute(
                insert(attachments).values(
                    message=message_row,
                    filename=attachment.filename,
                    content_type=attachment.content_type,
                    size=attachment.size,
                    inline=attachment.inline,
                    content_id=attachment.content_id,
                    sha256=self.files.put("attachments", attachment.content),
                )
            )
        return message_row

    def _quarantine(
        self,
        connection: Connection,
        item: IncomingMessage,
        raw_sha: str,
        reason: str,
        stats: BatchStats,
    ) -> None:
        dedupe_key = f"raw:{raw_sha}"
        if repo.find_duplicate(connection, dedupe_key):
            stats.duplicates += 1
            return
        connection.execute(
            insert(messages).values(
                ticket=None,
                direction="inbound",
                kind="quarantined",
                dedupe_key=dedupe_key,
                content_hash=raw_sha,
                stored_at=self.clock(),
                received_at=item.received_at,
                text="",
                raw_sha256=raw_sha,
                size=len(item.raw),
                folder=item.folder,
                uid=item.uid,
                reason=reason[:2000],
            )
        )
        log.error(
            "message quarantined (folder=%s UID=%s raw=%s): %s", item.folder, item.uid, raw_sha, reason
        )
        stats.quarantined += 1
        stats.stored += 1


def _count(stats: BatchStats, outcome: dict[str, object]) -> None:
    if outcome.get("duplicate"):
        stats.duplicates += 1
        return
    stats.stored += 1
    if outcome.get("new_ticket"):
        stats.new_tickets += 1
    if outcome.get("quarantined"):
        stats.quarantined += 1
    if outcome.get("queued"):
        stats.replies_queued += 1
    reason = outcome.get("suppressed")
    if isinstance(reason, str):
        stats.suppressed[reason] = stats.suppressed.get(reason, 0) + 1


def _addresses_json(addresses: tuple[Address, ...]) -> str:
    return json.dumps([[a.addr, a.name] for a in addresses], ensure_ascii=False)
