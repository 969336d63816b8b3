"""The retention job and the ``[retention]`` section of the configuration."""

from __future__ import annotations

import email.policy
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from maildesk import repository as repo
from maildesk.config import RetentionSettings, load_config, parse_config
from maildesk.db import attachments, make_engine, messages, outbox, ticket_notes, tickets
from maildesk.errors import ConfigError
from maildesk.jobs import periodic_jobs
from maildesk.retention import RetentionStats, apply_retention, run_job
from maildesk.service import Desk
from maildesk.storage import FileStore
from tests.casekit import make_desk

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
XAVIER = "xavier.example@example.com"
XAVIER_TEXT = "Xavierin tilaus 77 on hukassa."
YLVA = "ylva.example@example.com"
ROBOT_TEXT = "Automaattinen ilmoitus: varasto 5 suljettu."
FILE = b"%PDF-1.4\n% Xavierin kuitti\n%%EOF\n"


def _mail(sender: str, subject: str, body: str, headers: dict[str, str] | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "tuki@example.fi"
    message["Subject"] = subject
    message["Date"] = "Mon, 01 Dec 2025 10:00:00 +0200"
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@example.com>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes(policy=email.policy.SMTP)


@dataclass
class RetentionDesk:
    engine: Engine
    files: FileStore
    state_dir: Path


@pytest.fixture
def retention_desk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> RetentionDesk:
    """Ticket 1 closed 800 days ago, ticket 2 open and untouched for 2000 days, and old robot mail."""
    desk = make_desk(tmp_path, capsys)
    xavier = _mail(f"Xavier <{XAVIER}>", "Kuitti", XAVIER_TEXT)
    parsed = email.message_from_bytes(xavier, policy=email.policy.default)
    parsed.add_attachment(FILE, maintype="application", subtype="pdf", filename="kuitti.pdf")
    mails = tmp_path / "mail"
    mails.mkdir()
    (mails / "01.eml").write_bytes(parsed.as_bytes(policy=email.policy.SMTP))
    (mails / "02.eml").write_bytes(_mail(f"Ylva <{YLVA}>", "Kysymys", "Ylvan kysymys."))
    (mails / "03.eml").write_bytes(
        _mail("Varasto <robot@warehouse.example>", "Ilmoitus", ROBOT_TEXT, {"Auto-Submitted": "auto-generated"})
    )
    desk.import_files(mails)

    engine = make_engine(f"sqlite:///{desk.state_dir / 'maildesk.sqlite3'}")
    with engine.begin() as connection:
        repo.add_note(connection, 1, "myyja@example.fi", "Xavier soitti.", NOW - timedelta(days=900))
        connection.execute(update(outbox).values(status="sent"))
        connection.execute(
            update(tickets).where(tickets.c.number == 1)
            .values(status="closed", closed_at=NOW - timedelta(days=800))
        )
        connection.execute(
            update(tickets).where(tickets.c.number == 2)
            .values(status="open", updated_at=NOW - timedelta(days=2000))
        )
        connection.execute(
            update(messages).where(messages.c.ticket.is_(None))
            .values(stored_at=NOW - timedelta(days=800))
        )
    return RetentionDesk(engine, FileStore(desk.state_dir / "storage"), desk.state_dir)


def message_rows(desk: RetentionDesk) -> list:  # type: ignore[type-arg]
    with desk.engine.connect() as connection:
        return connection.execute(select(messages).order_by(messages.c.id)).all()


def stored_files(desk: RetentionDesk) -> int:
    return sum(1 for path in (desk.state_dir / "storage").rglob("*") if path.is_file())


def test_raw_stage_counts(retention_desk: RetentionDesk) -> None:
    """Raw mail of the closed ticket and of old ticketless mail goes, with the attachment."""
    stats = apply_retention(
        retention_desk.engine, retention_desk.files,
        RetentionSettings(raw_mail_and_attachments=timedelta(days=365)), NOW,
    )

    assert stats == RetentionStats(
        raw_removed=2, attachments_removed=1, reply_raw_removed=1, files_deleted=3
    )


def test_raw_stage_keeps_text(retention_desk: RetentionDesk) -> None:
    """After the raw stage the closed ticket's message keeps its text but has no raw file."""
    apply_retention(
        retention_desk.engine, retention_desk.files,
        RetentionSettings(raw_mail_and_attachments=timedelta(days=365)), NOW,
    )

    rows = message_rows(retention_desk)
    assert [(row.ticket, row.raw_sha256 == "") for row in rows] == [(1, True), (2, False), (None, True)]
    assert rows[0].text == XAVIER_TEXT + "\n"
    assert stored_files(retention_desk) == 1


def test_raw_stage_empties_reply(retention_desk: RetentionDesk) -> None:
    """The sent reply of the closed ticket loses its raw bytes; the open ticket's keeps them."""
    apply_retention(
        retention_desk.engine, retention_desk.files,
        RetentionSettings(raw_mail_and_attachments=timedelta(days=365)), NOW,
    )

    with retention_desk.engine.connect() as connection:
        raws = connection.execute(select(outbox.c.ticket, outbox.c.raw).order_by(outbox.c.id)).all()
        attachment_count = len(connection.execute(select(attachments)).all())
    assert [(ticket, raw == b"") for ticket, raw in raws] == [(1, True), (2, False)]
    assert attachment_count == 0


def test_text_stage_counts(retention_desk: RetentionDesk) -> None:
    """The text stage deletes the closed ticket's messages, reply and note and pseudonymizes it."""
    stats = apply_retention(
        retention_desk.engine, retention_desk.files,
        RetentionSettings(raw_mail_and_attachments=timedelta(days=365), message_text=timedelta(days=730)),
        NOW,
    )

    assert stats == RetentionStats(
        messages_deleted=2, attachments_removed=1, outbox_deleted=1, notes_deleted=1,
        tickets_pseudonymized=1, files_deleted=3,
    )


def test_text_stage_leaves_metadata(retention_desk: RetentionDesk) -> None:
    """The closed ticket keeps number, status and times, with a pseudonym as requester."""
    apply_retention(
        retention_desk.engine, retention_desk.files, RetentionSettings(message_text=timedelta(days=730)), NOW
    )

    with retention_desk.engine.connect() as connection:
        row = connection.execute(select(tickets).where(tickets.c.number == 1)).one()
        notes = connection.execute(select(ticket_notes)).all()
    assert row.requester.startswith("expired-")
    assert row.requester.endswith("@invalid")
    assert (row.requester_name, row.subject, row.status) == ("", "[removed]", "closed")
    assert row.redacted_at == NOW
    assert notes == []


def test_text_stage_clears_database(retention_desk: RetentionDesk) -> None:
    """After the text stage the database files hold no trace of the expired customer."""
    apply_retention(
        retention_desk.engine, retention_desk.files, RetentionSettings(message_text=timedelta(days=730)), NOW
    )

    database_files = retention_desk.state_dir.glob("maildesk.sqlite3*")
    found = [path.name for path in database_files if b"xavier" in path.read_bytes().lower()]
    assert found == []


def test_metadata_stage_deletes_ticket(retention_desk: RetentionDesk) -> None:
    """The metadata stage deletes the closed ticket row; the open one stays."""
    stats = apply_retention(
        retention_desk.engine, retention_desk.files,
        RetentionSettings(message_text=timedelta(days=730), ticket_metadata=timedelta(days=730)), NOW,
    )

    with retention_desk.engine.connect() as connection:
        numbers = connection.execute(select(tickets.c.number)).scalars().all()
    assert numbers == [2]
    assert stats.tickets_deleted == 1


def test_open_ticket_untouched(retention_desk: RetentionDesk) -> None:
    """An open ticket keeps its message, raw file and requester however old it is."""
    apply_retention(
        retention_desk.engine, retention_desk.files,
        RetentionSettings(
            raw_mail_and_attachments=timedelta(days=1), message_text=timedelta(days=1),
            ticket_metadata=timedelta(days=1),
        ),
        NOW,
    )

    rows = message_rows(retention_desk)
    with retention_desk.engine.connect() as connection:
        requester = connection.execute(select(tickets.c.requester)).scalar_one()
    assert [(row.ticket, row.raw_sha256 != "") for row in rows] == [(2, True)]
    assert requester == YLVA


def test_recent_close_untouched(retention_desk: RetentionDesk) -> None:
    """A ticket closed more recently than the limits keeps everything."""
    stats = apply_retention(
        retention_desk.engine, retention_desk.files,
        RetentionSettings(raw_mail_and_attachments=timedelta(days=900)), NOW,
    )

    assert stats == RetentionStats()


def test_second_run_changes_nothing(retention_desk: RetentionDesk) -> None:
    """Running the job again at the same time removes nothing more."""
    settings = RetentionSettings(
        raw_mail_and_attachments=timedelta(days=365), message_text=timedelta(days=730),
        ticket_metadata=timedelta(days=730),
    )
    apply_retention(retention_desk.engine, retention_desk.files, settings, NOW)

    assert apply_retention(retention_desk.engine, retention_desk.files, settings, NOW) == RetentionStats()


def test_no_limits_keep_everything(retention_desk: RetentionDesk) -> None:
    """Without [retention] nothing is removed."""
    assert apply_retention(retention_desk.engine, retention_desk.files, RetentionSettings(), NOW) == RetentionStats()
    assert stored_files(retention_desk) == 4


def test_job_reads_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The daemon's job applies the limits from the configuration file."""
    desk = make_desk(tmp_path, capsys, '[retention]\nraw_mail_and_attachments = "1d"\n')
    mails = tmp_path / "mail"
    mails.mkdir()
    (mails / "01.eml").write_bytes(_mail(f"Xavier <{XAVIER}>", "Kuitti", XAVIER_TEXT))
    desk.import_files(mails)
    opened = Desk.open(load_config(desk.config_path))
    with opened.engine.begin() as connection:
        repo.set_status(connection, 1, "closed", NOW - timedelta(days=2))

    run_job(opened, NOW)

    with opened.engine.connect() as connection:
        assert connection.execute(select(messages.c.raw_sha256)).scalar_one() == ""


def test_job_registered_daily() -> None:
    """The retention job runs once a day in the daemon."""
    assert [(job.name, job.interval_seconds) for job in periodic_jobs() if job.name == "retention"] == [
        ("retention", 86400)
    ]


def _retention(**values: object) -> RetentionSettings:
    return parse_config({"desk": {"support_address": "tuki@example.fi"}, "retention": values}).retention


def test_config_durations() -> None:
    """Retention times are durations with a unit."""
    assert _retention(raw_mail_and_attachments="365d", message_text="104w") == RetentionSettings(
        raw_mail_and_attachments=timedelta(days=365), message_text=timedelta(weeks=104)
    )


def test_config_zero_keeps_forever() -> None:
    """0, "0" and "0d" all mean no limit."""
    assert _retention(raw_mail_and_attachments=0, message_text="0", ticket_metadata="0d") == RetentionSettings()


def test_config_absent_keeps_forever() -> None:
    """A configuration without [retention] removes nothing."""
    assert parse_config({"desk": {"support_address": "tuki@example.fi"}}).retention == RetentionSettings()


def test_config_rejects_longer_earlier_stage() -> None:
    """Raw mail kept longer than its message is an error naming both keys."""
    with pytest.raises(ConfigError) as error:
        _retention(raw_mail_and_attachments="800d", message_text="730d")

    assert "retention.raw_mail_and_attachments" in str(error.value)
    assert "retention.message_text (730d)" in str(error.value)


def test_config_rejects_number() -> None:
    """A bare number other than 0 is rejected with the expected form."""
    with pytest.raises(ConfigError, match='a duration such as "365d", or 0 to keep forever'):
        _retention(message_text=365)


def test_config_rejects_unknown_key() -> None:
    """A misspelled key in [retention] is an error."""
    with pytest.raises(ConfigError, match="unknown key retention.raw_mail"):
        _retention(raw_mail="365d")


def test_example_config_limits() -> None:
    """config.example.toml keeps raw mail a year and messages two years."""
    example = tomllib.loads((Path(__file__).parent.parent / "config.example.toml").read_text(encoding="utf-8"))

    assert _retention(**example["retention"]) == RetentionSettings(
        raw_mail_and_attachments=timedelta(days=365), message_text=timedelta(days=730)
    )
