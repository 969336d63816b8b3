"""Threading of client replies, agents' answers, mail commands and forwards, through ``maildesk import``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from maildesk.config import load_config
from maildesk.db import make_engine, tickets
from tests.casekit import Desk, make_desk
from tests.clientmail import (
    apple_mail_reply,
    basic_client_reply,
    gmail_reply,
    outlook_mail,
    thunderbird_reply,
)
from tests.mailkit import make_mail


@pytest.fixture
def desk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Desk:
    return make_desk(tmp_path, capsys)


_files = iter(range(1, 10_000))


def feed(desk: Desk, *mails: bytes) -> str:
    """Import ``mails`` in order, each from its own file."""
    paths = []
    for raw in mails:
        path = desk.state_dir.parent / f"mail-{next(_files):04d}.eml"
        path.write_bytes(raw)
        paths.append(path)
    return desk.import_files(*paths)


def first_reply_id(desk: Desk) -> str:
    return desk.outbox()[0]["headers"]["Message-ID"].strip("<>")


def set_ticket(desk: Desk, number: int, **values: Any) -> None:
    engine = make_engine(load_config(desk.config_path).database_url)
    with engine.begin() as connection:
        connection.execute(update(tickets).where(tickets.c.number == number).values(**values))


def question(message_id: str = "q1@example.com", subject: str = "Tilaus 1001", **extra: Any) -> bytes:
    return make_mail(sender="Maija Asiakas <maija@example.com>", subject=subject, message_id=message_id, **extra)


def answer(agent: str = "myyja@example.fi", parent: str = "q1@example.com", body: str = "Tilaus lähti tänään.",
           message_id: str | None = None, **extra: Any) -> bytes:
    headers = {"In-Reply-To": f"<{parent}>", **extra.pop("headers", {})}
    return make_mail(
        sender=f"Agentti <{agent}>", to="Maija Asiakas <maija@example.com>", subject="Re: Tilaus 1001",
        body=body, headers=headers, message_id=message_id or "auto", **extra,
    )


# --- threading of replies as clients write them ---------------------------------------


def test_outlook_thread_index_only(desk: Desk) -> None:
    """An Outlook reply with only Thread-Index joins the ticket of the same conversation."""
    feed(
        desk,
        outlook_mail(sender="Riikka <riikka@example.com>", subject="Laskun eräpäivä"),
        outlook_mail(sender="Riikka <riikka@example.com>", subject="VS: Laskun eräpäivä", index_extra=b"\x00\x01\x02\x03\x04"),
    )

    ticket = desk.ticket(1)
    assert 1 == len(desk.tickets())
    assert ["new-ticket", "thread-index"] == [m["thread_rule"] for m in ticket["messages"]]


def test_outlook_in_reply_to_auto_reply(desk: Desk) -> None:
    """An Outlook reply that keeps In-Reply-To to the auto-reply joins the ticket."""
    feed(desk, question())

    feed(desk, outlook_mail(sender="maija@example.com", subject="VS: Tilaus 1001 [#1]", in_reply_to=first_reply_id(desk)))

    assert "in-reply-to" == desk.ticket(1)["messages"][1]["thread_rule"]


def test_gmail_reply_references(desk: Desk) -> None:
    """A Gmail reply with In-Reply-To and References joins the ticket."""
    feed(desk, question())

    feed(desk, gmail_reply(sender="maija@example.com", subject="Re: Tilaus 1001 [#1]", references=["q1@example.com", first_reply_id(desk)]))

    assert ["new-ticket", "in-reply-to"] == [m["thread_rule"] for m in desk.ticket(1)["messages"]]


def test_gmail_reply_to_unknown_parent(desk: Desk) -> None:
    """A Gmail reply whose parent is unknown still joins through an earlier References id."""
    feed(desk, question())

    feed(desk, gmail_reply(sender="maija@example.com", subject="Re: Tilaus", references=["q1@example.com", "lost@example.net"]))

    assert "references" == desk.ticket(1)["messages"][1]["thread_rule"]


def test_thunderbird_reply_joins(desk: Desk) -> None:
    """A Thunderbird reply joins through its References chain."""
    feed(desk, question())

    feed(desk, thunderbird_reply(sender="maija@example.com", subject="Re: Tilaus 1001 [#1]", references=["q1@example.com", first_reply_id(desk)]))

    assert 1 == len(desk.tickets())
    assert 2 == desk.ticket(1)["message_count"]


def test_apple_mail_reply_joins(desk: Desk) -> None:
    """An iPhone Mail reply to the auto-reply joins the ticket."""
    feed(desk, question())

    feed(desk, apple_mail_reply(sender="maija@example.com", subject="Re: Tilaus 1001 [#1]", parent=first_reply_id(desk)))

    assert "in-reply-to" == desk.ticket(1)["messages"][1]["thread_rule"]


def test_basic_client_subject_fallback(desk: Desk) -> None:
    """A reply without thread headers joins the sender's open ticket with the same subject."""
    feed(desk, question())

    feed(desk, basic_client_reply(sender="maija@example.com", subject="Vs: Tilaus 1001"))

    assert 1 == len(desk.tickets())
    assert "subject-sender" == desk.ticket(1)["messages"][1]["thread_rule"]


