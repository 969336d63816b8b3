"""``maildesk customers erase``: one person's data gone from the database and the storage folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk.cli import main
from maildesk.db import messages, ticket_participants
from maildesk.lock import StateLock
from maildesk.privacy import mail_text
from tests.casekit import make_desk
from tests.mailkit import make_mail
from tests.privacykit import (
    BERTTA,
    BERTTA_TEXT,
    BERTTA_THANKS,
    CECILIA,
    CECILIA_TEXT,
    MAIJA,
    MAIJA_NEEDLES,
    TERMS,
    ScenarioDesk,
    build_scenario,
    sha256,
)

# Everything after the first line of the report, which names the pseudonym or the dry run.
EXPECTED_COUNTS = """\
  tickets pseudonymized: 2
  of them closed: 2
  other customers' tickets the address was removed from: 1
  messages deleted: 5
  messages kept for other customers, with this person's data removed: 3
  attachments deleted: 2
  outbox rows deleted: 1
  notes deleted: 1
  notes with this person's data removed: 1
  bounce records deleted: 0
  stored files deleted: 9
  stored files kept because other messages use them: 1
  stored files that no message used, deleted: 1
"""


@pytest.fixture
def scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> ScenarioDesk:
    return build_scenario(make_desk(tmp_path, capsys), tmp_path / "mail")


@pytest.fixture
def erased(scenario: ScenarioDesk) -> str:
    """Erase Maija and return what the command printed."""
    return scenario.desk.run("customers", "erase", MAIJA)


def found_needles(path: Path) -> list[str]:
    """Return the needles in the bytes of ``path`` or, for a mail, in its decoded text."""
    content = path.read_bytes()
    haystacks = [content.lower()]
    if path.parent.parent.name == "raw":
        haystacks.append(mail_text(content).lower().encode())
    return [n for n in MAIJA_NEEDLES if any(n.lower().encode() in h for h in haystacks)]


def test_erase_prints_counts(erased: str) -> None:
    """The report lists what was deleted and pseudonymized."""
    first, rest = erased.split("\n", 1)

    assert first.startswith(f"Erased {MAIJA}. Its tickets now name the requester erased-")
    assert rest == EXPECTED_COUNTS + "  database: VACUUM done, WAL checkpointed and truncated\n"


def test_database_files_clean(scenario: ScenarioDesk, erased: str) -> None:
    """The SQLite file and its WAL and shared-memory files hold none of her data."""
    files = sorted(scenario.database.parent.glob("maildesk.sqlite3*"))

    assert [path.name for path in files if found_needles(path)] == []
    assert scenario.database in files


def test_wal_truncated(scenario: ScenarioDesk, erased: str) -> None:
    """After the erasure the WAL file is empty or gone."""
    wal = scenario.database.with_name("maildesk.sqlite3-wal")

    assert not wal.exists() or wal.stat().st_size == 0


def test_storage_files_clean(scenario: ScenarioDesk, erased: str) -> None:
    """No stored file contains her address, name or text, raw or decoded."""
    stored = [path for path in scenario.storage.rglob("*") if path.is_file()]

    assert [(path.name, found_needles(path)) for path in stored if found_needles(path)] == []


def test_shared_file_kept(scenario: ScenarioDesk, erased: str) -> None:
    """The terms file that Cecilia also sent stays, and only her raw mail and that file remain."""
    stored = sorted(path.name for path in scenario.storage.rglob("*") if path.is_file())
    cecilia_raw = sha256((scenario.desk.state_dir.parent / "mail" / "09.eml").read_bytes())

    assert stored == sorted([sha256(TERMS), cecilia_raw])


def test_orphan_raw_deleted(scenario: ScenarioDesk) -> None:
    """The raw copy of the skipped second delivery goes too."""
    duplicate = sha256((scenario.desk.state_dir.parent / "mail" / "02.eml").read_bytes())
    path = scenario.storage / "raw" / duplicate[:2] / duplicate
    assert path.exists()

    scenario.desk.run("customers", "erase", MAIJA)

    assert not path.exists()


def test_ticket_numbers_kept(scenario: ScenarioDesk, erased: str) -> None:
    """All four tickets still exist; hers are closed, pseudonymized and marked."""
    tickets = {ticket["number"]: ticket for ticket in scenario.desk.tickets()}
    pseudonym = tickets[1]["requester"]

    assert sorted(tickets) == [1, 2, 3, 4]
    assert pseudonym.startswith("erased-")
    assert pseudonym.endswith("@invalid")
    assert [tickets[n]["requester"] for n in (1, 4)] == [pseudonym, pseudonym]
    assert [tickets[n]["subject"] for n in (1, 4)] == ["[removed]", "[removed]"]
    assert [tickets[n]["status"] for n in (1, 4)] == ["closed", "closed"]
    assert [tickets[n]["message_count"] for n in (1, 4)] == [0, 0]
    assert tickets[1]["redacted_at"] is not None


def test_other_customers_kept(scenario: ScenarioDesk, erased: str) -> None:
    """Bertta's and Cecilia's tickets keep their requesters and texts."""
    bertta = scenario.desk.ticket(2)
    cecilia = scenario.desk.ticket(3)

    assert (bertta["requester"], cecilia["requester"]) == (BERTTA, CECILIA)
    assert [m["from"] for m in bertta["messages"]] == [BERTTA, "myyja@example.fi", BERTTA]
    assert bertta["messages"][0]["text"] == BERTTA_TEXT + "\n"
    assert cecilia["messages"][0]["text"] == CECILIA_TEXT + "\n"
    assert [a["filename"] for a in cecilia["messages"][0]["attachments"]] == ["ehdot.pdf"]


def test_quote_removed_from_reply(scenario: ScenarioDesk, erased: str) -> None:
    """Bertta's reply keeps her own words and loses Maija's name and quoted line."""
    reply = scenario.desk.ticket(2)["messages"][2]

    assert reply["text"] == f"Kiitos [removed]! {BERTTA_THANKS}\n\n[removed]\n"


def test_kept_messages_lose_raw(scenario: ScenarioDesk, erased: str) -> None:
    """Messages kept for Bertta have no raw file any more and are marked redacted."""
    with scenario.engine.connect() as connection:
        rows = connection.execute(
            select(messages.c.raw_sha256, messages.c.redacted_at).where(messages.c.ticket == 2)
        ).all()

    assert [row.raw_sha256 for row in rows] == ["", "", ""]
    assert all(row.redacted_at is not None for row in rows)


def test_address_replaced_in_cc(scenario: ScenarioDesk, erased: str) -> None:
    """Her Cc entries in kept messages carry the pseudonym."""
    pseudonym = scenario.desk.ticket(1)["requester"]

    assert [m["cc"] for m in scenario.desk.ticket(2)["messages"]] == [[pseudonym]] * 3


def test_participant_removed(scenario: ScenarioDesk, erased: str) -> None:
    """She is no longer a participant of Bertta's ticket."""
    with scenario.engine.connect() as connection:
        addresses = connection.execute(select(ticket_participants.c.address)).scalars().all()

    assert MAIJA not in addresses


