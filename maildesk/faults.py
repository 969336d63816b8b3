"""Crash points for the fault-injection tests.

The tests kill maildesk with SIGKILL at chosen places to prove that a crash
anywhere loses no mail and sends no reply twice (except in the one window
README.md describes). ``$MAILDESK_CRASH_AT`` names the place and the how
manyth visit kills: ``smtp-accepted:2`` kills the process the second time it
reaches ``crash_point("smtp-accepted")``. When the variable is unset, as in
normal operation, a crash point does nothing.

The places:

- ``fetched``: after an IMAP FETCH of a batch, before it is stored.
- ``committed``: after a batch and its folder state are committed.
- ``smtp-claimed``: after an outbox row is claimed, before SMTP is spoken.
- ``smtp-accepted``: after the SMTP server accepted a reply, before its row
  is marked sent.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

CRASH_ENV = "MAILDESK_CRASH_AT"
CRASH_POINTS = ("fetched", "committed", "smtp-claimed", "smtp-accepted")

_visits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``$MAILDESK_CRASH_AT`` names this visit of ``name``."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _visits[name] = _visits.get(name, 0) + 1
    if _visits[name] == int(count or "1"):
        log.warning("crash point %s reached (visit %d): killing this process", name, _visits[name])
        os.kill(os.getpid(), signal.SIGKILL)
