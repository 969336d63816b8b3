"""Exponential backoff with jitter, and the retry gate that logs each attempt."""

from __future__ import annotations

import logging
import random

import pytest

from maildesk.backoff import Backoff, RetryGate


def test_backoff_doubles_within_jitter() -> None:
    """Each delay lies between half and all of first * 2**(attempt - 1)."""
    backoff = Backoff(first=2.0, maximum=1000.0, rng=random.Random(7))

    delays = [backoff.failed() for _ in range(6)]

    for attempt, delay in enumerate(delays, start=1):
        ceiling = 2.0 * 2 ** (attempt - 1)
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_capped_at_maximum() -> None:
    """After many failures the delay stays between maximum / 2 and maximum."""
    backoff = Backoff(first=1.0, maximum=60.0, rng=random.Random(1))

    delays = [backoff.failed() for _ in range(200)]

    assert 30.0 <= min(delays[10:])
    assert 60.0 >= max(delays)


def test_backoff_jitter_spreads_delays() -> None:
    """Two gates that fail together do not retry at the same moment."""
    first = Backoff(rng=random.Random(1))
    second = Backoff(rng=random.Random(2))

    assert first.failed() != second.failed()


def test_backoff_reset_after_success() -> None:
    """A success starts the next series from the first delay."""
    backoff = Backoff(first=2.0, maximum=100.0, rng=random.Random(3))
    for _ in range(5):
        backoff.failed()

    backoff.succeeded()

    assert backoff.failed() <= 2.0


def test_backoff_rejects_bad_bounds() -> None:
    """A first delay of zero or above the maximum is a programming error."""
    with pytest.raises(ValueError, match="first=0"):
        Backoff(first=0, maximum=1)


def test_gate_logs_attempt_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    """Every failure is logged with its attempt number and reason, and delays the next attempt."""
    now = [100.0]
    gate = RetryGate("IMAP sync", Backoff(first=4.0, maximum=8.0, rng=random.Random(5)), clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="maildesk.backoff")

    delay = gate.failed("connection refused")
    gate.failed("timed out")

    assert not gate.ready()
    assert 2.0 <= delay <= 4.0
    assert "IMAP sync failed (attempt 1)" in caplog.records[0].getMessage()
    assert caplog.records[0].getMessage().endswith(": connection refused")
    assert "(attempt 2)" in caplog.records[1].getMessage()


def test_gate_ready_after_wait() -> None:
    """The gate opens once the delay has passed, and a success resets the count."""
    now = [0.0]
    gate = RetryGate("SMTP connection", Backoff(first=1.0, maximum=1.0), clock=lambda: now[0])
    gate.failed("refused")

    now[0] = 1.01
    ready = gate.ready()
    gate.succeeded()

    assert ready
    assert 0 == gate.failures


def test_gate_calls_failure_hook() -> None:
    """on_failure runs once per failed attempt, for the reconnect metric."""
    calls: list[int] = []
    gate = RetryGate("IDLE", on_failure=lambda: calls.append(1))

    gate.failed("EOF")
    gate.failed("EOF")

    assert 2 == len(calls)
