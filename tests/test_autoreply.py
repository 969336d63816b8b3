"""Auto-replies through ``maildesk import --auto-reply`` on a pinned clock, with a real SQLite file."""

from __future__ import annotations

import email
import textwrap
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import Engine, select, update

from maildesk import repository as repo
from maildesk.autoreply import AutoReplier, update_first_response_due
from maildesk.config import load_config
from maildesk.db import make_engine, outbox, tickets
from maildesk.schema import upgrade
from tests.casekit import Desk, make_desk
from tests.mailkit import make_mail

# Tuesday 8 December 2026, 12:00 in Helsinki.
TUESDAY_NOON = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
# Saturday 5 December 2026, 11:00 in Helsinki; Sunday 6 December is Independence Day.
SATURDAY = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
# Christmas Eve, Thursday 24 December 2026, 10:00 in Helsinki.
CHRISTMAS_EVE = datetime(2026, 12, 24, 8, 0, tzinfo=UTC)
# Friday 27 March 2026, 14:00 EET; clocks go forward on Sunday 29 March.
BEFORE_SPRING_FORWARD = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)

FINNISH = "Hei, tilasin kengät viikko sitten, mutta paketti ei ole vieläkään tullut. Missä se on?"
SWEDISH = "Hej, jag beställde skor för en vecka sedan men paketet har inte kommit. Var är det?"
ENGLISH = "Hello, I ordered shoes a week ago but the parcel has not arrived yet. Where is it?"


@pytest.fixture
def desk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Desk:
    return make_desk(tmp_path, capsys)


def desk_with(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str) -> Desk:
    return make_desk(tmp_path, capsys, textwrap.dedent(extra))


def deliver(desk: Desk, at: datetime, *mails: bytes) -> None:
    """Import ``mails`` with auto-replies while the clock shows ``at``."""
    folder = desk.config_path.parent / "mail"
    folder.mkdir(exist_ok=True)
    paths = []
    for mail in mails:
        path = folder / f"{len(list(folder.iterdir())):04d}.eml"
        path.write_bytes(mail)
        paths.append(path)
    with time_machine.travel(at, tick=False):
        desk.import_files(*paths)


def engine_of(desk: Desk) -> Engine:
    engine = make_engine(load_config(desk.config_path).database_url)
    upgrade(engine)
    return engine


def replies(desk: Desk) -> list[EmailMessage]:
    """Return the queued replies as parsed messages, oldest first."""
    with engine_of(desk).connect() as connection:
        raws = connection.execute(select(outbox.c.raw).order_by(outbox.c.id)).scalars().all()
    parsed = [email.message_from_bytes(raw, policy=policy.default) for raw in raws]
    return [message for message in parsed if isinstance(message, EmailMessage)]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return body.get_content()


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return body.get_content()


def suppressed(desk: Desk, number: int) -> list[str | None]:
    return [m["autoreply_suppressed"] for m in desk.ticket(number)["messages"]]


def close_ticket(desk: Desk, number: int) -> None:
    with engine_of(desk).begin() as connection:
        connection.execute(update(tickets).where(tickets.c.number == number).values(status="closed"))


# When the answer comes


def test_open_hours_reply_fi(desk: Desk) -> None:
    """On a Tuesday at noon a normal ticket is promised for Wednesday at noon."""
    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))

    text = text_of(replies(desk)[0])

    assert "Pyrimme vastaamaan viimeistään keskiviikkona 9.12. klo 12." in text.splitlines()
    assert "suljettu" not in text


def test_due_time_stored(desk: Desk) -> None:
    """The ticket's first_response_due is the promised business-time target."""
    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))

    assert "2026-12-09T10:00:00+00:00" == desk.tickets()[0]["first_response_due"]


