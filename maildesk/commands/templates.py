"""``templates preview``: a reply rendered as the customer would get it, and the template check."""

from __future__ import annotations

import argparse
import functools
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from maildesk import repository as repo
from maildesk.config import LANGUAGES, Config
from maildesk.errors import TicketNotFoundError
from maildesk.i18n import _
from maildesk.message import Address
from maildesk.replies import REPLY_KINDS, build_reply, sample_reply_context
from maildesk.templating import check_templates


def register(commands: Any) -> None:
    templates = commands.add_parser("templates", help=_("preview the reply templates"))
    template_commands = templates.add_subparsers(dest="action", required=True, metavar=_("ACTION"))
    preview = template_commands.add_parser(
        "preview", help=_("print a rendered reply with its headers, text and HTML parts")
    )
    preview.add_argument("name", choices=REPLY_KINDS, help=_("the reply to render"))
    preview.add_argument(
        "--lang", dest="template_language", choices=LANGUAGES,
        help=_("language of the reply (default: the ticket's, else the desk's)"),
    )
    preview.add_argument(
        "--ticket", type=int, metavar="N",
        help=_("render for stored ticket N instead of a made-up sample ticket"),
    )
    preview.set_defaults(handler=preview_template)


def preview_template(config: Config, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.ticket is None:
        reply = _sample_reply(config, args.name, args.template_language or config.language, now)
    else:
        reply = _ticket_reply(config, args.name, args.ticket, args.template_language, now)
    print_message(reply)
    return 0


def print_message(message: EmailMessage) -> None:
    """Print the headers of ``message`` decoded, then each text part under a heading."""
    for name, value in message.items():
        print(f"{name}: {value}")
    for part in message.walk():
        if part.is_multipart():
            continue
        print()
        print(f"--- {part.get_content_type()} ---")
        print(part.get_content().rstrip("\n"))


# Template kind -> function(config, language, now) that returns a sample context. Every kind
# listed here is rendered by check-config in every language; a module that adds templates
# of its own adds its kinds here.
def sample_agent_notice_context(config: Config, language: str, now: datetime) -> Mapping[str, Any]:
    """Return a context like the one of the second-agent notice."""
    return {
        "desk_name": config.name,
        "ticket_number": 1234,
        "subject": "Tilaus 10482",
        "customer": "asiakas@example.com",
        "first_agent": "aino@example.fi",
        "first_agent_name": "Aino",
        "answered_at": "9.12. klo 12",
        "excerpt": "Hei, tilauksesi lähti tänään.",
    }


def sample_digest_context(config: Config, language: str, now: datetime) -> Mapping[str, Any]:
    """Return a context like the one of the overdue digest, with one row in each list."""
    row = {"number": 1234, "subject": "Tilaus 10482", "customer": "asiakas@example.com",
           "age": "2 pv", "priority": "high"}
    return {
        "desk_name": config.name,
        "date": f"{now.day}.{now.month}.{now.year}",
        "overdue": [row],
        "waiting": [row],
        "unowned": [row],
    }


def sample_auto_close_context(config: Config, language: str, now: datetime) -> Mapping[str, Any]:
    """Return a context like the one of the auto-close notice."""
    return {
        "desk_name": config.name,
        "ticket_number": 1234,
        "subject": "Tilaus 10482",
        "reply_subject": "Re: Tilaus 10482 [#1234]",
        "customer_name": "Maija",
        "support_address": config.support_address,
        "days": 7,
    }


TEMPLATE_SAMPLES: dict[str, Callable[[Config, str, datetime], Mapping[str, Any]]] = {
    **{kind: sample_reply_context for kind in REPLY_KINDS},
    "agent_notice": sample_agent_notice_context,
    "digest": sample_digest_context,
    "auto_close": sample_auto_close_context,
}


def sample_contexts(config: Config, now: datetime) -> dict[str, Callable[[str], Mapping[str, Any]]]:
    """Return a sample-context function per template kind, for :func:`check_templates`."""
    return {
        kind: functools.partial(_call_sample, sample, config, now)
        for kind, sample in TEMPLATE_SAMPLES.items()
    }


def _call_sample(
    sample: Callable[[Config, str, datetime], Mapping[str, Any]],
    config: Config,
    now: datetime,
    language: str,
) -> Mapping[str, Any]:
    return sample(config, language, now)


def print_template_checks(config: Config) -> bool:
    """Check every reply template in every language, print the outcome, return whether all passed."""
    checks = check_templates(
        config, sample_contexts(config, datetime.now(UTC)), required=("new_ticket",)
    )
    rendered = [check for check in checks if check.problem is None]
    print(
        _("  templates: {count} rendered in {languages}").format(
            count=len(rendered), languages=", ".join(LANGUAGES)
        )
    )
    for check in checks:
        if check.problem is None:
            continue
        label = _("error") if check.fatal else _("note")
        print(f"  {label}: {check.name}: {check.problem}")

    return not any(check.fatal for check in checks)


def _sample_reply(config: Config, kind: str, language: str, now: datetime) -> EmailMessage:
    context = sample_reply_context(config, language, now)
    return build_reply(
        config,
        kind,
        ticket_number=context["ticket_number"],
        subject=context["subject"],
        priority="normal",
        recipient=Address("maija.meikalainen@example.com", context["customer_name"]),
        parent_id="sample@example.com",
        references=(),
        language=language,
        now=now,
        # A throwaway key: the preview's Message-ID check value matches no stored ticket.
        secret=secrets.token_bytes(32),
    )


def _ticket_reply(
    config: Config, kind: str, number: int, language: str | None, now: datetime
) -> EmailMessage:
    from maildesk.autoreply import AutoReplier
    from maildesk.commands.tickets import open_database
    from maildesk.replyhistory import last_customer_message

    with open_database(config).connect() as connection:
        row = repo.ticket_row(connection, number)
        if row is None:
            raise TicketNotFoundError(number)
        parent = last_customer_message(connection, number)
        measured = AutoReplier(config).measured_first_response(connection, row.priority, now)

    return build_reply(
        config,
        kind,
        ticket_number=number,
        subject=row.subject,
        priority=row.priority,
        recipient=Address(row.requester, row.requester_name),
        parent_id=parent.message_id if parent else None,
        references=tuple(parent.references.split()) if parent else (),
        language=language or row.language,
        now=now,
        secret=secrets.token_bytes(32),
        measured=measured,
    )
