"""``check-config`` and ``db upgrade``."""

from __future__ import annotations

import argparse
from typing import Any

from maildesk.commands.templates import print_template_checks
from maildesk.config import Config
from maildesk.i18n import _


def register(commands: Any) -> None:
    check = commands.add_parser("check-config", help=_("check the configuration file key by key"))
    check.add_argument(
        "--connect", action="store_true",
        help=_("also log in to the IMAP and SMTP servers and check the folders and the sender address"),
    )
    check.set_defaults(handler=check_config)

    database = commands.add_parser("db", help=_("database maintenance"))
    db_commands = database.add_subparsers(dest="action", required=True, metavar=_("ACTION"))
    upgrade = db_commands.add_parser("upgrade", help=_("apply pending schema migrations"))
    upgrade.set_defaults(handler=upgrade_database)


def check_config(config: Config, args: argparse.Namespace) -> int:
    print(_("{path}: configuration is valid").format(path=config.path))
    print("  " + _("desk: {name} <{address}>, language {language}").format(
        name=config.name, address=config.support_address, language=config.language))
    if config.mailbox is None:
        print("  " + _("[mailbox] not set: run and sync cannot connect"))
    else:
        box = config.mailbox
        print("  " + _("mailbox: {username} at {host}:{port} ({security}), folders {folders}").format(
            username=box.username, host=box.host, port=box.port, security=box.security,
            folders=", ".join(box.folders)))
    if config.smtp is None:
        print("  " + _("[smtp] not set: replies are queued but not sent"))
    else:
        smtp = config.smtp
        print("  " + _("smtp: {username} at {host}:{port} ({security})").format(
            username=smtp.username, host=smtp.host, port=smtp.port, security=smtp.security))
    print("  " + _("database: {url}").format(url=config.database_url))
    print("  " + _("storage: {path}").format(path=config.storage_path))
    print("  " + _("rules: {count}").format(count=len(config.rules)))
    if not print_template_checks(config):
        return 1
    if args.connect:
        from maildesk.probe import check_connections

        return check_connections(config)
    return 0


def upgrade_database(config: Config, args: argparse.Namespace) -> int:
    from maildesk.db import make_engine
    from maildesk.schema import upgrade

    before, after = upgrade(make_engine(config.database_url))
    if before == after:
        print(_("database schema is up to date (revision {revision})").format(revision=after))
    else:
        print(_("database schema upgraded from {before} to revision {after}").format(
            before=before or _("empty"), after=after))
    return 0
