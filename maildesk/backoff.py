"""Exponential backoff with jitter for reconnecting to the mail servers.

A :class:`RetryGate` guards one connection (the sync's IMAP login, one
folder's IDLE connection, the outbox's SMTP login). After each failure it
waits twice as long as before, up to a maximum. A random part of up to half
of each wait is taken off ("equal jitter"), so that connections that failed
together do not all come back at the same moment. Every failure is logged
with the attempt number and the reason.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 300.0


class Backoff:
    """The delays of one series of failed attempts: first, 2 x first, 4 x first ... up to ``maximum``."""

    def __init__(
        self,
        first: float = FIRST_DELAY_SECONDS,
        maximum: float = MAX_DELAY_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < first <= maximum:
            raise ValueError(f"expected 0 < first <= maximum, got first={first} maximum={maximum}")
        self.first = first
        self.maximum = maximum
        self.rng = rng or random.Random()
        self.attempt = 0

    def failed(self) -> float:
        """Count a failed attempt and return the seconds to wait before the next one."""
        self.attempt += 1
        # The exponent is capped so that a long outage cannot overflow the float.
        ceiling = min(self.maximum, self.first * 2 ** min(self.attempt - 1, 40))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def succeeded(self) -> None:
        self.attempt = 0


class RetryGate:
    """When the next attempt at one connection may start, after how many failures.

    ``on_failure`` is called once per failed attempt (the metrics count IMAP
    reconnects with it).
    """

    def __init__(
        self,
        name: str,
        backoff: Backoff | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.on_failure = on_failure
        self.next_attempt_at = 0.0

    @property
    def failures(self) -> int:
        """Return the number of failed attempts since the last success."""
        return self.backoff.attempt

    def ready(self) -> bool:
        """Return whether the wait after the last failure is over."""
        return self.clock() >= self.next_attempt_at

    def remaining(self) -> float:
        """Return the seconds until the next attempt may start (0 when it may start now)."""
        return max(0.0, self.next_attempt_at - self.clock())

    def failed(self, reason: object) -> float:
        """Record a failed attempt, log it and return the seconds until the next one."""
        delay = self.backoff.failed()
        self.next_attempt_at = self.clock() + delay
        log.warning(
            "%s failed (attempt %d), next attempt in %.1f s: %s",
            self.name, self.backoff.attempt, delay, reason,
        )
        if self.on_failure is not None:
            self.on_failure()
        return delay

    def succeeded(self) -> None:
        """Record a success; the next failure starts again from the first delay."""
        if self.backoff.attempt:
            log.info("%s succeeded after %d failed attempts", self.name, self.backoff.attempt)
        self.backoff.succeeded()
        self.next_attempt_at = 0.0
