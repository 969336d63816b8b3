"""``customers export`` and ``customers erase``, for a person's data access or erasure request."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from maildesk.commands.tickets import open_database
from maildesk.config import Config
from maildesk.connections import connect_imap
from maildesk.erasure import EraseReport, check_erasable, erase_address
from maildesk.errors import MaildeskError
from maildesk.export import export_address
from maildesk.i18n import _
from maildesk.lock import StateLock
from maildesk.mailbox_erase import FolderMatches, MailboxResult, delete_mailbox_mail, find_mailbox_mail
from maildesk.storage import FileStore

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    customers = commands.add_parser(
        "customers", help=_("export or erase everything stored about one customer")
    )
    actions = customers.add_subparsers(dest="action", required=True, metavar=_("ACTION"))

    export = actions.add_parser(
        "export", help=_("write one address's tickets, messages and files to an archive")
    )
    export.add_argument("address", help=_("the customer's e-mail address"))
    export.add_argument(
        "--out", type=Path, default=None,
        help=_(
            "a ZIP file, or a new folder when the name does not end in .zip "
            "(default: maildesk-export-<UTC time>.zip in the current folder)"
        ),
    )
    export.set_defaults(handler=export_customer)

    erase = actions.add_parser(
        "erase", help=_("delete or pseudonymize everything stored about one address")
    )
    erase.add_argument("address", help=_("the customer's e-mail address"))
    erase.add_argument(
        "--dry-run", action="store_true", help=_("print what would be done and change nothing")
    )
    erase.add_argument(
        "--mailbox", action="store_true",
        help=_("also delete the person's mail from every IMAP folder, after a confirmation"),
    )
    erase.add_argument(
        "--yes", action="store_true", help=_("do not ask for confirmation, for scripts")
    )
    erase.set_defaults(handler=erase_customer)


def export_customer(config: Config, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    destination = args.out or Path(f"maildesk-export-{now:%Y%m%dT%H%M%SZ}.zip")
    with open_database(config).connect() as connection:
        summary = export_address(
            connection, config, FileStore(config.storage_path), args.address, destination, now=now
        )
    print(
        _(
            "Wrote {path}: {tickets} tickets, {messages} messages, {attachments} attachments, "
            "{outbox} replies, {notes} notes."
        ).format(
            path=summary.path, tickets=summary.tickets, messages=summary.messages,
            attachments=summary.attachments, outbox=summary.outbox, notes=summary.notes,
        )
    )
    if summary.withheld_messages:
        print(
            _(
                "{count} messages that other customers took part in are listed without their "
                "content."
            ).format(count=summary.withheld_messages)
        )
    if summary.missing_files:
        print(
            _("{count} stored files were already removed, such as by retention.").format(
                count=summary.missing_files
            )
        )
    return 0


def erase_customer(config: Config, args: argparse.Namespace) -> int:
    address = check_erasable(config, args.address)
    files = FileStore(config.storage_path)
    if args.dry_run:
        if args.mailbox:
            print_mailbox_plan(_search_mailbox(config, address))
        report = erase_address(
            open_database(config), config, files, address, now=datetime.now(UTC), dry_run=True
        )
        print_erase_report(report)
        return 0

    # The lock comes first, so a running daemon stops the command before the prompt.
    with StateLock(config.state_dir):
        plan: list[FolderMatches] = []
        if args.mailbox:
            plan = _search_mailbox(config, address)
            print_mailbox_plan(plan)
            if not args.yes and not _confirm(address, plan):
                print(_("Not confirmed; nothing was changed."))
                return 1
        report = erase_address(open_database(config), config, files, address, now=datetime.now(UTC))
        print_erase_report(report)
        if plan:
            print_mailbox_result(_delete_from_mailbox(config, plan))
    return 0


def _search_mailbox(config: Config, address: str) -> list[FolderMatches]:
    client = connect_imap(config.require_mailbox())
    try:
        return find_mailbox_mail(client, config, address)
    except (IMAPClient.Error, OSError) as exc:
        raise MaildeskError(
            _("searching the mailbox failed: {error}; nothing was changed").format(error=exc)
        ) from exc
    finally:
        _logout(client)


def _delete_from_mailbox(config: Config, plan: list[FolderMatches]) -> MailboxResult:
    client = connect_imap(config.require_mailbox())
    try:
        return delete_mailbox_mail(client, plan)
    except (IMAPClient.Error, OSError) as exc:
        raise MaildeskError(
            _(
                "deleting mail from the mailbox failed: {error}; the database part is done, "
                "so run the same command again to finish the mailbox"
            ).format(error=exc)
        ) from exc
    finally:
        _logout(client)


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClient.Error, OSError) as exc:
        log.debug("IMAP logout failed: %s", exc)


def _confirm(address: str, plan: list[FolderMatches]) -> bool:
    count = sum(len(folder.uids) for folder in plan)
    prompt = _(
        "Delete {count} messages from the mailbox and erase {address} from the database? "
        "This cannot be undone. [y/N] "
    ).format(count=count, address=address)
    print(prompt, end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes", _("y"), _("yes"))


def print_erase_report(report: EraseReport) -> None:
    if report.dry_run:
        print(_("Dry run, nothing was changed. Erasing {address} would:").format(address=report.address))
    else:
        print(
            _("Erased {address}. Its tickets now name the requester {pseudonym}.").format(
                address=report.address, pseudonym=report.pseudonym
            )
        )
    lines = [
        (_("tickets pseudonymized"), report.tickets_pseudonymized),
        (_("of them closed"), report.tickets_closed),
        (_("other customers' tickets the address was removed from"), report.tickets_left),
        (_("messages deleted"), report.messages_deleted),
        (_("messages kept for other customers, with this person's data removed"), report.messages_redacted),
        (_("attachments deleted"), report.attachments_deleted),
        (_("outbox rows deleted"), report.outbox_deleted),
        (_("notes deleted"), report.notes_deleted),
        (_("notes with this person's data removed"), report.notes_redacted),
        (_("bounce records deleted"), report.bounce_records_deleted),
        (_("stored files deleted"), report.files_deleted),
        (_("stored files kept because other messages use them"), report.files_still_used),
        (_("stored files that no message used, deleted"), report.orphan_files_deleted),
    ]
    for label, count in lines:
        print(f"  {label}: {count}")
    if report.database_compacted is True:
        print("  " + _("database: VACUUM done, WAL checkpointed and truncated"))
    elif report.database_compacted is False:
        print(
            "  " + _(
                "database: VACUUM done, but another process kept the WAL from being truncated; "
                "stop it and run the command again"
            )
        )


def print_mailbox_plan(plan: list[FolderMatches]) -> None:
    if not plan:
        print(_("Mailbox: no mail with this address."))
        return
    print(_("Mailbox:"))
    for folder in plan:
        print(
            "  " + _("{folder}: {delete} to delete, {kept} kept because other customers took part").format(
                folder=folder.folder, delete=len(folder.uids), kept=folder.shared
            )
        )


def print_mailbox_result(result: MailboxResult) -> None:
    print(_("Mailbox: {count} messages deleted.").format(count=result.deleted))
    if result.expunged_others:
        print(
            "  " + _(
                "The server has no UIDPLUS, so EXPUNGE also removed {count} other messages "
                "that were already marked deleted."
            ).format(count=result.expunged_others)
        )
    for folder in result.skipped_folders:
        print(
            "  " + _("{folder} skipped: its UIDVALIDITY changed; run the command again.").format(folder=folder)
        )
