"""Tests for maildesk.businesstime: opening hours, holidays, closed dates and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from maildesk.businesstime import BusinessCalendar, ClosedTooLongError, is_eve, percentile
from maildesk.config import HoursSettings, parse_config

HELSINKI = ZoneInfo("Europe/Helsinki")
OFFICE = (((480, 960),),) * 5 + ((),) * 2  # Monday to Friday 8-16


def local(*args: int) -> datetime:
    """Return a Helsinki wall-clock time."""
    return datetime(*args, tzinfo=HELSINKI)


def calendar(**fields: object) -> BusinessCalendar:
    return BusinessCalendar(HoursSettings(**fields))  # type: ignore[arg-type]


# Open days


@pytest.mark.parametrize(
    ("day", "closed"),
    [
        pytest.param(date(2026, 12, 8), False, id="tuesday"),
        pytest.param(date(2026, 12, 5), True, id="saturday"),
        pytest.param(date(2027, 12, 6), True, id="independence-day-monday"),
        pytest.param(date(2027, 1, 6), True, id="epiphany-wednesday"),
        pytest.param(date(2027, 3, 26), True, id="good-friday"),
        pytest.param(date(2027, 3, 29), True, id="easter-monday"),
        pytest.param(date(2026, 5, 14), True, id="ascension-day"),
        pytest.param(date(2026, 12, 24), True, id="christmas-eve"),
        pytest.param(date(2026, 6, 19), True, id="midsummer-eve"),
        pytest.param(date(2026, 6, 18), False, id="day-before-midsummer-eve"),
        pytest.param(date(2026, 12, 31), False, id="new-years-eve"),
    ],
)
def test_closed_days_finland(day: date, closed: bool) -> None:
    """Weekends, Finnish public holidays, Christmas Eve and Midsummer Eve are closed."""
    assert closed == calendar().is_closed_day(day)


def test_eves_open_when_disabled() -> None:
    """Without closed_eves and holidays, Christmas Eve is an ordinary Thursday."""
    assert not calendar(country="", closed_eves=False).is_closed_day(date(2026, 12, 24))


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 6, 19), True),
        (date(2027, 6, 25), True),
        (date(2027, 6, 18), False),
        (date(2026, 12, 24), True),
        (date(2026, 6, 26), False),
    ],
)
def test_is_eve(day: date, expected: bool) -> None:
    """Midsummer Eve is the Friday from 19 to 25 June; Christmas Eve is 24 December."""
    assert expected == is_eve(day)


def test_closed_date_range() -> None:
    """A configured summer break closes every day of its range, ends included."""
    summer = calendar(closed_dates=((date(2026, 7, 6), date(2026, 7, 31)),))

    assert summer.is_closed_day(date(2026, 7, 6))
    assert summer.is_closed_day(date(2026, 7, 31))
    assert not summer.is_closed_day(date(2026, 8, 3))


def test_is_open_edges() -> None:
    """An interval includes its opening minute and excludes its closing minute."""
    office = calendar()

    assert office.is_open(local(2026, 12, 8, 8, 0))
    assert not office.is_open(local(2026, 12, 8, 16, 0))
    assert not office.is_open(local(2026, 12, 8, 7, 59))


# Adding business time


@pytest.mark.parametrize(
    ("start", "target", "expected"),
    [
        pytest.param(local(2026, 12, 8, 12, 0), timedelta(hours=4), local(2026, 12, 8, 16, 0), id="same-day"),
        pytest.param(local(2026, 12, 8, 14, 0), timedelta(hours=4), local(2026, 12, 9, 10, 0), id="overnight"),
        pytest.param(local(2026, 12, 4, 15, 0), timedelta(hours=4), local(2026, 12, 7, 11, 0), id="weekend"),
        pytest.param(local(2026, 12, 5, 11, 0), timedelta(hours=4), local(2026, 12, 7, 12, 0), id="from-saturday"),
        pytest.param(local(2026, 12, 23, 15, 0), timedelta(hours=4), local(2026, 12, 28, 11, 0), id="christmas"),
        pytest.param(local(2026, 6, 18, 15, 0), timedelta(hours=2), local(2026, 6, 22, 9, 0), id="midsummer"),
        pytest.param(local(2026, 12, 8, 22, 0), timedelta(0), local(2026, 12, 9, 8, 0), id="zero-at-night"),
    ],
)
def test_add_working_time(start: datetime, target: timedelta, expected: datetime) -> None:
    """Open hours are counted across nights, weekends and holidays."""
    assert expected == calendar().add_working_time(start, target)


def test_add_spring_forward() -> None:
    """Friday 14:00 EET plus 4 open hours is Monday 10:00 EEST, after clocks went forward."""
    due = calendar().add_working_time(local(2026, 3, 27, 14, 0), timedelta(hours=4))

    assert datetime(2026, 3, 30, 7, 0, tzinfo=UTC) == due


def test_add_fall_back() -> None:
    """Friday 14:00 EEST plus 4 open hours is Monday 10:00 EET, after clocks went back."""
    due = calendar().add_working_time(local(2026, 10, 23, 14, 0), timedelta(hours=4))

    assert datetime(2026, 10, 26, 8, 0, tzinfo=UTC) == due


@pytest.mark.parametrize(
    ("sunday", "hours"),
    [pytest.param(date(2026, 3, 29), 23, id="spring"), pytest.param(date(2026, 10, 25), 25, id="autumn")],
)
def test_dst_day_length(sunday: date, hours: int) -> None:
    """A day open around the clock is 23 hours long in spring and 25 in autumn."""
    always = calendar(week=(((0, 1440),),) * 7, country="")
    start = datetime.combine(sunday, datetime.min.time(), tzinfo=HELSINKI)
    end = datetime.combine(sunday + timedelta(days=1), datetime.min.time(), tzinfo=HELSINKI)

    assert timedelta(hours=hours) == always.working_time_between(start, end)


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        pytest.param(local(2026, 12, 8, 12, 0), 1, local(2026, 12, 9, 12, 0), id="tuesday"),
        pytest.param(local(2026, 12, 4, 15, 0), 1, local(2026, 12, 7, 15, 0), id="friday"),
        pytest.param(local(2026, 12, 5, 11, 0), 1, local(2026, 12, 8, 8, 0), id="saturday"),
        pytest.param(local(2026, 12, 23, 9, 30), 1, local(2026, 12, 28, 9, 30), id="christmas"),
        pytest.param(local(2026, 12, 8, 12, 0), 3, local(2026, 12, 11, 12, 0), id="three-days"),
    ],
)
def test_add_business_days(start: datetime, days: int, expected: datetime) -> None:
    """Whole days keep the clock time and skip closed days."""
    assert expected == calendar().add_business_days(start, days)


def test_business_day_clamped_to_close() -> None:
    """A clock time after the next day's closing becomes that closing time."""
    short_friday = calendar(week=(((480, 960),),) * 4 + (((480, 720),),) + ((),) * 2)

    due = short_friday.add_business_days(local(2026, 12, 10, 15, 0), 1)

    assert local(2026, 12, 11, 12, 0) == due