def test_weekend_reply_opens_again(desk: Desk) -> None:
    """On Saturday the reply names the next opening time, past Independence Day."""
    deliver(desk, SATURDAY, make_mail(body=FINNISH))

    lines = text_of(replies(desk)[0]).splitlines()

    assert "Asiakaspalvelumme on nyt suljettu. Olemme taas paikalla maanantaina 7.12. klo 8." in lines
    assert "Pyrimme vastaamaan viimeistään tiistaina 8.12. klo 8." in lines


def test_christmas_eve_reply(desk: Desk) -> None:
    """On Christmas Eve the shop opens again on Monday 28 December."""
    deliver(desk, CHRISTMAS_EVE, make_mail(body=FINNISH))

    text = text_of(replies(desk)[0])

    assert "Olemme taas paikalla maanantaina 28.12. klo 8." in text


def test_urgent_across_spring_forward(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An urgent ticket on Friday 14:00 is due Monday 10:00 EEST, after the clock change."""
    desk = desk_with(tmp_path, capsys, """
        [[rules]]
        subject = "kiire"
        priority = "urgent"
    """)

    deliver(desk, BEFORE_SPRING_FORWARD, make_mail(subject="Kiire: väärä koko", body=FINNISH))

    assert "2026-03-30T07:00:00+00:00" == desk.tickets()[0]["first_response_due"]
    assert "Pyrimme vastaamaan viimeistään maanantaina 30.3. klo 10." in text_of(replies(desk)[0])


def test_custom_hours_and_break(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Saturday hours and a closed date from [hours] move the promise."""
    desk = desk_with(tmp_path, capsys, """
        [hours]
        saturday = "10-14"
        closed_dates = ["2026-12-07"]
    """)

    deliver(desk, SATURDAY, make_mail(body=FINNISH))

    text = text_of(replies(desk)[0])
    assert "Pyrimme vastaamaan viimeistään tiistaina 8.12. klo 11." in text
    assert "suljettu" not in text


def test_priority_change_recomputes_due(desk: Desk) -> None:
    """update_first_response_due recomputes the due time from creation for a new priority."""
    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))
    config = load_config(desk.config_path)

    with engine_of(desk).begin() as connection:
        repo.update_ticket(connection, 1, priority="urgent")
        due = update_first_response_due(connection, config, 1)

    assert datetime(2026, 12, 8, 14, 0, tzinfo=UTC) == due
    assert "2026-12-08T14:00:00+00:00" == desk.tickets()[0]["first_response_due"]


def test_priority_change_unknown_ticket(desk: Desk) -> None:
    """Recomputing the due time of a missing ticket raises ValueError."""
    desk.run("db", "upgrade")
    config = load_config(desk.config_path)

    with engine_of(desk).begin() as connection, pytest.raises(ValueError, match="ticket 9 not found"):
        update_first_response_due(connection, config, 9)


# The honest estimate


def seed_slow_tickets(desk: Desk, count: int, answer_after: timedelta) -> None:
    """Store ``count`` answered normal tickets from the last days, each answered late."""
    desk.run("db", "upgrade")
    created = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Helsinki
    with engine_of(desk).begin() as connection:
        for number in range(count):
            repo.create_ticket(
                connection, subject=f"Vanha {number}", subject_key=f"vanha {number}",
                requester=f"vanha{number}@example.org", requester_name="", status="closed",
                priority="normal", language="fi", created_at=created, updated_at=created,
                first_response_at=created + answer_after,
            )


def test_estimate_later_than_target(desk: Desk) -> None:
    """When recent tickets took three days, the reply promises three business days."""
    # Tuesday 10:00 to Friday 10:00 in Helsinki is 24 open hours.
    seed_slow_tickets(desk, 5, timedelta(days=3))

    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))

    text = text_of(replies(desk)[0])
    assert "Pyrimme vastaamaan viimeistään perjantaina 11.12. klo 12." in text
    assert "Meillä on nyt tavallista enemmän yhteydenottoja" in text


def test_estimate_needs_enough_tickets(desk: Desk) -> None:
    """Fewer measured tickets than estimate_min_tickets leave the target."""
    seed_slow_tickets(desk, 4, timedelta(days=3))

    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))

    assert "keskiviikkona 9.12. klo 12" in text_of(replies(desk)[0])


