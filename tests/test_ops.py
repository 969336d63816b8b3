"""Operations: status and its exit code, backup, sync --dry-run, check-config --connect, metrics."""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from faultkit import DaemonProcess, account_config, rows, write_config
from servers import SmtpSink, unused_port
from sqlalchemy import insert

from maildesk import repository as repo
from maildesk.backup import backup_database
from maildesk.cli import main
from maildesk.config import Config, load_config
from maildesk.db import make_engine, messages, outbox, settings, tickets
from maildesk.errors import MaildeskError
from maildesk.ingest import BatchStats
from maildesk.metrics import Metrics
from maildesk.service import Desk, sync_once
from maildesk.status import collect_status
from tests.mailkit import make_mail, message_id_of


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


@pytest.fixture
def maildesk(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run a maildesk command in this process and return its exit code and output."""

    def run(config_path: Path, *args: str) -> Result:
        capsys.readouterr()
        code = main(["--config", str(config_path), *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def desk(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> Config:
    """A desk whose first sync has run, with one customer ticket and its sent reply."""
    config = load_config(account_config(tmp_path, imap_account, smtp_sink))
    sync_once(config)
    imap_account.append(make_mail(subject="Tilaus 1001"))
    sync_once(config)
    return config


def status_of(config: Config, now: datetime, strict: bool = False) -> Any:
    with Desk.open(config).engine.connect() as connection:
        return collect_status(connection, config, now, strict=strict)


# --- status ----------------------------------------------------------------------------


@pytest.mark.dovecot
def test_status_healthy_exit_zero(desk: Config, maildesk: Any) -> None:
    """A desk that has just synced and sent its reply needs no attention: exit code 0."""
    result = maildesk(desk.path, "status")

    assert 0 == result.returncode, result.stdout + result.stderr
    assert "nothing needs attention" in result.stdout
    assert "INBOX: last sync" in result.stdout


@pytest.mark.dovecot
def test_status_json_fields(desk: Config, maildesk: Any) -> None:
    """status --json gives folders, outbox counts, tickets by priority, overdue tickets and problems."""
    result = maildesk(desk.path, "status", "--json")
    report = json.loads(result.stdout)

    assert ["INBOX"] == [folder["name"] for folder in report["folders"]]
    assert None is report["folders"][0]["error"]
    assert (0, 0, []) == (report["outbox_queued"], report["outbox_sending"], report["outbox_failed"])
    assert {"urgent": 0, "high": 0, "normal": 1, "low": 0} == report["open_tickets"]
    assert [] == report["overdue_tickets"]
    assert [] == report["problems"]


def test_status_never_synced(tmp_path: Path, maildesk: Any) -> None:
    """A configured folder that was never synced needs attention: exit code 3."""
    config_path = write_config(tmp_path, unused_port(), "tuki", "secret", None)

    result = maildesk(config_path, "status")

    assert 3 == result.returncode, result.stderr
    assert "folder INBOX: never synced" in result.stdout


def interrupted_import(tmp_path: Path) -> Path:
    """Write a desk whose first import of INBOX stopped at UID 3 of 7."""
    config_path = write_config(tmp_path, unused_port(), "tuki", "secret", None)
    engine = Desk.open(load_config(config_path)).engine
    with engine.begin() as connection:
        repo.start_import(connection, "INBOX", 1, 7)
        repo.save_folder_state(connection, "INBOX", 1, 3, datetime.now(UTC))
    engine.dispose()
    return config_path


def test_status_shows_unfinished_import(tmp_path: Path, maildesk: Any) -> None:
    """status names the UID an unfinished first import has stored up to and where it ends."""
    result = maildesk(interrupted_import(tmp_path), "status")

    assert "first import unfinished: stored up to UID 3, ends at UID 7" in result.stdout


def test_status_json_import_until(tmp_path: Path, maildesk: Any) -> None:
    """status --json gives last_uid and import_until of a folder whose first import is unfinished."""
    report = json.loads(maildesk(interrupted_import(tmp_path), "status", "--json").stdout)

    assert 3 == report["folders"][0]["last_uid"]
    assert 7 == report["folders"][0]["import_until"]


@pytest.mark.dovecot
def test_status_stale_sync(desk: Config) -> None:
    """A folder not synced for longer than three poll intervals (one hour each here) is a problem."""
    report = status_of(desk, datetime.now(UTC) + timedelta(minutes=181))

    assert 1 == len(report.problems)
    assert report.problems[0].startswith("folder INBOX: last successful sync 3 h ago")


@pytest.mark.dovecot
def test_status_queued_too_long(desk: Config, smtp_sink: SmtpSink, imap_account: Any) -> None:
    """A reply queued for more than an hour is a problem."""
    smtp_sink.fail_next(code=451, count=1)
    imap_account.append(make_mail(sender="toinen@example.org", subject="Toinen"))
    sync_once(desk)

    report = status_of(desk, datetime.now(UTC) + timedelta(minutes=61))

    assert any(problem.startswith("outbox: 1 replies queued, the oldest for") for problem in report.problems)


@pytest.mark.dovecot
def test_status_overdue_only_when_strict(desk: Config) -> None:
    """Overdue tickets are listed; they count as a problem only with strict."""
    later = datetime.now(UTC) + timedelta(days=30)

    relaxed = status_of(desk, later)
    strict = status_of(desk, later, strict=True)

    assert [1] == relaxed.overdue_tickets
    assert not any("first-answer time" in problem for problem in relaxed.problems)
    assert "1 tickets are past their first-answer time" in strict.problems


@pytest.mark.dovecot
def test_status_ignores_bounced_reply(desk: Config) -> None:
    """A reply that bounced at the customer's server is no service problem."""
    engine = Desk.open(desk).engine
    with engine.begin() as connection:
        connection.execute(
            outbox.update().values(status="failed", last_error="bounced: delivery to x failed")
        )

    report = status_of(desk, datetime.now(UTC))

    assert [] == report.outbox_failed


# --- backup ----------------------------------------------------------------------------


def test_backup_copies_consistently(tmp_path: Path) -> None:
    """A backup taken while another connection keeps writing is a complete, private, plain SQLite file."""
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    engine = make_engine(url)
    from maildesk.schema import upgrade

    upgrade(engine)
    stop = threading.Event()

    def write() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            with engine.begin() as connection:
                connection.execute(insert(settings).values(key=f"k{number}", value=b"x" * 2000))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        result = backup_database(url, tmp_path / "backup.sqlite3")
    finally:
        stop.set()
        writer.join()

    copy = sqlite3.connect(result.path)
    assert "ok" == copy.execute("PRAGMA integrity_check").fetchone()[0]
    assert "delete" == copy.execute("PRAGMA journal_mode").fetchone()[0]
    assert copy.execute("SELECT count(*) FROM tickets").fetchone()[0] == 0
    copy.close()
    assert 0o600 == stat.S_IMODE(result.path.stat().st_mode)
    assert [] == list(tmp_path.glob(".backup.sqlite3.*"))


def test_backup_refuses_database_itself(tmp_path: Path) -> None:
    """Naming the database itself as the backup file is an error, and the database stays."""
    path = tmp_path / "live.sqlite3"
    make_engine(f"sqlite:///{path}").dispose()

    with pytest.raises(MaildeskError, match="is the database itself"):
        backup_database(f"sqlite:///{path}", path)


def test_backup_refuses_other_databases(tmp_path: Path) -> None:
    """Only SQLite is backed up; other URLs name their own tools."""
    with pytest.raises(MaildeskError, match="SQLite databases only, not postgresql"):
        backup_database("postgresql://db.example/maildesk", tmp_path / "b")


@pytest.mark.dovecot
def test_backup_command_output(desk: Config, tmp_path: Path, maildesk: Any) -> None:
    """maildesk backup FILE writes the file and names the folder of the stored mail files."""
    target = tmp_path / "maildesk-backup.sqlite3"

    result = maildesk(desk.path, "backup", str(target))

    copy = sqlite3.connect(target)
    assert 0 == result.returncode, result.stderr
    assert 1 == copy.execute("SELECT count(*) FROM tickets").fetchone()[0]
    assert "back that folder up too" in result.stdout
    copy.close()


# --- sync --dry-run --------------------------------------------------------------------


@pytest.mark.dovecot
def test_dry_run_reports_without_writing(desk: Config, imap_account: Any, smtp_sink: SmtpSink, maildesk: Any) -> None:
    """The dry run reports a new ticket, a threaded reply and a robot's mail, and changes nothing."""
    first_reply = message_id_of(smtp_sink.messages[0].raw)
    uid = imap_account.append(make_mail(sender="uusi@example.org", subject="Uusi kysymys"))
    imap_account.append(make_mail(subject="Re: Tilaus 1001 [#1]", headers={"In-Reply-To": f"<{first_reply}>"}))
    imap_account.append(make_mail(sender="poissa@example.net", headers={"Auto-Submitted": "auto-replied"}))
    before = (len(rows(desk, messages)), len(rows(desk, outbox)))

    result = maildesk(desk.path, "sync", "--dry-run", "--json")

    report = json.loads(result.stdout)
    assert 0 == result.returncode, result.stderr
    assert [(2, "uusi@example.org")] == [(t["number"], t["requester"]) for t in report["new_tickets"]]
    assert [(1, "in-reply-to")] == [(m["ticket"], m["thread_rule"]) for m in report["joined"]]
    assert ["robot"] == [m["kind"] for m in report["ticketless"]]
    assert [["uusi@example.org"]] == [reply["to"] for reply in report["replies"]]
    assert before == (len(rows(desk, messages)), len(rows(desk, outbox)))
    assert 1 == len(smtp_sink.messages)
    client = imap_account.client()
    client.select_folder("INBOX", readonly=True)
    assert b"\\Seen" not in client.get_flags([uid])[uid]


@pytest.mark.dovecot
def test_dry_run_predicts_real_sync(desk: Config, imap_account: Any, maildesk: Any) -> None:
    """A real sync after the dry run creates the ticket numbers the dry run reported."""
    imap_account.append(make_mail(sender="uusi@example.org", subject="Uusi"))
    dry = json.loads(maildesk(desk.path, "sync", "--dry-run", "--json").stdout)

    sync_once(desk)

    assert [t["number"] for t in dry["new_tickets"]] == [row.number for row in rows(desk, tickets)][1:]


@pytest.mark.dovecot
def test_dry_run_text_output(desk: Config, imap_account: Any, maildesk: Any) -> None:
    """The text report states that nothing was written and lists the new ticket."""
    imap_account.append(make_mail(sender="uusi@example.org", subject="Uusi kysymys"))

    result = maildesk(desk.path, "sync", "--dry-run")

    assert 0 == result.returncode, result.stderr
    assert "nothing was written to the database and nothing was sent" in result.stdout
    assert "#2 [normal] uusi@example.org: Uusi kysymys" in result.stdout


# --- check-config --connect ------------------------------------------------------------


@pytest.mark.dovecot
def test_check_connect_reports_both(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink, maildesk: Any) -> None:
    """check-config --connect logs in to both servers, lists the synced folder and tests the sender."""
    imap_account.append(make_mail())
    config_path = account_config(tmp_path, imap_account, smtp_sink)

    result = maildesk(config_path, "check-config", "--connect")

    assert 0 == result.returncode, result.stdout + result.stderr
    assert "[mailbox] works" in result.stdout
    assert "folder INBOX: 1 messages, UIDVALIDITY" in result.stdout
    assert "the server offers IDLE" in result.stdout
    assert "[smtp] works" in result.stdout
    assert "the server accepts tuki@example.fi as sender: 250" in result.stdout
    assert [] == smtp_sink.messages


@pytest.mark.dovecot
def test_check_connect_wrong_password(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink, maildesk: Any) -> None:
    """A rejected login fails the check with exit 1 and quotes the server's reply."""
    imap_account.password = "wrong-password"
    config_path = account_config(tmp_path, imap_account, smtp_sink)

    result = maildesk(config_path, "check-config", "--connect")

    assert 1 == result.returncode
    assert "[mailbox] FAILED" in result.stdout
    assert "AUTHENTICATIONFAILED" in result.stdout
    assert "wrong-password" not in result.stdout + result.stderr


@pytest.mark.dovecot
def test_check_connect_missing_folder(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink, maildesk: Any) -> None:
    """A configured folder the server lacks fails the check and lists the folders it has."""
    config_path = account_config(tmp_path, imap_account, smtp_sink, folders=("INBOX", "Tilaukset"))

    result = maildesk(config_path, "check-config", "--connect")

    assert 1 == result.returncode
    assert "folder Tilaukset: not found on the server; its folders are: " in result.stdout


# --- metrics ---------------------------------------------------------------------------


def test_metrics_count_batch() -> None:
    """A sync pass's counts land in the counters, suppressed replies by reason."""
    metrics = Metrics()
    metrics.synced(BatchStats(stored=5, duplicates=2, new_tickets=3, quarantined=1, suppressed={"list-id": 2}))
    text = _exposition(metrics)

    assert 'maildesk_messages_ingested_total{result="stored"} 4.0' in text
    assert 'maildesk_messages_ingested_total{result="quarantined"} 1.0' in text
    assert 'maildesk_messages_ingested_total{result="duplicate"} 2.0' in text
    assert "maildesk_tickets_created_total 3.0" in text
    assert 'maildesk_autoreplies_suppressed_total{reason="list-id"} 2.0' in text


def _exposition(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


@pytest.mark.dovecot
def test_daemon_serves_metrics(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """maildesk run with [metrics] serves the counters on its loopback port."""
    port = unused_port()
    extra = f"""
    [metrics]
    enabled = true
    port = {port}
    """
    config_path = account_config(tmp_path, imap_account, smtp_sink, extra)
    sync_once(load_config(config_path))
    daemon = DaemonProcess(config_path, tmp_path / "daemon.log").start()
    try:
        daemon.wait_for_log("waiting for new mail in INBOX with IMAP IDLE")
        imap_account.append(make_mail())
        smtp_sink.wait_for(1, timeout=30)
        daemon.wait_for_log("reply sent")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        assert 0 == daemon.terminate()

    assert "maildesk_outbox_sent_total 1.0" in text
    assert "maildesk_tickets_created_total 1.0" in text
    assert "maildesk_sync_lag_seconds_count 1.0" in text
    assert "maildesk_imap_reconnects_total 0.0" in text
