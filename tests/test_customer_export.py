"""``maildesk customers export``: everything about one address, nothing about anyone else."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from maildesk.cli import main
from maildesk.privacy import mail_text
from tests.casekit import make_desk
from tests.privacykit import (
    MAIJA,
    MAIJA_AWAY,
    MAIJA_DOOR,
    MAIJA_FORM,
    MAIJA_NOTE,
    MAIJA_ORDER,
    OTHER_NEEDLES,
    RECEIPT,
    TERMS,
    ScenarioDesk,
    build_scenario,
)


@pytest.fixture
def scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> ScenarioDesk:
    return build_scenario(make_desk(tmp_path, capsys), tmp_path / "mail")


@pytest.fixture
def archive(scenario: ScenarioDesk, tmp_path: Path) -> zipfile.ZipFile:
    out = tmp_path / "maija.zip"
    scenario.desk.run("customers", "export", MAIJA, "--out", str(out))
    return zipfile.ZipFile(out)


def document(archive: zipfile.ZipFile) -> dict[str, Any]:
    return json.loads(archive.read("export.json"))


def all_messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [message for ticket in data["tickets"] for message in ticket["messages"]]


def test_export_lists_person_tickets(archive: zipfile.ZipFile) -> None:
    """The tickets she requested and the one she was on Cc of are exported."""
    assert [ticket["number"] for ticket in document(archive)["tickets"]] == [1, 2, 4]


def test_export_own_message_texts(archive: zipfile.ZipFile) -> None:
    """Her messages and the agent's reply to her come with their text."""
    texts = [m["text"] for m in all_messages(document(archive)) if "withheld" not in m]

    assert texts == [
        MAIJA_ORDER + "\n",
        "Hei Maija,\n\npaketti on matkalla.\n\nMyyjä\n",
        MAIJA_AWAY + "\n",
        MAIJA_DOOR + "\n",
        MAIJA_FORM + "\n",
    ]


def test_export_uses_show_field_names(archive: zipfile.ZipFile, scenario: ScenarioDesk) -> None:
    """A requested ticket has the fields and values of ``tickets show --json``."""
    shown = scenario.desk.ticket(1)
    exported = document(archive)["tickets"][0]

    assert {key: exported[key] for key in shown if key != "messages"} == {
        key: value for key, value in shown.items() if key != "messages"
    }
    assert list(exported["messages"][0]) == [*shown["messages"][0], "raw_file"]


def test_export_raw_mail_unchanged(archive: zipfile.ZipFile, tmp_path: Path) -> None:
    """The first message's .eml is the mail exactly as it arrived."""
    first = document(archive)["tickets"][0]["messages"][0]

    assert archive.read(first["raw_file"]) == (tmp_path / "mail" / "01.eml").read_bytes()


def test_export_attachment_contents(archive: zipfile.ZipFile) -> None:
    """Both attachments of her first mail are in the archive with their bytes."""
    files = [a["file"] for a in document(archive)["tickets"][0]["messages"][0]["attachments"]]

    assert [archive.read(name) for name in files] == [RECEIPT, TERMS]


def test_export_withholds_shared_messages(archive: zipfile.ZipFile) -> None:
    """On the other customer's ticket only her own message has content."""
    ticket = document(archive)["tickets"][1]

    assert [bool(m.get("withheld")) for m in ticket["messages"]] == [True, False, True, True]
    assert [m["text"] for m in ticket["messages"] if m.get("withheld")] == ["", "", ""]
    assert [m["cc"] for m in ticket["messages"] if m.get("withheld")] == [[MAIJA], [MAIJA], [MAIJA]]


def test_export_withholds_other_requester(archive: zipfile.ZipFile) -> None:
    """The other customer's ticket shows neither its requester nor its subject."""
    ticket = document(archive)["tickets"][1]

    assert (ticket["requester"], ticket["requester_name"], ticket["subject"]) == ("", "", "")


def test_export_outbox_reply(archive: zipfile.ZipFile) -> None:
    """The auto-reply to her is exported with its raw mail."""
    replies = document(archive)["outbox"]

    assert [(reply["ticket"], reply["to"]) for reply in replies] == [(1, [MAIJA])]
    assert b"[#1]" in archive.read(replies[0]["raw_file"])


def test_export_notes(archive: zipfile.ZipFile) -> None:
    """The note on her ticket is exported; the one on another customer's ticket is withheld."""
    notes = [(t["number"], n["text"], n.get("withheld")) for t in document(archive)["tickets"] for n in t["notes"]]

    assert notes == [(1, MAIJA_NOTE, None), (2, "", "note on another customer's ticket")]


def test_export_nothing_of_others(archive: zipfile.ZipFile) -> None:
    """No file in the archive contains another customer's address, name or text."""
    found = []
    for name in archive.namelist():
        content = archive.read(name)
        decoded = mail_text(content) if name.endswith(".eml") else ""
        haystack = content.decode("utf-8", "replace").lower() + decoded.lower()
        found += [(name, needle) for needle in OTHER_NEEDLES if needle.lower() in haystack]

    assert found == []


def test_export_folder_private(scenario: ScenarioDesk, tmp_path: Path) -> None:
    """An export to a folder makes folders 0700 and files 0600."""
    out = tmp_path / "maija"
    scenario.desk.run("customers", "export", MAIJA, "--out", str(out))

    modes = {stat.S_IMODE(path.stat().st_mode) for path in [out, *out.rglob("*")]}
    assert modes == {0o700, 0o600}
    assert json.loads((out / "export.json").read_text(encoding="utf-8"))["address"] == MAIJA


def test_export_zip_private(archive: zipfile.ZipFile) -> None:
    """The ZIP file is readable by its owner only."""
    assert stat.S_IMODE(Path(str(archive.filename)).stat().st_mode) == 0o600


def test_export_refuses_existing_file(
    scenario: ScenarioDesk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing output file is never overwritten."""
    out = tmp_path / "old.zip"
    out.write_bytes(b"keep")

    code = main(["--config", str(scenario.desk.config_path), "customers", "export", MAIJA, "--out", str(out)])

    assert code == 1
    assert out.read_bytes() == b"keep"
    assert "already exists" in capsys.readouterr().err


def test_export_unknown_address(scenario: ScenarioDesk, tmp_path: Path) -> None:
    """An address with no data gives an archive with empty lists."""
    out = tmp_path / "nobody.zip"
    scenario.desk.run("customers", "export", "nobody@example.com", "--out", str(out))

    data = json.loads(zipfile.ZipFile(out).read("export.json"))
    keys = ("tickets", "ticketless_messages", "outbox", "notes_on_other_tickets", "bounces")
    assert [data[key] for key in keys] == [[], [], [], [], []]