def test_estimate_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """estimate_percentile = 0 always promises the target."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        estimate_percentile = 0
    """)
    seed_slow_tickets(desk, 10, timedelta(days=3))

    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))

    assert "keskiviikkona 9.12. klo 12" in text_of(replies(desk)[0])


def test_estimate_counts_overdue_backlog(desk: Desk) -> None:
    """Unanswered tickets past their due time count with their age so far."""
    desk.run("db", "upgrade")
    created = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with engine_of(desk).begin() as connection:
        for number in range(5):
            repo.create_ticket(
                connection, subject=f"Jono {number}", subject_key=f"jono {number}",
                requester=f"jono{number}@example.org", requester_name="", status="new",
                priority="normal", language="fi", created_at=created, updated_at=created,
                first_response_due=created + timedelta(days=1),
            )

    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))

    # Each has been open 42 hours since Tuesday 1 December 10:00, and 42 open hours from
    # Tuesday 8 December 12:00 end on Tuesday 15 December 14:00.
    assert "Pyrimme vastaamaan viimeistään tiistaina 15.12. klo 14." in text_of(replies(desk)[0])


# In the customer's language


@pytest.mark.parametrize(
    ("body", "headers", "language", "line"),
    [
        pytest.param(FINNISH, {}, "fi", "Pyrimme vastaamaan viimeistään keskiviikkona 9.12. klo 12.", id="fi"),
        pytest.param(SWEDISH, {}, "sv", "Vi strävar efter att svara senast onsdag 9 december kl. 12.", id="sv"),
        pytest.param(ENGLISH, {}, "en", "We aim to reply by Wednesday 9 December at 12:00.", id="en"),
        pytest.param(
            FINNISH, {"Content-Language": "sv-FI"}, "sv",
            "Vi strävar efter att svara senast onsdag 9 december kl. 12.", id="content-language",
        ),
    ],
)
def test_reply_language(desk: Desk, body: str, headers: dict[str, str], language: str, line: str) -> None:
    """The reply and the ticket take the language of the customer's mail."""
    # make_mail's set_content drops Content-* headers, so they go in front of the mail.
    extra = "".join(f"{name}: {value}\n" for name, value in headers.items()).encode()
    deliver(desk, TUESDAY_NOON, extra + make_mail(body=body))

    reply = replies(desk)[0]

    assert language == desk.tickets()[0]["language"]
    assert language == reply["Content-Language"]
    assert line in text_of(reply).splitlines()


def test_language_from_earlier_ticket(desk: Desk) -> None:
    """A mail too short to tell takes the language of the sender's earlier ticket."""
    deliver(desk, TUESDAY_NOON, make_mail(subject="Beställning 77", body=SWEDISH))
    deliver(desk, TUESDAY_NOON + timedelta(hours=1), make_mail(subject="Order 78", body="Tack!"))

    languages = {t["number"]: t["language"] for t in desk.tickets()}

    assert {1: "sv", 2: "sv"} == languages


def test_language_default_when_unsure(desk: Desk) -> None:
    """A first mail too short to detect gets the desk's language."""
    deliver(desk, TUESDAY_NOON, make_mail(subject="Order 78", body="Order 78"))

    assert "fi" == desk.tickets()[0]["language"]


def test_html_alternative(desk: Desk) -> None:
    """The reply has an HTML part in the same language, with the same promise."""
    deliver(desk, TUESDAY_NOON, make_mail(body=ENGLISH))

    html = html_of(replies(desk)[0])

    assert '<html lang="en">' in html
    assert "We aim to reply by <strong>Wednesday 9 December at 12:00</strong>." in html


