"""``maildesk demo``: the real pipeline on sample mail, with throwaway local servers.

The demo starts pymap (IMAP) and an aiosmtpd sink on loopback, appends the
sample mail of :mod:`maildesk.demo_mail`, and runs the same sync and outbox
jobs as ``maildesk run`` until a pass finds nothing to do. Its state stays
in a temporary folder so the result can be looked at afterwards.
"""

from __future__ import annotations

import email
import email.policy
import logging
import secrets
import tempfile
import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from maildesk import views
from maildesk.config import Config, parse_config
from maildesk.demo_mail import DEMO_AGENTS, DEMO_OWN_ADDRESSES, DEMO_SHOP_NAME, DEMO_SUPPORT_ADDRESS, sample_messages
from maildesk.demo_servers import start_imap_server, start_smtp_sink
from maildesk.i18n import _
from maildesk.lock import StateLock
from maildesk.service import Desk

log = logging.getLogger(__name__)

DEMO_USER = "tuki"
# A pass that stores nothing and sends nothing ends the demo; this bounds it anyway.
MAX_PASSES = 10


def run_demo(base: Config | None) -> int:
    """Run the demo and print the tickets and replies; ``base`` may add rules and a language."""
    # aiosmtpd logs every SMTP command at INFO, which would bury the summary.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    state_dir = Path(tempfile.mkdtemp(prefix="maildesk-demo-"))
    password = secrets.token_urlsafe(12)
    with start_smtp_sink() as sink, start_imap_server(DEMO_USER, password) as imap:
        config = _demo_config(base, state_dir, imap.port, sink.port, password)
        with StateLock(state_dir):
            desk = Desk.open(config)
            # A first sync of the empty mailbox records the folder, so the samples
            # then arrive as new mail on a running desk, not as old mail to import.
            desk.mailbox_sync().sync_once()
            _append_samples(imap.port, password)
            _run_until_idle(desk)
        _write_config_copy(state_dir, base)
        _print_summary(desk, sink.messages, state_dir)
    return 0


def _demo_config(base: Config | None, state_dir: Path, imap_port: int, smtp_port: int, password: str) -> Config:
    desk: dict[str, Any] = {
        "name": DEMO_SHOP_NAME,
        "support_address": DEMO_SUPPORT_ADDRESS,
        "agents": list(DEMO_AGENTS),
        "own_addresses": list(DEMO_OWN_ADDRESSES),
        "state_dir": str(state_dir),
    }
    if base is not None:
        desk["language"] = base.language
    server = {"host": "127.0.0.1", "security": "none", "username": DEMO_USER, "password": password}
    data: dict[str, Any] = {
        "desk": desk,
        "mailbox": {**server, "port": imap_port, "folders": ["INBOX"], "sent_folder": "Sent"},
        "smtp": {**server, "port": smtp_port, "from_address": DEMO_SUPPORT_ADDRESS},
        "import": {"existing": "all"},
    }
    if base is not None and base.rules:
        return replace(parse_config(data), rules=base.rules)
    data["rules"] = _example_rules()
    return parse_config(data)


def _example_rules() -> list[dict[str, Any]]:
    """Return the example config's rules when the repository's copy is present."""
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    if not example.is_file():
        return []
    return tomllib.loads(example.read_text(encoding="utf-8")).get("rules", [])


def _append_samples(port: int, password: str) -> None:
    # The sample mail counts as arriving now, which is how the first sync sees it.
    client = IMAPClient("127.0.0.1", port=port, ssl=False)
    try:
        client.login(DEMO_USER, password)
        for raw in sample_messages(datetime.now(UTC)):
            client.append("INBOX", raw)
    finally:
        client.logout()


def _run_until_idle(desk: Desk) -> None:
    sync = desk.mailbox_sync()
    sender = desk.outbox_sender()
    for _pass in range(MAX_PASSES):
        stats = sync.sync_once()
        sent = sender.run_once()
        if stats.stored == 0 and stats.duplicates == 0 and sent.sent == 0:
            return


def _write_config_copy(state_dir: Path, base: Config | None) -> None:
    (state_dir / "config.toml").write_text(
        f'[desk]\nsupport_address = "{DEMO_SUPPORT_ADDRESS}"\nstate_dir = "{state_dir}"\n',
        encoding="utf-8",
    )


def _print_summary(desk: Desk, sent: list[Any], state_dir: Path) -> None:
    with desk.engine.connect() as connection:
        tickets = views.list_tickets(connection)
        ticketless = views.list_ticketless(connection)
    heading = _("maildesk demo: {count} tickets from the sample mail").format(count=len(tickets))
    print(f"\n{heading}\n")
    for ticket in sorted(tickets, key=lambda t: t["number"]):
        tags = ", ".join(ticket["tags"]) or "-"
        messages = _("{count} msg").format(count=ticket["message_count"])
        print(
            f"  #{ticket['number']:<3} {ticket['priority']:<7} {ticket['status']:<8} "
            f"{messages}  {ticket['requester']:<32} {ticket['subject']}  [{tags}]"
        )
    print("\n" + _("Stored without a ticket (never answered): {count}").format(count=len(ticketless)))
    for message in ticketless:
        detail = message["failed_recipient"] or message["reason"] or ""
        print(f"  {message['kind']:<8} {message['from']:<32} {message['subject']}  ({detail})")
    print("\n" + _("Auto-replies accepted by the local SMTP server: {count}").format(count=len(sent)))
    for item in sent:
        parsed = email.message_from_bytes(item.data, policy=email.policy.default)
        recipients = f"{', '.join(item.rcpt_tos):<32}"
        line = _("to {recipients} {subject}").format(recipients=recipients, subject=parsed["Subject"])
        print(f"  {line}")
    if sent:
        first = email.message_from_bytes(sent[0].data, policy=email.policy.default)
        body = first.get_body(("plain",))
        print("\n" + _("The first reply reads:") + "\n")
        for line in (body.get_content() if body else "").strip().splitlines():
            print(f"  | {line}")
    print(
        "\n"
        + _(
            "The demo's database is kept in {state_dir}; look at it with\n"
            "  {command}\n\n"
            "To use a real mailbox, copy config.example.toml to /etc/maildesk/config.toml,\n"
            "fill in [desk], [mailbox] and [smtp], then run `maildesk check-config` and\n"
            "`maildesk sync --once`; README.md explains each key."
        ).format(
            state_dir=state_dir,
            command=f"maildesk --config {state_dir / 'config.toml'} tickets list",
        )
    )
