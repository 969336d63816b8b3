"""Build the auto-reply that acknowledges a new ticket.

The reply's Message-ID carries the ticket number and an HMAC check value, so a
customer's reply that keeps only In-Reply-To still finds its ticket, and a made-up
id does not. The body comes from a Jinja2 template per language, rendered in a
sandbox. Every text that came from the customer is cleaned of line breaks and
control characters before it reaches a header.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
from datetime import datetime
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from maildesk.config import Config
from maildesk.message import Address, ParsedMessage

logger = logging.getLogger(__name__)

# NOTE: expected reply times are always shown in Finnish time, because the configuration
# has no time zone setting yet.
DISPLAY_TIMEZONE = ZoneInfo("Europe/Helsinki")
NEW_TICKET_TEMPLATE = "new_ticket.txt.j2"
FALLBACK_LANGUAGE = "en"
# A References header keeps the thread's first id and the newest ones up to this count,
# so that a long thread does not grow the header without bound.
MAX_REFERENCES = 20

_MESSAGE_ID_PREFIX = "maildesk"
_RANDOM_BYTES = 5  # base32 of 5 bytes is 8 characters
_CHECK_LENGTH = 10  # 10 base32 characters carry 50 bits of the HMAC
# maildesk.<ticket>.<random>.<check>@<domain>, matched after lower-casing.
_OWN_MESSAGE_ID = re.compile(
    rf"^{_MESSAGE_ID_PREFIX}\.([1-9][0-9]{{0,17}})"
    rf"\.([a-z2-7]{{8}})"
    rf"\.([a-z2-7]{{{_CHECK_LENGTH}}})"
    r"@[^@\s]+$"
)
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")

# "Re:", "RE:", "Vs:", "Vast:", "SV:", "Svar:", "AW:", "Antw:", in any case and optionally
# with a count such as "Re[2]:".
_REPLY_PREFIX = re.compile(
    r"^(?:re|vs|vast|sv|svar|aw|antw)\s*(?:\[\d+\]|\(\d+\))?\s*:", re.IGNORECASE
)
_TICKET_TAG = re.compile(r"\[#\s*(\d+)\s*\]")
# Characters that are printable US-ASCII, except the angle brackets that delimit an id.
_MESSAGE_ID_TEXT = re.compile(r"^[!-;=?-~]+$")

_ENGLISH_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

_warned_missing_templates: set[tuple[Path, str]] = set()


def make_message_id(ticket: int, domain: str, secret: bytes) -> str:
    """Return a new Message-ID for a reply on ``ticket``, without angle brackets.

    The form is ``maildesk.<ticket>.<random>.<check>@<domain>``. ``random`` is 8 base32
    characters from :mod:`secrets`, and ``check`` the first 10 characters of the base32
    HMAC-SHA256 of ``<ticket>.<random>`` under ``secret``. Every character left of the
    ``@`` is lower-case, so a system that changes the case of the id does not break it.
    Raises ValueError for a ticket below 1, an invalid domain or an empty secret.
    """
    if ticket < 1:
        raise ValueError(f"invalid ticket number {ticket}: expected 1 or more")
    if not _DOMAIN.match(domain):
        raise ValueError(
            f"invalid Message-ID domain {domain!r}: expected a domain such as example.fi"
        )
    _require_secret(secret)

    random_part = base64.b32encode(secrets.token_bytes(_RANDOM_BYTES)).decode("ascii").lower()
    check = _message_id_check(ticket, random_part, secret)

    return f"{_MESSAGE_ID_PREFIX}.{ticket}.{random_part}.{check}@{domain}"


def ticket_from_message_id(message_id: str, secret: bytes) -> int | None:
    """Return the ticket number of a Message-ID made by :func:`make_message_id`, else None.

    Angle brackets, surrounding whitespace and case changes are tolerated. An id whose
    check value does not match its ticket number and random part returns None. The
    comparison runs in constant time. Raises ValueError for an empty secret.
    """
    _require_secret(secret)
    match = _OWN_MESSAGE_ID.match(message_id.strip().removeprefix("<").removesuffix(">").lower())
    if match is None:
        return None

    ticket = int(match.group(1))
    expected = _message_id_check(ticket, match.group(2), secret)
    if not hmac.compare_digest(expected, match.group(3)):
        return None

    return ticket


def _message_id_check(ticket: int, random_part: str, secret: bytes) -> str:
    # The "message-id:" prefix keeps these values apart from any other HMAC made with the
    # same secret.
    data = f"message-id:{ticket}.{random_part}".encode("ascii")
    digest = hmac.new(secret, data, hashlib.sha256).digest()

    return base64.b32encode(digest).decode("ascii").lower()[:_CHECK_LENGTH]


def _require_secret(secret: bytes) -> None:
    if not secret:
        raise ValueError("empty Message-ID secret: expected the desk's random secret bytes")


def clean_header_text(text: str) -> str:
    """Return ``text`` with line breaks and control characters replaced, safe for a header.

    Each C0 or C1 control character, U+2028 and U+2029 becomes a space, because a line
    break that reaches a header would start a new header line (header injection).
    Runs of whitespace are then collapsed to one space, and the ends are stripped.
    """
    characters = [
        " " if unicodedata.category(character) in ("Cc", "Zl", "Zp") else character
        for character in text
    ]

    return " ".join("".join(characters).split())


def reply_subject(subject: str, number: int) -> str:
    """Return the Subject of a reply on ticket ``number`` to a message with ``subject``.

    The result is ``Re: <subject> [#<number>]``. No "Re:" is added when the subject
    already starts with a reply prefix (Re, Vs, Vast, SV, Svar, AW, Antw, in any case and
    with an optional count such as ``Re[2]:``). The tag is not repeated when the subject carries
    it already, and tags of other tickets are removed so that the customer's next reply
    names only this ticket. The subject is cleaned with :func:`clean_header_text`.
    """
    own_tag = f"[#{number}]"
    has_own_tag = False

    def keep_own_tag(match: re.Match[str]) -> str:
        nonlocal has_own_tag
        if int(match.group(1)) != number or has_own_tag:
            return ""
        has_own_tag = True
        return own_tag

    text = clean_header_text(_TICKET_TAG.sub(keep_own_tag, clean_header_text(subject)))
    if not has_own_tag:
        text = f"{text} {own_tag}".lstrip()
    if not _REPLY_PREFIX.match(text):
        text = f"Re: {text}"

    return text


def find_templates_dir(config: Config) -> Path:
    """Return the folder that contains the ``<language>/*.j2`` reply templates.

    The order is ``[autoreply] templates`` when set, then ``maildesk/templates`` inside
    the installed package (the wheel build copies them there), then the repository's
    top-level ``templates/`` for an editable install. Raises FileNotFoundError when the
    chosen folder does not exist.
    """
    configured = config.autoreply.templates
    if configured is not None:
        if not configured.is_dir():
            raise FileNotFoundError(
                f"templates folder {configured} not found; fix autoreply.templates in "
                f"{config.path or 'the configuration'}"
            )
        return configured

    package_dir = Path(__file__).parent / "templates"
    repository_dir = Path(__file__).parents[1] / "templates"
    for candidate in (package_dir, repository_dir):
        if candidate.is_dir():
            return candidate

    raise FileNotFoundError(
        f"templates folder not found at {package_dir} or {repository_dir}; "
        "reinstall maildesk or set autoreply.templates"
    )


def format_expected_by(moment: datetime, language: str) -> str:
    """Return ``moment`` in Finnish time, written as customers read dates in ``language``.

    fi gives "9.12.2026 klo 12.00", sv "9.12.2026 kl. 12.00", and every other language
    the English "9 December 2026 at 12:00". Raises ValueError for a naive datetime.
    """
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: expected one with a time zone")

    local = moment.astimezone(DISPLAY_TIMEZONE)
    date = f"{local.day}.{local.month}.{local.year}"
    if language == "fi":
        return f"{date} klo {local.hour}.{local.minute:02d}"
    if language == "sv":
        return f"{date} kl. {local.hour}.{local.minute:02d}"

    month = _ENGLISH_MONTHS[local.month - 1]
    return f"{local.day} {month} {local.year} at {local.hour:02d}:{local.minute:02d}"


def build_new_ticket_reply(
    *,
    config: Config,
    ticket_number: int,
    subject: str,
    priority: str,
    customer: Address,
    message: ParsedMessage,
    language: str,
    now: datetime,
    secret: bytes,
) -> EmailMessage:
    """Render the acknowledgement of a new ticket and return it as a complete message.

    ``subject`` is the ticket's subject, ``customer`` the recipient, ``message`` the
    customer's mail that opened the ticket, and ``language`` the preferred language
    (a tag such as "fi" or "sv-FI"). The template falls back to ``config.language`` and
    then English when no template exists for it. ``now`` must carry a time zone.

    Raises ValueError for a priority without a target in ``[autoreply.targets]``, a naive
    ``now``, or a customer address with a non-ASCII local part (that needs SMTPUTF8,
    which maildesk does not use). Raises FileNotFoundError when no template is found.
    """
    body, body_language = _render_new_ticket_body(
        config=config,
        ticket_number=ticket_number,
        subject=subject,
        priority=priority,
        customer_name=customer.name,
        language=language,
        now=now,
    )

    reply = EmailMessage(policy=policy.SMTP)
    _set_address_headers(reply, config, customer)
    reply["Subject"] = reply_subject(subject, ticket_number)
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = f"<{make_message_id(ticket_number, config.support_domain, secret)}>"
    _set_thread_headers(reply, message)
    # RFC 3834 section 3.1.7: every automatic response SHOULD carry this field.
    reply["Auto-Submitted"] = "auto-replied"
    # Asks Exchange and Outlook not to send out-of-office or other automatic replies back.
    reply["X-Auto-Response-Suppress"] = "All"
    # No Precedence field: RFC 3834 section 3.1.8 only allows it (MAY), RFC 2076 lists the
    # field as non-standard and discouraged, and "bulk" makes some providers file the mail
    # as a mass mailing. Auto-Submitted already stops responders that follow RFC 3834.

    # Quoted-printable keeps the body 7-bit, so relays without 8BITMIME pass it unchanged.
    reply.set_content(body, cte="quoted-printable")
    # Set after set_content, which removes every Content-* header it did not write itself.
    reply["Content-Language"] = body_language

    return reply


def _render_new_ticket_body(
    *,
    config: Config,
    ticket_number: int,
    subject: str,
    priority: str,
    customer_name: str,
    language: str,
    now: datetime,
) -> tuple[str, str]:
    """Render the new-ticket template and return the text and the template's language."""
    target = config.autoreply.targets.get(priority)
    if target is None:
        raise ValueError(
            f"invalid priority {priority!r}: expected one of {', '.join(config.autoreply.targets)}"
        )

    template, template_language = _load_template(config, language)
    context = {
        "desk_name": config.name,
        "ticket_number": ticket_number,
        "customer_name": clean_header_text(customer_name),
        "subject": clean_header_text(subject),
        "priority": priority,
        "expected_by": format_expected_by(now + target, template_language),
        "support_address": config.support_address,
    }
    body = template.render(context)
    if not body.endswith("\n"):
        body += "\n"

    return body, template_language


def _set_address_headers(reply: EmailMessage, config: Config, customer: Address) -> None:
    sender = config.smtp.from_address if config.smtp is not None else config.support_address
    reply["From"] = _header_address(config.name, sender)
    reply["To"] = _header_address(customer.name, customer.addr)
    # Customer replies must reach the support mailbox to join the ticket, even when the
    # desk sends from another address.
    if sender != config.support_address:
        reply["Reply-To"] = _header_address(config.name, config.support_address)


def _header_address(name: str, address: str) -> HeaderAddress:
    local_part, _, domain = address.rpartition("@")
    if not local_part or not domain:
        raise ValueError(
            f"invalid recipient {address!r}: expected an address such as name@example.fi"
        )
    if not local_part.isascii():
        raise ValueError(
            f"invalid recipient {address!r}: a non-ASCII local part needs SMTPUTF8, "
            "which maildesk does not use"
        )
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")

    return HeaderAddress(display_name=clean_header_text(name), username=local_part, domain=domain)


def _set_thread_headers(reply: EmailMessage, message: ParsedMessage) -> None:
    """Set In-Reply-To and References (RFC 5322 section 3.6.4) from the customer's mail."""
    parent = message.message_id if _is_header_safe_id(message.message_id) else None
    references = _reference_ids(message.references, parent)
    if parent is not None:
        reply["In-Reply-To"] = f"<{parent}>"
    if references:
        reply["References"] = " ".join(f"<{reference}>" for reference in references)


def _reference_ids(references: tuple[str, ...], parent: str | None) -> list[str]:
    """Return the ids for References: the parent's References plus the parent, each once."""
    ids: list[str] = []
    for reference in (*references, parent):
        if _is_header_safe_id(reference) and reference not in ids:
            ids.append(reference)
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]

    return ids


def _is_header_safe_id(message_id: str | None) -> bool:
    # An id with spaces, angle brackets or non-ASCII text could not be written back
    # unchanged, and another mail client would not match it anyway.
    return message_id is not None and bool(_MESSAGE_ID_TEXT.match(message_id))


def _load_template(config: Config, language: str) -> tuple[jinja2.Template, str]:
    """Return the new-ticket template and its language.

    The template falls back to ``config.language`` and then English.
    """
    environment = _template_environment(find_templates_dir(config))
    candidates: list[str] = []
    for tag in (_primary_language(language), config.language, FALLBACK_LANGUAGE):
        if tag is not None and tag not in candidates:
            candidates.append(tag)

    for tag in candidates:
        try:
            template = environment.get_template(f"{tag}/{NEW_TICKET_TEMPLATE}")
        except jinja2.TemplateNotFound:
            _note_missing_template(config, tag)
            continue
        return template, tag

    raise FileNotFoundError(
        f"template {NEW_TICKET_TEMPLATE} not found for languages {', '.join(candidates)} "
        f"in {find_templates_dir(config)}"
    )


def _note_missing_template(config: Config, language: str) -> None:
    # A customer language without a template is normal. A missing template for the desk's
    # own language is an installation fault, logged once per folder.
    if language != config.language:
        logger.debug("no %s template for language %s", NEW_TICKET_TEMPLATE, language)
        return
    key = (find_templates_dir(config), language)
    if key not in _warned_missing_templates:
        _warned_missing_templates.add(key)
        logger.warning(
            "template %s/%s not found in %s; auto-replies fall back to English",
            language,
            NEW_TICKET_TEMPLATE,
            key[0],
        )


def _primary_language(language: str) -> str | None:
    """Return the primary subtag of a language tag ("sv-FI" gives "sv"), or None if invalid.

    The tag may come from the customer's Content-Language header, so only letters pass
    into the template path.
    """
    primary = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]

    return primary if re.fullmatch(r"[a-z]{2,8}", primary) else None


@functools.lru_cache(maxsize=8)
def _template_environment(directory: Path) -> SandboxedEnvironment:
    # The sandbox limits what a template edited by a shop owner can reach. Autoescaping
    # is off for plain-text templates and on for HTML ones. FileSystemLoader reloads a
    # template whose file changed, so the cache does not hide edits.
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2", "xml.j2"),
            default_for_string=False,
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