def test_subject_fallback_switched_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With subject_fallback = false the same reply opens a new ticket."""
    desk = make_desk(tmp_path, capsys, "[threading]\nsubject_fallback = false\n")
    feed(desk, question())

    feed(desk, basic_client_reply(sender="maija@example.com", subject="Vs: Tilaus 1001"))

    assert 2 == len(desk.tickets())


def test_subject_fallback_other_customer(desk: Desk) -> None:
    """Another customer's mail with the same subject opens its own ticket."""
    feed(desk, question())

    feed(desk, basic_client_reply(sender="pekka@example.org", subject="Tilaus 1001"))

    assert 2 == len(desk.tickets())


def test_reply_after_reopen_limit_links(desk: Desk) -> None:
    """A reply to a ticket closed longer than reopen_limit ago opens a new ticket linking it."""
    feed(desk, question())
    desk.run("tickets", "close", "1")
    set_ticket(desk, 1, closed_at=datetime.now(UTC) - timedelta(days=31))

    feed(desk, gmail_reply(sender="maija@example.com", subject="Re: Tilaus 1001", references=["q1@example.com"]))

    assert "closed" == desk.ticket(1)["status"]
    assert 1 == desk.ticket(2)["linked_ticket"]


def test_reply_within_reopen_limit_reopens(desk: Desk) -> None:
    """A reply to a ticket closed recently reopens it."""
    feed(desk, question())
    desk.run("tickets", "close", "1")

    feed(desk, gmail_reply(sender="maija@example.com", subject="Re: Tilaus 1001", references=["q1@example.com"]))

    assert "open" == desk.ticket(1)["status"]
    assert 1 == len(desk.tickets())


def test_missing_message_id_has_row_id(desk: Desk) -> None:
    """Mail without Message-ID shows message_id null and a database id for split."""
    feed(desk, make_mail(sender="puhelin@example.net", subject="Vastaajaviesti", message_id=None))

    message = desk.ticket(1)["messages"][0]
    assert message["message_id"] is None
    assert 1 == message["id"]


# --- agents' answers ------------------------------------------------------------------


def test_agent_cc_reply_records_answer(desk: Desk) -> None:
    """An agent's reply with Cc to the desk makes the ticket pending and records owner and time."""
    feed(desk, question())

    feed(desk, answer(headers={"Cc": "tuki@example.fi"}))

    ticket = desk.ticket(1)
    assert "pending" == ticket["status"]
    assert "myyja@example.fi" == ticket["owner"]
    assert ticket["first_response_at"] is not None
    assert ["customer", "agent"] == [m["kind"] for m in ticket["messages"]]


