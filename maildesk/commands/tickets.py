"""``tickets``, ``outbox`` and ``messages``: views of the desk and changes to tickets.

``tickets close|reopen|tag|untag|priority|assign|note`` change a ticket by the
same rules as the mail commands (:mod:`maildesk.ticketactions`);
``tickets split`` and ``tickets merge`` repair a wrong join.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from maildesk import ticketactions, views
from maildesk.commands.output import print_json, print_table
from maildesk.config import PRIORITIES, Config
from maildesk.i18n import N_, _, format_datetime_for_people
from maildesk.quotes import visible_text

# Author of notes written on the command line.
COMMAND_LINE_AUTHOR = "command line"


def register(commands: Any) -> None:
    tickets = commands.add_parser("tickets", help=_("list and show tickets"))
    ticket_commands = tickets.add_subparsers(dest="action", required=True, metavar=_("ACTION"))
    listing = ticket_commands.add_parser("list", help=_("list tickets, newest first"))
    listing.add_argument(
        "--status", choices=("new", "open", "pending", "closed"),
        help=_("list only tickets with this status"),
    )
    listing.add_argument("--json", action="store_true", help=_("print JSON"))
    listing.set_defaults(handler=list_tickets)
    show = ticket_commands.add_parser("show", help=_("show one ticket with its messages"))
    show.add_argument("number", type=int)
    show.add_argument("--json", action="store_true", help=_("print JSON"))
    show.set_defaults(handler=show_ticket)
    _register_changes(ticket_commands)

    outbox = commands.add_parser("outbox", help=_("show queued and sent replies"))
    outbox_commands = outbox.add_subparsers(dest="action", required=True, metavar=_("ACTION"))
    outbox_list = outbox_commands.add_parser("list", help=_("list the outbox"))
    outbox_list.add_argument("--json", action="store_true", help=_("print JSON"))
    outbox_list.set_defaults(handler=list_outbox)

    messages = commands.add_parser("messages", help=_("show stored mail"))
    message_commands = messages.add_subparsers(dest="action", required=True, metavar=_("ACTION"))
    message_list = message_commands.add_parser("list", help=_("list stored messages"))
    message_list.add_argument(
        "--ticketless", action="store_true", required=True,
        help=_("mail on no ticket: bounces, robots' mail and quarantined mail"),
    )
    message_list.add_argument("--json", action="store_true", help=_("print JSON"))
    message_list.set_defaults(handler=list_ticketless)


def _register_changes(ticket_commands: Any) -> None:
    close = ticket_commands.add_parser("close", help=_("close tickets"))
    close.add_argument("numbers", type=int, nargs="+", metavar="N")
    close.set_defaults(handler=change_status, status="closed")
    reopen = ticket_commands.add_parser("reopen", help=_("open closed or pending tickets again"))
    reopen.add_argument("numbers", type=int, nargs="+", metavar="N")
    reopen.set_defaults(handler=change_status, status="open")
    for name, help_text in (("tag", _("add tags to a ticket")), ("untag", _("remove tags from a ticket"))):
        parser = ticket_commands.add_parser(name, help=help_text)
        parser.add_argument("number", type=int, metavar="N")
        parser.add_argument("tags", nargs="+", metavar="TAG")
        parser.set_defaults(handler=change_tags, remove=name == "untag")
    priority = ticket_commands.add_parser("priority", help=_("set the priority of a ticket"))
    priority.add_argument("number", type=int, metavar="N")
    priority.add_argument("priority", choices=PRIORITIES)
    priority.set_defaults(handler=change_priority)
    assign = ticket_commands.add_parser("assign", help=_("make an agent the owner of a ticket"))
    assign.add_argument("number", type=int, metavar="N")
    assign.add_argument("agent", help=_("an agent's address, or a local part that names one agent"))
    assign.set_defaults(handler=assign_ticket)
    note = ticket_commands.add_parser("note", help=_("add an internal note, never sent to the customer"))
    note.add_argument("number", type=int, metavar="N")
    note.add_argument("text", nargs="+", help=_("the note; - reads it from standard input"))
    note.add_argument("--author", default=COMMAND_LINE_AUTHOR, help=_("who wrote the note"))
    note.set_defaults(handler=add_note)
    split = ticket_commands.add_parser("split", help=_("move one message into a new ticket"))
    split.add_argument("number", type=int, metavar="N")
    split.add_argument("message", help=_("the message's id from tickets show, or its Message-ID"))
    split.set_defaults(handler=split_ticket)
    merge = ticket_commands.add_parser("merge", help=_("move every message of ticket M into ticket N"))
    merge.add_argument("number", type=int, metavar="N")
    merge.add_argument("other", type=int, metavar="M")
    merge.set_defaults(handler=merge_tickets)


def open_database(config: Config) -> Engine:
    """Open the database for reading, creating or migrating it first when needed."""
    from maildesk.db import make_engine
    from maildesk.schema import upgrade

    engine = make_engine(config.database_url)
    upgrade(engine)
    return engine


def list_tickets(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).connect() as connection:
        rows = views.list_tickets(connection, args.status)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, {
            "number": _("number"), "status": _("status"), "priority": _("priority"),
            "requester": _("requester"), "message_count": _("message_count"),
            "subject": _("subject"),
        })
    return 0


def show_ticket(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).connect() as connection:
        ticket = views.show_ticket(connection, args.number)
    if args.json:
        print_json(ticket)
    else:
        print_ticket(ticket, ZoneInfo(config.hours.time_zone))
    return 0


def list_outbox(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).connect() as connection:
        rows = views.list_outbox(connection)
    if args.json:
        print_json(rows)
    else:
        print_table(
            [dict(row, to=", ".join(row["to"])) for row in rows],
            {
                "id": _("id"), "ticket": _("ticket"), "status": _("status"),
                "attempts": _("attempts"), "to": _("to"), "subject": _("subject"),
            },
        )
    return 0


def list_ticketless(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).connect() as connection:
        rows = views.list_ticketless(connection)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, {
            "kind": _("kind"), "from": _("from"), "failed_recipient": _("failed_recipient"),
            "reason": _("reason"), "subject": _("subject"),
        })
    return 0


def _now() -> datetime:
    return datetime.now(UTC)


def change_status(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).begin() as connection:
        for number in args.numbers:
            changed = ticketactions.set_status(connection, number, args.status, _now())
            template = _("ticket {number} is now {status}") if changed else _("ticket {number} was already {status}")
            print(template.format(number=number, status=args.status))
    return 0


def change_tags(config: Config, args: argparse.Namespace) -> int:
    change = ticketactions.remove_tag if args.remove else ticketactions.add_tag
    with open_database(config).begin() as connection:
        for tag in args.tags:
            change(connection, args.number, tag, _now())
        tags = ", ".join(views.show_ticket(connection, args.number)["tags"]) or "-"
    print(_("ticket {number} tags: {tags}").format(number=args.number, tags=tags))
    return 0


def change_priority(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).begin() as connection:
        ticketactions.set_priority(connection, config, args.number, args.priority, _now())
    print(_("ticket {number} priority: {priority}").format(number=args.number, priority=args.priority))
    return 0


def assign_ticket(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).begin() as connection:
        agent = ticketactions.assign(connection, config, args.number, args.agent, _now())
    print(_("ticket {number} owner: {agent}").format(number=args.number, agent=agent))
    return 0


def add_note(config: Config, args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == ["-"] else " ".join(args.text)
    with open_database(config).begin() as connection:
        ticketactions.add_note(connection, args.number, args.author, text, _now())
    print(_("note added to ticket {number}").format(number=args.number))
    return 0


def split_ticket(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).begin() as connection:
        new = ticketactions.split(connection, args.number, args.message, _now())
    print(_("message {message} moved from ticket {number} to new ticket {new}").format(
        message=args.message, number=args.number, new=new))
    return 0


def merge_tickets(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).begin() as connection:
        moved = ticketactions.merge(connection, args.number, args.other, _now())
    print(_("ticket {other} merged into ticket {number} ({count} messages moved)").format(
        other=args.other, number=args.number, count=moved))
    return 0


def print_ticket(ticket: dict[str, Any], zone: ZoneInfo | None = None) -> None:
    """Print a ticket and its conversation in date order, readable in a terminal."""
    zone = zone or ZoneInfo("UTC")
    for line in _ticket_header(ticket, zone):
        print(line)
    for message in _in_date_order(ticket["messages"]):
        print()
        for line in _message_lines(message, zone):
            print(line)
    if ticket.get("notes"):
        print()
        print(_("Internal notes (never sent to the customer):"))
        for note in ticket["notes"]:
            print(f"- {_local(note['created_at'], zone)}  {note['author']}: {note['text']}")


def _ticket_header(ticket: dict[str, Any], zone: ZoneInfo) -> list[str]:
    name = ticket["requester_name"]
    requester = f"{name} <{ticket['requester']}>" if name else ticket["requester"]
    lines = [
        f"#{ticket['number']} {ticket['subject']}",
        _("status {status}, priority {priority}, tags {tags}").format(
            status=ticket["status"], priority=ticket["priority"], tags=", ".join(ticket["tags"]) or "-"),
        _("requester {requester}, owner {owner}").format(requester=requester, owner=ticket["owner"] or "-"),
        _("opened {created}, first answer {answered} (due {due})").format(
            created=_local(ticket["created_at"], zone),
            answered=_local(ticket.get("first_response_at"), zone),
            due=_local(ticket["first_response_due"], zone)),
    ]
    if ticket.get("linked_ticket"):
        lines.append(_("continues closed ticket #{number}").format(number=ticket["linked_ticket"]))
    if ticket.get("merged_into"):
        lines.append(_("merged into ticket #{number}").format(number=ticket["merged_into"]))
    return lines


_DIRECTIONS = {"inbound": N_("customer"), "agent": N_("agent"), "auto": N_("maildesk")}


def _message_lines(message: dict[str, Any], zone: ZoneInfo) -> list[str]:
    name = message["from_name"]
    sender = f"{name} <{message['from']}>" if name else message["from"] or "?"
    role = _(_DIRECTIONS.get(message["direction"], message["direction"]))
    if message["kind"] not in ("customer", "agent", "auto"):
        role = f"{role}, {message['kind']}"
    lines = [
        f"--- {_local(message['date'], zone)}  [{role}]  {sender}",
        _("    message {id}, threaded by {rule}").format(id=message["id"], rule=message["thread_rule"] or "-"),
    ]
    for command in message.get("commands", []):
        lines.append(f"    {command['command']}: {command['result']}")
    for attachment in message["attachments"]:
        lines.append(_("[attachment] {name} ({content_type}, {size} bytes)").format(
            name=attachment["filename"], content_type=attachment["content_type"], size=attachment["size"]))
    lines.append(visible_text(message["text"], message["subject"]).rstrip())
    return lines


def _in_date_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Stored order is kept for messages without a date and between equal dates; a reply
    # read from the Sent folder after newer inbox mail still lands in its place.
    last = ""
    keyed = []
    for index, item in enumerate(items):
        last = item["date"] and _utc_text(item["date"]) or last
        keyed.append((last, index, item))
    return [item for _key, _index, item in sorted(keyed, key=lambda entry: entry[:2])]


def _utc_text(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()


def _local(value: str | None, zone: ZoneInfo) -> str:
    return format_datetime_for_people(value, zone) if value else "-"
