"""Translation of what people read: CLI output, help texts and errors.

Code, identifiers and log lines stay English. Strings that a shop owner or
an agent reads go through :func:`_` so that gettext catalogs can translate
them.
"""

from __future__ import annotations

import gettext

_translation: gettext.NullTranslations = gettext.NullTranslations()


def _(message: str) -> str:
    """Return the translation of ``message`` in the active language."""
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """Return the translation of the form of ``singular``/``plural`` that fits ``count``."""
    return _translation.ngettext(singular, plural, count)