def test_due_time_units() -> None:
    """A target in whole days counts business days; one in hours counts open hours."""
    office = calendar()
    start = local(2026, 12, 8, 12, 0)

    assert local(2026, 12, 9, 12, 0) == office.due_time(start, timedelta(days=1))
    assert local(2026, 12, 9, 12, 0) == office.due_time(start, timedelta(hours=8))
    assert local(2026, 12, 10, 12, 0) == office.due_time(start, timedelta(hours=16))


def test_working_time_between() -> None:
    """Open time from Friday 15:00 to Monday 9:00 is two hours."""
    elapsed = calendar().working_time_between(local(2026, 12, 4, 15, 0), local(2026, 12, 7, 9, 0))

    assert timedelta(hours=2) == elapsed


def test_closed_forever_raises() -> None:
    """Closed dates that cover years raise ClosedTooLongError instead of looping."""
    closed = calendar(closed_dates=((date(2026, 1, 1), date(2035, 1, 1)),))

    with pytest.raises(ClosedTooLongError, match="no open hours"):
        closed.next_opening(local(2026, 6, 1, 12, 0))


def test_naive_datetime_rejected() -> None:
    """A naive datetime raises ValueError."""
    with pytest.raises(ValueError, match="naive datetime"):
        calendar().is_open(datetime(2026, 12, 8, 12, 0))


# The answer time of a reply


