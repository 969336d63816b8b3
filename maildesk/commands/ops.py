"""``status`` and ``backup``: commands for the operators of a maildesk service."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from maildesk.commands.output import print_json
from maildesk.config import Config
from maildesk.i18n import _, format_datetime_for_people

# Exit code of ``status`` when something needs attention; 1 stays for errors
# such as an unreadable config, and 2 is argparse's code for a usage error.
ATTENTION_EXIT_CODE = 3


def register(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help=_("show sync, outbox and ticket health; exit code 3 when something needs attention"),
    )
    status.add_argument("--json", action="store_true", help=_("print JSON"))
    status.add_argument(
        "--strict", action="store_true",
        help=_("also exit with code 3 when tickets are past their first-answer time"),
    )
    status.set_defaults(handler=show_status)

    backup = commands.add_parser(
        "backup", help=_("copy the SQLite database to FILE while maildesk keeps running")
    )
    backup.add_argument("file", type=Path, metavar="FILE", help=_("the backup file to write"))
    backup.set_defaults(handler=backup_command)


def show_status(config: Config, args: argparse.Namespace) -> int:
    from maildesk.commands.tickets import open_database
    from maildesk.status import collect_status

    with open_database(config).connect() as connection:
        report = collect_status(connection, config, datetime.now(UTC), strict=args.strict)
    if args.json:
        print_json(report.as_json())
    else:
        _print_report(report, ZoneInfo(config.hours.time_zone))
    return ATTENTION_EXIT_CODE if report.problems else 0


def backup_command(config: Config, args: argparse.Namespace) -> int:
    from maildesk.backup import backup_database

    result = backup_database(config.database_url, args.file)
    print(_("database backed up to {path} ({size} bytes)").format(path=result.path, size=result.size))
    print(
        _("raw messages and attachments are files under {storage}; back that folder up too")
        .format(storage=config.storage_path)
    )
    return 0


def _print_report(report: Any, zone: tzinfo) -> None:
    checked_at = format_datetime_for_people(report.checked_at, zone)
    print(_("maildesk status at {time}").format(time=checked_at))
    if report.folders:
        print(_("folders:"))
        for folder in report.folders:
            last = _("never")
            if folder.last_sync_at:
                last = format_datetime_for_people(folder.last_sync_at, zone)
            state = _("failing: {error}").format(error=folder.error) if folder.error else _("ok")
            print(f"  {folder.name}: " + _("last sync {time}, {state}").format(time=last, state=state))
            if folder.import_until is not None:
                print("    " + _("first import unfinished: stored up to UID {last_uid}, ends at UID {import_until}").format(
                    last_uid=folder.last_uid, import_until=folder.import_until,
                ))
    print(
        _("outbox: {queued} queued, {sending} sending, {failed} failed in the last 24 h").format(
            queued=report.outbox_queued, sending=report.outbox_sending,
            failed=len(report.outbox_failed),
        )
    )
    for failed in report.outbox_failed:
        print(f"  #{failed.id} ({', '.join(failed.to)}): {failed.last_error}")
    counts = ", ".join(f"{priority} {count}" for priority, count in report.open_tickets.items())
    print(_("tickets not closed: {counts}").format(counts=counts))
    print(_("overdue tickets: {count}").format(count=len(report.overdue_tickets)))
    if report.problems:
        print(_("needs attention:"))
        for problem in report.problems:
            print(f"  - {problem}")
    else:
        print(_("nothing needs attention"))
