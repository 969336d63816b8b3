"""Progress of a long import: messages done, rate and time left.

A first start with ``[import] existing = "all"`` can fetch a year of mail.
:class:`ImportProgress` reports how far it has got. On a terminal it redraws
one status line on stderr. Elsewhere, such as under systemd where stderr goes
to the journal, it logs an INFO line every ``log_interval`` seconds instead.

Use::

    progress = ImportProgress(len(uids), label=folder)
    for batch in batches:
        ...  # fetch and ingest the batch
        progress.advance(len(batch))
    progress.finish()

The rate is taken over the last ``RATE_WINDOW_SECONDS``, so the time left
follows a rate that changes during the import (a run of large attachments,
a busy disk).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from maildesk.i18n import _

log = logging.getLogger(__name__)

# Seconds of history the rate and the time left are computed from.
RATE_WINDOW_SECONDS = 30.0
# Seconds between redraws of the terminal line.
REDRAW_SECONDS = 0.5
# Seconds between log lines when the output is not a terminal.
LOG_SECONDS = 60.0


class ImportProgress:
    """Counts messages done against a known total and reports the progress.

    ``stream`` defaults to stderr. ``interactive`` None means: redraw a line
    when ``stream`` is a terminal, else log. ``clock`` returns seconds
    (``time.monotonic`` by default) and is there for tests.
    """

    def __init__(
        self,
        total: int,
        *,
        label: str,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        log_interval: float = LOG_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = _is_terminal(self.stream) if interactive is None else interactive
        self.log_interval = log_interval
        self.clock = clock
        self.started = clock()
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])
        self._last_report = self.started
        self._line_width = 0
        self._finished = False

    def advance(self, count: int) -> None:
        """Add ``count`` messages done and report if the last report is old enough."""
        self.done += max(count, 0)
        if self.total:
            self.done = min(self.done, self.total)
        now = self.clock()
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_SECONDS:
            self._samples.popleft()
        interval = REDRAW_SECONDS if self.interactive else self.log_interval
        if now - self._last_report >= interval:
            self._report(now)

    def finish(self) -> None:
        """Report the final count and end the terminal line; later calls do nothing."""
        if self._finished:
            return
        self._finished = True
        now = self.clock()
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        if self.interactive:
            text = _("{label}: {done} messages in {elapsed}, {rate} messages/s").format(
                label=self.label, done=f"{self.done:,}", elapsed=format_duration(elapsed),
                rate=f"{rate:,.0f}",
            )
            self._draw(text, end="\n")
        else:
            log.info(
                "%s: %d messages in %.0f s, %.0f messages/s", self.label, self.done, elapsed, rate
            )

    def rate(self) -> float:
        """Return messages per second over the rate window, 0.0 before any progress."""
        (first_time, first_done), (last_time, last_done) = self._samples[0], self._samples[-1]
        span = last_time - first_time
        return (last_done - first_done) / span if span > 0 else 0.0

    def seconds_left(self) -> float | None:
        """Return the estimated seconds until ``total``, or None while the rate is unknown."""
        rate = self.rate()
        if rate <= 0:
            return None
        return max(self.total - self.done, 0) / rate

    def _report(self, now: float) -> None:
        self._last_report = now
        left = self.seconds_left()
        percent = 100 * self.done / self.total if self.total else 100.0
        if self.interactive:
            text = _("{label}: {done} of {total} messages ({percent} %), {rate} messages/s, {left} left").format(
                label=self.label, done=f"{self.done:,}", total=f"{self.total:,}",
                percent=f"{percent:.0f}", rate=f"{self.rate():,.0f}",
                left=format_duration(left) if left is not None else "?",
            )
            self._draw(text)
        else:
            log.info(
                "%s: %d of %d messages (%.0f %%), %.0f messages/s, %s left", self.label,
                self.done, self.total, percent, self.rate(),
                format_duration(left) if left is not None else "unknown",
            )

    def _draw(self, text: str, end: str = "") -> None:
        # Pad with spaces so a shorter line fully covers the previous one.
        padding = " " * max(self._line_width - len(text), 0)
        self._line_width = len(text)
        self.stream.write("\r" + text + padding + end)
        self.stream.flush()


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as "45 s", "12 min 5 s" or "3 h 20 min"."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
