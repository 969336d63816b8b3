"""``tickets``, ``outbox`` and ``messages``: read-only views of the desk."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import Engine

from maildesk import views
from maildesk.commands.output import print_json, print_table
from maildesk.config import Config


def register(commands: Any) -> None:
    tickets = commands.add_parser("tickets", help="list and show tickets")
    ticket_commands = tickets.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = ticket_commands.add_parser("list", help="list tickets, newest first")
    listing.add_argument("--status", choices=("new", "open", "pending", "closed"))
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=list_tickets)
    show = ticket_commands.add_parser("show", help="show one ticket with its messages")
    show.add_argument("number", type=int)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=show_ticket)

    outbox = commands.add_parser("outbox", help="show queued and sent replies")
    outbox_commands = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    outbox_list = outbox_commands.add_parser("list", help="list the outbox")
    outbox_list.add_argument("--json", action="store_true", help="print JSON")
    outbox_list.set_defaults(handler=list_outbox)

    messages = commands.add_parser("messages", help="show stored mail")
    message_commands = messages.add_subparsers(dest="action", required=True, metavar="ACTION")
    message_list = message_commands.add_parser("list", help="list stored messages")
    message_list.add_argument(
        "--ticketless", action="store_true", required=True,
        help="mail on no ticket: bounces, robots' mail and quarantined mail",
    )
    message_list.add_argument("--json", action="store_true", help="print JSON")
    message_list.set_defaults(handler=list_ticketless)


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
        print_table(rows, ("number", "status", "priority", "requester", "message_count", "subject"))
    return 0


def show_ticket(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).connect() as connection:
        ticket = views.show_ticket(connection, args.number)
    if args.json:
        print_json(ticket)
    else:
        print_ticket(ticket)
    return 0


def list_outbox(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).connect() as connection:
        rows = views.list_outbox(connection)
    if args.json:
        print_json(rows)
    else:
        print_table(
            [dict(row, to=", ".join(row["to"])) for row in rows],
            ("id", "ticket", "status", "attempts", "to", "subject"),
        )
    return 0


def list_ticketless(config: Config, args: argparse.Namespace) -> int:
    with open_database(config).connect() as connection:
        rows = views.list_ticketless(connection)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ("kind", "from", "failed_recipient", "reason", "subject"))
    return 0


def print_ticket(ticket: dict[str, Any]) -> None:
    """Print a ticket and its conversation in order, readable in a terminal."""
    tags = ", ".join(ticket["tags"]) or "-"
    name = ticket["requester_name"]
    requester = f"{name} <{ticket['requester']}>" if name else ticket["requester"]
    print(f"#{ticket['number']} {ticket['subject']}")
    print(f"status {ticket['status']}, priority {ticket['priority']}, tags {tags}")
    print(f"requester {requester}")
    for message in ticket["messages"]:
        print()
        print(
            f"--- {message['date'] or '?'}  {message['direction']}  {message['from']}  "
            f"(threaded by {message['thread_rule'] or '-'})"
        )
        for attachment in message["attachments"]:
            print(
                f"[attachment] {attachment['filename']} "
                f"({attachment['content_type']}, {attachment['size']} bytes)"
            )
        print(message["text"].rstrip())
