"""Agents working from the shared mailbox, against a private Dovecot and an aiosmtpd sink."""

from __future__ import annotations

import email
import email.policy
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from maildesk import autoclose
from maildesk.config import Config, load_config
from maildesk.db import messages
from maildesk.keywords import MailboxMarker
from maildesk.service import Desk, sync_once
from maildesk.ticketactions import set_priority, set_status
from maildesk.views import show_ticket
from tests.mailkit import make_mail

pytestmark = pytest.mark.dovecot


def write_config(tmp_path: Path, imap_account: Any, smtp_sink: Any, extra: str = "") -> Config:
    """Write a desk config without a folders key, so the default folders apply."""
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [desk]
            name = "Verkkokauppa"
            support_address = "tuki@example.fi"
            agents = ["myyja@example.fi", "aino@example.fi"]
            state_dir = "{tmp_path / 'state'}"

            [mailbox]
            host = "127.0.0.1"
            port = {imap_account.port}
            security = "none"
            username = "{imap_account.username}"
            password = "{imap_account.password}"

            [smtp]
            host = "127.0.0.1"
            port = {smtp_sink.port}
            security = "none"
            username = "{smtp_sink.username}"
            password = "{smtp_sink.password}"
            from_address = "tuki@example.fi"

            [import]
            existing = "all"
            """
        )
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    config = load_config(path)
    imap_account.prepare()
    sync_once(config)
    return config


@pytest.fixture
def config(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> Config:
    return write_config(tmp_path, imap_account, smtp_sink)


def ticket(config: Config, number: int) -> dict[str, Any]:
    with Desk.open(config).engine.connect() as connection:
        return show_ticket(connection, number)


def change(config: Config, action: Any, *args: Any) -> None:
    with Desk.open(config).engine.begin() as connection:
        action(connection, *args, datetime.now(UTC))


def agent_reply(agent: str, parent: str, body: str = "Tilaus lähti tänään.", **extra: Any) -> bytes:
    return make_mail(
        sender=f"Agentti <{agent}>", to="Maija <maija@example.com>", subject="Re: Tilaus 1001",
        body=body, headers={"In-Reply-To": f"<{parent}>", **extra.pop("headers", {})}, **extra,
    )


def fresh_flags(imap_account: Any, folder: str, uid: int) -> set[bytes]:
    client = imap_account.client()
    client.select_folder(folder, readonly=True)
    return set(client.get_flags([uid])[uid])


# --- agent replies ---------------------------------------------------------------------


def test_default_folders_read_sent(config: Config, imap_account: Any) -> None:
    """Without a folders key, an agent's reply found in Sent answers the ticket."""
    imap_account.append(make_mail(sender="Maija <maija@example.com>", message_id="q1@example.com"))
    sync_once(config)

    imap_account.append(agent_reply("myyja@example.fi", "q1@example.com"), folder="Sent")
    sync_once(config)

    shown = ticket(config, 1)
    assert ("INBOX", "Sent") == config.require_mailbox().folders
    assert "pending" == shown["status"]
    assert "myyja@example.fi" == shown["owner"]
    assert ["customer", "auto", "agent"] == [m["kind"] for m in shown["messages"]]


def test_cc_and_sent_copy_once(config: Config, imap_account: Any) -> None:
    """An agent reply seen in INBOX (Cc) and in Sent is stored once."""
    imap_account.append(make_mail(sender="maija@example.com", message_id="q1@example.com"))
    sync_once(config)
    reply = agent_reply("myyja@example.fi", "q1@example.com", message_id="a1@example.fi", headers={"Cc": "tuki@example.fi"})

    imap_account.append(reply)
    imap_account.append(reply, folder="Sent")
    sync_once(config)

    agents = [m for m in ticket(config, 1)["messages"] if m["kind"] == "agent"]
    assert 1 == len(agents)