def test_html_escapes_name(desk: Desk) -> None:
    """Markup in the customer's name is escaped in the HTML part and kept in the text part."""
    deliver(desk, TUESDAY_NOON, make_mail(sender='"Aino <b>Iso</b>" <aino@example.com>', body=FINNISH))

    reply = replies(desk)[0]

    assert "<p>Hei Aino &lt;b&gt;Iso&lt;/b&gt;,</p>" in html_of(reply)
    assert "Hei Aino <b>Iso</b>," == text_of(reply).splitlines()[0]


# Answers before the answer


FAQ = """
    [[autoreply.faq]]
    name = "returns"
    match = "palaut|return"
    fi = "Palautusohjeet"
    en = "How to return an item"
    url = "https://kauppa.example.fi/palautus"

    [[autoreply.faq]]
    name = "delivery"
    match = "toimitusai|delivery time"
    fi = "Toimitusajat"
"""


def test_faq_answers_added(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A matching FAQ entry adds its answer and link in the reply's language."""
    desk = desk_with(tmp_path, capsys, FAQ)

    deliver(desk, TUESDAY_NOON, make_mail(subject="Palautus", body="Haluan palauttaa liian pienet kengät."))

    reply = replies(desk)[0]
    assert "- Palautusohjeet https://kauppa.example.fi/palautus" in text_of(reply).splitlines()
    assert '<li><a href="https://kauppa.example.fi/palautus">Palautusohjeet</a></li>' in html_of(reply)
    assert "Toimitusajat" not in text_of(reply)


def test_faq_language_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An entry without text in the reply's language adds nothing."""
    desk = desk_with(tmp_path, capsys, FAQ)

    deliver(desk, TUESDAY_NOON, make_mail(subject="Delivery", body="What is the delivery time to Sweden for shoes?"))

    assert "These answers may help you" not in text_of(replies(desk)[0])


# Reply-To


@pytest.mark.parametrize(
    ("reply_to", "expected"),
    [
        pytest.param("Aino työ <aino@work.example.com>", "aino@work.example.com", id="honoured"),
        pytest.param("noreply@example.com", "maija@example.com", id="robot"),
        pytest.param("tuki@example.fi", "maija@example.com", id="support-address"),
        pytest.param("myyja@example.fi", "maija@example.com", id="agent"),
    ],
)
def test_reply_to(desk: Desk, reply_to: str, expected: str) -> None:
    """The reply goes to Reply-To unless the loop guard lists that address."""
    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH, headers={"Reply-To": reply_to}))

    assert [expected] == desk.outbox()[0]["to"]
    assert "maija@example.com" == desk.tickets()[0]["requester"]


# Loops


def test_dmarc_fail_no_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A DMARC failure reported by the trusted server opens a ticket but sends nothing."""
    desk = desk_with(tmp_path, capsys, """
        [agents]
        trusted_authserv_id = "mx.example.fi"
    """)
    result = "mx.example.fi; spf=fail; dmarc=fail (p=reject) header.from=example.com"

    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH, headers={"Authentication-Results": result}))

    assert 1 == len(desk.tickets())
    assert [] == desk.outbox()
    assert ["dmarc-fail"] == suppressed(desk, 1)


def test_domain_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The third sender of one domain within the window gets no reply with a limit of 2."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        per_domain_limit = 2
    """)
    mails = [make_mail(sender=f"robotti{n}@loop.example", subject=f"Tilaus {n}", body=FINNISH) for n in range(3)]

    deliver(desk, TUESDAY_NOON, *mails)

    assert 2 == len(desk.outbox())
    assert ["domain-limit"] == suppressed(desk, 3)


