"""The overdue digest on a pinned clock (time-machine), Helsinki time."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from maildesk import digest
from maildesk.config import Config, load_config
from maildesk.db import make_engine, outbox
from maildesk.schema import upgrade
from tests.casekit import Desk, make_desk
from tests.mailkit import make_mail

HELSINKI = ZoneInfo("Europe/Helsinki")
# Wednesday 2 December 2026 10:00; the ticket's first answer is overdue by Monday.
CREATED = datetime(2026, 12, 2, 10, 0, tzinfo=HELSINKI)
MONDAY_8_05 = datetime(2026, 12, 7, 8, 5, tzinfo=HELSINKI)


@pytest.fixture
def desk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Desk:
    return make_desk(tmp_path, capsys, '[digest]\ntimes = ["08:00", "13:00"]\n')


def _import_question(desk: Desk) -> None:
    path = desk.state_dir.parent / "q.eml"
    path.write_bytes(make_mail(sender="Maija <maija@example.com>", subject="Missä tilaus?", date=CREATED))
    with time_machine.travel(CREATED, tick=False):
        desk.import_files(path, auto_reply=False)


def _run(desk: Desk, moment: datetime) -> tuple[int, list[bytes]]:
    """Run the digest job at ``moment``; return the mails queued by it and all digests queued."""
    config: Config = load_config(desk.config_path)
    engine = make_engine(config.database_url)
    upgrade(engine)
    with time_machine.travel(moment, tick=False):
        with engine.begin() as connection:
            queued = digest.send_if_due(config, connection, datetime.now(UTC))
    with engine.connect() as connection:
        raws = list(connection.execute(select(outbox.c.raw).where(outbox.c.kind == "digest")).scalars())
    return queued, raws


def test_digest_sent_on_business_morning(desk: Desk) -> None:
    """On Monday after 08:00 each listed agent gets one digest naming the overdue ticket."""
    _import_question(desk)

    queued, raws = _run(desk, MONDAY_8_05)

    mail = email.message_from_bytes(raws[0], policy=email.policy.default)
    text = mail.get_content().replace("\r\n", "\n")
    assert 2 == queued
    assert "Verkkokauppa: avoimet tukipyynnöt 7.12.2026" == mail["Subject"]
    assert "Ensimmäinen vastaus myöhässä:\n#1  normal  4 pv 22 h  maija@example.com  Missä tilaus?" in text
    assert "Ilman käsittelijää:" in text


def test_digest_recipients_listed_agents(desk: Desk) -> None:
    """Without [digest] recipients the listed agent addresses get the digest."""
    _import_question(desk)

    _run(desk, MONDAY_8_05)

    with make_engine(load_config(desk.config_path).database_url).connect() as connection:
        recipients = sorted(connection.execute(select(outbox.c.recipient).where(outbox.c.kind == "digest")).scalars())
    assert ["asiakaspalvelu@example.fi", "myyja@example.fi"] == recipients


def test_digest_once_per_slot(desk: Desk) -> None:
    """A second run in the same slot queues nothing."""
    _import_question(desk)
    _run(desk, MONDAY_8_05)

    queued, raws = _run(desk, datetime(2026, 12, 7, 8, 30, tzinfo=HELSINKI))

    assert 0 == queued
    assert 2 == len(raws)


def test_digest_second_slot_same_day(desk: Desk) -> None:
    """The 13:00 slot sends again after the 08:00 one."""
    _import_question(desk)
    _run(desk, MONDAY_8_05)

    queued, _raws = _run(desk, datetime(2026, 12, 7, 13, 1, tzinfo=HELSINKI))

    assert 2 == queued


def test_digest_skipped_on_saturday(desk: Desk) -> None:
    """No digest on a Saturday."""
    _import_question(desk)

    queued, _raws = _run(desk, datetime(2026, 12, 5, 8, 5, tzinfo=HELSINKI))

    assert 0 == queued


def test_digest_skipped_on_holiday(desk: Desk) -> None:
    """No digest on Christmas Day, a Finnish public holiday on a Friday in 2026."""
    _import_question(desk)

    queued, _raws = _run(desk, datetime(2026, 12, 25, 8, 5, tzinfo=HELSINKI))

    assert 0 == queued


def test_digest_late_slot_skipped(desk: Desk) -> None:
    """A slot missed by more than an hour is not sent late."""
    _import_question(desk)

    queued, _raws = _run(desk, datetime(2026, 12, 7, 9, 30, tzinfo=HELSINKI))

    assert 0 == queued


def test_digest_empty_sends_nothing(desk: Desk) -> None:
    """With no open tickets no digest goes out."""
    queued, raws = _run(desk, MONDAY_8_05)

    assert 0 == queued
    assert [] == raws


def test_digest_answered_ticket_not_overdue(desk: Desk) -> None:
    """An answered, owned, pending ticket appears in no list, so no digest goes out."""
    _import_question(desk)
    path = desk.state_dir.parent / "a.eml"
    path.write_bytes(make_mail(sender="myyja@example.fi", to="maija@example.com", subject="Re: Missä tilaus? [#1]",
                               date=CREATED.replace(hour=11)))
    with time_machine.travel(CREATED.replace(hour=11), tick=False):
        desk.import_files(path, auto_reply=False)

    queued, _raws = _run(desk, MONDAY_8_05)

    assert 0 == queued


def test_format_age_languages() -> None:
    """Ages are written in days and hours per language, minutes under a day."""
    from datetime import timedelta

    assert "2 pv 3 h" == digest.format_age(timedelta(days=2, hours=3, minutes=10), "fi")
    assert "2 d 3 h" == digest.format_age(timedelta(days=2, hours=3), "en")
    assert "5 h 7 min" == digest.format_age(timedelta(hours=5, minutes=7), "sv")
