"""The floor of maildesk's own stack: IMAP fetch and parsing, without storage.

One pass fetches every message of the INBOX with ``BODY.PEEK[]`` in batches
and times, per batch, the fetch, the stdlib ``compat32`` parse with the
headers maildesk needs, mail-parser's parse and maildesk's own parser, each
over the same bytes. Only one batch of bodies is in memory at a time.
"""

from __future__ import annotations

import email
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.policy import compat32

import mailparser
from imapclient import IMAPClient

from maildesk.parsing import parse_message

log = logging.getLogger(__name__)

# The headers a ticket needs: addresses, subject, date and the thread links.
NEEDED_HEADERS = ("from", "to", "cc", "reply-to", "subject", "date", "message-id",
                  "in-reply-to", "references")
BATCH_SIZES = (100, 250, 500, 1000)


@dataclass
class StageTimes:
    """Seconds spent per stage over one pass, and the bytes it read."""

    messages: int = 0
    bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def rate(self, *stages: str) -> float:
        """Return messages per second for the stages run one after the other."""
        total = sum(self.seconds.get(stage, 0.0) for stage in stages)
        return self.messages / total if total else 0.0

    def megabytes_per_second(self, *stages: str) -> float:
        total = sum(self.seconds.get(stage, 0.0) for stage in stages)
        return self.bytes / 1e6 / total if total else 0.0


def compat32_headers(raw: bytes) -> dict[str, str | None]:
    """Parse ``raw`` with the stdlib under compat32 and read the needed headers undecoded."""
    message = email.message_from_bytes(raw, policy=compat32)
    return {name: message.get(name) for name in NEEDED_HEADERS}


def mailparser_parse(raw: bytes) -> object:
    """Parse ``raw`` with mail-parser as its users call it."""
    return mailparser.parse_from_bytes(raw)


PARSERS: dict[str, Callable[[bytes], object]] = {
    "compat32": compat32_headers,
    "mail-parser": mailparser_parse,
    "maildesk-parser": parse_message,
}


def connect(host: str, port: int, username: str, password: str, *, debug: int = 0) -> IMAPClient:
    """Log in with imapclient and set imaplib's debug level.

    imapclient 4.1 sets imaplib's level to 5 in its constructor, so imaplib
    formats the repr of every response, message bodies included, for a
    logger that drops it; 0 turns that off.
    """
    client = IMAPClient(host, port=port, ssl=False, timeout=60)
    client._imap.debug = debug
    client.login(username, password)
    return client


def fetch_pass(
    client: IMAPClient,
    batch_size: int,
    parsers: Sequence[str] = (),
    *,
    limit: int | None = None,
) -> StageTimes:
    """Fetch every INBOX message once in batches of ``batch_size`` and run ``parsers`` on each."""
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search(["ALL"]))[:limit]
    times = StageTimes()
    for start in range(0, len(uids), batch_size):
        chunk = uids[start:start + batch_size]
        began = time.perf_counter()
        response = client.fetch(chunk, ["BODY.PEEK[]"])
        times.add("fetch", time.perf_counter() - began)
        bodies = [response[uid][b"BODY[]"] for uid in chunk if uid in response]
        times.messages += len(bodies)
        times.bytes += sum(len(body) for body in bodies)
        for name in parsers:
            parse = PARSERS[name]
            began = time.perf_counter()
            for body in bodies:
                parse(body)
            times.add(name, time.perf_counter() - began)
    return times


def best_batch_size(client: IMAPClient, sizes: Sequence[int] = BATCH_SIZES) -> tuple[int, dict[int, float]]:
    """Return the batch size with the highest fetch rate and the rate of each size tried."""
    rates: dict[int, float] = {}
    for size in sizes:
        rates[size] = fetch_pass(client, size).rate("fetch")
        log.info("fetch with batches of %d: %.0f messages/s", size, rates[size])
    best = max(rates, key=lambda size: rates[size])
    return best, rates
