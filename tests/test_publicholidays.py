"""Tests for maildesk.publicholidays: holiday dates from a child process, with a fallback."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from maildesk import publicholidays
from maildesk.businesstime import BusinessCalendar
from maildesk.config import HoursSettings
from maildesk.publicholidays import compute_holiday_dates, holiday_dates, main

# Finnish public holidays in 2026 by law: New Year's Day, Epiphany, Good Friday, Easter
# Sunday and Monday, May Day, Ascension Day, Whit Sunday, Midsummer Day, All Saints' Day,
# Independence Day, Christmas Day and Boxing Day. The holidays package (0.109) also puts
# Midsummer Eve (19 June) and Christmas Eve (24 December) in its FI public set.
FINLAND_2026 = frozenset(
    {
        date(2026, 1, 1),
        date(2026, 1, 6),
        date(2026, 4, 3),
        date(2026, 4, 5),
        date(2026, 4, 6),
        date(2026, 5, 1),
        date(2026, 5, 14),
        date(2026, 5, 24),
        date(2026, 6, 19),
        date(2026, 6, 20),
        date(2026, 10, 31),
        date(2026, 12, 6),
        date(2026, 12, 24),
        date(2026, 12, 25),
        date(2026, 12, 26),
    }
)


def write_script(path: Path, body: str) -> str:
    """Write an executable shell script to use in place of the Python interpreter."""
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_finland_2026_dates() -> None:
    """The child process returns the 15 FI public holidays of 2026."""
    assert holiday_dates("FI", 2026, 2026) == FINLAND_2026


def test_finland_2026_in_process() -> None:
    """The in-process computation returns the same dates as the child."""
    assert compute_holiday_dates("FI", 2026, 2026) == FINLAND_2026


def test_year_range_covers_each_year() -> None:
    """A range of years returns the holidays of every year in it."""
    dates = holiday_dates("FI", 2026, 2027)

    assert FINLAND_2026 <= dates
    assert date(2027, 12, 6) in dates
    assert len(dates) == 30


def test_caller_leaves_holidays_unimported() -> None:
    """The calling process has no holidays module loaded after it gets the dates."""
    code = (
        "import sys\n"
        "from maildesk.publicholidays import holiday_dates\n"
        "dates = holiday_dates('FI', 2026, 2026)\n"
        "print(len(dates))\n"
        "print('holidays.countries.finland' in sys.modules)\n"
        "print('holidays' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    count, finland_loaded, holidays_loaded = completed.stdout.split()
    assert count == "15"
    assert finland_loaded == "False"
    assert holidays_loaded == "False"


def test_calendar_leaves_holidays_unimported() -> None:
    """A BusinessCalendar for FI finds a holiday without importing the holidays package."""
    code = (
        "import sys\n"
        "from datetime import date\n"
        "from maildesk.businesstime import BusinessCalendar\n"
        "from maildesk.config import HoursSettings\n"
        "calendar = BusinessCalendar(HoursSettings(country='FI'))\n"
        "print(calendar.is_closed_day(date(2026, 12, 25)))\n"
        "print('holidays' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    closed, holidays_loaded = completed.stdout.split()
    assert closed == "True"
    assert holidays_loaded == "False"


def test_failing_child_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A child that exits non-zero is logged, and the dates are computed in process."""
    interpreter = write_script(tmp_path / "python", 'echo "broken interpreter" >&2\nexit 1')

    with caplog.at_level(logging.WARNING, logger=publicholidays.__name__):
        dates = holiday_dates("FI", 2026, 2026, interpreter=interpreter)

    assert dates == FINLAND_2026
    assert len(caplog.records) == 1
    assert caplog.records[0].levelno == logging.WARNING
    assert "exit status 1: broken interpreter" in caplog.records[0].getMessage()


