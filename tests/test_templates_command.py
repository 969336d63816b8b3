"""``maildesk templates preview`` and the template check of ``maildesk check-config``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from maildesk.cli import main
from maildesk.config import AutoreplySettings, Config
from maildesk.message import Address
from maildesk.replies import REPLY_KINDS, build_reply
from tests.casekit import Desk, make_desk
from tests.mailkit import make_mail

TUESDAY_NOON = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
REPOSITORY_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def run(desk: Desk, *args: str) -> tuple[int, str]:
    desk.capsys.readouterr()
    code = main(["--config", str(desk.config_path), *args])
    return code, desk.capsys.readouterr().out


def copy_templates(target: Path) -> Path:
    """Copy the shipped reply templates to ``target`` and return it."""
    for language in ("fi", "sv", "en"):
        (target / language).mkdir(parents=True)
        for kind in REPLY_KINDS:
            for suffix in (".txt.j2", ".html.j2"):
                source = REPOSITORY_TEMPLATES / language / f"{kind}{suffix}"
                (target / language / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return target


# check-config


def test_check_config_renders_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped templates all render, 27 files in three languages, agents' ones included."""
    desk = make_desk(tmp_path, capsys)

    code, output = run(desk, "check-config")

    assert 0 == code
    assert "  templates: 27 rendered in fi, sv, en" in output.splitlines()
    assert "not checked" not in output


def test_check_config_unknown_variable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A variable the context lacks fails check-config, even in a branch not taken."""
    folder = copy_templates(tmp_path / "templates")
    (folder / "sv" / "reopened.txt.j2").write_text(
        "{% if busy %}{{ order_number }}{% endif %}\n", encoding="utf-8"
    )
    desk = make_desk(tmp_path, capsys, f'[autoreply]\ntemplates = "{folder}"\n')

    code, output = run(desk, "check-config")

    assert 1 == code
    assert "  error: sv/reopened.txt.j2: unknown variable(s): order_number" in output.splitlines()


def test_check_config_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A template with a syntax error fails check-config and names the file."""
    folder = copy_templates(tmp_path / "templates")
    (folder / "en" / "new_ticket.html.j2").write_text("<p>{% if %}</p>\n", encoding="utf-8")
    desk = make_desk(tmp_path, capsys, f'[autoreply]\ntemplates = "{folder}"\n')

    code, output = run(desk, "check-config")

    assert 1 == code
    assert "  error: en/new_ticket.html.j2: TemplateSyntaxError:" in output


def test_check_config_sandbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A template that reaches for Python internals fails check-config."""
    folder = copy_templates(tmp_path / "templates")
    (folder / "fi" / "closed.txt.j2").write_text("{{ desk_name.__class__.__mro__ }}\n", encoding="utf-8")
    desk = make_desk(tmp_path, capsys, f'[autoreply]\ntemplates = "{folder}"\n')

    code, output = run(desk, "check-config")

    assert 1 == code
    assert "  error: fi/closed.txt.j2: SecurityError:" in output


def test_check_config_missing_desk_language(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a new-ticket template in the desk's language check-config fails."""
    folder = copy_templates(tmp_path / "templates")
    (folder / "fi" / "new_ticket.txt.j2").unlink()
    desk = make_desk(tmp_path, capsys, f'[autoreply]\ntemplates = "{folder}"\n')

    code, output = run(desk, "check-config")

    assert 1 == code
    assert "  error: fi/new_ticket.txt.j2: missing" in output.splitlines()


def test_check_config_missing_optional(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing template in another language is a note, not an error."""
    folder = copy_templates(tmp_path / "templates")
    (folder / "sv" / "closed.txt.j2").unlink()
    desk = make_desk(tmp_path, capsys, f'[autoreply]\ntemplates = "{folder}"\n')

    code, output = run(desk, "check-config")

    assert 0 == code
    assert "  note: sv/closed.txt.j2: missing" in output.splitlines()


# templates preview


def test_preview_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A preview prints the headers, then the text and HTML parts in the asked language."""
    desk = make_desk(tmp_path, capsys)

    with time_machine.travel(TUESDAY_NOON, tick=False):
        code, output = run(desk, "templates", "preview", "new_ticket", "--lang", "sv")
    lines = output.splitlines()

    assert 0 == code
    assert "Subject: Re: Tilaus 1001 / Order 1001 [#1234]" in lines
    assert "Content-Language: sv" in lines
    assert "Auto-Submitted: auto-replied" in lines
    assert "--- text/plain ---" in lines
    assert "--- text/html ---" in lines
    assert "Vi strävar efter att svara senast onsdag 9 december kl. 12." in lines


def test_preview_ticket(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --ticket the preview uses the stored ticket and replies to its last customer mail."""
    desk = make_desk(tmp_path, capsys)
    mail = tmp_path / "a.eml"
    mail.write_bytes(make_mail(subject="Palautus 77", body="Hello, I would like to return my shoes please.", message_id="c77@example.com"))
    with time_machine.travel(TUESDAY_NOON, tick=False):
        desk.import_files(mail)
        code, output = run(desk, "templates", "preview", "reopened", "--ticket", "1")
    lines = output.splitlines()

    assert 0 == code
    assert "Subject: Re: Palautus 77 [#1]" in lines
    assert "In-Reply-To: <c77@example.com>" in lines
    assert "Your message has reopened support ticket number 1, which had already been marked as solved. We will look into it again." in lines


def test_preview_unknown_ticket(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ticket that does not exist is an error with exit code 1."""
    desk = make_desk(tmp_path, capsys)

    capsys.readouterr()
    code = main(["--config", str(desk.config_path), "templates", "preview", "closed", "--ticket", "99"])

    assert 1 == code
    assert "ticket 99 not found" in capsys.readouterr().err


# Header safety of every reply kind


@pytest.mark.parametrize("kind", REPLY_KINDS)
@pytest.mark.parametrize(
    "dirt",
    ["\r\nBcc: x@example.net", "\nBcc: x@example.net", "\x85Bcc: x@example.net", "\x0bBcc: x@example.net",
     "\x00Bcc: x@example.net", "\u2029Bcc: x@example.net"],
)
def test_reply_headers_clean(kind: str, dirt: str) -> None:
    """Line breaks and control characters in a subject or name never start a header line."""
    config = Config(path=None, name="Kauppa", support_address="tuki@example.fi", autoreply=AutoreplySettings())
    reply = build_reply(
        config, kind, ticket_number=5, subject=f"Tilaus{dirt}", priority="normal",
        recipient=Address("aino@example.com", f"Aino{dirt}"), parent_id=None, references=(),
        language="fi", now=TUESDAY_NOON, secret=b"s" * 32,
    )

    head = reply.as_bytes().split(b"\r\n\r\n", 1)[0]

    assert not any(line.lower().startswith(b"bcc:") for line in head.split(b"\r\n"))
    assert head.isascii()