def test_second_agent_notice_sent(config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """The second agent's notice goes out by SMTP, in Finnish, naming the first agent."""
    imap_account.append(make_mail(sender="maija@example.com", message_id="q1@example.com"))
    sync_once(config)
    imap_account.append(agent_reply("myyja@example.fi", "q1@example.com", body="Tilaus lähti tänään."), folder="Sent")
    sync_once(config)

    imap_account.append(agent_reply("aino@example.fi", "q1@example.com", body="Tilaus lähtee huomenna."), folder="Sent")
    sync_once(config)

    notices = [m for m in smtp_sink.messages if m.rcpt_tos == ["aino@example.fi"]]
    assert 1 == len(notices)
    notice = email.message_from_bytes(notices[0].raw, policy=email.policy.default)
    assert "auto-generated" == notice["Auto-Submitted"]
    assert "Tilaus lähti tänään." in notice.get_content()
    assert "myyja@example.fi" in notice.get_content()


def test_notice_not_in_sent(config: Config, imap_account: Any, smtp_sink: Any) -> None:
    """Notices to agents are not copied to the shared Sent folder."""
    imap_account.append(make_mail(sender="maija@example.com", message_id="q1@example.com"))
    sync_once(config)
    imap_account.append(agent_reply("myyja@example.fi", "q1@example.com"), folder="Sent")
    imap_account.append(agent_reply("aino@example.fi", "q1@example.com"), folder="Sent")
    sync_once(config)

    client = imap_account.client()
    client.select_folder("Sent", readonly=True)
    subjects = [
        email.message_from_bytes(data[b"BODY[HEADER.FIELDS (SUBJECT)]"]).get("Subject", "")
        for data in client.fetch(client.search(["ALL"]), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]).values()
    ]
    assert subjects
    assert not any("oli jo vastannut" in subject for subject in subjects)


