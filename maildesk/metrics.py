"""Prometheus metrics of ``maildesk run``, served over HTTP on a loopback address.

The daemon counts into a :class:`Metrics` whether or not ``[metrics]`` is
enabled. Enabling it only starts the HTTP endpoint, prometheus_client's
server in a thread of its own. The endpoint has no authentication, which is
why the config accepts only a loopback address.
"""

from __future__ import annotations

import logging
import threading
import time
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from maildesk.ingest import BatchStats
from maildesk.outbox import SendStats

log = logging.getLogger(__name__)

LAG_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600)


class Metrics:
    """The daemon's counters, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.messages = Counter(
            "maildesk_messages_ingested", "Messages fetched and handled, by result",
            ["result"], registry=registry,
        )
        self.tickets = Counter("maildesk_tickets_created", "Tickets opened", registry=registry)

        self.sent = Counter(
            "maildesk_outbox_sent", "Mail sent from the outbox (auto-replies and notices)",
            registry=registry,
        )
        self.suppressed = Counter(
            "maildesk_autoreplies_suppressed", "New tickets that got no auto-reply, by reason",
            ["reason"], registry=registry,
        )
        self.outbox_failures = Counter(
            "maildesk_outbox_failures",
            'Failed sends: "retry" (4xx or connection lost, tried again) or "permanent" (5xx)',
            ["kind"], registry=registry,
        )

        self.imap_reconnects = Counter(
            "maildesk_imap_reconnects", "IMAP connection attempts that failed and are retried",
            registry=registry,
        )
        self.sync_failures = Counter(
            "maildesk_sync_failures", "Sync passes that ended with an error", registry=registry
        )
        self.lag = Histogram(
            "maildesk_sync_lag_seconds",
            "Seconds from a message's arrival in the mailbox (INTERNALDATE) to its commit",
            buckets=LAG_BUCKETS, registry=registry,
        )
        self.last_sync = Gauge(
            "maildesk_last_sync_timestamp_seconds",
            "Unix time of the end of the last sync pass without errors", registry=registry,
        )

        self._last_sync_time: float | None = None
        age = Gauge(
            "maildesk_last_sync_age_seconds",
            "Seconds since the last sync pass without errors (-1 before the first)",
            registry=registry,
        )
        age.set_function(self._last_sync_age)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def synced(self, stats: BatchStats) -> None:
        """Count one successful sync pass and what it stored."""
        self.messages.labels("stored").inc(stats.stored - stats.quarantined)
        self.messages.labels("quarantined").inc(stats.quarantined)
        self.messages.labels("duplicate").inc(stats.duplicates)
        self.tickets.inc(stats.new_tickets)
        for reason, count in stats.suppressed.items():
            self.suppressed.labels(reason).inc(count)
        self._last_sync_time = time.time()
        self.last_sync.set(self._last_sync_time)

    def sent_pass(self, stats: SendStats) -> None:
        self.sent.inc(stats.sent)
        self.outbox_failures.labels("retry").inc(stats.retried)
        self.outbox_failures.labels("permanent").inc(stats.failed)

    def serve(self, address: str, port: int) -> None:
        """Start the HTTP endpoint; raises OSError when the port cannot be bound."""
        self._server, self._thread = start_http_server(port, addr=address, registry=self.registry)
        log.info("Prometheus metrics on http://%s:%d/metrics", address, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _last_sync_age(self) -> float:
        if self._last_sync_time is None:
            return -1.0
        return time.time() - self._last_sync_time
