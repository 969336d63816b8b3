"""``customers erase --mailbox`` against a private Dovecot."""

from __future__ import annotations

import email
import email.policy
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from maildesk.cli import main
from maildesk.config import Config, load_config
from maildesk.connections import connect_imap
from maildesk.mailbox_erase import delete_mailbox_mail, find_mailbox_mail
from maildesk.service import sync_once
from tests.mailkit import make_mail

pytestmark = pytest.mark.dovecot

MAIJA = "maija.meikalainen@example.com"
BERTTA = "bertta.virtanen@example.net"
CECILIA = "cecilia.korhonen@example.org"
# Contains Maija's address as a substring, so the server's SEARCH finds it too.
DECOY = "toinen.maija.meikalainen@example.com"
FORM = "noreply@example.fi"


@pytest.fixture
def mailbox_config(tmp_path: Path, imap_account: Any) -> Config:
    """A synced desk whose mailbox contains Maija's, Bertta's, Cecilia's and a look-alike's mail."""
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [desk]
            support_address = "tuki@example.fi"
            own_addresses = ["{FORM}"]
            agents = ["myyja@example.fi"]
            state_dir = "{tmp_path / 'state'}"

            [mailbox]
            host = "127.0.0.1"
            port = {imap_account.port}
            security = "none"
            username = "{imap_account.username}"
            password = "{imap_account.password}"

            [import]
            existing = "all"
            """
        ),
        encoding="utf-8",
    )
    imap_account.create_folder("Arkisto")
    imap_account.append(make_mail(sender=f"Maija Meikäläinen <{MAIJA}>", subject="Tilaus 4471"))
    imap_account.append(make_mail(sender=BERTTA, subject="Lahjakortti", headers={"Cc": MAIJA}))
    imap_account.append(make_mail(sender=DECOY, subject="Oma asia"))
    imap_account.append(make_mail(sender=FORM, subject="Lomake", headers={"Reply-To": MAIJA}))
    imap_account.append(make_mail(sender=CECILIA, subject="Palautus"))
    imap_account.append(make_mail(sender="tuki@example.fi", to=MAIJA, subject="Re: Tilaus 4471"), "Sent")
    imap_account.append(
        make_mail(sender="myyja@example.fi", to=BERTTA, subject="Re: Lahjakortti", headers={"Cc": MAIJA}),
        "Sent",
    )
    imap_account.append(make_mail(sender=MAIJA, subject="Vanha tilaus"), "Arkisto")
    config = load_config(path)
    sync_once(config)
    return config


def senders(imap_account: Any) -> dict[str, list[str]]:
    """Return the From address of every message per folder, sorted."""
    client = imap_account.client()
    found = {}
    for folder in ("INBOX", "Sent", "Arkisto"):
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        headers = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (FROM)]"]) if uids else {}
        found[folder] = sorted(
            email.message_from_bytes(data[b"BODY[HEADER.FIELDS (FROM)]"], policy=email.policy.default)[
                "From"
            ].addresses[0].addr_spec
            for data in headers.values()
        )
    return found


BEFORE = {
    "INBOX": sorted([MAIJA, BERTTA, DECOY, FORM, CECILIA]),
    "Sent": ["myyja@example.fi", "tuki@example.fi"],
    "Arkisto": [MAIJA],
}
AFTER = {
    "INBOX": sorted([BERTTA, DECOY, CECILIA]),
    "Sent": ["myyja@example.fi"],
    "Arkisto": [],
}


def erase(config: Config, *args: str) -> int:
    return main(["--config", str(config.path), "customers", "erase", MAIJA, *args])


def test_mailbox_own_mail_deleted(mailbox_config: Config, imap_account: Any) -> None:
    """Her mail, the form she sent and the reply to her go; shared mail and the look-alike stay."""
    assert erase(mailbox_config, "--mailbox", "--yes") == 0

    assert senders(imap_account) == AFTER


def test_mailbox_report_printed(mailbox_config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    """The plan per folder and the number deleted are printed."""
    capsys.readouterr()
    erase(mailbox_config, "--mailbox", "--yes")
    output = capsys.readouterr().out.splitlines()

    assert sorted(line for line in output if line.startswith("  ") and "to delete" in line) == [
        "  Arkisto: 1 to delete, 0 kept because other customers took part",
        "  INBOX: 2 to delete, 1 kept because other customers took part",
        "  Sent: 1 to delete, 1 kept because other customers took part",
    ]
    assert "Mailbox: 4 messages deleted." in output


def requesters(config: Config, capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    main(["--config", str(config.path), "tickets", "list", "--json"])
    return sorted(ticket["requester"] for ticket in json.loads(capsys.readouterr().out))


def test_mailbox_erase_database_too(mailbox_config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    """The same command erases her from the database and leaves the look-alike alone."""
    erase(mailbox_config, "--mailbox", "--yes")

    found = requesters(mailbox_config, capsys)
    assert {r for r in found if not r.startswith("erased-")} == {BERTTA, CECILIA, DECOY}


def test_prompt_declined(
    mailbox_config: Config, imap_account: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Typing n at the prompt changes neither the mailbox nor the database."""
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    capsys.readouterr()

    assert erase(mailbox_config, "--mailbox") == 1
    assert capsys.readouterr().out.endswith(
        "This cannot be undone. [y/N] Not confirmed; nothing was changed.\n"
    )
    assert senders(imap_account) == BEFORE
    assert MAIJA in requesters(mailbox_config, capsys)


def test_prompt_without_input(mailbox_config: Config, imap_account: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """End of input at the prompt counts as no."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    assert erase(mailbox_config, "--mailbox") == 1
    assert senders(imap_account) == BEFORE


def test_prompt_accepted(mailbox_config: Config, imap_account: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Typing y at the prompt deletes her mail."""
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))

    assert erase(mailbox_config, "--mailbox") == 0
    assert senders(imap_account) == AFTER


def test_dry_run_keeps_mailbox(mailbox_config: Config, imap_account: Any) -> None:
    """A dry run with --mailbox searches, deletes nothing and shows no prompt."""
    assert erase(mailbox_config, "--mailbox", "--dry-run") == 0

    assert senders(imap_account) == BEFORE


def test_expunge_without_uidplus(mailbox_config: Config, imap_account: Any) -> None:
    """Without UIDPLUS a plain EXPUNGE runs and the other \\Deleted message is counted."""
    marker = imap_account.client()
    marker.select_folder("INBOX")
    cecilia_uid = marker.search(["FROM", CECILIA])
    marker.add_flags(cecilia_uid, [b"\\Deleted"])

    client = connect_imap(mailbox_config.require_mailbox())
    has_capability = client.has_capability
    client.has_capability = lambda name: name != "UIDPLUS" and has_capability(name)  # type: ignore[method-assign]
    plan = find_mailbox_mail(client, mailbox_config, MAIJA)
    result = delete_mailbox_mail(client, plan)
    client.logout()

    assert (result.deleted, result.expunged_others) == (4, 1)
    assert senders(imap_account)["INBOX"] == sorted([BERTTA, DECOY])