def test_auto_close_notice_sent(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """A pending ticket without a customer reply is closed and the customer gets a threaded notice."""
    config = write_config(tmp_path, imap_account, smtp_sink, "[agents]\nauto_close_after = \"3d\"\nauto_close_notice = true\n")
    imap_account.append(make_mail(sender="Maija <maija@example.com>", message_id="q1@example.com"))
    imap_account.append(agent_reply("myyja@example.fi", "q1@example.com", message_id="a1@example.fi"), folder="Sent")
    sync_once(config)

    with time_machine.travel(datetime.now(UTC) + timedelta(days=4)):
        with Desk.open(config).engine.begin() as connection:
            closed = autoclose.close_stale(config, connection, datetime.now(UTC))
        sync_once(config)

    assert [1] == closed
    assert "closed" == ticket(config, 1)["status"]
    closing = email.message_from_bytes(smtp_sink.messages[-1].raw, policy=email.policy.default)
    assert ["maija@example.com"] == smtp_sink.messages[-1].rcpt_tos
    assert "Re: Tilaus 1001 [#1]" == closing["Subject"]
    assert "<a1@example.fi>" == closing["In-Reply-To"]


# --- keywords in the mailbox -------------------------------------------------------------


def test_keywords_visible_fresh_session(config: Config, imap_account: Any) -> None:
    """sync --once sets ticket, status and priority keywords that a new IMAP session sees; \\Seen stays unset."""
    uid = imap_account.append(make_mail(sender="maija@example.com", message_id="q1@example.com"))

    sync_once(config)
    stats = MailboxMarker(config, Desk.open(config).engine).run_once()

    flags = fresh_flags(imap_account, "INBOX", uid)
    assert 0 == stats.marked
    assert {b"md:ticket-1", b"md:status-new", b"md:priority-normal"} <= flags
    assert b"\\Seen" not in flags


def test_keywords_follow_changes(config: Config, imap_account: Any) -> None:
    """A status change swaps the status keyword; urgent adds \\Flagged; tags become keywords."""
    uid = imap_account.append(make_mail(sender="maija@example.com", message_id="q1@example.com"))
    sync_once(config)
    engine = Desk.open(config).engine
    MailboxMarker(config, engine).run_once()

    change(config, set_status, 1, "pending")
    with engine.begin() as connection:
        set_priority(connection, config, 1, "urgent", datetime.now(UTC))
    from maildesk.ticketactions import add_tag
    change(config, add_tag, 1, "Palautus")
    MailboxMarker(config, engine).run_once()

    flags = fresh_flags(imap_account, "INBOX", uid)
    assert b"md:status-pending" in flags
    assert b"md:status-new" not in flags
    assert b"md:tag-palautus" in flags
    assert b"\\Flagged" in flags
    assert b"\\Seen" not in flags


def test_keywords_keep_agents_own(config: Config, imap_account: Any) -> None:
    """Keywords and \\Flagged that an agent set stay when maildesk updates its own."""
    uid = imap_account.append(make_mail(sender="maija@example.com"), flags=[b"$Important", b"\\Flagged"])
    sync_once(config)
    engine = Desk.open(config).engine
    with engine.begin() as connection:
        set_priority(connection, config, 1, "urgent", datetime.now(UTC))
    MailboxMarker(config, engine).run_once()

    with engine.begin() as connection:
        set_priority(connection, config, 1, "normal", datetime.now(UTC))
    MailboxMarker(config, engine).run_once()

    flags = fresh_flags(imap_account, "INBOX", uid)
    assert b"$Important" in flags
    assert b"\\Flagged" in flags


def test_keywords_on_sent_reply(config: Config, imap_account: Any) -> None:
    """The agent's reply in Sent carries the ticket's keywords too."""
    imap_account.append(make_mail(sender="maija@example.com", message_id="q1@example.com"))
    sync_once(config)
    uid = imap_account.append(agent_reply("myyja@example.fi", "q1@example.com"), folder="Sent")
    sync_once(config)

    MailboxMarker(config, Desk.open(config).engine).run_once()

    assert {b"md:ticket-1", b"md:status-pending"} <= fresh_flags(imap_account, "Sent", uid)


def test_unchanged_tickets_not_stored_again(config: Config, imap_account: Any) -> None:
    """A second pass with no ticket change touches no message."""
    imap_account.append(make_mail(sender="maija@example.com"))
    sync_once(config)
    marker = MailboxMarker(config, Desk.open(config).engine)
    marker.run_once()

    assert 0 == marker.run_once().marked


def test_closed_folder_move_and_back(tmp_path: Path, imap_account: Any, smtp_sink: Any) -> None:
    """Messages of a closed ticket move to the closed folder and back when it reopens."""
    config = write_config(tmp_path, imap_account, smtp_sink, '[keywords]\nclosed_folder = "Suljetut"\n')
    imap_account.append(make_mail(sender="maija@example.com", message_id="q1@example.com"))
    sync_once(config)
    engine = Desk.open(config).engine

    change(config, set_status, 1, "closed")
    MailboxMarker(config, engine).run_once()
    client = imap_account.client()
    in_closed = client.select_folder("Suljetut")[b"EXISTS"]
    in_inbox = client.select_folder("INBOX")[b"EXISTS"]

    change(config, set_status, 1, "open")
    MailboxMarker(config, engine).run_once()
    with engine.connect() as connection:
        row = connection.execute(select(messages).where(messages.c.message_id == "q1@example.com")).one()

    assert (1, 0) == (in_closed, in_inbox)
    assert "INBOX" == row.folder
    assert b"md:status-open" in fresh_flags(imap_account, "INBOX", row.uid)


def test_deleted_message_marked_gone(config: Config, imap_account: Any) -> None:
    """A message deleted by an agent is marked gone and not tried again."""
    uid = imap_account.append(make_mail(sender="maija@example.com"))
    sync_once(config)
    client = imap_account.client()
    client.select_folder("INBOX")
    client.delete_messages([uid])
    client.expunge()

    marker = MailboxMarker(config, Desk.open(config).engine)
    marker.run_once()

    assert 0 == marker.run_once().marked