def test_missing_interpreter_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An interpreter that cannot start is logged, and the dates are computed in process."""
    interpreter = str(tmp_path / "no-such-python")

    with caplog.at_level(logging.WARNING, logger=publicholidays.__name__):
        dates = holiday_dates("FI", 2026, 2026, interpreter=interpreter)

    assert dates == FINLAND_2026
    assert len(caplog.records) == 1
    assert "failed to start" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("output", "message"),
    [
        pytest.param("2026-01-01\\nnot a date", "invalid output line 'not a date'", id="text"),
        pytest.param("2031-01-01", "output date 2031-01-01 is outside 2026-2026", id="year"),
    ],
)
def test_bad_output_falls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, output: str, message: str
) -> None:
    """Output that is not dates of the requested years is logged and replaced."""
    interpreter = write_script(tmp_path / "python", f'printf "{output}\\n"')

    with caplog.at_level(logging.WARNING, logger=publicholidays.__name__):
        dates = holiday_dates("FI", 2026, 2026, interpreter=interpreter)

    assert dates == FINLAND_2026
    assert len(caplog.records) == 1
    assert message in caplog.records[0].getMessage()


def test_child_timeout_falls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that runs past the timeout is stopped, logged and replaced."""
    monkeypatch.setattr(publicholidays, "CHILD_TIMEOUT_SECONDS", 0.5)
    interpreter = write_script(tmp_path / "python", "exec sleep 60")

    with caplog.at_level(logging.WARNING, logger=publicholidays.__name__):
        dates = holiday_dates("FI", 2026, 2026, interpreter=interpreter)

    assert dates == FINLAND_2026
    assert len(caplog.records) == 1
    assert "timed out after 0.5 s" in caplog.records[0].getMessage()


def test_cache_runs_child_once(tmp_path: Path) -> None:
    """Asking twice for the same country and years starts one child process."""
    runs = tmp_path / "runs"
    interpreter = write_script(
        tmp_path / "python", f'echo run >> "{runs}"\nexec "{sys.executable}" "$@"'
    )

    first = holiday_dates("FI", 2026, 2026, interpreter=interpreter)
    second = holiday_dates("FI", 2026, 2026, interpreter=interpreter)

    assert first == FINLAND_2026
    assert second is first
    assert runs.read_text() == "run\n"


def test_unknown_country_raises(caplog: pytest.LogCaptureFixture) -> None:
    """A country the holidays package does not support raises without a fallback."""
    with (
        caplog.at_level(logging.WARNING, logger=publicholidays.__name__),
        pytest.raises(NotImplementedError, match="Country XX not available"),
    ):
        holiday_dates("XX", 2026, 2026)

    assert caplog.records == []


def test_reversed_years_raise() -> None:
    """A last year before the first year raises ValueError."""
    with pytest.raises(ValueError, match="invalid year range 2027-2026"):
        holiday_dates("FI", 2027, 2026)


def test_main_prints_iso_dates(capsys: pytest.CaptureFixture[str]) -> None:
    """The command prints one ISO date per line in ascending order."""
    assert main(["FI", "2026", "2026"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines == [day.isoformat() for day in sorted(FINLAND_2026)]


def test_main_unknown_country_exits(capsys: pytest.CaptureFixture[str]) -> None:
    """The command exits with status 3 and a message for an unsupported country."""
    assert main(["XX", "2026", "2026"]) == 3

    assert "Country XX not available" in capsys.readouterr().err


def test_main_reversed_years_exits() -> None:
    """The command exits with status 2 when the last year is before the first."""
    with pytest.raises(SystemExit) as raised:
        main(["FI", "2027", "2026"])

    assert raised.value.code == 2


@pytest.mark.parametrize(
    ("day", "closed"),
    [
        pytest.param(date(2040, 12, 6), True, id="independence-day-2040"),
        pytest.param(date(2040, 12, 7), False, id="friday-after-2040"),
        pytest.param(date(1990, 12, 6), True, id="independence-day-1990"),
        pytest.param(date(1990, 12, 5), False, id="wednesday-before-1990"),
    ],
)
def test_calendar_year_outside_window(day: date, closed: bool) -> None:
    """A calendar finds holidays in years far outside those loaded at construction."""
    calendar = BusinessCalendar(HoursSettings(country="FI", closed_eves=False))

    assert calendar.is_closed_day(day) is closed
