"""The ``maildesk`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from maildesk.commands import load_modules
from maildesk.config import default_config_path, load_config
from maildesk.errors import MaildeskError
from maildesk.i18n import LANGUAGES, _, activate, language_from_environment
from maildesk.memory import tune_allocator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maildesk", description=_("A helpdesk that lives inside an ordinary support mailbox.")
    )
    parser.add_argument(
        "--config", type=Path, default=None,
        help=_("configuration file (default: $MAILDESK_CONFIG, then /etc/maildesk/config.toml)"),
    )
    parser.add_argument(
        "--lang", choices=LANGUAGES,
        help=_("language of the output (default: from LC_ALL, LC_MESSAGES or LANG)"),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=_("log debug messages too"))
    commands = parser.add_subparsers(dest="command", required=True, metavar=_("COMMAND"))
    for module in load_modules():
        module.register(commands)
    return parser


def requested_language(argv: list[str]) -> str | None:
    """Return the value of the global ``--lang`` in ``argv``, read before the parser exists.

    Only the options before the command name count, so a command's own
    ``--lang`` (as in ``templates preview --lang sv``) does not change the
    language of the output.
    """
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        argument = argv[index]
        if argument.startswith("--lang="):
            return argument.partition("=")[2]
        if argument == "--lang" and index + 1 < len(argv):
            return argv[index + 1]
        # Skip the value of an option that takes one.
        index += 2 if argument in ("--config", "--lang") else 1
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    tune_allocator()
    # Help texts are translated when the parser is built, so pick the language first.
    activate(requested_language(argv) or language_from_environment())
    args = build_parser().parse_args(argv)
    level = logging.INFO
    if getattr(args, "quiet_logs", False):
        # Commands that print a summary of their own log only warnings and errors.
        level = logging.WARNING
    if args.verbose:
        level = logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if not args.verbose:
        # Alembic logs every migration context and APScheduler every job run at
        # INFO; maildesk logs what matters of both itself.
        for noisy in ("alembic", "apscheduler"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if not getattr(args, "needs_config", True) and args.config is None:
            config = None
        else:
            config = load_config(args.config or default_config_path())
        return args.handler(config, args)
    except MaildeskError as exc:
        # A configuration error may name several keys, one per line.
        for line in str(exc).splitlines() or [""]:
            print(_("maildesk: error: {error}").format(error=line), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of a pipe (`| head`) went away. Point stdout at /dev/null so
        # the interpreter's final flush does not raise a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
