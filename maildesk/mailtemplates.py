"""Render maildesk's own mails (notices, digests, closing messages) from templates.

Each template is one file ``<language>/<name>.txt.j2`` whose first line is
``Subject: ...``, followed by a blank line and the body, so a shop edits a
mail in one place. Templates are found and rendered by
:mod:`maildesk.templating`, like the auto-reply templates: in a Jinja2
sandbox, falling back to the desk's language, then English.
"""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from maildesk.config import Config
from maildesk.message import Address
from maildesk.replies import clean_header_text
from maildesk.templating import render_templates, resolve_language


def render(config: Config, name: str, language: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Render template ``name`` and return (subject, body, language of the template used).

    Raises FileNotFoundError when no language has the template and ValueError
    when its first line is not a Subject line.
    """
    chosen = resolve_language(config, name, language)
    rendered = render_templates(config, name, chosen, context)
    subject, body = _split_subject(rendered.text, f"{chosen}/{name}.txt.j2")
    return subject, body, chosen


def _split_subject(text: str, where: str) -> tuple[str, str]:
    first, _, body = text.partition("\n")
    label, colon, subject = first.partition(":")
    if not colon or label.strip().lower() != "subject":
        raise ValueError(f"template {where}: the first line must be 'Subject: ...'")
    body = body.lstrip("\n")
    if not body.endswith("\n"):
        body += "\n"
    return clean_header_text(subject), body


def build_mail(
    config: Config,
    *,
    to: Address,
    subject: str,
    body: str,
    language: str,
    now: datetime,
    message_id: str,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
) -> EmailMessage:
    """Return a complete automatic mail from the desk to ``to``.

    ``message_id`` is given without angle brackets. The mail carries
    ``Auto-Submitted: auto-generated`` (RFC 3834), so well-behaved responders
    do not answer it.
    """
    mail = EmailMessage(policy=policy.SMTP)
    sender = config.smtp.from_address if config.smtp is not None else config.support_address
    mail["From"] = _header_address(config.name, sender)
    mail["To"] = _header_address(to.name, to.addr)
    if sender != config.support_address:
        mail["Reply-To"] = _header_address(config.name, config.support_address)
    mail["Subject"] = subject
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        mail["References"] = " ".join(f"<{reference}>" for reference in references)
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Auto-Response-Suppress"] = "All"
    mail.set_content(body, cte="quoted-printable")
    # Set after set_content, which removes the Content-* headers it did not write.
    mail["Content-Language"] = language
    return mail


def new_message_id(config: Config) -> str:
    """Return a new Message-ID on the support domain, without angle brackets, for mail on no ticket."""
    return make_msgid(idstring="maildesk", domain=config.support_domain).strip("<>")


def _header_address(name: str, address: str) -> HeaderAddress:
    local_part, _, domain = address.rpartition("@")
    if not local_part or not local_part.isascii():
        raise ValueError(f"invalid recipient {address!r}: expected an ASCII address such as name@example.fi")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return HeaderAddress(display_name=clean_header_text(name), username=local_part, domain=domain)
