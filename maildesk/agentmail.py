"""What the ingest pipeline does with agents' mail: answers, commands and notices.

An agent's mail to a customer is an answer: the ticket waits on the
customer (pending), the first answer's time and the owner are recorded, and
a second agent who answers after another gets a notice. Mail commands in an
agent's mail change the ticket; the same commands from anyone else are
ignored and logged. Everything runs on the caller's connection, inside the
transaction that stores the message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, update

from maildesk import repository as repo
from maildesk.autoreply import AutoReplier
from maildesk.config import Config
from maildesk.db import messages
from maildesk.mailcommands import (
    Command,
    CommandOutcome,
    apply_commands,
    authentication_passes,
    is_plus_address,
    parse_command_lines,
    recipient_commands,
)
from maildesk.message import Address, IncomingMessage, ParsedMessage
from maildesk.notices import queue_notice

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MailCommands:
    """The commands of one mail and whether they may run."""

    commands: tuple[Command, ...]
    # The text to store: without command lines and note when the commands may run.
    stored_text: str
    note: str | None = None
    # Why the commands do not run, or None when they do.
    rejected: str | None = None


class AgentMail:
    """The agent-side decisions of one desk."""

    def __init__(self, config: Config, replier: AutoReplier) -> None:
        self.config = config
        self.replier = replier

    def is_desk_address(self, address: str) -> bool:
        """Return whether ``address`` is the support address (with or without a command) or an own address."""
        return self.config.is_own(address) or is_plus_address(
            address, self.config.support_address, self.config.agent_settings.plus_separator
        )

    def may_forward(self, address: str) -> bool:
        """Return whether a forward from ``address`` opens a ticket for the original sender."""
        if self.config.is_agent(address):
            return True
        address = address.lower()
        domain = "@" + address.rpartition("@")[2]
        forwarders = self.config.threading.forwarders
        return address in forwarders or domain in forwarders

    def is_staff(self, address: str) -> bool:
        """Return whether ``address`` belongs to the shop: desk, own address, agent or forwarder."""
        return self.is_desk_address(address) or self.may_forward(address)

    def customer_recipients(self, parsed: ParsedMessage) -> list[Address]:
        """Return the To and Cc recipients who are customers, in header order."""
        return [a for a in parsed.to + parsed.cc if a.addr and not self.is_staff(a.addr)]

    def commands_in(self, item: IncomingMessage, parsed: ParsedMessage, agent: str) -> MailCommands:
        """Return the commands of an agent's mail and whether they may run."""
        found = parse_command_lines(parsed.text)
        by_address = recipient_commands(
            parsed, self.config.support_address, self.config.agent_settings.plus_separator
        )
        commands = found.commands + by_address
        if not commands:
            return MailCommands((), parsed.text)
        rejected = self._authentication_problem(item, parsed, agent)
        if rejected is not None:
            return MailCommands(commands, parsed.text, None, rejected)
        return MailCommands(commands, found.text, found.note)

    def _authentication_problem(self, item: IncomingMessage, parsed: ParsedMessage, agent: str) -> str | None:
        authserv_id = self.config.agent_settings.trusted_authserv_id
        if not authserv_id:
            return None
        mailbox = self.config.mailbox
        if mailbox is not None and item.folder is not None and item.folder == mailbox.sent_folder:
            # Only the mailbox's own users can put mail into its Sent folder.
            return None
        domain = agent.rpartition("@")[2]
        if authentication_passes(parsed, domain, authserv_id):
            return None
        return f"no DKIM, SPF or DMARC pass for {domain} from {authserv_id}"

    def run_commands(
        self,
        connection: Connection,
        ticket: int,
        message_row: int,
        mail_commands: MailCommands,
        agent: str,
        now: datetime,
    ) -> None:
        """Apply the commands of an agent's mail to ``ticket`` and record their outcome."""
        if not mail_commands.commands:
            return
        if mail_commands.rejected is not None:
            log.warning(
                "commands from %s on ticket %s ignored: %s", agent, ticket, mail_commands.rejected
            )
            outcomes = _ignored(mail_commands.commands, mail_commands.rejected)
        else:
            outcomes = apply_commands(
                connection, self.config, ticket, mail_commands.commands,
                actor=agent, now=now, note=mail_commands.note, message=message_row,
            )
        _record(connection, message_row, outcomes)

    def record_commands(
        self, connection: Connection, message_row: int, mail_commands: MailCommands, ticket: int | None
    ) -> None:
        """Record the commands of an agent's mail that found no ticket to act on."""
        if not mail_commands.commands or ticket is not None:
            return
        log.warning(
            "commands in agent mail (message %s) ignored: the mail names no ticket", message_row
        )
        _record(connection, message_row, _ignored(mail_commands.commands, "no ticket"))

    def ignore_stranger_commands(
        self, connection: Connection, item: IncomingMessage, parsed: ParsedMessage, message_row: int
    ) -> None:
        """Log and record commands in mail from someone who is not an agent; they never run."""
        commands = parse_command_lines(parsed.text).commands + recipient_commands(
            parsed, self.config.support_address, self.config.agent_settings.plus_separator
        )
        if not commands:
            return
        sender = parsed.from_.addr if parsed.from_ else "?"
        log.warning(
            "commands %s from %s ignored: the sender is not an agent (folder=%s UID=%s)",
            ", ".join(str(c) for c in commands), sender, item.folder, item.uid,
        )
        _record(connection, message_row, _ignored(commands, "not an agent"))

    def answered(
        self,
        connection: Connection,
        ticket: int,
        message_row: int,
        agent: Address,
        parsed: ParsedMessage,
        at: datetime,
        now: datetime,
        *,
        notify: bool,
        secret: bytes,
    ) -> None:
        """Record an agent's answer: first response, owner, pending, and the second-agent notice.

        ``at`` is when the answer was sent. The ticket becomes pending only
        when no customer mail is newer than the answer, so an old reply found
        in the Sent folder does not hide a newer question.
        """
        row = repo.ticket_row(connection, ticket)
        values: dict[str, object] = {"updated_at": now}
        if row.first_response_at is None:
            values["first_response_at"] = at
        if row.owner is None and agent.addr:
            values["owner"] = agent.addr
        repo.update_ticket(connection, ticket, **values)
        newest_question = _newest_customer_mail(connection, ticket)
        if newest_question is None or newest_question <= at:
            if row.status != "pending":
                repo.set_status(connection, ticket, "pending", now)
        else:
            # The customer wrote again after this answer: the ticket still waits on an agent.
            log.info("ticket %s stays open: a customer mail is newer than the answer", ticket)
            if row.status == "new":
                repo.set_status(connection, ticket, "open", now)

        settings = self.config.agent_settings
        if notify and settings.second_agent_notice and now - at <= self.config.autoreply.max_age:
            queue_notice(
                connection, self.config, self.replier, ticket=ticket, message_row=message_row,
                agent=agent, in_reply_to=parsed.in_reply_to, now=now, secret=secret,
            )


def _newest_customer_mail(connection: Connection, ticket: int) -> datetime | None:
    times = [
        row.received_at or row.date or row.stored_at
        for row in repo.ticket_messages(connection, ticket)
        if row.direction == "inbound" and row.kind == "customer"
    ]
    return max(times) if times else None


def _ignored(commands: tuple[Command, ...], reason: str) -> list[CommandOutcome]:
    return [CommandOutcome(str(command), f"ignored: {reason}") for command in commands]


def _record(connection: Connection, message_row: int, outcomes: list[CommandOutcome]) -> None:
    connection.execute(
        update(messages)
        .where(messages.c.id == message_row)
        .values(commands=json.dumps([o.as_dict() for o in outcomes], ensure_ascii=False))
    )
