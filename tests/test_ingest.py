"""The ingest pipeline through ``maildesk import``: dedupe, classification and threading."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.casekit import Desk, make_desk
from tests.mailkit import make_mail


@pytest.fixture
def desk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Desk:
    return make_desk(tmp_path, capsys)


def write(tmp_path: Path, name: str, raw: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def test_missing_message_id_deduped(desk: Desk, tmp_path: Path) -> None:
    """Two deliveries of a mail without Message-ID, differing only in Received, are one message."""
    body = make_mail(sender="puhelin@example.net", subject="Vastaajaviesti", message_id=None)
    first = write(tmp_path, "a.eml", b"Received: from a.example by mx; Mon, 1 Dec 2026 10:00:00 +0200\r\n" + body)
    second = write(tmp_path, "b.eml", b"Received: from b.example by mx; Mon, 1 Dec 2026 10:00:05 +0200\r\n" + body)

    desk.import_files(first, second)

    tickets = desk.tickets()
    assert 1 == len(tickets)
    assert 1 == tickets[0]["message_count"]


def test_reused_message_id_stored_twice(desk: Desk, tmp_path: Path) -> None:
    """A different mail that reuses a known Message-ID is stored as its own message."""
    first = write(tmp_path, "a.eml", make_mail(subject="Eka", message_id="same@example.com"))
    second = write(tmp_path, "b.eml", make_mail(sender="toinen@example.org", subject="Toka", message_id="same@example.com"))

    desk.import_files(first, second)

    assert 2 == len(desk.tickets())


def test_same_message_twice_stored_once(desk: Desk, tmp_path: Path) -> None:
    """Importing the same file twice stores it once."""
    path = write(tmp_path, "a.eml", make_mail())

    desk.import_files(path)
    output = desk.import_files(path)

    assert output.startswith("0 messages stored, 1 duplicates")
    assert 1 == len(desk.tickets())


def test_webform_requester_from_reply_to(desk: Desk, tmp_path: Path) -> None:
    """Mail from an own address takes the requester and the reply recipient from Reply-To."""
    raw = make_mail(
        sender="Verkkokauppa <noreply@example.fi>",
        subject="Yhteydenotto",
        headers={"Reply-To": "Liisa <liisa@example.com>"},
    )

    desk.import_files(write(tmp_path, "a.eml", raw))

    assert "liisa@example.com" == desk.tickets()[0]["requester"]
    assert ["liisa@example.com"] == desk.outbox()[0]["to"]


def test_webform_without_reply_to_quarantined(desk: Desk, tmp_path: Path) -> None:
    """Mail from an own address without a customer in Reply-To opens no ticket and gets no reply."""
    raw = make_mail(sender="noreply@example.fi", subject="Tilausilmoitus")

    desk.import_files(write(tmp_path, "a.eml", raw))

    assert [] == desk.tickets()
    assert [] == desk.outbox()
    assert "quarantined" == desk.ticketless()[0]["kind"]


def test_tag_from_stranger_opens_ticket(desk: Desk, tmp_path: Path) -> None:
    """A subject tag from someone not on the ticket opens a new ticket."""
    first = write(tmp_path, "a.eml", make_mail(sender="a@example.com", subject="Takuu"))
    second = write(tmp_path, "b.eml", make_mail(sender="b@example.org", subject="Re: Takuu [#1]"))

    desk.import_files(first, second)

    assert [2, 1] == [t["number"] for t in desk.tickets()]


def test_tag_from_cc_participant_joins(desk: Desk, tmp_path: Path) -> None:
    """Someone on the ticket's Cc may use its subject tag."""
    first = write(tmp_path, "a.eml", make_mail(sender="a@example.com", to="tuki@example.fi, c@example.net", subject="Takuu"))
    second = write(tmp_path, "b.eml", make_mail(sender="c@example.net", subject="Re: Takuu [#1]"))

    desk.import_files(first, second)

    assert 1 == len(desk.tickets())
    assert "subject-tag" == desk.ticket(1)["messages"][1]["thread_rule"]


def _bounce(failed: str, original_id: str) -> bytes:
    """Return a delivery status report (RFC 3464) for ``failed`` about ``original_id``."""
    return f"""\
Return-Path: <>
From: MAILER-DAEMON@mx.example.net
To: tuki@example.fi
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-{original_id}>
Date: Tue, 1 Dec 2026 10:00:00 +0200
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {failed}
Action: failed
Status: 5.1.1

--b1
Content-Type: text/rfc822-headers

To: {failed}
Message-ID: <{original_id}>

--b1--
""".replace("\n", "\r\n").encode()