def test_global_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Past global_limit within the window no sender gets a reply."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        global_limit = 2
    """)
    mails = [make_mail(sender=f"a{n}@d{n}.example", subject=f"Tilaus {n}", body=FINNISH) for n in range(3)]

    deliver(desk, TUESDAY_NOON, *mails)

    assert 2 == len(desk.outbox())
    assert ["global-limit"] == suppressed(desk, 3)


def test_limit_window_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After the window the domain may get replies again."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        per_domain_limit = 1
        per_domain_window = "1h"
    """)

    deliver(desk, TUESDAY_NOON, make_mail(sender="a@loop.example", subject="Yksi", body=FINNISH))
    deliver(desk, TUESDAY_NOON + timedelta(minutes=30), make_mail(sender="b@loop.example", subject="Kaksi", body=FINNISH))
    deliver(desk, TUESDAY_NOON + timedelta(hours=2), make_mail(sender="c@loop.example", subject="Kolme", body=FINNISH))

    assert ["a@loop.example", "c@loop.example"] == [row["to"][0] for row in desk.outbox()]


def reply_in_thread(desk: Desk, body: str) -> bytes:
    """Return a customer's answer to the newest auto-reply of the desk."""
    last = replies(desk)[-1]
    return make_mail(
        subject=str(last["Subject"]), body=body,
        headers={"In-Reply-To": str(last["Message-ID"]), "References": str(last["Message-ID"])},
    )


def test_reopened_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A customer reply that reopens a closed ticket gets the reopened reply."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        per_sender_window = "0s"
    """)
    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))
    close_ticket(desk, 1)

    deliver(desk, TUESDAY_NOON + timedelta(days=1), reply_in_thread(desk, "Paketti ei tullutkaan."))

    rows = desk.outbox()
    assert ["new_ticket", "reopened"] == [row["kind"] for row in rows]
    assert "open" == desk.tickets()[0]["status"]
    assert "Viestisi avasi uudelleen tukipyyntösi numero 1" in text_of(replies(desk)[1])


def test_pending_reply_no_reopened_mail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A customer reply to an open ticket gets no reply at all."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        per_sender_window = "0s"
    """)
    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))

    deliver(desk, TUESDAY_NOON + timedelta(hours=1), reply_in_thread(desk, "Lisätietoa: koko 42."))

    assert 1 == len(desk.outbox())


def test_ticket_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Past per_ticket_limit a reopened ticket gets no more replies."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        per_sender_window = "0s"
        per_ticket_limit = 2
    """)
    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))
    for day in (1, 2):
        close_ticket(desk, 1)
        deliver(desk, TUESDAY_NOON + timedelta(days=day), reply_in_thread(desk, f"Yhä rikki, päivä {day}."))

    assert 2 == len(desk.outbox())
    assert "ticket-limit" == suppressed(desk, 1)[-1]


def test_reopened_reply_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """reopened_reply = false sends nothing when a ticket is reopened."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        per_sender_window = "0s"
        reopened_reply = false
    """)
    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))
    close_ticket(desk, 1)

    deliver(desk, TUESDAY_NOON + timedelta(days=1), reply_in_thread(desk, "Ei toimi."))

    assert 1 == len(desk.outbox())
    assert "disabled" == suppressed(desk, 1)[-1]


def bounce_of(reply: EmailMessage, recipient: str) -> bytes:
    """Return a delivery status notification that reports ``reply`` as undeliverable."""
    return textwrap.dedent(f"""\
        From: Mail Delivery System <MAILER-DAEMON@mx.example.com>
        To: tuki@example.fi
        Subject: Undelivered Mail Returned to Sender
        Date: Tue, 08 Dec 2026 12:05:00 +0200
        Message-ID: <bounce-{recipient}@mx.example.com>
        Auto-Submitted: auto-replied
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

        --b1
        Content-Type: text/plain

        Delivery to {recipient} failed.

        --b1
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.example.com

        Final-Recipient: rfc822; {recipient}
        Action: failed
        Status: 5.1.1

        --b1
        Content-Type: text/rfc822-headers

        From: tuki@example.fi
        To: {recipient}
        Message-ID: {reply["Message-ID"]}

        --b1--
        """).replace("\n", "\r\n").encode()


def test_hard_bounce_blocks_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After a reply bounced, the address gets no auto-reply within hard_bounce_block."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        per_sender_window = "0s"
    """)
    deliver(desk, TUESDAY_NOON, make_mail(sender="poissa@example.com", subject="Eka", body=FINNISH))
    deliver(desk, TUESDAY_NOON + timedelta(minutes=5), bounce_of(replies(desk)[0], "poissa@example.com"))

    deliver(desk, TUESDAY_NOON + timedelta(days=1), make_mail(sender="poissa@example.com", subject="Toka", body=FINNISH))

    assert 1 == len(desk.outbox())
    assert ["hard-bounce"] == suppressed(desk, 2)