def test_agent_reply_stored_once(desk: Desk) -> None:
    """The Bcc copy and the Sent copy of one agent reply are stored once."""
    feed(desk, question())
    reply = answer(message_id="a1@example.fi")

    feed(desk, b"Received: from mx by tuki; Mon, 7 Dec 2026 10:00:00 +0200\n" + reply, reply)

    assert 2 == desk.ticket(1)["message_count"]


def test_old_sent_reply_keeps_open(desk: Desk) -> None:
    """An agent reply older than the customer's newest mail leaves the ticket open."""
    start = datetime.now(UTC) - timedelta(hours=3)
    feed(desk, question(date=start))
    feed(desk, make_mail(sender="maija@example.com", subject="Re: Tilaus 1001", date=start + timedelta(hours=2),
                         headers={"In-Reply-To": "<q1@example.com>"}))

    feed(desk, answer(date=start + timedelta(hours=1)))

    ticket = desk.ticket(1)
    assert "open" == ticket["status"]
    assert "myyja@example.fi" == ticket["owner"]


def test_customer_reply_reopens(desk: Desk) -> None:
    """A customer's reply after the agent's answer moves the ticket back to open."""
    feed(desk, question(), answer(message_id="a1@example.fi"))

    feed(desk, gmail_reply(sender="maija@example.com", subject="Re: Tilaus 1001", references=["q1@example.com", "a1@example.fi"]))

    assert "open" == desk.ticket(1)["status"]


def test_second_agent_gets_notice(desk: Desk) -> None:
    """A second agent answering the same customer mail gets a notice in the desk language."""
    feed(desk, question(), answer(body="Tilaus lähti tänään.\nSeurantakoodi tulee erikseen."))

    feed(desk, answer(agent="asiakaspalvelu@example.fi", body="Tilaus lähtee huomenna."))

    notices = [row for row in desk.outbox() if row["kind"] == "agent_notice"]
    assert 1 == len(notices)
    assert ["asiakaspalvelu@example.fi"] == notices[0]["to"]
    assert "[#1] Agentti oli jo vastannut: Tilaus 1001" == notices[0]["subject"]
    assert "fi" == notices[0]["headers"]["Content-Language"]
    assert "myyja@example.fi" == desk.ticket(1)["owner"]


def test_same_agent_twice_no_notice(desk: Desk) -> None:
    """An agent who answers twice gets no notice."""
    feed(desk, question(), answer())

    feed(desk, answer(body="Vielä yksi asia."))

    assert [] == [row for row in desk.outbox() if row["kind"] == "agent_notice"]


def test_answer_after_new_question_no_notice(desk: Desk) -> None:
    """A second agent answering a newer customer mail gets no notice."""
    feed(desk, question(), answer(message_id="a1@example.fi"))
    feed(desk, make_mail(sender="maija@example.com", subject="Re: Tilaus 1001", message_id="q2@example.com",
                         headers={"In-Reply-To": "<a1@example.fi>"}))

    feed(desk, answer(agent="asiakaspalvelu@example.fi", parent="q2@example.com"))

    assert [] == [row for row in desk.outbox() if row["kind"] == "agent_notice"]


def test_agent_note_to_desk_internal(desk: Desk) -> None:
    """An agent's mail to the desk about a ticket is internal and changes no status."""
    feed(desk, question())

    feed(desk, make_mail(sender="myyja@example.fi", to="tuki@example.fi", subject="[#1] soitin asiakkaalle"))

    ticket = desk.ticket(1)
    assert "new" == ticket["status"]
    assert "internal" == ticket["messages"][1]["kind"]


# --- commands by mail -----------------------------------------------------------------


