"""Business hours, public holidays and closed dates, and time arithmetic over them.

A :class:`BusinessCalendar` computes when the shop is open and adds answer targets in
business time. Every moment it takes or returns is an aware datetime. The opening
intervals of a day are built in the configured time zone and compared in UTC, so a
daylight-saving change inside an open interval makes that day an hour shorter or longer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from maildesk.config import HoursSettings
from maildesk.errors import MaildeskError
from maildesk.publicholidays import holiday_dates, years_around

# How far ahead a search for an open day goes before it gives up. Only a configuration whose
# closed dates cover years could reach it.
MAX_SEARCH_DAYS = 3 * 366

MIDSUMMER_EVE_FIRST_DAY = 19  # Midsummer Eve is the Friday from 19 to 25 June.
FRIDAY = 4


class ClosedTooLongError(MaildeskError, ValueError):
    """No open business hours within :data:`MAX_SEARCH_DAYS` of a moment."""


@dataclass(frozen=True)
class AnswerTime:
    """When a customer can expect an answer, as computed for a reply."""

    expected_by: datetime
    # Whether the shop is open at the moment the reply is written.
    open_now: bool
    # The next opening time when the shop is closed now, else None.
    opens_at: datetime | None
    # Whether the measured first-response time, not the target, set ``expected_by``.
    busy: bool


class BusinessCalendar:
    """Opening hours of one desk: weekly hours minus public holidays and closed dates."""

    def __init__(self, hours: HoursSettings) -> None:
        self.hours = hours
        self.zone = ZoneInfo(hours.time_zone)
        self._holiday_years: set[int] = set()
        self._holidays: frozenset[date] = frozenset()
        if hours.country:
            self._load_holidays_around(datetime.now(self.zone).year)

    def is_closed_day(self, day: date) -> bool:
        """Return whether ``day`` (a local date) has no opening hours at all."""
        if not self.hours.week[day.weekday()]:
            return True
        if self.hours.country and self._is_public_holiday(day):
            return True
        if self.hours.closed_eves and is_eve(day):
            return True
        return any(first <= day <= last for first, last in self.hours.closed_dates)

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """Return the open intervals of local date ``day`` as UTC datetimes, in order."""
        if self.is_closed_day(day):
            return []
        return [
            (self._at(day, start), self._at(day, end)) for start, end in self.hours.week[day.weekday()]
        ]

    def is_open(self, moment: datetime) -> bool:
        """Return whether the shop is open at ``moment``."""
        moment = _utc(moment)
        return any(start <= moment < end for start, end in self.intervals(self.local_date(moment)))

    def next_opening(self, moment: datetime) -> datetime:
        """Return ``moment`` when the shop is open then, else the start of the next open interval."""
        moment = _utc(moment)
        for start, end in self._intervals_from(moment):
            if moment < end:
                return max(start, moment)
        raise AssertionError("unreachable: _intervals_from raises when nothing is found")

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """Return the moment when ``amount`` of open time has passed after ``start``."""
        start = _utc(start)
        remaining = amount
        for opening, closing in self._intervals_from(start):
            if closing <= start:
                continue
            begin = max(opening, start)
            available = closing - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _intervals_from raises when nothing is found")

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """Return the same local time ``days`` business days after the first open moment.

        The count starts at :meth:`next_opening` of ``start``. A clock time that falls
        outside the open hours of the day reached moves to the nearest open time of that
        day: forward to its next opening, or back to its last closing.
        """
        first = self.next_opening(start)
        local = first.astimezone(self.zone)
        day = local.date()
        for _ in range(days):
            day = self._next_business_day(day)

        wanted = self._at(day, local.hour * 60 + local.minute, seconds=local.second)
        intervals = self.intervals(day)
        for opening, closing in intervals:
            if wanted < closing:
                return max(opening, wanted)
        return intervals[-1][1]

    def due_time(self, start: datetime, target: timedelta) -> datetime:
        """Return when an answer is due after ``start`` for ``target`` in business time.

        A target of whole days (``"1d"``, ``"2d"``) counts business days, so one day from
        Friday 15:00 is Monday 15:00. Any other target counts open hours and minutes.
        """
        if target > timedelta(0) and target % timedelta(days=1) == timedelta(0):
            return self.add_business_days(start, target.days)
        return self.add_working_time(start, target)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Return the open time from ``start`` to ``end``; zero when ``end`` is not later."""
        start, end = _utc(start), _utc(end)
        total = timedelta(0)
        if end <= start:
            return total
        day = self.local_date(start)
        while day <= self.local_date(end):
            for opening, closing in self.intervals(day):
                overlap = min(closing, end) - max(opening, start)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def answer_time(
        self, now: datetime, target: timedelta, measured: timedelta | None = None
    ) -> AnswerTime:
        """Return when to promise an answer for a mail that arrives at ``now``.

        ``measured`` is a recent first-response time in open hours. When it ends later
        than the target, it sets the promise and ``busy`` is True.
        """
        expected_by = self.due_time(now, target)
        busy = False
        if measured is not None:
            measured_by = self.add_working_time(now, measured)
            if measured_by > expected_by:
                expected_by, busy = measured_by, True
        open_now = self.is_open(now)
        return AnswerTime(
            expected_by=expected_by,
            open_now=open_now,
            opens_at=None if open_now else self.next_opening(now),
            busy=busy,
        )

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def _at(self, day: date, minutes: int, *, seconds: int = 0) -> datetime:
        """Return the wall-clock time ``minutes`` after midnight of local ``day``, in UTC.

        1440 minutes is midnight at the start of the next day. A wall time in the gap of
        a spring-forward change is read with the offset before the change (fold 0).
        """
        if minutes >= 1440:
            return self._at(day + timedelta(days=1), minutes - 1440, seconds=seconds)
        wall = datetime.combine(day, time(minutes // 60, minutes % 60, seconds), tzinfo=self.zone)
        return wall.astimezone(UTC)

    def _is_public_holiday(self, day: date) -> bool:
        if day.year not in self._holiday_years:
            self._load_holidays_around(day.year)
        return day in self._holidays

    def _load_holidays_around(self, year: int) -> None:
        """Add the public holidays of the years around ``year``, which may start a child process."""
        first_year, last_year = years_around(year)
        self._holidays |= holiday_dates(self.hours.country, first_year, last_year)
        self._holiday_years.update(range(first_year, last_year + 1))

    def _intervals_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Yield open intervals from the local day of ``moment`` on; raise when none is near."""
        day = self.local_date(moment)
        last_open_day = day
        while (day - last_open_day).days <= MAX_SEARCH_DAYS:
            intervals = self.intervals(day)
            if intervals:
                last_open_day = day
            yield from intervals
            day += timedelta(days=1)
        raise ClosedTooLongError(
            f"no open hours within {MAX_SEARCH_DAYS} days after {last_open_day}; "
            "check [hours] closed_dates"
        )

    def _next_business_day(self, day: date) -> date:
        for offset in range(1, MAX_SEARCH_DAYS + 1):
            candidate = day + timedelta(days=offset)
            if not self.is_closed_day(candidate):
                return candidate
        raise ClosedTooLongError(
            f"no open day within {MAX_SEARCH_DAYS} days after {day}; check [hours] closed_dates"
        )


@functools.lru_cache(maxsize=16)
def calendar_for(hours: HoursSettings) -> BusinessCalendar:
    """Return the calendar of ``hours``, shared between calls with equal settings."""
    return BusinessCalendar(hours)


def is_eve(day: date) -> bool:
    """Return whether ``day`` is Christmas Eve or Midsummer Eve (Friday from 19 to 25 June)."""
    if (day.month, day.day) == (12, 24):
        return True
    return (
        day.month == 6
        and MIDSUMMER_EVE_FIRST_DAY <= day.day <= MIDSUMMER_EVE_FIRST_DAY + 6
        and day.weekday() == FRIDAY
    )


def percentile(values: Sequence[timedelta], percent: int) -> timedelta:
    """Return the nearest-rank ``percent`` percentile of ``values``, which must not be empty."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: expected one with a time zone")
    return moment.astimezone(UTC)