def test_hard_bounce_block_expires(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After hard_bounce_block the address gets replies again."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        per_sender_window = "0s"
        hard_bounce_block = "2d"
    """)
    deliver(desk, TUESDAY_NOON, make_mail(sender="poissa@example.com", subject="Eka", body=FINNISH))
    deliver(desk, TUESDAY_NOON + timedelta(minutes=5), bounce_of(replies(desk)[0], "poissa@example.com"))

    deliver(desk, TUESDAY_NOON + timedelta(days=3), make_mail(sender="poissa@example.com", subject="Toka", body=FINNISH))

    assert 2 == len(desk.outbox())


def test_bounced_reply_to_passed_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Reply-To address that bounced is passed over for the sender's own address."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        per_sender_window = "0s"
    """)
    deliver(desk, TUESDAY_NOON, make_mail(sender="vanha@example.com", subject="Eka", body=FINNISH))
    deliver(desk, TUESDAY_NOON + timedelta(minutes=5), bounce_of(replies(desk)[0], "vanha@example.com"))

    deliver(
        desk, TUESDAY_NOON + timedelta(hours=1),
        make_mail(sender="uusi@example.com", subject="Toka", body=FINNISH, headers={"Reply-To": "vanha@example.com"}),
    )

    assert ["vanha@example.com", "uusi@example.com"] == [row["to"][0] for row in desk.outbox()]


# The closed-ticket reply


def test_closed_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With closed_reply, queue_closed_reply answers the customer's last mail in their language."""
    desk = desk_with(tmp_path, capsys, """
        [autoreply]
        closed_reply = true
    """)
    deliver(desk, TUESDAY_NOON, make_mail(body=SWEDISH, message_id="kund-1@example.com"))
    config = load_config(desk.config_path)

    with engine_of(desk).begin() as connection:
        secret = repo.message_id_secret(connection)
        row_id = AutoReplier(config).queue_closed_reply(connection, 1, TUESDAY_NOON, secret)

    closed = replies(desk)[-1]
    assert row_id is not None
    assert "<kund-1@example.com>" == closed["In-Reply-To"]
    assert "sv" == closed["Content-Language"]
    assert "Ditt ärende nummer 1 (Tilaus 1001) är nu markerat som löst." in text_of(closed)


def test_closed_reply_off(desk: Desk) -> None:
    """By default no closed-ticket reply is queued."""
    deliver(desk, TUESDAY_NOON, make_mail(body=FINNISH))
    config = load_config(desk.config_path)

    with engine_of(desk).begin() as connection:
        row_id = AutoReplier(config).queue_closed_reply(connection, 1, TUESDAY_NOON, b"k" * 32)

    assert row_id is None


# Stored text that agents can read


def test_visible_text_in_json(desk: Desk) -> None:
    """tickets show --json gives the customer's words in visible_text and the whole mail in text."""
    body = (
        "Kiitos, paketti tuli perille.\n\n"
        "Lähettäjä: Verkkokauppa <tuki@example.fi>\n"
        "Lähetetty: maanantai 7. joulukuuta 2026 10.00\n"
        "Vastaanottaja: Maija <maija@example.com>\n"
        "Aihe: Tilaus 1001\n\n"
        "Paketti on matkalla.\n"
    )
    deliver(desk, TUESDAY_NOON, make_mail(body=body))

    message = desk.ticket(1)["messages"][0]

    assert "Kiitos, paketti tuli perille." == message["visible_text"]
    assert "Paketti on matkalla." in message["text"]


