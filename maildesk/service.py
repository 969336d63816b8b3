"""The daemon and the one-shot passes built on the same jobs.

``maildesk run`` schedules two jobs with APScheduler: the sync job (fetch,
ingest, then send what it queued) and the outbox job (retries). Both run on
a single-thread executor and under one lock, so they never overlap with
themselves or with each other; ``max_instances`` alone would only keep a job
from overlapping itself.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from maildesk.config import Config
from maildesk.db import make_engine
from maildesk.errors import MaildeskError
from maildesk.imapsync import MailboxSync
from maildesk.ingest import BatchStats, Ingestor
from maildesk.jobs import PeriodicJob, periodic_jobs
from maildesk.lock import StateLock
from maildesk.outbox import OutboxSender, SendStats
from maildesk.schema import upgrade

log = logging.getLogger(__name__)

OUTBOX_INTERVAL_SECONDS = 30
# SIGTERM must end the process within 10 seconds; the jobs check the stop
# flag between messages, so this bound is only reached by a hung server call.
SHUTDOWN_WAIT_SECONDS = 8


@dataclass
class Desk:
    """The open database and the jobs of one configured desk."""

    config: Config
    engine: Engine
    ingestor: Ingestor

    @classmethod
    def open(cls, config: Config) -> Desk:
        """Open the database, apply pending migrations and build the jobs."""
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = make_engine(config.database_url)
        upgrade(engine)
        return cls(config, engine, Ingestor(config, engine))

    def mailbox_sync(self) -> MailboxSync:
        return MailboxSync(self.config, self.engine, self.ingestor)

    def outbox_sender(self) -> OutboxSender:
        return OutboxSender(self.config, self.engine)


def sync_once(config: Config) -> tuple[BatchStats, SendStats]:
    """Run one sync pass and one outbox pass under the state lock."""
    with StateLock(config.state_dir):
        desk = Desk.open(config)
        stats = desk.mailbox_sync().sync_once()
        sent = desk.outbox_sender().run_once() if config.smtp else SendStats()
        return stats, sent


class Daemon:
    """``maildesk run``: the scheduled jobs until SIGTERM or SIGINT."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self._job_lock = threading.Lock()

    def run(self) -> int:
        mailbox = self.config.require_mailbox()
        self.config.require_smtp()
        with StateLock(self.config.state_dir):
            desk = Desk.open(self.config)
            sync = desk.mailbox_sync()
            sender = desk.outbox_sender()
            scheduler = BackgroundScheduler(
                executors={"default": ThreadPoolExecutor(max_workers=1)},
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            )
            scheduler.add_job(
                self._guarded, "interval", args=("sync", sync, sender), id="sync",
                seconds=mailbox.poll_interval, next_run_time=datetime.now(UTC),
            )
            scheduler.add_job(
                self._guarded, "interval", args=("outbox", None, sender), id="outbox",
                seconds=OUTBOX_INTERVAL_SECONDS,
            )
            for job in periodic_jobs():
                scheduler.add_job(
                    self._guarded_periodic, "interval", args=(job, desk), id=job.name,
                    seconds=job.interval_seconds,
                )
            self._install_signal_handlers()
            log.info(
                "maildesk started: folders %s on %s, polling every %d s",
                ", ".join(mailbox.folders), mailbox.host, mailbox.poll_interval,
            )
            scheduler.start()
            self.stop_event.wait()
            log.info("stopping: finishing the current message")
            scheduler.shutdown(wait=False)
            acquired = self._job_lock.acquire(timeout=SHUTDOWN_WAIT_SECONDS)
            log.info("maildesk stopped" if acquired else "maildesk stopped with a job still running")
        return 0

    def stop(self) -> None:
        self.stop_event.set()

    def _guarded(self, name: str, sync: MailboxSync | None, sender: OutboxSender) -> None:
        with self._job_lock:
            if self.stop_event.is_set():
                return
            try:
                if sync is not None:
                    sync.sync_once(self.stop_event.is_set)
                sender.run_once(self.stop_event.is_set)
            except MaildeskError as exc:
                log.error("%s job failed, retrying at the next run: %s", name, exc)
            except Exception:
                log.exception("%s job failed unexpectedly, retrying at the next run", name)

    def _guarded_periodic(self, job: PeriodicJob, desk: Desk) -> None:
        with self._job_lock:
            if self.stop_event.is_set():
                return
            try:
                job.run(desk, datetime.now(UTC))
            except MaildeskError as exc:
                log.error("%s job failed, retrying at the next run: %s", job.name, exc)
            except Exception:
                log.exception("%s job failed unexpectedly, retrying at the next run", job.name)

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
