"""Latency from a new mail's APPEND to its auto-reply accepted by the SMTP server.

``maildesk run`` runs as a child process on an empty mailbox, with IMAP IDLE
unless it is turned off. New customer mails are APPENDed one at a time at a
steady rate on a separate IMAP connection. The SMTP sink stamps each
auto-reply when it answers 250 to its DATA, and the reply is matched to its
mail through In-Reply-To.
"""

from __future__ import annotations

import logging
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from benchmarks.corpus import CorpusSpec, generate
from benchmarks.desk import VENV_BIN, write_config
from benchmarks.floor import connect
from benchmarks.mailbox import ImapAccount, SmtpSink

log = logging.getLogger(__name__)

READY_LINE = "waiting for new mail in INBOX with IMAP IDLE"
STARTED_LINE = "maildesk started"
START_TIMEOUT = 60.0


class TimedSink(SmtpSink):
    """The test suite's SMTP sink, stamping each accepted message with ``time.monotonic()``."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted_at: dict[str, float] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            headers = BytesHeaderParser(policy=compat32).parsebytes(envelope.original_content or b"")
            parent = str(headers.get("In-Reply-To", "")).strip().strip("<>")
            self.accepted_at[parent] = time.monotonic()
        return reply


@dataclass
class LatencyResult:
    """Seconds from APPEND to SMTP acceptance for each mail that got its reply."""

    seconds: list[float] = field(default_factory=list)
    sent: int = 0
    missing: int = 0
    idle: bool = True

    def percentile(self, share: float) -> float:
        """Return the ``share`` quantile (0..1) of the latencies, nearest rank."""
        ordered = sorted(self.seconds)
        if not ordered:
            return float("nan")
        rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
        return ordered[rank]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def measure_latency(
    account: ImapAccount,
    state_dir: Path,
    *,
    count: int,
    interval: float,
    idle: bool = True,
    poll_interval: int = 60,
    settle_timeout: float = 30.0,
) -> LatencyResult:
    """APPEND ``count`` new customer mails ``interval`` seconds apart and time their replies."""
    result = LatencyResult(idle=idle)
    with TimedSink() as sink:
        config = write_config(
            state_dir, account, existing="none", smtp=sink, idle=idle, poll_interval=poll_interval
        )
        log_path = state_dir / "daemon.log"
        with log_path.open("wb") as log_file:
            daemon = subprocess.Popen(
                [str(VENV_BIN / "maildesk"), "--config", str(config), "run"],
                stdout=log_file, stderr=subprocess.STDOUT,
            )
            try:
                _wait_for_line(log_path, READY_LINE if idle else STARTED_LINE, daemon)
                appended = _append_steadily(account, count, interval)
                _wait_for_replies(sink, appended, settle_timeout)
            finally:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
        for message_id, began in appended.items():
            accepted = sink.accepted_at.get(message_id)
            if accepted is None:
                result.missing += 1
            else:
                result.seconds.append(accepted - began)
        result.sent = len(appended)
    return result


def _wait_for_line(path: Path, line: str, daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"maildesk run exited with {daemon.returncode}:\n{path.read_text()[-3000:]}")
        if line in path.read_text(encoding="utf-8", errors="replace"):
            # The first sync and the IDLE SELECT are done; let the first IDLE start.
            time.sleep(0.5)
            return
        time.sleep(0.1)
    raise RuntimeError(f"maildesk run did not log {line!r} within {START_TIMEOUT} s")


def _append_steadily(account: ImapAccount, count: int, interval: float) -> dict[str, float]:
    """APPEND new mails on a fixed schedule; return Message-ID to the time before its APPEND."""
    now = datetime.now(UTC)
    # Distinct customers, so the per-sender window never suppresses a reply.
    spec = CorpusSpec(
        messages=count, seed=11, reply_share=0.0, attachment_share=0.0, start=now,
        span=timedelta(seconds=1), id_prefix="l", customers=10**9,
    )
    client = connect(account.host, account.port, account.username, account.password)
    appended: dict[str, float] = {}
    try:
        next_at = time.monotonic()
        for mail in generate(spec):
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            message_id = _message_id(mail.raw)
            appended[message_id] = time.monotonic()
            client.append("INBOX", mail.raw)
            next_at += interval
    finally:
        client.logout()
    return appended


def _wait_for_replies(sink: TimedSink, appended: dict[str, float], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(message_id in sink.accepted_at for message_id in appended):
            return
        time.sleep(0.05)
    log.warning(
        "%d of %d auto-replies did not arrive within %.0f s",
        sum(1 for message_id in appended if message_id not in sink.accepted_at),
        len(appended), timeout,
    )


def _message_id(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    return str(headers["Message-ID"]).strip().strip("<>")
