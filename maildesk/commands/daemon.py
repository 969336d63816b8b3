"""``run``, ``sync`` and ``import``: the commands that ingest mail and send replies."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from maildesk.config import Config
from maildesk.errors import MaildeskError
from maildesk.i18n import _

IMPORT_BATCH = 100


def register(commands: Any) -> None:
    run = commands.add_parser(
        "run", help=_("run the daemon: sync the mailbox and send replies until stopped")
    )
    run.set_defaults(handler=run_daemon)

    sync = commands.add_parser("sync", help=_("sync the mailbox and send due replies"))
    mode = sync.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help=_("one pass, then exit"))
    mode.add_argument(
        "--dry-run", action="store_true",
        help=_(
            "read the mailbox and report the tickets, threads and replies a sync would create, "
            "writing and sending nothing"
        ),
    )
    sync.add_argument("--json", action="store_true", help=_("print the --dry-run report as JSON"))
    sync.set_defaults(handler=sync_command)

    importer = commands.add_parser(
        "import", help=_("ingest .eml files, Maildir folders or mbox files")
    )
    importer.add_argument("paths", nargs="+", type=Path, metavar=_("PATH"))
    importer.add_argument(
        "--auto-reply", action="store_true",
        help=_("queue auto-replies for new tickets (every loop-guard rule but the age limit applies)"),
    )
    importer.set_defaults(handler=import_command)


def run_daemon(config: Config, args: argparse.Namespace) -> int:
    from maildesk.service import Daemon

    daemon = Daemon(config)
    code = daemon.run()
    if daemon.job_abandoned:
        # A job thread is still blocked on a server that does not answer, and it
        # would keep the process alive until its socket timeout. Its transaction
        # was not committed, so ending now is as safe as a crash, which maildesk
        # recovers from without loss.
        logging.shutdown()
        os._exit(code)
    return code


def sync_command(config: Config, args: argparse.Namespace) -> int:
    from maildesk.service import sync_once

    if args.dry_run:
        return dry_run_command(config, args)
    with _stop_on_signals() as stop:
        stats, sent = sync_once(config, should_stop=stop.is_set)
    if stats.stopped:
        print(
            _(
                "interrupted: {stored} messages stored, {new_tickets} new tickets; "
                "run the command again to continue"
            ).format(stored=stats.stored, new_tickets=stats.new_tickets),
            file=sys.stderr,
        )
        return 128 + (stop.signal or signal.SIGINT)
    print(
        _(
            "{stored} messages stored, {duplicates} duplicates, {new_tickets} new tickets, "
            "{quarantined} quarantined; {sent} replies sent, {retried} to retry, {failed} failed"
        ).format(
            stored=stats.stored, duplicates=stats.duplicates, new_tickets=stats.new_tickets,
            quarantined=stats.quarantined, sent=sent.sent, retried=sent.retried, failed=sent.failed,
        )
    )
    failing = failing_folders(config)
    for name, error in failing:
        print(_("folder {folder} failed: {error}").format(folder=name, error=error), file=sys.stderr)
    # A folder that could not be synced is something a script or a timer must notice.
    return 1 if failing else 0


class _StopRequest(threading.Event):
    """Set by the first SIGINT or SIGTERM; ``signal`` is the number of that signal."""

    signal: int | None = None


@contextmanager
def _stop_on_signals() -> Iterator[_StopRequest]:
    """Turn the first SIGINT or SIGTERM into a stop request after the current batch.

    A second signal ends the process at once, which is as safe as a crash: the
    batch in progress was not committed and is read again by the next run.
    """
    stop = _StopRequest()

    def request_stop(signum: int, frame: object) -> None:
        stop.signal = signum
        stop.set()
        # Either signal counts as the second one: a Ctrl-C after a SIGTERM ends it too.
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        os.write(
            sys.stderr.fileno(),
            (_("stopping after the current batch; send the signal again to stop at once") + "\n").encode(),
        )

    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def failing_folders(config: Config) -> list[tuple[str, str]]:
    """Return (folder, error) for each configured folder whose last sync failed."""
    from sqlalchemy import select

    from maildesk.db import folder_errors, make_engine

    wanted = set(config.mailbox.folders) if config.mailbox else set()
    with make_engine(config.database_url).connect() as connection:
        rows = connection.execute(select(folder_errors.c.name, folder_errors.c.error)).all()
    return [(row.name, row.error) for row in rows if row.name in wanted]


def dry_run_command(config: Config, args: argparse.Namespace) -> int:
    from maildesk.commands.output import print_json
    from maildesk.dryrun import dry_run

    report = dry_run(config)
    if args.json:
        print_json(report.as_json())
        return 0
    stats = report.stats
    print(_("dry run: nothing was written to the database and nothing was sent"))
    print(
        _("{stored} messages would be stored ({quarantined} quarantined), {duplicates} are already stored")
        .format(stored=stats.stored, quarantined=stats.quarantined, duplicates=stats.duplicates)
    )
    print(_("new tickets: {count}").format(count=len(report.new_tickets)))
    for ticket in report.new_tickets:
        print(f"  #{ticket['number']} [{ticket['priority']}] {ticket['requester']}: {ticket['subject']}")
    print(_("messages joining tickets: {count}").format(count=len(report.joined)))
    for message in report.joined:
        print(f"  #{message['ticket']} ({message['thread_rule']}) {message['from']}: {message['subject']}")
    print(_("messages on no ticket: {count}").format(count=len(report.ticketless)))
    for message in report.ticketless:
        print(f"  {message['kind']} {message['from']}: {message['subject']} ({message['reason']})")
    print(_("replies that would be sent: {count}").format(count=len(report.replies)))
    for reply in report.replies:
        print("  " + _("#{ticket} to {to}: {subject}").format(
            ticket=reply["ticket"], to=", ".join(reply["to"]), subject=reply["subject"]))
    for reason, count in sorted(report.suppressed.items()):
        print("  " + _("no reply ({reason}): {count}").format(reason=reason, count=count))
    return 0


def import_command(config: Config, args: argparse.Namespace) -> int:
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
            raise MaildeskError(
                _("reading {path} failed: {error}").format(
                    path=exc.filename or _("input"), error=exc.strerror or exc
                )
            ) from exc
        finally:
            if batch:
                total.add(desk.ingestor.ingest_batch(batch, options))
    print(
        _(
            "{stored} messages stored, {duplicates} duplicates, {new_tickets} new tickets, "
            "{quarantined} quarantined, {queued} replies queued"
        ).format(
            stored=total.stored, duplicates=total.duplicates, new_tickets=total.new_tickets,
            quarantined=total.quarantined, queued=total.replies_queued,
        )
    )
    return 0