def test_header_injection_in_name(desk: Desk) -> None:
    """Control characters in the customer's encoded name never reach the reply's header lines."""
    name = "=?utf-8?q?Aino=0D=0ABcc=3A_kaikki=40example=2Enet?="
    mail = make_mail(sender="aino@example.com", body=FINNISH).replace(
        b"From: aino@example.com", f"From: {name} <aino@example.com>".encode()
    )
    deliver(desk, TUESDAY_NOON, mail)

    with engine_of(desk).connect() as connection:
        raw = connection.execute(select(outbox.c.raw)).scalar_one()
    head = raw.split(b"\r\n\r\n", 1)[0]

    assert not any(line.lower().startswith(b"bcc:") for line in head.split(b"\r\n"))
    assert ["aino@example.com"] == desk.outbox()[0]["to"]


def test_injected_name_kept_as_text(desk: Desk) -> None:
    """The injected text stays inside the To display name, on one line."""
    name = "=?utf-8?q?Aino=0D=0ABcc=3A_kaikki=40example=2Enet?="
    mail = make_mail(sender="aino@example.com", body=FINNISH).replace(
        b"From: aino@example.com", f"From: {name} <aino@example.com>".encode()
    )
    deliver(desk, TUESDAY_NOON, mail)

    reply = replies(desk)[0]

    assert '"Aino Bcc: kaikki@example.net" <aino@example.com>' == str(reply["To"])
    assert reply["Bcc"] is None


ARF_REPORT = textwrap.dedent("""\
    From: Feedback Loop <fbl@isp.example.net>
    To: tuki@example.fi
    Subject: Abuse report
    Date: Tue, 08 Dec 2026 12:00:00 +0200
    Message-ID: <arf-1@isp.example.net>
    MIME-Version: 1.0
    Content-Type: multipart/report; report-type=feedback-report; boundary="f1"

    --f1
    Content-Type: text/plain

    A user marked your mail as spam.

    --f1
    Content-Type: message/feedback-report

    Feedback-Type: abuse
    User-Agent: ExampleFBL/1.0
    Version: 1

    --f1--
    """).replace("\n", "\r\n").encode()


@pytest.mark.parametrize(
    ("mail", "reason"),
    [
        pytest.param(
            make_mail(subject="Automatic reply: Tilaus", body="Olen lomalla.", headers={
                "X-MS-Exchange-Generated-Message-Source": "Mailbox Rules Agent",
                "X-Auto-Response-Suppress": "All",
            }), "autoreply-header", id="exchange-oof",
        ),
        pytest.param(make_mail(body="Lomalla.", headers={"X-Autoreply": "yes"}), "autoreply-header", id="x-autoreply"),
        pytest.param(make_mail(body="Lomalla.", headers={"X-Autorespond": "Lomalla"}), "autoreply-header", id="x-autorespond"),
        pytest.param(make_mail(body="Lomalla.", headers={"X-Autogenerated": "Reply"}), "autoreply-header", id="x-autogenerated"),
        pytest.param(make_mail(body="Uutiskirje", headers={"List-Unsubscribe": "<mailto:u@example.org>"}), "list", id="list"),
        pytest.param(make_mail(sender="noreply@kauppa.example.org", body="Tilausvahvistus"), "robot-sender", id="noreply"),
        pytest.param(ARF_REPORT, "feedback-report", id="feedback-loop"),
    ],
)
def test_robot_kinds_unanswered(desk: Desk, mail: bytes, reason: str) -> None:
    """Mail from each kind of robot is stored without an auto-reply."""
    deliver(desk, TUESDAY_NOON, mail)

    stored = desk.ticketless() + [m for t in desk.tickets() for m in desk.ticket(t["number"])["messages"]]

    assert [] == desk.outbox()
    assert 1 == len(stored)
    assert reason in (stored[0].get("reason"), stored[0].get("autoreply_suppressed"))
