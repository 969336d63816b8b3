"""Translation of what people read: CLI output, help texts, errors and dates.

Code, identifiers and log lines stay English. Strings that a shop owner or
an agent reads go through :func:`_` so that the gettext catalogs under
``maildesk/locale`` translate them. The wheel build compiles the ``.po``
files to ``.mo``; a source checkout without ``.mo`` files compiles the
catalog in memory with Babel instead.
"""

from __future__ import annotations

import argparse
import functools
import gettext
import io
import os
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path

DOMAIN = "maildesk"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("fi", "sv", "en")
DEFAULT_LANGUAGE = "en"

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = DEFAULT_LANGUAGE


def _(message: str) -> str:
    """Return the translation of ``message`` in the active language."""
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """Return the translation of the form of ``singular``/``plural`` that fits ``count``."""
    return _translation.ngettext(singular, plural, count)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for marking without translating
    """Mark ``message`` for extraction; translate it later with :func:`_`."""
    return message


def language_from_environment(environ: Mapping[str, str] = os.environ) -> str:
    """Return the language of the first set variable of LC_ALL, LC_MESSAGES and LANG.

    ``fi_FI.UTF-8`` gives "fi"; "C", "POSIX" and languages without a catalog
    give English.
    """
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            language = value.split(".")[0].split("@")[0].split("_")[0].lower()
            return language if language in LANGUAGES else DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


def activate(language: str) -> None:
    """Make ``language`` ("fi", "sv" or "en") the language of every later :func:`_` call."""
    global _translation, _language
    _language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    _translation = _load(_language)
    # argparse formats "usage:" and its other texts with the gettext of its own
    # module; pointing it at ours lets our catalogs translate them too.
    argparse._ = _  # type: ignore[attr-defined]
    argparse.ngettext = ngettext  # type: ignore[attr-defined]


def active_language() -> str:
    return _language


# Dates for people: Babel's short date and time of the Finnish locale of each
# language, joined by the word for "at" (fi "9.12.2026 klo 12.00", sv
# "9.12.2026 kl. 12.00"). English keeps the unambiguous ISO-like form.
_BABEL_LOCALES = {"fi": "fi_FI", "sv": "sv_FI"}
_AT_WORDS = {"fi": "klo", "sv": "kl."}
_ENGLISH_DATETIME_PATTERN = "yyyy-MM-dd HH:mm"


def format_datetime_for_people(value: datetime | str, zone: tzinfo | None = None) -> str:
    """Format ``value`` (a datetime or an ISO 8601 string) in the active language.

    The time is shown in ``zone``, default UTC. A naive value is read as UTC,
    the zone maildesk stores times in.
    """
    # Babel is imported where it is used: the daemon and its parse workers seldom need it.
    from babel.dates import format_datetime

    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    zone = zone or UTC
    locale = _BABEL_LOCALES.get(_language)
    if locale is None:
        return format_datetime(moment, _ENGLISH_DATETIME_PATTERN, tzinfo=zone, locale="en")
    pattern = _datetime_pattern(locale, _AT_WORDS[_language])
    return format_datetime(moment, pattern, tzinfo=zone, locale=locale)


@functools.cache
def _datetime_pattern(locale: str, at_word: str) -> str:
    from babel import Locale

    formats = Locale.parse(locale)
    date = formats.date_formats["short"].pattern
    time = formats.time_formats["short"].pattern
    return f"{date} '{at_word}' {time}"


def _load(language: str) -> gettext.NullTranslations:
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    compiled = folder / f"{DOMAIN}.mo"
    if compiled.is_file():
        with compiled.open("rb") as handle:
            return gettext.GNUTranslations(handle)
    source = folder / f"{DOMAIN}.po"
    if source.is_file():
        return _compile_in_memory(source)
    return gettext.NullTranslations()


def _compile_in_memory(source: Path) -> gettext.NullTranslations:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with source.open("rb") as handle:
        catalog = read_po(handle)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


# argparse's own texts, which our catalogs translate (see activate()).
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("the following arguments are required: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("unrecognized arguments: %s"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("invalid %(type)s value: %(value)r"),
    N_("expected one argument"),
    N_("expected at least one argument"),
    N_("one of the arguments %s is required"),
    N_("not allowed with argument %s"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("unknown parser %(parser_name)r (choices: %(choices)s)"),
)
