"""Public-holiday dates of one country, computed in a short-lived child process.

With holidays 0.109 on Linux, ``import holidays`` added 11 MiB to VmRSS, and the
first ``holidays.country_holidays`` call imported all 250 of its country modules,
another 8.5 MiB. The daemon only needs a set of dates, so :func:`holiday_dates` runs
this module as a child process, reads the dates from its stdout and never imports
the holidays package itself. When the child fails, it logs a warning and computes
the dates in this process, which costs that memory.

Run as ``python -m maildesk.publicholidays COUNTRY FIRST_YEAR LAST_YEAR`` to print
the dates, one ISO 8601 date per line in ascending order. The exit status is 3 for a
country that the holidays package does not support and 2 for invalid arguments.
"""

from __future__ import annotations

import argparse
import functools
import logging
import subprocess
import sys
from datetime import MAXYEAR, MINYEAR, date

log = logging.getLogger(__name__)

CHILD_MODULE = "maildesk.publicholidays"

# A child run took 0.12 to 0.22 s in 25 runs on the development machine. The limit is
# an estimate that leaves room for a cold start on a loaded machine.
CHILD_TIMEOUT_SECONDS = 10.0

# Exit status of the child for an unsupported country. The caller raises at once and
# skips the in-process fallback, because that would import every country module and
# fail the same way.
EXIT_UNKNOWN_COUNTRY = 3


# Years of public holidays loaded around a year that a calendar is asked about. Three
# years ahead cover most of a search for the next open day.
YEARS_BEFORE = 1
YEARS_AFTER = 3


class ChildFailedError(Exception):
    """The child process failed, timed out or printed something other than dates."""


def holiday_dates(
    country: str, first_year: int, last_year: int, *, interpreter: str | None = None
) -> frozenset[date]:
    """Compute the public holidays of ``country`` from ``first_year`` to ``last_year`` inclusive.

    The dates come from a child process, or from this process when the child fails.
    ``country`` is an ISO 3166 code that the holidays package supports. ``interpreter``
    runs the child process and defaults to :data:`sys.executable`. Results are cached
    in this process per country, years and interpreter.

    Raises ValueError for a year range outside 1 to 9999 or in the wrong order, and
    NotImplementedError for a country that the holidays package does not support.
    """
    _check_years(first_year, last_year)
    return _cached_holiday_dates(country, first_year, last_year, interpreter or sys.executable)


def years_around(year: int) -> tuple[int, int]:
    """Return the first and last year of holidays to load around ``year``."""
    return max(MINYEAR, year - YEARS_BEFORE), min(MAXYEAR, year + YEARS_AFTER)


def is_supported(country: str, year: int) -> bool:
    """Return whether the holidays package supports ``country``.

    It loads the holidays around ``year``, which a calendar built later in
    this process then finds in the cache.
    """
    try:
        holiday_dates(country, *years_around(year))
    except NotImplementedError:
        return False
    return True


def compute_holiday_dates(country: str, first_year: int, last_year: int) -> frozenset[date]:
    """Compute the public holidays of ``country`` in this process with the holidays package."""
    import holidays

    _check_years(first_year, last_year)
    table = holidays.country_holidays(country, years=range(first_year, last_year + 1))
    return frozenset(day for day in table if first_year <= day.year <= last_year)


@functools.lru_cache(maxsize=64)
def _cached_holiday_dates(
    country: str, first_year: int, last_year: int, interpreter: str
) -> frozenset[date]:
    try:
        return _run_child(country, first_year, last_year, interpreter)
    except ChildFailedError as error:
        log.warning(
            "public holidays of %s for %d-%d: child process failed: %s. Computing them in "
            "this process, which imports every country module of the holidays package. "
            "Check that '%s -m %s %s %d %d' prints dates.",
            country,
            first_year,
            last_year,
            error,
            interpreter,
            CHILD_MODULE,
            country,
            first_year,
            last_year,
        )
    return compute_holiday_dates(country, first_year, last_year)


def _run_child(country: str, first_year: int, last_year: int, interpreter: str) -> frozenset[date]:
    command = [interpreter, "-m", CHILD_MODULE, country, str(first_year), str(last_year)]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise ChildFailedError(f"timed out after {CHILD_TIMEOUT_SECONDS} s") from error
    except OSError as error:
        raise ChildFailedError(f"failed to start: {error}") from error

    if completed.returncode == EXIT_UNKNOWN_COUNTRY:
        raise NotImplementedError(completed.stderr.strip() or f"country {country} not available")
    if completed.returncode != 0:
        stderr_lines = completed.stderr.strip().splitlines() or ["(no stderr output)"]
        raise ChildFailedError(f"exit status {completed.returncode}: {stderr_lines[-1]}")
    return _parse_dates(completed.stdout, first_year, last_year)


def _parse_dates(output: str, first_year: int, last_year: int) -> frozenset[date]:
    """Parse one ISO date per line and check that each falls in the requested years."""
    dates = set()
    for line in output.splitlines():
        try:
            day = date.fromisoformat(line)
        except ValueError as error:
            raise ChildFailedError(f"invalid output line {line[:80]!r}") from error
        if not first_year <= day.year <= last_year:
            raise ChildFailedError(f"output date {day} is outside {first_year}-{last_year}")
        dates.add(day)
    return frozenset(dates)


def _check_years(first_year: int, last_year: int) -> None:
    if not MINYEAR <= first_year <= last_year <= MAXYEAR:
        raise ValueError(
            f"invalid year range {first_year}-{last_year}: expected "
            f"{MINYEAR} <= first year <= last year <= {MAXYEAR}"
        )


def main(argv: list[str] | None = None) -> int:
    """Print the public holidays of a country for a range of years to stdout."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {CHILD_MODULE}",
        description="Print the public holidays of a country, one ISO 8601 date per line.",
    )
    parser.add_argument("country", help="ISO 3166 country code, such as FI")
    parser.add_argument("first_year", type=int, help="first year to print, such as 2026")
    parser.add_argument("last_year", type=int, help="last year to print, inclusive")
    args = parser.parse_args(argv)

    try:
        dates = compute_holiday_dates(args.country, args.first_year, args.last_year)
    except ValueError as error:
        parser.error(str(error))
    except NotImplementedError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return EXIT_UNKNOWN_COUNTRY
    sys.stdout.write("".join(f"{day.isoformat()}\n" for day in sorted(dates)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
