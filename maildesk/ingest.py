"""The ingest pipeline: raw message in, stored message, ticket change and queued reply out.

``run``, ``sync``, ``import`` and ``demo`` all feed messages through
:meth:`Ingestor.ingest_batch`. One batch is one database transaction. A
message counts as done exactly when the transaction that stores its ticket
change commits. A message that fails is quarantined instead of stopping the
batch: the batch is stored again with a savepoint per message.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert

from maildesk import repository as repo
from maildesk.config import Config
from maildesk.db import attachments, messages
from maildesk.agentmail import AgentMail
from maildesk.autoreply import AutoReplier
from maildesk.forwards import ForwardedMail, find_forwarded
from maildesk.loopguard import automatic_reason
from maildesk.message import Address, IncomingMessage, ParsedMessage
from maildesk.prepare import PreparedMessage, prepare_message
from maildesk.quotes import visible_text
from maildesk.replies import ticket_from_message_id
from maildesk.rules import apply_rules
from maildesk.storage import FileStore
from maildesk.threader import (
    ThreadDecision,
    ThreadPolicy,
    apply_reopen_limit,
    choose_ticket,
    subject_key,
    thread_index_guid,
)

log = logging.getLogger(__name__)

INSERT_MESSAGE = insert(messages)
INSERT_ATTACHMENT = insert(attachments)


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
        self.stopped = self.stopped or other.stopped
        for reason, count in other.suppressed.items():
            self.suppressed[reason] = self.suppressed.get(reason, 0) + count


@dataclass(frozen=True)
class IngestOptions:
    """Auto-reply settings of one batch.

    ``autoreply`` False means no reply at all (first-start import of old
    mail, ``import`` without ``--auto-reply``). ``check_age`` False skips the
    ``max_age`` rule, for explicit imports of files.
    """

    autoreply: bool = True
    check_age: bool = True


class _MessageFailed(Exception):
    """Storing ``item`` raised (the cause) in a batch stored without savepoints."""

    def __init__(self, item: IncomingMessage) -> None:
        super().__init__(f"storing folder={item.folder} UID={item.uid} failed")
        self.item = item


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
        self.agent_mail = AgentMail(config, self.replies)
        self.clock = clock

    def ingest_batch(
        self,
        items: Iterable[IncomingMessage],
        options: IngestOptions,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_commit: Callable[[Connection, BatchStats], None] | None = None,
        prepared: Sequence[PreparedMessage | None] | None = None,
    ) -> BatchStats:
        """Ingest ``items`` in one transaction and return the counts.

        ``on_commit`` runs inside the transaction after the last message, so
        a folder's highest UID is saved together with the messages.
        ``should_stop`` is checked between messages. ``prepared``, one entry
        per item, carries raw files already stored and parse results made by a
        :class:`maildesk.prepare.ProcessPreparer`; an item whose entry is None
        is prepared here.

        Messages are first stored without a savepoint each, because
        savepoints took about 7 % of a first import's time (py-spy profile of
        3,000 generated mails). When one message fails, the transaction rolls
        back and the batch is stored again with a savepoint per message, so
        the failing message is quarantined and the others stay.
        """
        entries, stopped = self._prepare_all(items, prepared, should_stop)
        try:
            return self._store_batch(entries, stopped, options, on_commit, savepoints=False)
        except _MessageFailed as failure:
            log.warning(
                "storing a batch of %d messages failed at folder=%s UID=%s (%s); "
                "storing it again with a savepoint per message",
                len(entries), failure.item.folder, failure.item.uid, failure.__cause__,
            )
        return self._store_batch(entries, stopped, options, on_commit, savepoints=True)

    def _prepare_all(
        self,
        items: Iterable[IncomingMessage],
        prepared: Sequence[PreparedMessage | None] | None,
        should_stop: Callable[[], bool],
    ) -> tuple[list[tuple[IncomingMessage, PreparedMessage]], bool]:
        """Pair each item with its stored raw file and parse result; return them and whether it stopped early."""
        entries: list[tuple[IncomingMessage, PreparedMessage]] = []
        for index, item in enumerate(items):
            if should_stop():
                return entries, True
            done = prepared[index] if prepared is not None else None
            entries.append((item, done or prepare_message(item, self.files, self.config.limits)))
        return entries, False

    def _store_batch(
        self,
        entries: list[tuple[IncomingMessage, PreparedMessage]],
        stopped: bool,
        options: IngestOptions,
        on_commit: Callable[[Connection, BatchStats], None] | None,
        *,
        savepoints: bool,
    ) -> BatchStats:
        stats = BatchStats(stopped=stopped)
        with self.engine.begin() as connection:
            secret = repo.message_id_secret(connection)
            lookups = repo.begin_batch(connection)
            try:
                # One IN query for every Message-ID the batch carries or refers to
                # replaces two to four lookups per message.
                lookups.prefetch(
                    message_id
                    for _item, done in entries if done.parsed is not None
                    for message_id in (done.parsed.message_id, *done.parsed.in_reply_to, *done.parsed.references)
                    if message_id
                )
                for item, done in entries:
                    self._ingest_one(connection, item, done, options, secret, stats, savepoints)
                    if item.uid is not None:
                        stats.last_uid = item.uid
                if on_commit is not None:
                    on_commit(connection, stats)
            finally:
                repo.end_batch(connection)
            self.files.sync()
        return stats

    def _ingest_one(
        self,
        connection: Connection,
        item: IncomingMessage,
        prepared: PreparedMessage,
        options: IngestOptions,
        secret: bytes,
        stats: BatchStats,
        savepoints: bool,
    ) -> None:
        raw_sha, parsed = prepared.raw_sha, prepared.parsed
        if parsed is None:
            self._quarantine(connection, item, raw_sha, prepared.error, stats)
            return
        if not savepoints:
            try:
                outcome = self._store(connection, item, parsed, raw_sha, options, secret)
            except Exception as exc:
                raise _MessageFailed(item) from exc
            _count(stats, outcome)
            return

        savepoint = connection.begin_nested()
        try:
            outcome = self._store(connection, item, parsed, raw_sha, options, secret)
        except Exception as exc:  # noqa: BLE001 - any failure quarantines this message only
            savepoint.rollback()
            # The cache may hold what the rollback undid.
            repo.begin_batch(connection)
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
        own_reply = self._own_reply(connection, parsed, secret)
        if own_reply is not None:
            # Our own auto-reply, seen again in the Sent folder or through a Bcc.
            row = self._insert_message(
                connection, item, parsed, raw_sha, dedupe_key, now,
                ticket=own_reply[1], direction="auto", kind="auto", thread_rule="own-message-id",
            )
            return {"message": row}

        classified = self._classify(parsed)
        state = repo.StoredState(connection)
        threading = self.config.threading
        decision = choose_ticket(
            parsed,
            classified.author.addr if classified.author else "",
            state,
            own_ticket_for_id=lambda message_id: ticket_from_message_id(message_id, secret),
            is_agent=self.config.is_agent,
            policy=ThreadPolicy(
                subject_since=(now - threading.subject_fallback_window)
                if threading.subject_fallback else None,
                customers=tuple(a.addr for a in self.agent_mail.customer_recipients(parsed))
                if classified.kind == "agent" else (),
            ),
        )
        if classified.kind == "customer" and decision.ticket is not None:
            decision = apply_reopen_limit(
                decision, state.ticket_info(decision.ticket), now, threading.reopen_limit
            )
        if decision.ticket is None and classified.kind in ("agent", "customer"):
            forwarded = self._forwarded_customer(item, parsed)
            if forwarded is not None:
                return self._store_forward(
                    connection, item, parsed, raw_sha, dedupe_key, now, forwarded, options
                )
        if classified.kind == "bounce":
            decision = self._bounce_ticket(connection, parsed, decision)
        if classified.kind == "customer":
            return self._store_customer(
                connection, item, parsed, raw_sha, dedupe_key, now, classified, decision, options, secret,
                state=state,
            )
        handler = {
            "agent": self._store_agent,
            "bounce": self._store_automatic,
            "robot": self._store_automatic,
        }[classified.kind]
        return handler(
            connection, item, parsed, raw_sha, dedupe_key, now, classified, decision, options, secret
        )

    def _own_reply(
        self, connection: Connection, parsed: ParsedMessage, secret: bytes
    ) -> tuple[int | None, int | None] | None:
        """Return (outbox row, ticket) when ``parsed`` is a mail maildesk itself sent.

        The outbox row is gone after a database restore, so a Message-ID with a
        valid check value that comes from the desk's own address counts too.
        Such a copy in Sent must not pass for an agent's reply.
        """
        if not parsed.message_id:
            return None
        row = repo.outbox_row_for_message_id(connection, parsed.message_id)
        if row is not None:
            return row
        sender = parsed.from_.addr if parsed.from_ else ""
        number = ticket_from_message_id(parsed.message_id, secret)
        if number is None or not self.config.is_own(sender):
            return None
        return (None, number if repo.ticket_row(connection, number) is not None else None)

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
        self.replies.note_bounce(connection, parsed, self.clock())
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
        agent = classified.author or Address("")
        ticket = decision.ticket
        rule = decision.rule
        customers = self.agent_mail.customer_recipients(parsed)
        mail_commands = self.agent_mail.commands_in(item, parsed, agent.addr)
        stored = dataclasses.replace(parsed, text=mail_commands.stored_text)
        if ticket is None:
            if not customers:
                row = self._insert_message(
                    connection, item, stored, raw_sha, dedupe_key, now,
                    ticket=None, direction="agent", kind="internal", thread_rule=None,
                    reason="agent mail with no customer recipient",
                )
                self.agent_mail.record_commands(connection, row, mail_commands, None)
                return {"message": row}
            # An agent started a conversation with a customer: it becomes a ticket.
            ticket = self._create_ticket(
                connection, parsed, customers[0], now, priority="normal", tags=(), status="pending"
            )
            rule = "new-ticket"
        # Agent mail that reaches no customer (a note to the desk, an answer to a notice)
        # is kept on the ticket without counting as an answer.
        row = self._insert_message(
            connection, item, stored, raw_sha, dedupe_key, now,
            ticket=ticket, direction="agent", kind="agent" if customers else "internal",
            thread_rule=rule,
        )
        if customers:
            self.agent_mail.answered(
                connection, ticket, row, agent, parsed, event_time(item, parsed, now), now,
                notify=options.autoreply, secret=secret,
            )
        self.agent_mail.run_commands(connection, ticket, row, mail_commands, agent.addr, now)
        return {"message": row, "new_ticket": decision.ticket is None}

    def _forwarded_customer(self, item: IncomingMessage, parsed: ParsedMessage) -> ForwardedMail | None:
        """Return the customer's mail inside a forward by an agent or colleague into the desk."""
        sender = parsed.from_.addr if parsed.from_ else ""
        if not sender or not self.agent_mail.may_forward(sender):
            return None
        if self.agent_mail.customer_recipients(parsed):
            return None
        mailbox = self.config.mailbox
        addressed = any(self.agent_mail.is_desk_address(a.addr) for a in parsed.to + parsed.cc)
        if not addressed and mailbox is not None and item.folder == mailbox.sent_folder:
            # Forwarded from the shared mailbox to a colleague, not into the desk.
            return None
        forwarded = find_forwarded(parsed)
        if forwarded is None or self.agent_mail.is_staff(forwarded.sender.addr):
            return None
        return forwarded

    def _store_forward(
        self,
        connection: Connection,
        item: IncomingMessage,
        parsed: ParsedMessage,
        raw_sha: str,
        dedupe_key: str,
        now: datetime,
        forwarded: ForwardedMail,
        options: IngestOptions,
    ) -> dict[str, object]:
        """Open a ticket for the customer whose mail an agent or colleague forwarded."""
        inner = forwarded.message
        ticket = None
        if inner is not None and inner.message_id:
            known = repo.StoredState(connection).tickets_for_message_ids([inner.message_id])
            ticket = known.get(inner.message_id)
        new_ticket = ticket is None
        if ticket is None:
            source = inner or parsed
            outcome = apply_rules(self.config.rules, source)
            ticket = self._create_ticket(
                connection, dataclasses.replace(source, subject=forwarded.subject or parsed.subject),
                forwarded.sender, now, priority=outcome.priority, tags=outcome.tags, status="new",
            )
            if inner is not None and forwarded.raw is not None:
                self._store_inner(connection, item, inner, forwarded.raw, ticket, now)
        row = self._insert_message(
            connection, item, parsed, raw_sha, dedupe_key, now,
            ticket=ticket, direction="agent", kind="forward", thread_rule="forwarded",
            autoreply_suppressed="forwarded",
        )
        log.info(
            "forward by %s %s ticket %s for %s", parsed.from_.addr if parsed.from_ else "?",
            "opened" if new_ticket else "joined", ticket, forwarded.sender.addr,
        )
        return {"message": row, "new_ticket": new_ticket, "suppressed": "forwarded"}

    def _store_inner(
        self,
        connection: Connection,
        item: IncomingMessage,
        inner: ParsedMessage,
        raw: bytes,
        ticket: int,
        now: datetime,
    ) -> None:
        """Store the attached original of a forward as the customer's own message."""
        dedupe_key = self._dedupe_key(connection, inner)
        if dedupe_key is None:
            return
        inner_item = IncomingMessage(raw=raw, received_at=item.received_at, folder=None, uid=None, source="forward")
        self._insert_message(
            connection, inner_item, inner, self.files.put("raw", raw), dedupe_key, now,
            ticket=ticket, direction="inbound", kind="customer", thread_rule="forwarded",
            autoreply_suppressed="forwarded",
        )

    def _store_customer(
        self, connection, item, parsed, raw_sha, dedupe_key, now, classified, decision, options, secret,
        *, state: repo.StoredState,
    ) -> dict[str, object]:  # type: ignore[no-untyped-def]
        customer = classified.author
        if decision.ticket is not None:
            # Read while threading; nothing has written to the ticket since.
            row = state.ticket_info(decision.ticket)
            if row is None:
                raise LookupError(f"ticket {decision.ticket} chosen by threading does not exist")
            if row.status in ("pending", "closed"):
                log.info("ticket %s reopened by a customer reply", decision.ticket)
                repo.set_status(connection, decision.ticket, "open", now)
            else:
                repo.update_ticket(connection, decision.ticket, updated_at=now)
            self._add_participants(connection, decision.ticket, parsed, row.requester)
            reopened_reason = None
            if row.status == "closed" and customer is not None and customer.addr:
                reopened_reason = self._queue_safely(
                    connection, decision.ticket,
                    lambda: self.replies.queue_reopened_reply(
                        connection, item, parsed, customer, decision.ticket, now, secret,
                        autoreply=options.autoreply, check_age=options.check_age,
                    ),
                )
            message_row = self._insert_message(
                connection, item, parsed, raw_sha, dedupe_key, now,
                ticket=decision.ticket, direction="inbound", kind="customer",
                thread_rule=decision.rule, autoreply_suppressed=reopened_reason,
            )
            self.agent_mail.ignore_stranger_commands(connection, item, parsed, message_row)
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
        if decision.linked_ticket is not None:
            repo.update_ticket(connection, ticket, linked_ticket=decision.linked_ticket)
            log.info(
                "reply to ticket %s, closed longer than %s ago, opened ticket %s",
                decision.linked_ticket, self.config.threading.reopen_limit, ticket,
            )
        if reason is None:
            reason = self._queue_safely(
                connection, ticket,
                lambda: self.replies.queue_new_ticket_reply(
                    connection, ticket, parsed, customer, outcome.priority, now, secret
                ),
            )
        queued = reason is None
        message_row = self._insert_message(
            connection, item, parsed, raw_sha, dedupe_key, now,
            ticket=ticket, direction="inbound", kind="customer", thread_rule="new-ticket",
            autoreply_suppressed=reason,
        )
        self.agent_mail.ignore_stranger_commands(connection, item, parsed, message_row)
        # An import opens thousands of tickets, whose progress line and summary report them.
        log.log(
            logging.INFO if options.autoreply else logging.DEBUG,
            "ticket %s opened for %s (rules=%s priority=%s auto-reply=%s)",
            ticket, customer.addr, ",".join(outcome.matched) or "-", outcome.priority,
            "queued" if queued else f"suppressed: {reason}",
        )
        return {"message": message_row, "new_ticket": True, "queued": queued, "suppressed": reason}

    def _queue_safely(
        self, connection: Connection, ticket: int, queue: Callable[[], object]
    ) -> str | None:
        """Run ``queue`` in a savepoint; return None, its own reason, or "reply-error".

        A reply that cannot be built (a broken template, an address that needs
        SMTPUTF8) must not cost the customer's mail its ticket, so the error is
        logged and only the reply is left out.
        """
        savepoint = connection.begin_nested()
        try:
            result = queue()
        except Exception:
            savepoint.rollback()
            repo.begin_batch(connection)
            log.exception("auto-reply for ticket %s could not be built; the ticket stays without one", ticket)
            return "reply-error"
        savepoint.commit()
        return result if isinstance(result, str) else None

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
        ticket = repo.create_ticket(
            connection,
            subject=parsed.subject,
            subject_key=subject_key(parsed.subject),
            requester=customer.addr,
            requester_name=customer.name,
            status=status,
            priority=priority,
            language=self.replies.choose_language(connection, parsed, customer.addr),
            created_at=now,
            updated_at=now,
            first_response_due=self.replies.first_response_due(now, priority),
            tags=tags,
        )
        self._add_participants(connection, ticket, parsed, customer.addr, new_ticket=True)
        return ticket

    def _add_participants(
        self,
        connection: Connection,
        ticket: int,
        parsed: ParsedMessage,
        requester: str,
        *,
        new_ticket: bool = False,
    ) -> None:
        candidates = [a.addr for a in (parsed.from_,) + parsed.to + parsed.cc if a is not None]
        outsiders = [
            address for address in candidates
            if address != requester and not self.config.is_own(address) and not self.config.is_agent(address)
        ]
        repo.add_participants(connection, ticket, outsiders, new_ticket=new_ticket)

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
        # Parameters rather than .values(): the statement is built and compiled once,
        # which saves about a tenth of the ingest time per message.
        result = connection.execute(
            INSERT_MESSAGE,
            dict(
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
                visible_text=visible_text(parsed.text, parsed.subject),
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
            ),
        )
        message_row = result.inserted_primary_key[0]
        lookups = repo.batch_lookups(connection)
        if lookups is not None:
            lookups.record_message(parsed.message_id, ticket, parsed.content_hash)
        for attachment in parsed.attachments:
            connection.execute(
                INSERT_ATTACHMENT,
                dict(
                    message=message_row,
                    filename=attachment.filename,
                    content_type=attachment.content_type,
                    size=attachment.size,
                    inline=attachment.inline,
                    content_id=attachment.content_id,
                    sha256=attachment.stored_sha256 or self.files.put("attachments", attachment.content),
                ),
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


def event_time(item: IncomingMessage, parsed: ParsedMessage, now: datetime) -> datetime:
    """Return when a message happened: INTERNALDATE, else its Date header, never after ``now``."""
    moment = item.received_at or parsed.date or now
    return min(moment, now)


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
