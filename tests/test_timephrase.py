"""Tests for maildesk.timephrase: moments written in the customer's language with Babel."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from maildesk.timephrase import format_moment

HELSINKI = ZoneInfo("Europe/Helsinki")
NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "language", "expected"),
    [
        (datetime(2026, 12, 9, 10, 0, tzinfo=UTC), "fi", "keskiviikkona 9.12. klo 12"),
        (datetime(2026, 12, 9, 10, 0, tzinfo=UTC), "sv", "onsdag 9 december kl. 12"),
        (datetime(2026, 12, 9, 10, 0, tzinfo=UTC), "en", "Wednesday 9 December at 12:00"),
        (datetime(2026, 12, 9, 10, 30, tzinfo=UTC), "fi", "keskiviikkona 9.12. klo 12.30"),
        (datetime(2026, 12, 9, 10, 30, tzinfo=UTC), "sv", "onsdag 9 december kl. 12.30"),
        (datetime(2026, 12, 14, 6, 0, tzinfo=UTC), "fi", "maanantaina 14.12. klo 8"),
        (datetime(2026, 12, 11, 6, 5, tzinfo=UTC), "en", "Friday 11 December at 08:05"),
        (datetime(2026, 12, 9, 10, 0, tzinfo=UTC), "de", "Wednesday 9 December at 12:00"),
    ],
)
def test_format_languages(moment: datetime, language: str, expected: str) -> None:
    """Each language gets its own weekday form, date and time."""
    assert expected == format_moment(moment, language, HELSINKI, NOW)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fi", "maanantaina 4.1.2027 klo 8"),
        ("sv", "måndag 4 januari 2027 kl. 8"),
        ("en", "Monday 4 January 2027 at 08:00"),
    ],
)
def test_format_next_year(language: str, expected: str) -> None:
    """A moment in another year than now names the year."""
    assert expected == format_moment(datetime(2027, 1, 4, 6, 0, tzinfo=UTC), language, HELSINKI, NOW)


def test_format_summer_time() -> None:
    """A summer moment is shown in EEST, three hours ahead of UTC."""
    moment = datetime(2026, 6, 22, 5, 0, tzinfo=UTC)

    assert "maanantaina 22.6. klo 8" == format_moment(moment, "fi", HELSINKI, NOW)


def test_format_other_zone() -> None:
    """The desk's time zone decides the wall-clock time."""
    moment = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)

    assert "onsdag 9 december kl. 11" == format_moment(moment, "sv", ZoneInfo("Europe/Stockholm"), NOW)


def test_format_naive() -> None:
    """A naive datetime raises ValueError."""
    with pytest.raises(ValueError, match="naive datetime"):
        format_moment(datetime(2026, 12, 9, 12, 0), "fi", HELSINKI, NOW)