def test_command_lines_applied(desk: Desk) -> None:
    """Command lines from an agent change the ticket and leave the stored text."""
    feed(desk, question())

    feed(desk, answer(body="#tag palautus\n#priority high\n#assign asiakaspalvelu\n\nTilaus lähti tänään.\n"))

    ticket = desk.ticket(1)
    assert ["palautus"] == ticket["tags"]
    assert "high" == ticket["priority"]
    assert "asiakaspalvelu@example.fi" == ticket["owner"]
    assert "Tilaus lähti tänään." == ticket["messages"][1]["text"].strip()


def test_close_command_overrides_pending(desk: Desk) -> None:
    """#close in an answer closes the ticket instead of making it pending."""
    feed(desk, question())

    feed(desk, answer(body="#close\nOle hyvä!"))

    assert "closed" == desk.ticket(1)["status"]


def test_note_stored_never_sent(desk: Desk) -> None:
    """#note text becomes an internal note, is removed from the text and queues no mail."""
    feed(desk, question())
    queued = len(desk.outbox())

    feed(desk, make_mail(sender="myyja@example.fi", to="tuki@example.fi", subject="Re: Tilaus 1001 [#1]",
                         body="#note Asiakas soitti, lupasin hyvityksen.\n"))

    ticket = desk.ticket(1)
    assert [("myyja@example.fi", "Asiakas soitti, lupasin hyvityksen.")] == [(n["author"], n["text"]) for n in ticket["notes"]]
    assert "" == ticket["messages"][1]["text"].strip()
    assert queued == len(desk.outbox())


def test_plus_address_bcc_closes(desk: Desk) -> None:
    """An answer Bcc'd to tuki+close@ closes the ticket; the Bcc copy names it in Delivered-To."""
    feed(desk, question())

    feed(desk, answer(headers={"Delivered-To": "tuki+close@example.fi"}))

    ticket = desk.ticket(1)
    assert "closed" == ticket["status"]
    assert [{"command": "#close", "result": "applied"}] == ticket["messages"][1]["commands"]


def test_plus_address_tag_and_priority(desk: Desk) -> None:
    """tuki+tag-NAME@ and tuki+priority-LEVEL@ tag and prioritize."""
    feed(desk, question())

    feed(desk, answer(headers={"Bcc": "tuki+tag-vip@example.fi, tuki+priority-urgent@example.fi"}))

    ticket = desk.ticket(1)
    assert ["vip"] == ticket["tags"]
    assert "urgent" == ticket["priority"]


def test_plus_separator_configurable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With plus_separator = "-", tuki-pending@ is a command."""
    desk = make_desk(tmp_path, capsys, '[agents]\nplus_separator = "-"\n')
    feed(desk, question())

    feed(desk, make_mail(sender="myyja@example.fi", to="tuki-pending@example.fi", subject="[#1]"))

    assert "pending" == desk.ticket(1)["status"]


def test_stranger_commands_ignored(desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    """A customer's command lines are ignored, logged and kept in the text."""
    feed(desk, question())
    caplog.set_level(logging.WARNING, logger="maildesk.agentmail")

    feed(desk, make_mail(sender="maija@example.com", subject="Re: Tilaus 1001 [#1]", body="#close\n#priority urgent\nKiitos"))

    ticket = desk.ticket(1)
    assert "normal" == ticket["priority"]
    assert "#close\n#priority urgent\nKiitos" == ticket["messages"][1]["text"].strip()
    assert "ignored: not an agent" == ticket["messages"][1]["commands"][0]["result"]
    assert "from maija@example.com ignored: the sender is not an agent" in caplog.text


def test_stranger_plus_address_ignored(desk: Desk) -> None:
    """Mail from a stranger to tuki+close@ does not close anything."""
    feed(desk, question())

    feed(desk, make_mail(sender="maija@example.com", to="tuki+close@example.fi", subject="Re: Tilaus 1001 [#1]"))

    assert "new" == desk.ticket(1)["status"]