def test_outbox_rows_removed(scenario: ScenarioDesk, erased: str) -> None:
    """Only the replies to Bertta and Cecilia stay in the outbox."""
    assert [row["to"] for row in scenario.desk.outbox()] == [[BERTTA], [CECILIA]]


def test_note_redacted(scenario: ScenarioDesk, erased: str) -> None:
    """The note on Bertta's ticket names the pseudonym instead of her."""
    pseudonym = scenario.desk.ticket(1)["requester"]

    assert [n["text"] for n in scenario.desk.ticket(2)["notes"]] == [f"Kopiona myös {pseudonym}."]


def test_dry_run_same_counts(scenario: ScenarioDesk) -> None:
    """A dry run prints the counts that the erasure then reports."""
    output = scenario.desk.run("customers", "erase", MAIJA, "--dry-run")

    assert output == f"Dry run, nothing was changed. Erasing {MAIJA} would:\n" + EXPECTED_COUNTS


def test_dry_run_changes_nothing(scenario: ScenarioDesk) -> None:
    """After a dry run the tickets, outbox and stored files are as before."""
    before = (scenario.desk.tickets(), scenario.desk.outbox(), sorted(scenario.storage.rglob("*")))

    scenario.desk.run("customers", "erase", MAIJA, "--dry-run")

    after = (scenario.desk.tickets(), scenario.desk.outbox(), sorted(scenario.storage.rglob("*")))
    assert after == before


def test_second_erase_finds_nothing(scenario: ScenarioDesk, erased: str) -> None:
    """Erasing the same address again deletes nothing more."""
    output = scenario.desk.run("customers", "erase", MAIJA)

    counts = [line.rsplit(": ", 1)[1] for line in output.splitlines()[1:-1]]
    assert counts == ["0"] * 13


def test_export_after_erase_empty(scenario: ScenarioDesk, erased: str, tmp_path: Path) -> None:
    """An export after the erasure finds no ticket of hers."""
    out = tmp_path / "after"
    scenario.desk.run("customers", "export", MAIJA, "--out", str(out))

    assert json.loads((out / "export.json").read_text(encoding="utf-8"))["tickets"] == []


def test_agent_address_rejected(scenario: ScenarioDesk, capsys: pytest.CaptureFixture[str]) -> None:
    """An agent's address cannot be erased."""
    code = main(["--config", str(scenario.desk.config_path), "customers", "erase", "myyja@example.fi"])

    assert code == 1
    assert "only customers' addresses can be erased" in capsys.readouterr().err


def test_invalid_address_rejected(scenario: ScenarioDesk, capsys: pytest.CaptureFixture[str]) -> None:
    """A value without @ is rejected before anything is read."""
    code = main(["--config", str(scenario.desk.config_path), "customers", "erase", "maija"])

    assert code == 1
    assert "invalid address 'maija'" in capsys.readouterr().err


def test_erase_waits_for_lock(scenario: ScenarioDesk, capsys: pytest.CaptureFixture[str]) -> None:
    """While another process holds the state lock, erase stops and changes nothing."""
    with StateLock(scenario.desk.state_dir):
        code = main(["--config", str(scenario.desk.config_path), "customers", "erase", MAIJA])

    assert code == 1
    assert "another maildesk process holds" in capsys.readouterr().err
    assert scenario.desk.ticket(1)["requester"] == MAIJA


def test_look_alike_address_kept(scenario: ScenarioDesk, tmp_path: Path) -> None:
    """A customer whose address ends with hers keeps ticket, text and raw file."""
    look_alike = f"toinen.{MAIJA}"
    extra = tmp_path / "extra.eml"
    extra.write_bytes(make_mail(sender=look_alike, subject="Oma asia", body="Toisen asiakkaan viesti."))
    scenario.desk.import_files(extra)

    scenario.desk.run("customers", "erase", MAIJA)

    ticket = scenario.desk.ticket(5)
    assert (ticket["requester"], ticket["messages"][0]["text"]) == (look_alike, "Toisen asiakkaan viesti.\n")
    digest = sha256(extra.read_bytes())
    assert (scenario.storage / "raw" / digest[:2] / digest).exists()
