"""The ``maildesk`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from maildesk.config import Config, default_config_path, load_config
from maildesk.errors import MaildeskError

log = logging.getLogger("maildesk")

IMPORT_BATCH = 100


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maildesk", description="A helpdesk that lives inside an ordinary support mailbox."
    )
    parser.add_argument(
        "--config", type=Path, default=None,
        help="configuration file (default: $MAILDESK_CONFIG, then /etc/maildesk/config.toml)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="run the daemon: sync the mailbox and send replies until stopped")
    sync = commands.add_parser("sync", help="sync the mailbox and send due replies")
    sync.add_argument("--once", action="store_true", required=True, help="one pass, then exit")

    importer = commands.add_parser("import", help="ingest .eml files, Maildir folders or mbox files")
    importer.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    importer.add_argument(
        "--auto-reply", action="store_true",
        help="queue auto-replies for new tickets (every loop-guard rule but the age limit applies)",
    )

    tickets = commands.add_parser("tickets", help="list and show tickets")
    ticket_commands = tickets.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = ticket_commands.add_parser("list", help="list tickets, newest first")
    listing.add_argument("--status", choices=("new", "open", "pending", "closed"))
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = ticket_commands.add_parser("show", help="show one ticket with its messages")
    show.add_argument("number", type=int)
    show.add_argument("--json", action="store_true", help="print JSON")

    outbox = commands.add_parser("outbox", help="show queued and sent replies")
    outbox_commands = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    outbox_list = outbox_commands.add_parser("list", help="list the outbox")
    outbox_list.add_argument("--json", action="store_true", help="print JSON")

    messages = commands.add_parser("messages", help="show stored mail")
    message_commands = messages.add_subparsers(dest="action", required=True, metavar="ACTION")
    message_list = message_commands.add_parser("list", help="list stored messages")
    message_list.add_argument(
        "--ticketless", action="store_true", required=True,
        help="mail on no ticket: bounces, robots' mail and quarantined mail",
    )
    message_list.add_argument("--json", action="store_true", help="print JSON")

    commands.add_parser("check-config", help="check the configuration file key by key")
    database = commands.add_parser("db", help="database maintenance")
    db_commands = database.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply pending schema migrations")

    commands.add_parser("demo", help="run maildesk on built-in sample mail with local test servers")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return _dispatch(args)
    except MaildeskError as exc:
        print(f"maildesk: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from maildesk.demo import run_demo

        return run_demo(args.config)
    config = load_config(args.config or default_config_path())
    handlers = {
        "run": _run,
        "sync": _sync,
        "import": _import,
        "tickets": _tickets,
        "outbox": _outbox,
        "messages": _messages,
        "check-config": _check_config,
        "db": _db,
    }
    return handlers[args.command](config, args)


def _run(config: Config, args: argparse.Namespace) -> int:
    from maildesk.service import Daemon

    return Daemon(config).run()


def _sync(config: Config, args: argparse.Namespace) -> int:
    from maildesk.service import sync_once

    stats, sent = sync_once(config)
    print(
        f"{stats.stored} messages stored, {stats.duplicates} duplicates, "
        f"{stats.new_tickets} new tickets, {stats.quarantined} quarantined; "
        f"{sent.sent} replies sent, {sent.retried} to retry, {sent.failed} failed"
    )
    return 0


def _import(config: Config, args: argparse.Namespace) -> int:
    from maildesk.importer import read_messages
    from maildesk.ingest import BatchStats, IngestOptions
    from maildesk.lock import StateLock
    from maildesk.service import Desk

    options = IngestOptions(autoreply=args.auto_reply, check_age=False)
    total = BatchStats()
    with StateLock(config.state_dir):
        desk = Desk.open(config)
        batch = []
        try:
            for item in read_messages(args.paths):
                batch.append(item)
                if len(batch) >= IMPORT_BATCH:
                    total.add(desk.ingestor.ingest_batch(batch, options))
                    batch = []
        except OSError as exc:
            raise MaildeskError(f"reading {exc.filename or 'input'} failed: {exc.strerror or exc}") from exc
        finally:
            if batch:
                total.add(desk.ingestor.ingest_batch(batch, options))
    print(
        f"{total.stored} messages stored, {total.duplicates} duplicates, "
        f"{total.new_tickets} new tickets, {total.quarantined} quarantined, "
        f"{total.replies_queued} replies queued"
    )
    return 0


def _read(config: Config):  # type: ignore[no-untyped-def]
    from maildesk.db import make_engine
    from maildesk.schema import upgrade

    engine = make_engine(config.database_url)
    upgrade(engine)
    return engine


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _tickets(config: Config, args: argparse.Namespace) -> int:
    from maildesk import views

    with _read(config).connect() as connection:
        if args.action == "list":
            rows = views.list_tickets(connection, args.status)
            if args.json:
                _print_json(rows)
            else:
                _print_table(
                    rows, ("number", "status", "priority", "requester", "message_count", "subject")
                )
            return 0
        ticket = views.show_ticket(connection, args.number)
    if args.json:
        _print_json(ticket)
    else:
        _print_ticket(ticket)
    return 0


def _outbox(config: Config, args: argparse.Namespace) -> int:
    from maildesk import views

    with _read(config).connect() as connection:
        rows = views.list_outbox(connection)
    if args.json:
        _print_json(rows)
    else:
        _print_table(
            [dict(row, to=", ".join(row["to"])) for row in rows],
            ("id", "ticket", "status", "attempts", "to", "subject"),
        )
    return 0


def _messages(config: Config, args: argparse.Namespace) -> int:
    from maildesk import views

    with _read(config).connect() as connection:
        rows = views.list_ticketless(connection)
    if args.json:
        _print_json(rows)
    else:
        _print_table(rows, ("kind", "from", "failed_recipient", "reason", "subject"))
    return 0


def _check_config(config: Config, args: argparse.Namespace) -> int:
    print(f"{config.path}: configuration is valid")
    print(f"  desk: {config.name} <{config.support_address}>, language {config.language}")
    if config.mailbox is None:
        print("  [mailbox] not set: run and sync cannot connect")
    else:
        box = config.mailbox
        print(f"  mailbox: {box.username} at {box.host}:{box.port} ({box.security}), folders {', '.join(box.folders)}")
    if config.smtp is None:
        print("  [smtp] not set: replies are queued but not sent")
    else:
        print(f"  smtp: {config.smtp.username} at {config.smtp.host}:{config.smtp.port} ({config.smtp.security})")
    print(f"  database: {config.database_url}")
    print(f"  storage: {config.storage_path}")
    print(f"  rules: {len(config.rules)}")
    return 0


def _db(config: Config, args: argparse.Namespace) -> int:
    from maildesk.db import make_engine
    from maildesk.schema import upgrade

    before, after = upgrade(make_engine(config.database_url))
    if before == after:
        print(f"database schema is up to date (revision {after})")
    else:
        print(f"database schema upgraded from {before or 'empty'} to revision {after}")
    return 0


def _print_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row[column]) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip())
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _print_ticket(ticket: dict[str, Any]) -> None:
    tags = ", ".join(ticket["tags"]) or "-"
    print(f"#{ticket['number']} {ticket['subject']}")
    print(f"status {ticket['status']}, priority {ticket['priority']}, tags {tags}")
    print(f"requester {ticket['requester_name']} <{ticket['requester']}>".replace(" <", " <", 1))
    for message in ticket["messages"]:
        print()
        print(f"--- {message['date'] or '?'}  {message['direction']}  {message['from']}  ({message['thread_rule']})")
        for attachment in message["attachments"]:
            print(f"[attachment] {attachment['filename']} ({attachment['content_type']}, {attachment['size']} bytes)")
        print(message["text"].rstrip())
