"""Translations of the CLI: complete catalogs, the output language and dates for people.

That every shipped template renders in every language is checked by
``test_check_config_renders_all`` in test_templates_command.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import maildesk
from maildesk.cli import main
from maildesk.i18n import (
    DEFAULT_LANGUAGE,
    LOCALE_DIR,
    activate,
    format_datetime_for_people,
    language_from_environment,
)
from tests.casekit import make_desk
from tests.mailkit import make_mail

PACKAGE_DIR = Path(maildesk.__file__).parent
REPOSITORY_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
TRANSLATED_LANGUAGES = ("fi", "sv")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
# {name} with an optional format spec, %(name)s, %s and %r.
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([^)]+\)[a-z]|%[a-z]")
HELSINKI = ZoneInfo("Europe/Helsinki")
NOON_9_DECEMBER = datetime(2026, 12, 9, 12, 0, tzinfo=HELSINKI)


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """Restore English, since the active language is global and other tests expect it."""
    yield
    activate(DEFAULT_LANGUAGE)


def extracted_ids() -> list[str]:
    """Return every msgid in the package, singular and plural forms alike."""
    ids: list[str] = []
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(PACKAGE_DIR), method_map=[("**.py", "python")], keywords=KEYWORDS
    ):
        ids.extend(message if isinstance(message, tuple) else (message,))
    return sorted(set(ids))


def load_catalog(language: str) -> Catalog:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "maildesk.po").open("rb") as handle:
        return read_po(handle, locale=language)


def translations(language: str) -> dict[str, list[str]]:
    """Return msgid -> its translated forms, leaving out fuzzy entries, which gettext ignores."""
    table: dict[str, list[str]] = {}
    for message in load_catalog(language):
        if not message.id or message.fuzzy:
            continue
        forms = list(message.string) if isinstance(message.string, tuple) else [message.string]
        for msgid in message.id if isinstance(message.id, tuple) else (message.id,):
            table[msgid] = forms
    return table


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


# catalogs


def test_extraction_finds_messages() -> None:
    """Extraction finds the CLI's messages, so the tests below check something."""
    ids = extracted_ids()

    assert "usage: " in ids
    assert "ticket {number} is now {status}" in ids


@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES)
def test_every_msgid_translated(language: str) -> None:
    """Every msgid in the code has a non-fuzzy, non-empty translation."""
    table = translations(language)

    missing = [msgid for msgid in extracted_ids() if not all(table.get(msgid, [""]))]

    assert [] == missing


@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES)
def test_translation_keeps_placeholders(language: str) -> None:
    """Each translation has exactly the placeholders of its msgid."""
    table = translations(language)

    wrong = [
        (msgid, form)
        for msgid, forms in table.items()
        for form in forms
        if form and placeholders(form) != placeholders(msgid)
    ]

    assert [] == wrong


@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES)
def test_translation_keeps_edge_whitespace(language: str) -> None:
    """Leading spaces and a trailing space or newline of a msgid stay in its translation."""
    table = translations(language)

    wrong = []
    for msgid, forms in table.items():
        indent = msgid[: len(msgid) - len(msgid.lstrip(" "))]
        ending = msgid[len(msgid.rstrip(" \n")):]
        wrong.extend(
            (msgid, form) for form in forms
            if form and not (form.startswith(indent) and form.endswith(ending))
        )

    assert [] == wrong


@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES)
def test_catalog_plural_forms(language: str) -> None:
    """The catalog header gives Finnish and Swedish plurals: one form for 1, another for the rest."""
    catalog = load_catalog(language)

    assert "nplurals=2; plural=(n != 1);" == catalog.plural_forms


# output language


def test_help_in_finnish(capsys: pytest.CaptureFixture[str]) -> None:
    """--lang fi --help prints argparse's and maildesk's texts in Finnish."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--lang", "fi", "--help"])
    output = capsys.readouterr().out

    assert 0 == exit_info.value.code
    assert output.startswith("käyttö: maildesk ")
    assert "näytä tämä ohje ja lopeta" in output
    assert "listaa ja näytä tukipyyntöjä" in output


def test_help_in_swedish(capsys: pytest.CaptureFixture[str]) -> None:
    """--lang sv tickets --help prints the tickets commands in Swedish."""
    with pytest.raises(SystemExit):
        main(["--lang", "sv", "tickets", "--help"])
    output = capsys.readouterr().out

    assert output.startswith("användning: maildesk tickets ")
    assert "lista ärenden, nyaste först" in output


def test_usage_error_in_finnish(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid command choice is reported in Finnish, with exit code 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--lang", "fi", "tickets", "lista"])
    error = capsys.readouterr().err

    assert 2 == exit_info.value.code
    assert "maildesk tickets: virhe: argumentti TOIMINTO: virheellinen valinta: 'lista'" in error


def test_lc_all_before_lang() -> None:
    """LC_ALL=fi_FI.UTF-8 wins over LANG=en_US.UTF-8."""
    environ = {"LC_ALL": "fi_FI.UTF-8", "LANG": "en_US.UTF-8"}

    assert "fi" == language_from_environment(environ)


def test_lc_messages_before_lang() -> None:
    """LC_MESSAGES=sv_FI.UTF-8 wins over LANG=fi_FI.UTF-8 when LC_ALL is empty."""
    environ = {"LC_ALL": "", "LC_MESSAGES": "sv_FI.UTF-8", "LANG": "fi_FI.UTF-8"}

    assert "sv" == language_from_environment(environ)


def test_unknown_locale_english() -> None:
    """A locale without a catalog, such as de_DE, gives English."""
    assert "en" == language_from_environment({"LANG": "de_DE.UTF-8"})


# dates for people


@pytest.mark.parametrize(
    ("language", "expected"),
    [("fi", "9.12.2026 klo 12.00"), ("sv", "9.12.2026 kl. 12.00"), ("en", "2026-12-09 12:00")],
)
def test_datetime_for_people(language: str, expected: str) -> None:
    """An aware datetime is formatted for the active language in the given zone."""
    activate(language)

    assert expected == format_datetime_for_people(NOON_9_DECEMBER, HELSINKI)


def test_datetime_from_iso_utc() -> None:
    """An ISO 8601 string in UTC is shown in the given zone."""
    activate("fi")

    assert "9.12.2026 klo 12.00" == format_datetime_for_people("2026-12-09T10:00:00+00:00", HELSINKI)


def test_datetime_naive_is_utc() -> None:
    """A naive datetime is read as UTC, and UTC is the default zone."""
    activate("fi")

    assert "9.12.2026 klo 10.05" == format_datetime_for_people(datetime(2026, 12, 9, 10, 5))


def test_ticket_show_finnish_dates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tickets show in Finnish prints the message date in the desk's zone, JSON keeps ISO 8601."""
    desk = make_desk(tmp_path, capsys)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(make_mail(date=NOON_9_DECEMBER))
    desk.import_files(mail, auto_reply=False)

    output = desk.run("--lang", "fi", "tickets", "show", "1")
    ticket_json = desk.ticket(1)

    assert "--- 9.12.2026 klo 12.00  [asiakas]  Maija Asiakas <maija@example.com>" in output.splitlines()
    assert "2026-12-09T10:00:00+00:00" == ticket_json["messages"][0]["date"]


# templates


def test_templates_same_files() -> None:
    """templates/fi, templates/sv and templates/en hold the same file names."""
    names = {
        language: sorted(path.name for path in (REPOSITORY_TEMPLATES / language).iterdir())
        for language in ("fi", "sv", "en")
    }

    assert names["fi"] == names["en"]
    assert names["sv"] == names["en"]
