"""A desk with three customers for the export, erasure and retention tests.

Maija writes ticket 1 (with a receipt and the shop's terms attached), sends
an out-of-office reply, sends a web form that becomes ticket 4, and is on
Cc of Bertta's ticket 2, where she writes once and Bertta quotes her. Cecilia
has ticket 3 with the same terms file attached, so that file is shared.
The first mail also arrives a second time with an extra Received line,
which leaves a raw file that no message row names.
"""

from __future__ import annotations

import email.policy
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import Engine

from maildesk import repository as repo
from maildesk.db import make_engine
from tests.casekit import Desk

MAIJA = "maija.meikalainen@example.com"
MAIJA_NAME = "Maija Meikäläinen"
BERTTA = "bertta.virtanen@example.net"
BERTTA_NAME = "Bertta Virtanen"
CECILIA = "cecilia.korhonen@example.org"
CECILIA_NAME = "Cecilia Korhonen"
AGENT = "myyja@example.fi"

MAIJA_ORDER = "Tilaukseni 4471 ei ole vieläkään saapunut Kuusitie 7:ään."
MAIJA_DOOR = "Ovikoodini on 2580, jos lähetti tarvitsee sitä."
MAIJA_AWAY = "Olen lomalla heinäkuun loppuun asti."
MAIJA_FORM = "Haluan vaihtaa toimitusosoitteeni Rantakatu 12:een."
MAIJA_NOTE = "Maija soitti: toimitus jätetään naapurille."
RECEIPT = "%PDF-1.4\n% kuitti: Maija Meikäläinen, tilaus 4471\n%%EOF\n".encode()
TERMS = b"%PDF-1.4\n% Toimitusehdot 2026\n%%EOF\n"
BERTTA_TEXT = "Lahjakorttini 9912 katosi postissa Tampereella."
BERTTA_THANKS = "Hyvä että olet mukana tässä."
CECILIA_TEXT = "Palautan kengät koossa 38 ensi viikolla."

# What must be gone after Maija is erased: address, name parts and everything she wrote.
MAIJA_NEEDLES = (
    "maija", "meikalainen", "meikäläinen", MAIJA_ORDER, MAIJA_DOOR, MAIJA_AWAY, MAIJA_FORM,
    "Tilaus 4471", "toimitus jätetään naapurille", "kuitti",
)
OTHER_NEEDLES = (
    BERTTA, BERTTA_NAME, BERTTA_TEXT, CECILIA, CECILIA_NAME, CECILIA_TEXT,
    "bertta", "cecilia", "korhonen", "virtanen",
)


def _mail(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    message_id: str,
    minute: int,
    cc: str | None = None,
    headers: dict[str, str] | None = None,
    files: tuple[tuple[str, bytes], ...] = (),
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC) - timedelta(minutes=60 - minute))
    message["Message-ID"] = f"<{message_id}>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, content in files:
        message.add_attachment(content, maintype="application", subtype="pdf", filename=filename)
    return message.as_bytes(policy=email.policy.SMTP)


def scenario_mails() -> list[bytes]:
    """Return the mails of the desk in the order they arrive."""
    maija = f"{MAIJA_NAME} <{MAIJA}>"
    bertta = f"{BERTTA_NAME} <{BERTTA}>"
    first = _mail(
        sender=maija, to="tuki@example.fi", subject="Tilaus 4471", body=MAIJA_ORDER,
        message_id="m1.4471@mail.example.com", minute=1,
        files=(("kuitti.pdf", RECEIPT), ("ehdot.pdf", TERMS)),
    )
    return [
        first,
        b"Received: from relay2.example.com by mx.example.fi; Mon, 1 Dec 2026 10:00:00 +0200\r\n"
        + first,
        _mail(
            sender=f"Myyjä <{AGENT}>", to=maija, subject="Re: Tilaus 4471 [#1]",
            body="Hei Maija,\n\npaketti on matkalla.\n\nMyyjä", message_id="a1@example.fi",
            minute=3, headers={"In-Reply-To": "<m1.4471@mail.example.com>"},
        ),
        _mail(
            sender=maija, to="tuki@example.fi", subject="Automaattinen vastaus: Re: Tilaus 4471",
            body=MAIJA_AWAY, message_id="m2.away@mail.example.com", minute=4,
            headers={"In-Reply-To": "<a1@example.fi>", "Auto-Submitted": "auto-replied"},
        ),
        _mail(
            sender=bertta, to="tuki@example.fi", cc=maija, subject="Lahjakortti 9912",
            body=BERTTA_TEXT, message_id="b1.9912@mail.example.net", minute=5,
        ),
        _mail(
            sender=maija, to="tuki@example.fi", subject="Re: Lahjakortti 9912", body=MAIJA_DOOR,
            message_id="m3.door@mail.example.com", minute=6,
            headers={"In-Reply-To": "<b1.9912@mail.example.net>"},
        ),
        _mail(
            sender=f"Myyjä <{AGENT}>", to=bertta, cc=maija, subject="Re: Lahjakortti 9912 [#2]",
            body="Hei Bertta,\n\nselvitämme lahjakortin.", message_id="a2@example.fi", minute=7,
            headers={"In-Reply-To": "<b1.9912@mail.example.net>"},
        ),
        _mail(
            sender=bertta, to="tuki@example.fi", cc=maija, subject="Re: Lahjakortti 9912 [#2]",
            body=(
                f"Kiitos Maija! {BERTTA_THANKS}\n\n"
                f"{MAIJA_NAME} <{MAIJA}> kirjoitti:\n> {MAIJA_DOOR}\n"
            ),
            message_id="b2.9912@mail.example.net", minute=8,
            headers={"In-Reply-To": "<m3.door@mail.example.com>"},
        ),
        _mail(
            sender=f"{CECILIA_NAME} <{CECILIA}>", to="tuki@example.fi", subject="Palautus",
            body=CECILIA_TEXT, message_id="c1@mail.example.org", minute=9,
            files=(("ehdot.pdf", TERMS),),
        ),
        _mail(
            sender="Verkkokauppa <noreply@example.fi>", to="tuki@example.fi",
            subject="Yhteydenotto: osoitteenmuutos", body=MAIJA_FORM,
            message_id="form1@example.fi", minute=10, headers={"Reply-To": maija},
        ),
    ]


@dataclass
class ScenarioDesk:
    desk: Desk
    engine: Engine

    @property
    def database(self) -> Path:
        return self.desk.state_dir / "maildesk.sqlite3"

    @property
    def storage(self) -> Path:
        return self.desk.state_dir / "storage"


def build_scenario(desk: Desk, mail_dir: Path) -> ScenarioDesk:
    """Import the scenario mails into ``desk`` and add agents' notes on tickets 1, 2 and 3."""
    mail_dir.mkdir()
    for index, raw in enumerate(scenario_mails(), start=1):
        (mail_dir / f"{index:02d}.eml").write_bytes(raw)
    desk.import_files(mail_dir)
    engine = make_engine(f"sqlite:///{desk.state_dir / 'maildesk.sqlite3'}")
    now = datetime.now(UTC)
    with engine.begin() as connection:
        repo.add_note(connection, 1, AGENT, MAIJA_NOTE, now)
        repo.add_note(connection, 2, AGENT, f"Kopiona myös {MAIJA}.", now)
        repo.add_note(connection, 3, AGENT, "Kengät tulossa takaisin.", now)
    return ScenarioDesk(desk, engine)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
