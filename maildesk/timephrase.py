"""Moments written the way customers read them, such as "keskiviikkona 9.12. klo 12".

Babel supplies the localized parts from CLDR: the weekday in its format form (the
Finnish format form is the essive, "keskiviikkona"), the day and month from a skeleton
("Md" is "9.12." in Finnish), and the hour. CLDR's plain date-time patterns join a date
and a time without a word ("{1} {0}" in Finnish), so the word before the time ("klo",
"kl.", "at") comes from :data:`TIME_WORDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_skeleton

# Babel locale per reply language. Swedish uses Finland's conventions (9.12, 12.00), as the
# desk serves Finnish shops; every other language is written as British English.
LOCALES = {"fi": "fi_FI", "sv": "sv_FI", "en": "en_GB"}
FALLBACK_LOCALE = "en_GB"


@dataclass(frozen=True)
class _Style:
    # Skeletons of the day and month, without and with the year.
    date: str
    date_with_year: str
    # Word between the date and the time.
    time_word: str
    # Whether a full hour is written without minutes ("klo 12" instead of "klo 12.00").
    bare_hour: bool


_STYLES = {
    "fi": _Style(date="Md", date_with_year="yMd", time_word="klo", bare_hour=True),
    "sv": _Style(date="MMMMd", date_with_year="yMMMMd", time_word="kl.", bare_hour=True),
    "en": _Style(date="MMMMd", date_with_year="yMMMMd", time_word="at", bare_hour=False),
}


def format_moment(moment: datetime, language: str, zone: ZoneInfo, now: datetime) -> str:
    """Return ``moment`` in ``zone`` as a weekday, a date and a time in ``language``.

    fi gives "keskiviikkona 9.12. klo 12" (minutes only when not zero: "klo 12.30"),
    sv "onsdag 9 december kl. 12" and en "Wednesday 9 December at 12:00". The year is
    added when it differs from the year of ``now``. Other languages are written in
    English. Raises ValueError for a naive datetime.
    """
    if moment.tzinfo is None or now.tzinfo is None:
        raise ValueError("naive datetime: expected one with a time zone")

    style = _STYLES.get(language, _STYLES["en"])
    locale = Locale.parse(LOCALES.get(language, FALLBACK_LOCALE))
    local = moment.astimezone(zone)
    # Babel's "format" weekday names are the forms used inside a date phrase.
    weekday = locale.days["format"]["wide"][local.weekday()]
    with_year = local.year != now.astimezone(zone).year
    day = format_skeleton(
        style.date_with_year if with_year else style.date, local.date(), locale=locale
    )
    clock = format_skeleton(
        "H" if style.bare_hour and local.minute == 0 else "Hm", local.time(), locale=locale
    )

    return f"{weekday} {day} {style.time_word} {clock}"