def test_bounce_of_reply_marks_failed(desk: Desk, tmp_path: Path) -> None:
    """A bounce of our auto-reply joins the ticket and marks the reply failed."""
    desk.import_files(write(tmp_path, "a.eml", make_mail(sender="olli@example.com")))
    reply_id = desk.outbox()[0]["headers"]["Message-ID"].strip("<>")

    desk.import_files(write(tmp_path, "bounce.eml", _bounce("olli@example.com", reply_id)))

    outbox = desk.outbox()
    assert "failed" == outbox[0]["status"]
    assert "bounced: delivery to olli@example.com failed" == outbox[0]["last_error"]
    assert 2 == desk.tickets()[0]["message_count"]
    assert "new" == desk.tickets()[0]["status"]


def test_unmatched_bounce_is_ticketless(desk: Desk, tmp_path: Path) -> None:
    """A bounce that matches no ticket is stored without one and never answered."""
    desk.import_files(write(tmp_path, "bounce.eml", _bounce("ghost@example.com", "unknown@example.fi")))

    ticketless = desk.ticketless()
    assert [] == desk.tickets()
    assert [] == desk.outbox()
    assert "bounce" == ticketless[0]["kind"]
    assert "ghost@example.com" == ticketless[0]["failed_recipient"]


def test_out_of_office_keeps_status(desk: Desk, tmp_path: Path) -> None:
    """An out-of-office answer files on the ticket without changing its status."""
    first = make_mail(sender="a@example.com", subject="Kysymys")
    desk.import_files(write(tmp_path, "a.eml", first))
    reply_id = desk.outbox()[0]["headers"]["Message-ID"].strip("<>")
    ooo = make_mail(
        sender="a@example.com", subject="Automaattinen vastaus: Re: Kysymys [#1]",
        headers={"Auto-Submitted": "auto-replied", "In-Reply-To": f"<{reply_id}>"},
    )

    desk.import_files(write(tmp_path, "b.eml", ooo))

    ticket = desk.ticket(1)
    assert "new" == ticket["status"]
    assert ["customer", "robot"] == [m["kind"] for m in ticket["messages"]]
    assert 1 == len(desk.outbox())


def test_agent_reply_sets_pending(desk: Desk, tmp_path: Path) -> None:
    """An agent's reply joins the ticket as an agent message and makes it pending."""
    first = make_mail(sender="a@example.com", subject="Kysymys", message_id="q1@example.com")
    answer = make_mail(
        sender="myyja@example.fi", to="a@example.com", subject="Re: Kysymys",
        headers={"In-Reply-To": "<q1@example.com>"},
    )

    desk.import_files(write(tmp_path, "a.eml", first), write(tmp_path, "b.eml", answer))

    ticket = desk.ticket(1)
    assert "pending" == ticket["status"]
    assert "myyja@example.fi" == ticket["owner"]
    assert ["inbound", "agent"] == [m["direction"] for m in ticket["messages"]]


def test_customer_reply_reopens_pending(desk: Desk, tmp_path: Path) -> None:
    """A customer's reply to a pending ticket makes it open again."""
    first = make_mail(sender="a@example.com", subject="Kysymys", message_id="q1@example.com")
    answer = make_mail(sender="myyja@example.fi", to="a@example.com", subject="Re: Kysymys",
                       message_id="a1@example.fi", headers={"In-Reply-To": "<q1@example.com>"})
    again = make_mail(sender="a@example.com", subject="Re: Kysymys", headers={"In-Reply-To": "<a1@example.fi>"})

    desk.import_files(*(write(tmp_path, f"{i}.eml", raw) for i, raw in enumerate((first, answer, again))))

    assert "open" == desk.ticket(1)["status"]


