"""``check-config`` and ``db upgrade``."""

from __future__ import annotations

import argparse
from typing import Any

from maildesk.commands.templates import print_template_checks
from maildesk.config import Config


def register(commands: Any) -> None:
    check = commands.add_parser("check-config", help="check the configuration file key by key")
    check.add_argument(
        "--connect", action="store_true",
        help="also log in to the IMAP and SMTP servers and check the folders and the sender address",
    )
    check.set_defaults(handler=check_config)

    database = commands.add_parser("db", help="database maintenance")
    db_commands = database.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="apply pending schema migrations")
    upgrade.set_defaults(handler=upgrade_database)


def check_config(config: Config, args: argparse.Namespace) -> int:
    print(f"{config.path}: configuration is valid")
    print(f"  desk: {config.name} <{config.support_address}>, language {config.language}")
    if config.mailbox is None:
        print("  [mailbox] not set: run and sync cannot connect")
    else:
        box = config.mailbox
        print(
            f"  mailbox: {box.username} at {box.host}:{box.port} ({box.security}), "
            f"folders {', '.join(box.folders)}"
        )
    if config.smtp is None:
        print("  [smtp] not set: replies are queued but not sent")
    else:
        smtp = config.smtp
        print(f"  smtp: {smtp.username} at {smtp.host}:{smtp.port} ({smtp.security})")
    print(f"  database: {config.database_url}")
    print(f"  storage: {config.storage_path}")
    print(f"  rules: {len(config.rules)}")
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
        print(f"database schema is up to date (revision {after})")
    else:
        print(f"database schema upgraded from {before or 'empty'} to revision {after}")
    return 0
