"""Commands that agents give by mail: command lines and plus-addresses.

An agent steers a ticket from the mail client in two ways:

- Command lines at the start of a mail: ``#close``, ``#open``, ``#pending``,
  ``#tag NAME``, ``#untag NAME``, ``#priority LEVEL``, ``#assign AGENT`` and
  ``#note``, whose text up to the quoted history becomes an internal note.
  The lines are removed from the stored text.
- A recipient address with the command after a separator, for a Bcc while
  answering the customer: ``tuki+close@``, ``tuki+pending@``,
  ``tuki+tag-NAME@``, ``tuki+priority-LEVEL@``.

Only agents' commands run. With a trusted authserv-id configured, an
agent's command also needs a DKIM, SPF or DMARC pass for the agent's domain
in that server's Authentication-Results header (RFC 8601). Parsing is pure;
:func:`apply_commands` changes the ticket through
:mod:`maildesk.ticketactions`, as the command line does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses

from sqlalchemy import Connection

from maildesk import ticketactions
from maildesk.config import Config
from maildesk.message import ParsedMessage

log = logging.getLogger(__name__)

COMMAND_NAMES = ("close", "open", "pending", "tag", "untag", "priority", "assign", "note")
# Commands that need an argument, by line or by address.
_NEEDS_ARGUMENT = ("tag", "untag", "priority", "assign")
_COMMAND_LINE = re.compile(r"^#([A-Za-z]+)\b[ \t]*(.*?)\s*$")
# Where the quoted history of a reply starts: "> " lines, "On ... wrote:" in several
# languages, Outlook's separator and its quoted header block.
QUOTE_START = re.compile(
    r"^\s*(?:>|-{2,}\s*(?:original message|alkuperäinen viesti|ursprungligt meddelande)"
    r"|(?:from|lähettäjä|från|von)\s*:.*@"
    r"|.*\b(?:wrote|kirjoitti|skrev|schrieb)\s*:\s*$)",
    re.IGNORECASE,
)
# Headers that name the recipients of the delivered copy, including a Bcc recipient
# (Delivered-To from Postfix and Dovecot, X-Original-To, Envelope-To from Exim).
RECIPIENT_HEADERS = (
    "to", "cc", "bcc", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to",
    "x-delivered-to",
)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    argument: str = ""
    # "line" for a command line, "address" for a plus-address.
    source: str = "line"

    def __str__(self) -> str:
        return f"#{self.name} {self.argument}".rstrip()


@dataclass(frozen=True, slots=True)
class CommandText:
    """What the command lines at the start of a text contained."""

    commands: tuple[Command, ...]
    # The text without the command lines and without the note.
    text: str
    note: str | None = None


def parse_command_lines(text: str) -> CommandText:
    """Read the command lines at the start of ``text``.

    Blank lines between commands are skipped; the first other line ends the
    commands. ``#note`` takes the rest of its line and the lines after it up
    to the quoted history. A ``#`` line with an unknown word is ordinary text.
    """
    lines = text.splitlines()
    commands: list[Command] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        match = _COMMAND_LINE.match(line.strip())
        if match is None or match.group(1).lower() not in COMMAND_NAMES:
            break
        name, argument = match.group(1).lower(), match.group(2)
        if name == "note":
            note, rest = _note(argument, lines[index + 1:])
            commands.append(Command("note"))
            return CommandText(tuple(commands), rest, note)
        commands.append(Command(name, argument))
        index += 1
    if not commands:
        return CommandText((), text)
    return CommandText(tuple(commands), "\n".join(lines[index:]))


def _note(first_line: str, lines: list[str]) -> tuple[str, str]:
    """Split the note from the quoted history after it; return (note, history)."""
    note_lines = [first_line] if first_line else []
    for index, line in enumerate(lines):
        if QUOTE_START.match(line):
            return "\n".join(note_lines).strip(), "\n".join(lines[index:])
        note_lines.append(line)
    return "\n".join(note_lines).strip(), ""


def recipients(parsed: ParsedMessage) -> list[str]:
    """Return every recipient address the headers name, Bcc and delivery headers included."""
    values = [value for name in RECIPIENT_HEADERS for value in parsed.header_values(name)]
    return [address.lower() for _name, address in getaddresses(values) if "@" in address]


def recipient_commands(parsed: ParsedMessage, support_address: str, separator: str) -> tuple[Command, ...]:
    """Return the commands in plus-addresses of the support address among the recipients."""
    prefix = support_address.lower().rpartition("@")[0] + separator
    values = [value for name in RECIPIENT_HEADERS for value in parsed.header_values(name)]
    # Parsing the address lists costs more than the rest of the check, and most mail
    # names no plus-address: skip it when no header contains the prefix.
    if not any(prefix in value.lower() for value in values):
        return ()
    addresses = [address.lower() for _name, address in getaddresses(values) if "@" in address]
    return address_commands(addresses, support_address, separator)


def address_commands(
    addresses: Iterable[str], support_address: str, separator: str
) -> tuple[Command, ...]:
    """Return the commands in plus-addresses of the support address, each once, in order.

    ``tuki+tag-vip@example.fi`` with separator "+" is ``#tag vip``. An
    unknown command word is ignored.
    """
    local_part, _, domain = support_address.lower().rpartition("@")
    prefix = local_part + separator
    found: list[Command] = []
    for address in addresses:
        address_local, _, address_domain = address.lower().rpartition("@")
        if address_domain != domain or not address_local.startswith(prefix):
            continue
        word, _, argument = address_local[len(prefix):].partition("-")
        if word not in COMMAND_NAMES or word == "note":
            log.info("unknown plus-address command in %s ignored", address)
            continue
        command = Command(word, argument, "address")
        if command not in found:
            found.append(command)
    return tuple(found)


def is_plus_address(address: str, support_address: str, separator: str) -> bool:
    """Return whether ``address`` is the support address with a command after the separator."""
    local_part, _, domain = support_address.lower().rpartition("@")
    address_local, _, address_domain = address.lower().rpartition("@")
    return address_domain == domain and address_local.startswith(local_part + separator)


def authentication_passes(parsed: ParsedMessage, domain: str, authserv_id: str) -> bool:
    """Return whether the trusted server's Authentication-Results pass DKIM, SPF or DMARC for ``domain``.

    Only headers whose authserv-id is ``authserv_id`` count; the receiving
    server is expected to remove forged ones with its own id (RFC 8601 section 5).
    """
    for value in parsed.header_values("authentication-results"):
        parts = [part.strip() for part in _strip_comments(value).split(";")]
        if not parts or parts[0].split()[0:1] != [authserv_id]:
            continue
        for result in parts[1:]:
            if _result_passes(result, domain):
                return True
    return False


_METHOD = re.compile(r"^(dkim|spf|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)
_PROPERTY = re.compile(r"\b(header\.d|header\.i|header\.from|smtp\.mailfrom|smtp\.from)\s*=\s*(\S+)", re.IGNORECASE)


def _result_passes(result: str, domain: str) -> bool:
    match = _METHOD.match(result)
    if match is None or match.group(2).lower() != "pass":
        return False
    for _name, value in _PROPERTY.findall(result):
        checked = value.strip('"').lower().rpartition("@")[2]
        if _aligned(checked, domain):
            return True
    return False


def _aligned(checked: str, domain: str) -> bool:
    # Relaxed alignment as DMARC uses it: the same domain or one a subdomain of the other.
    return checked == domain or checked.endswith("." + domain) or domain.endswith("." + checked)


def _strip_comments(value: str) -> str:
    return re.sub(r"\([^()]*\)", " ", value)


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    command: str
    result: str  # "applied", "unchanged", or "ignored: <reason>"

    def as_dict(self) -> dict[str, str]:
        return {"command": self.command, "result": self.result}


def apply_commands(
    connection: Connection,
    config: Config,
    ticket: int,
    commands: Sequence[Command],
    *,
    actor: str,
    now: datetime,
    note: str | None = None,
    message: int | None = None,
) -> list[CommandOutcome]:
    """Run ``commands`` on ``ticket`` for agent ``actor``; return what each did.

    A command with an invalid value is ignored and logged; the others still run.
    """
    outcomes = []
    for command in commands:
        try:
            changed = _run(connection, config, ticket, command, actor, now, note, message)
        except ticketactions.TicketActionError as exc:
            log.warning("command %s from %s on ticket %s ignored: %s", command, actor, ticket, exc)
            outcomes.append(CommandOutcome(str(command), f"ignored: {exc}"))
            continue
        log.info("command %s from %s on ticket %s %s", command, actor, ticket,
                 "applied" if changed else "changed nothing")
        outcomes.append(CommandOutcome(str(command), "applied" if changed else "unchanged"))
    return outcomes


def _run(
    connection: Connection,
    config: Config,
    ticket: int,
    command: Command,
    actor: str,
    now: datetime,
    note: str | None,
    message: int | None,
) -> bool:
    name, argument = command.name, command.argument.strip()
    if name in _NEEDS_ARGUMENT and not argument:
        raise ticketactions.TicketActionError(f"#{name} needs a value")
    if name == "close":
        return ticketactions.set_status(connection, ticket, "closed", now)
    if name == "open":
        return ticketactions.set_status(connection, ticket, "open", now)
    if name == "pending":
        return ticketactions.set_status(connection, ticket, "pending", now)
    if name == "tag":
        return ticketactions.add_tag(connection, ticket, argument, now)
    if name == "untag":
        return ticketactions.remove_tag(connection, ticket, argument, now)
    if name == "priority":
        return ticketactions.set_priority(connection, config, ticket, argument, now)
    if name == "assign":
        ticketactions.assign(connection, config, ticket, argument, now, actor)
        return True
    ticketactions.add_note(connection, ticket, actor, note or "", now, message)
    return True
