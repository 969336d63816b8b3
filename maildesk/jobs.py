"""Periodic jobs besides sync and outbox, run by ``maildesk run``.

Each job is a function ``job(desk, now)`` that does its own transactions.
The daemon runs every job on the same single worker and under the same lock
as the sync and outbox jobs, so no two jobs ever overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from maildesk import autoclose, digest, keywords, retention

if TYPE_CHECKING:
    from maildesk.service import Desk


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval_seconds: int
    run: Callable[[Desk, datetime], None]


def periodic_jobs() -> list[PeriodicJob]:
    """Return the periodic jobs of the daemon, in the order they are scheduled."""
    return [
        # Keywords follow ticket changes within a minute; the digest checks its times each minute.
        PeriodicJob("keywords", 60, keywords.job),
        PeriodicJob("auto-close", 600, autoclose.job),
        PeriodicJob("digest", 60, digest.job),
        PeriodicJob("retention", 86400, retention.run_job),
    ]