def test_answer_time_open() -> None:
    """During open hours the promise is the target and no opening time is given."""
    answer = calendar().answer_time(local(2026, 12, 8, 12, 0), timedelta(days=1))

    assert local(2026, 12, 9, 12, 0) == answer.expected_by
    assert answer.open_now
    assert answer.opens_at is None
    assert not answer.busy


def test_answer_time_holiday() -> None:
    """On Independence Day the shop opens again on Tuesday at 8."""
    answer = calendar().answer_time(local(2027, 12, 6, 10, 0), timedelta(hours=4))

    assert not answer.open_now
    assert local(2027, 12, 7, 8, 0) == answer.opens_at
    assert local(2027, 12, 7, 12, 0) == answer.expected_by


def test_answer_time_measured_later() -> None:
    """A measured time longer than the target sets the promise and marks it busy."""
    answer = calendar().answer_time(
        local(2026, 12, 8, 12, 0), timedelta(hours=4), measured=timedelta(hours=12)
    )

    assert local(2026, 12, 9, 16, 0) == answer.expected_by
    assert answer.busy


def test_answer_time_measured_shorter() -> None:
    """A measured time shorter than the target leaves the target."""
    answer = calendar().answer_time(
        local(2026, 12, 8, 12, 0), timedelta(hours=4), measured=timedelta(hours=1)
    )

    assert local(2026, 12, 8, 16, 0) == answer.expected_by
    assert not answer.busy


@pytest.mark.parametrize(
    ("percent", "expected_hours"), [(50, 5), (80, 8), (90, 9), (100, 10), (1, 1)]
)
def test_percentile_nearest_rank(percent: int, expected_hours: int) -> None:
    """The nearest-rank percentile of 1..10 hours."""
    values = [timedelta(hours=hours) for hours in (10, 1, 2, 3, 4, 5, 6, 7, 8, 9)]

    assert timedelta(hours=expected_hours) == percentile(values, percent)


def test_percentile_empty() -> None:
    """No values raise ValueError."""
    with pytest.raises(ValueError, match="no values"):
        percentile([], 80)


# The [hours] configuration


def test_hours_config_parsed() -> None:
    """Weekday intervals, closed dates, the country and the time zone are read."""
    config = parse_config(
        {
            "desk": {"support_address": "tuki@example.fi"},
            "hours": {
                "time_zone": "Europe/Stockholm",
                "country": "se",
                "saturday": "10-14",
                "monday": "08:00-11:30, 12:00-16:00",
                "friday": "closed",
                "closed_dates": ["2026-07-06..2026-07-31", "2026-12-31"],
            },
        }
    )
    hours = config.hours

    assert "Europe/Stockholm" == hours.time_zone
    assert "SE" == hours.country
    assert ((480, 690), (720, 960)) == hours.week[0]
    assert () == hours.week[4]
    assert ((600, 840),) == hours.week[5]
    assert ((date(2026, 7, 6), date(2026, 7, 31)), (date(2026, 12, 31), date(2026, 12, 31))) == hours.closed_dates


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "hours.time_zone"),
        ({"country": "XX"}, "hours.country"),
        ({"monday": "16-8"}, "hours.monday"),
        ({"monday": "8-12, 11-16"}, "hours.monday"),
        ({"monday": "nine to five"}, "hours.monday"),
        ({"closed_dates": ["2026-13-01"]}, "hours.closed_dates"),
        ({"closed_dates": ["2026-08-01..2026-07-01"]}, "hours.closed_dates"),
        ({day: "closed" for day in ("monday", "tuesday", "wednesday", "thursday", "friday")}, "every day closed"),
        ({"opening": "8-16"}, "unknown key hours.opening"),
    ],
)
def test_hours_config_invalid(hours: dict[str, object], message: str) -> None:
    """Invalid [hours] values name the key."""
    from maildesk.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_config({"desk": {"support_address": "tuki@example.fi"}, "hours": hours})


def test_closed_forever_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config reports closed dates that leave no open day as an error naming the key, without a traceback."""
    from maildesk.cli import main

    config = tmp_path / "config.toml"
    config.write_text(
        "[desk]\n"
        'support_address = "tuki@example.fi"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        "[hours]\n"
        'closed_dates = ["2026-01-01..9999-12-31"]\n',
        encoding="utf-8",
    )

    code = main(["--config", str(config), "--lang", "en", "check-config"])

    assert 1 == code
    assert "check [hours] closed_dates" in capsys.readouterr().err