def test_forged_agent_without_authentication(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a trusted authserv-id, an agent's command without a pass is ignored."""
    desk = make_desk(tmp_path, capsys, '[agents]\ntrusted_authserv_id = "mx.example.fi"\n')
    feed(desk, question())

    feed(desk, answer(body="#close\nHei", headers={"Authentication-Results": "mx.example.fi; dmarc=fail header.from=example.fi"}))

    ticket = desk.ticket(1)
    assert "pending" == ticket["status"]
    assert "#close\nHei" == ticket["messages"][1]["text"].strip()


def test_authenticated_agent_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a trusted authserv-id, an agent's command with a DMARC pass runs."""
    desk = make_desk(tmp_path, capsys, '[agents]\ntrusted_authserv_id = "mx.example.fi"\n')
    feed(desk, question())

    feed(desk, answer(body="#close\nHei", headers={"Authentication-Results": "mx.example.fi; dmarc=pass header.from=example.fi"}))

    assert "closed" == desk.ticket(1)["status"]


def test_command_without_ticket_ignored(desk: Desk) -> None:
    """A command in agent mail that names no ticket is recorded as ignored."""
    feed(desk, make_mail(sender="myyja@example.fi", to="tuki@example.fi", subject="Huomio", body="#close\n"))

    row = desk.ticketless()[0]
    assert "internal" == row["kind"]
    assert [] == desk.tickets()


# --- forwards into the desk -----------------------------------------------------------


def _attached_forward(sender: str) -> bytes:
    inner = make_mail(sender="Maija Asiakas <maija@example.com>", to="myyja@example.fi", subject="Kenkien palautus",
                      message_id="orig@example.com", body="Haluan palauttaa kengät.")
    outer = EmailMessage()
    outer["From"] = sender
    outer["To"] = "tuki@example.fi"
    outer["Subject"] = "VL: Kenkien palautus"
    outer["Message-ID"] = "<fwd@example.fi>"
    outer.set_content("Tämä tuli minulle suoraan.")
    outer.add_attachment(inner, maintype="message", subtype="rfc822")
    return outer.as_bytes()


def test_agent_forward_opens_customer_ticket(desk: Desk) -> None:
    """An agent's forward as attachment opens a ticket for the original sender."""
    feed(desk, _attached_forward("myyja@example.fi"))

    ticket = desk.ticket(1)
    assert "maija@example.com" == ticket["requester"]
    assert "Kenkien palautus" == ticket["subject"]
    assert [("customer", "forwarded"), ("forward", "forwarded")] == [(m["kind"], m["thread_rule"]) for m in ticket["messages"]]
    assert [] == desk.outbox()


def test_customer_reply_to_forwarded_original(desk: Desk) -> None:
    """The customer's later reply to the forwarded original joins the forward's ticket."""
    feed(desk, _attached_forward("myyja@example.fi"))

    feed(desk, gmail_reply(sender="maija@example.com", subject="Re: Kenkien palautus", references=["orig@example.com"]))

    assert 1 == len(desk.tickets())


def test_agent_inline_forward(desk: Desk) -> None:
    """An agent's inline forward (Gmail style) opens a ticket for the quoted sender."""
    body = (
        "Katsotko tämän?\n\n---------- Forwarded message ---------\n"
        "From: Pekka <pekka@example.org>\nDate: Mon, 7 Dec 2026\nSubject: Lasku 77\nTo: myyja@example.fi\n\nLasku on väärin.\n"
    )

    feed(desk, make_mail(sender="myyja@example.fi", to="tuki@example.fi", subject="Fwd: Lasku 77", body=body))

    ticket = desk.ticket(1)
    assert "pekka@example.org" == ticket["requester"]
    assert "Lasku 77" == ticket["subject"]
    assert "new" == ticket["status"]


def test_colleague_forward_configured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A colleague listed in threading.forwarders hands a customer over by forwarding."""
    desk = make_desk(tmp_path, capsys, '[threading]\nforwarders = ["toimisto@example.fi"]\n')

    feed(desk, _attached_forward("toimisto@example.fi"))

    assert "maija@example.com" == desk.ticket(1)["requester"]


def test_customer_forward_stays_customer(desk: Desk) -> None:
    """A customer's own forward stays the customer's ticket."""
    feed(desk, _attached_forward("jari@example.com"))

    assert "jari@example.com" == desk.ticket(1)["requester"]


# --- the command line -----------------------------------------------------------------


def test_cli_close_and_reopen(desk: Desk) -> None:
    """tickets close and reopen change the status."""
    feed(desk, question())

    desk.run("tickets", "close", "1")
    closed = desk.ticket(1)
    desk.run("tickets", "reopen", "1")

    assert "closed" == closed["status"]
    assert closed["closed_at"] is not None
    assert "open" == desk.ticket(1)["status"]


def test_cli_tag_untag_priority(desk: Desk) -> None:
    """tickets tag, untag and priority follow the mail commands' rules."""
    feed(desk, question())

    desk.run("tickets", "tag", "1", "VIP", "lasku")
    desk.run("tickets", "untag", "1", "lasku")
    desk.run("tickets", "priority", "1", "urgent")

    ticket = desk.ticket(1)
    assert ["vip"] == ticket["tags"]
    assert "urgent" == ticket["priority"]


def test_cli_assign_unknown_agent(desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    """tickets assign rejects an address that is no agent."""
    from maildesk.cli import main

    feed(desk, question())

    code = main(["--config", str(desk.config_path), "tickets", "assign", "1", "maija@example.com"])

    assert 1 == code
    assert "not listed in desk.agents" in capsys.readouterr().err


def test_cli_note(desk: Desk) -> None:
    """tickets note stores an internal note."""
    feed(desk, question())

    desk.run("tickets", "note", "1", "Soitettu", "asiakkaalle")

    assert ["Soitettu asiakkaalle"] == [n["text"] for n in desk.ticket(1)["notes"]]


def test_cli_split_message(desk: Desk) -> None:
    """tickets split moves a wrongly joined message into a new ticket."""
    feed(desk, question(), basic_client_reply(sender="maija@example.com", subject="Tilaus 1001", body="Toinen asia"))

    desk.run("tickets", "split", "1", "2")

    assert 1 == desk.ticket(1)["message_count"]
    moved = desk.ticket(2)["messages"][0]
    assert "split" == moved["thread_rule"]
    assert "maija@example.com" == desk.ticket(2)["requester"]


def test_cli_merge_tickets(desk: Desk) -> None:
    """tickets merge moves every message and later mail to the kept ticket."""
    feed(desk, question(), make_mail(sender="maija@example.com", subject="Toinen", message_id="q2@example.com"))

    desk.run("tickets", "merge", "1", "2")
    feed(desk, apple_mail_reply(sender="maija@example.com", subject="Re: Toinen", parent="q2@example.com"))

    assert 3 == desk.ticket(1)["message_count"]
    assert 1 == desk.ticket(2)["merged_into"]
    assert "closed" == desk.ticket(2)["status"]


def test_cli_merged_tag_follows(desk: Desk) -> None:
    """A subject tag of a merged ticket joins the ticket it was merged into."""
    feed(desk, question(), make_mail(sender="maija@example.com", subject="Toinen", message_id="q2@example.com"))
    desk.run("tickets", "merge", "1", "2")

    feed(desk, basic_client_reply(sender="maija@example.com", subject="Re: Toinen [#2]"))

    assert 3 == desk.ticket(1)["message_count"]


def test_show_prints_conversation(desk: Desk) -> None:
    """tickets show prints each message with its role, sender and rule, and the notes."""
    feed(desk, question(), answer(body="#note soitettu\n"), answer(body="Tilaus lähti.", headers={"Cc": "tuki@example.fi"}))

    output = desk.run("tickets", "show", "1")

    assert "[customer]  Maija Asiakas <maija@example.com>" in output
    assert "[agent]  Agentti <myyja@example.fi>" in output
    assert "threaded by in-reply-to" in output
    assert "myyja@example.fi: soitettu" in output
