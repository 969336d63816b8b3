"""Translation of what people read: CLI output, help texts and errors.

Code, identifiers and log lines stay English. Strings that a shop owner or
an agent reads go through :func:`_` so that the gettext catalogs under
``maildesk/locale`` translate them. The wheel build compiles the ``.po``
files to ``.mo``; a source checkout without ``.mo`` files compiles the
catalog in memory with Babel instead.
"""

from __future__ import annotations

import argparse
import gettext
import io
import os
from collections.abc import Mapping
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
)
