"""Import progress: the terminal line, the log lines and the estimate of the time left."""

from __future__ import annotations

import io
import logging

import pytest

from maildesk.progress import ImportProgress, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_terminal_line_shows_rate_and_time_left() -> None:
    """On a terminal the line shows done, total, percent, rate and time left."""
    clock, stream = FakeClock(), io.StringIO()
    progress = ImportProgress(1000, label="INBOX", stream=stream, interactive=True, clock=clock)
    clock.now += 10
    progress.advance(200)
    assert stream.getvalue() == "\rINBOX: 200 of 1,000 messages (20 %), 20 messages/s, 40 s left"


def test_terminal_line_redraw_is_throttled() -> None:
    """Advances within half a second of the last redraw draw nothing."""
    clock, stream = FakeClock(), io.StringIO()
    progress = ImportProgress(1000, label="INBOX", stream=stream, interactive=True, clock=clock)
    clock.now += 0.1
    progress.advance(10)
    assert stream.getvalue() == ""


def test_finish_ends_terminal_line() -> None:
    """finish() prints the total count and time and ends the line."""
    clock, stream = FakeClock(), io.StringIO()
    progress = ImportProgress(500, label="INBOX", stream=stream, interactive=True, clock=clock)
    clock.now += 100
    progress.advance(500)
    progress.finish()
    last_line = stream.getvalue().rsplit("\r", 1)[1]
    assert last_line.rstrip(" \n") == "INBOX: 500 messages in 1 min 40 s, 5 messages/s"
    assert last_line.endswith("\n")


def test_log_lines_when_not_terminal(caplog: pytest.LogCaptureFixture) -> None:
    """Without a terminal, a log line is written once per log interval."""
    clock = FakeClock()
    progress = ImportProgress(
        3000, label="INBOX", stream=io.StringIO(), interactive=False, log_interval=60, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="maildesk.progress"):
        clock.now += 30
        progress.advance(300)
        clock.now += 30
        progress.advance(300)
    assert [record.getMessage() for record in caplog.records] == [
        "INBOX: 600 of 3000 messages (20 %), 10 messages/s, 4 min 0 s left"
    ]


def test_rate_uses_recent_window() -> None:
    """The rate follows the last 30 seconds, not the average since the start."""
    clock = FakeClock()
    progress = ImportProgress(10_000, label="INBOX", interactive=False, clock=clock)
    for _ in range(10):
        clock.now += 10
        progress.advance(100)
    for _ in range(4):
        clock.now += 10
        progress.advance(1000)
    assert progress.rate() == pytest.approx(100.0)


def test_time_left_unknown_before_progress() -> None:
    """Before any message is done the time left is unknown."""
    progress = ImportProgress(10, label="INBOX", interactive=False, clock=FakeClock())
    assert progress.seconds_left() is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(45.2, "45 s"), (725, "12 min 5 s"), (12000, "3 h 20 min")]
)
def test_format_duration(seconds: float, text: str) -> None:
    """Durations read as seconds, minutes or hours."""
    assert format_duration(seconds) == text
