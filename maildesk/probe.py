"""``check-config --connect``: log in to IMAP and SMTP and report what works.

Each check reports the server's own words: the greeting, the reply to a
failed login, the folders it has. Nothing is changed on either server: the
IMAP folders are only listed and asked for STATUS, and the SMTP check sends
MAIL FROM and then RSET, so no message is sent.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass, field

from imapclient import IMAPClient

from maildesk.config import Config, MailboxSettings, SmtpSettings
from maildesk.connections import connect_imap, connect_smtp
from maildesk.errors import ConnectionSetupError
from maildesk.i18n import _

log = logging.getLogger(__name__)


@dataclass
class ProbeResult:
    """The result of one server check; ``ok`` is False when any step failed."""

    section: str
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def fail(self, line: str) -> None:
        self.ok = False
        self.lines.append(line)


def probe_imap(settings: MailboxSettings) -> ProbeResult:
    """Log in, report the greeting and IDLE, and check each configured folder and the Sent folder."""
    result = ProbeResult("mailbox")
    try:
        client = connect_imap(settings)
    except ConnectionSetupError as exc:
        result.fail(str(exc))
        return result
    try:
        result.lines.append(
            f"logged in to {settings.host}:{settings.port} as {settings.username}; "
            f"server greeting: {_text(client.welcome)}"
        )
        if client.has_capability("IDLE"):
            result.lines.append("the server offers IDLE: new mail is fetched within seconds")
        else:
            result.lines.append(
                f"the server does not offer IDLE: new mail is fetched every {settings.poll_interval} s"
            )
        _check_folders(client, settings, result)
    except (IMAPClient.Error, OSError) as exc:
        result.fail(f"IMAP command failed: {_text(exc.args[0]) if exc.args else exc}")
    finally:
        try:
            client.logout()
        except (IMAPClient.Error, OSError) as exc:
            log.debug("IMAP logout failed: %s", exc)
    return result


def _check_folders(client: IMAPClient, settings: MailboxSettings, result: ProbeResult) -> None:
    available = [name for _flags, _delimiter, name in client.list_folders()]
    for folder in settings.folders:
        if folder not in available and folder == settings.sent_folder and settings.append_to_sent:
            result.lines.append(
                f"folder {folder}: does not exist yet; it is created with the first reply and "
                "synced from then on"
            )
            continue
        if folder not in available:
            result.fail(
                f"folder {folder}: not found on the server; its folders are: {', '.join(available)}"
            )
            continue
        status = client.folder_status(folder, [b"MESSAGES", b"UIDVALIDITY"])
        result.lines.append(
            f"folder {folder}: {status[b'MESSAGES']} messages, UIDVALIDITY {status[b'UIDVALIDITY']}; "
            "it will be synced"
        )
    if settings.append_to_sent:
        if settings.sent_folder in available:
            result.lines.append(f"copies of replies go to {settings.sent_folder}")
        else:
            result.lines.append(
                f"copies of replies go to {settings.sent_folder}, which does not exist yet and is "
                "created with the first reply"
            )


def probe_smtp(settings: SmtpSettings) -> ProbeResult:
    """Log in and check that the server accepts ``from_address`` as the sender (MAIL FROM, RSET)."""
    result = ProbeResult("smtp")
    try:
        smtp = connect_smtp(settings)
    except ConnectionSetupError as exc:
        result.fail(str(exc))
        return result
    try:
        greeting = _text(smtp.ehlo_resp or b"").splitlines()
        result.lines.append(
            f"connected to {settings.host}:{settings.port} as {settings.username}; "
            f"server: {greeting[0] if greeting else '(no EHLO reply)'}"
        )
        code, reply = smtp.mail(settings.from_address)
        if code == 250:
            result.lines.append(f"the server accepts {settings.from_address} as sender: {code} {_text(reply)}")
        else:
            result.fail(f"the server refuses {settings.from_address} as sender: {code} {_text(reply)}")
        smtp.rset()
    except (smtplib.SMTPException, OSError) as exc:
        result.fail(f"SMTP command failed: {exc}")
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    return result


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def check_connections(config: Config) -> int:
    """Print the IMAP and SMTP checks of ``config``; return 0 when both worked, else 1."""
    results = []
    if config.mailbox is not None:
        results.append(probe_imap(config.mailbox))
    if config.smtp is not None:
        results.append(probe_smtp(config.smtp))
    if not results:
        print(_("no [mailbox] or [smtp] section: there is nothing to connect to"))
        return 1
    for result in results:
        verdict = _("works") if result.ok else _("FAILED")
        print(f"[{result.section}] {verdict}")
        for line in result.lines:
            print(f"  {line}")
    return 0 if all(result.ok for result in results) else 1