def test_forward_inner_headers_ignored(desk: Desk, tmp_path: Path) -> None:
    """A forwarded message/rfc822 part never picks the requester or the thread."""
    desk.import_files(write(tmp_path, "a.eml", make_mail(sender="a@example.com", message_id="old@example.com")))
    inner = make_mail(sender="noreply@example.fi", subject="Tilausvahvistus", message_id="old@example.com")
    outer = EmailMessage()
    outer["From"] = "b@example.org"
    outer["To"] = "tuki@example.fi"
    outer["Subject"] = "VL: Tilausvahvistus"
    outer["Message-ID"] = "<fwd@example.org>"
    outer.set_content("Summa on väärin.")
    outer.add_attachment(inner, maintype="message", subtype="rfc822")

    desk.import_files(write(tmp_path, "b.eml", outer.as_bytes()))

    tickets = desk.tickets()
    assert 2 == len(tickets)
    assert "b@example.org" == tickets[0]["requester"]


def test_unparseable_message_quarantined(desk: Desk, tmp_path: Path) -> None:
    """Bytes that are no mail at all are stored, quarantined, and the next mail still goes in."""
    junk = write(tmp_path, "a.eml", b"\x00\xff\xfe" * 10)
    good = write(tmp_path, "b.eml", make_mail())

    desk.import_files(junk, good)

    assert 1 == len(desk.tickets())
    assert 1 == len(desk.ticketless())


def test_import_without_flag_sends_nothing(desk: Desk, tmp_path: Path) -> None:
    """maildesk import queues no reply unless --auto-reply is given."""
    desk.import_files(write(tmp_path, "a.eml", make_mail()), auto_reply=False)

    assert 1 == len(desk.tickets())
    assert [] == desk.outbox()


def test_mbox_and_maildir_import(desk: Desk, tmp_path: Path) -> None:
    """mbox files and Maildir folders import every message, a folder's files in name order."""
    mbox = tmp_path / "box.mbox"
    mbox.write_bytes(
        b"From a@example.com Mon Dec  1 10:00:00 2026\n" + make_mail(sender="m1@example.com").replace(b"\r\n", b"\n")
        + b"\nFrom b@example.com Mon Dec  1 10:01:00 2026\n" + make_mail(sender="m2@example.com").replace(b"\r\n", b"\n")
    )
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "2.eml").write_bytes(make_mail(sender="d2@example.com"))
    (maildir / "new" / "1.eml").write_bytes(make_mail(sender="d1@example.com"))

    desk.import_files(mbox, maildir)

    requesters = [t["requester"] for t in sorted(desk.tickets(), key=lambda t: t["number"])]
    assert ["m1@example.com", "m2@example.com", "d1@example.com", "d2@example.com"] == requesters


def test_broken_template_keeps_ticket(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A reply that cannot be rendered leaves the ticket open without a reply, never quarantined."""
    templates = tmp_path / "templates" / "fi"
    templates.mkdir(parents=True)
    (templates / "new_ticket.txt.j2").write_text("{{ no_such_variable.attribute }}", encoding="utf-8")
    desk = make_desk(tmp_path, capsys, f'\n[autoreply]\ntemplates = "{tmp_path / "templates"}"\n')

    desk.import_files(write(tmp_path, "a.eml", make_mail()))

    tickets = desk.tickets()
    assert 1 == len(tickets)
    assert [] == desk.outbox()
    assert [] == desk.ticketless()
    assert "reply-error" == desk.ticket(1)["messages"][0]["autoreply_suppressed"]


def test_non_ascii_address_keeps_ticket(desk: Desk, tmp_path: Path) -> None:
    """A sender whose address needs SMTPUTF8 gets a ticket even where no reply can go out."""
    raw = make_mail(sender="Jörg <jörg@example.com>")

    desk.import_files(write(tmp_path, "a.eml", raw))

    assert 1 == len(desk.tickets())
    assert [] == desk.ticketless()


def test_own_reply_after_restore_is_auto(desk: Desk, tmp_path: Path) -> None:
    """Our own reply seen in Sent after its outbox row is gone (a restored backup) is no agent answer."""
    from sqlalchemy import create_engine, delete, select

    from maildesk.db import outbox

    desk.import_files(write(tmp_path, "a.eml", make_mail(sender="a@example.com")))
    engine = create_engine(f"sqlite:///{desk.state_dir / 'maildesk.sqlite3'}")
    with engine.begin() as connection:
        raw = connection.execute(select(outbox.c.raw)).scalar_one()
        connection.execute(delete(outbox))
    engine.dispose()

    desk.import_files(write(tmp_path, "reply.eml", raw))

    ticket = desk.ticket(1)
    assert "new" == ticket["status"]
    assert ticket["owner"] is None
    assert ["inbound", "auto"] == [m["direction"] for m in ticket["messages"]]
