"""The daemon and the one-shot passes built on the same jobs.

``maildesk run`` schedules two jobs with APScheduler: the sync job (fetch,
ingest, then send what it queued) and the outbox job (retries). Both run on
a single-thread executor and under one lock, so they never overlap with
themselves or with each other; ``max_instances`` alone would only keep a job
from overlapping itself.

IMAP IDLE watchers (:mod:`maildesk.idle`) only move the sync job's next run
to now. The sync job allows two instances, one running and one waiting in
the executor's queue, so new mail reported while a sync runs is fetched by
the waiting one instead of being dropped as a duplicate run.

A sync that fails (login refused, connection lost, database locked, disk
full) is logged and retried with exponential backoff and jitter; what was
committed before the failure stays. Under systemd the daemon reports READY
after the first sync, a STATUS line after each, and pings the watchdog from
the main thread while the jobs make progress.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from maildesk.backoff import Backoff, RetryGate
from maildesk.config import Config
from maildesk.connections import ConnectionLostError
from maildesk.db import make_engine, outbox, tickets
from maildesk.errors import ConnectionSetupError, MaildeskError
from maildesk.idle import IdleWatcher
from maildesk.imapsync import MailboxSync
from maildesk.ingest import BatchStats, Ingestor
from maildesk.jobs import PeriodicJob, periodic_jobs
from maildesk.keywords import MailboxMarker
from maildesk.lock import StateLock
from maildesk.metrics import Metrics
from maildesk.notify import Notifier
from maildesk.outbox import OutboxSender, SendStats
from maildesk.schema import upgrade, upgrade_in_child_process
from maildesk.storage import FileStore

log = logging.getLogger(__name__)

OUTBOX_INTERVAL_SECONDS = 30
# SIGTERM must end the process within 10 seconds. The jobs check the stop flag
# between messages, so only a hung server call reaches this bound.
SHUTDOWN_WAIT_SECONDS = 8
PERIODIC_FIRST_RUN_SECONDS = 60
# How long the IDLE threads get to send DONE and LOGOUT at shutdown.
IDLE_JOIN_SECONDS = 1.5
# A failed sync is retried after 2 s, 4 s, 8 s ... up to 5 minutes, with jitter.
SYNC_RETRY_FIRST_SECONDS = 2.0
SYNC_RETRY_MAX_SECONDS = 300.0
# How often the main loop talks to systemd at most, and how long a job may go
# without progress when there is no watchdog timeout to take half of.
NOTIFY_TICK_SECONDS = 30.0
DEFAULT_STALL_SECONDS = 450.0


@dataclass
class Desk:
    """The open database and the jobs of one configured desk."""

    config: Config
    engine: Engine
    ingestor: Ingestor

    @classmethod
    def open(cls, config: Config, *, migrate_in_child_process: bool = False) -> Desk:
        """Open the database, apply pending migrations and build the jobs.

        ``migrate_in_child_process`` runs Alembic, when the schema is behind, in a
        child process, so that a long-running process never imports it.
        """
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = make_engine(config.database_url)
        if migrate_in_child_process:
            upgrade_in_child_process(engine)
        else:
            upgrade(engine)
        return cls(config, engine, Ingestor(config, engine))

    def mailbox_sync(self, on_lag: Callable[[float], None] | None = None) -> MailboxSync:
        return MailboxSync(self.config, self.engine, self.ingestor, on_lag=on_lag)

    def outbox_sender(self) -> OutboxSender:
        return OutboxSender(self.config, self.engine)


def sync_once(
    config: Config, should_stop: Callable[[], bool] = lambda: False
) -> tuple[BatchStats, SendStats]:
    """Run one sync pass, one outbox pass and one keyword pass under the state lock.

    ``should_stop`` is checked between messages; once it returns True the
    current batch is committed and the outbox and keyword passes are skipped.
    """
    with StateLock(config.state_dir):
        desk = Desk.open(config)
        # A killed run leaves temporary files; under the lock no other process writes.
        stale = FileStore(config.storage_path).delete_temporary_files()
        if stale:
            log.info("deleted %d temporary files that an interrupted write left", stale)
        stats = desk.mailbox_sync().sync_once(should_stop)
        if stats.stopped:
            return stats, SendStats()
        sent = desk.outbox_sender().run_once() if config.smtp else SendStats()
        MailboxMarker(config, desk.engine).run_once(should_stop)
        return stats, sent


class Daemon:
    """``maildesk run``: the scheduled jobs until SIGTERM or SIGINT."""

    def __init__(self, config: Config, *, notifier: Notifier | None = None) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.sync_gate = RetryGate(
            "sync", Backoff(SYNC_RETRY_FIRST_SECONDS, SYNC_RETRY_MAX_SECONDS)
        )
        self._job_lock = threading.Lock()
        # Set at shutdown when a job was still blocked on a server after the wait.
        self.job_abandoned = False
        self._scheduler: BackgroundScheduler | None = None
        self._watchers: list[IdleWatcher] = []
        # For the watchdog: the running job's name and when it last showed progress.
        self._running_job: str | None = None
        self._last_progress = time.monotonic()
        self._ready_sent = False
        self._last_sync_at: datetime | None = None

    def run(self) -> int:
        mailbox = self.config.require_mailbox()
        self.config.require_smtp()
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # APScheduler logs every run of every job at INFO; its warnings and errors stay.
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
        with StateLock(self.config.state_dir):
            desk = Desk.open(self.config, migrate_in_child_process=True)
            self._scheduler = self._build_scheduler(desk)
            self._install_signal_handlers()
            self._start_metrics()
            log.info(
                "maildesk started: folders %s on %s, polling every %d s%s",
                ", ".join(mailbox.folders), mailbox.host, mailbox.poll_interval,
                " and waiting with IDLE" if mailbox.idle else "",
            )
            self._scheduler.start()
            if mailbox.idle:
                self._start_idle_watchers()
            self._main_loop()
            self._shut_down()
        return 0

    def stop(self) -> None:
        self.stop_event.set()

    def request_sync(self, folder: str) -> None:
        """Run the sync job now (called by the IDLE threads when mail arrives)."""
        if self.stop_event.is_set() or self._scheduler is None:
            return
        log.debug("new mail in %s: syncing now", folder)
        try:
            self._scheduler.modify_job("sync", next_run_time=datetime.now(UTC))
        except (JobLookupError, SchedulerNotRunningError):
            # The scheduler is shutting down.
            pass

    def _build_scheduler(self, desk: Desk) -> BackgroundScheduler:
        sync = desk.mailbox_sync(on_lag=self.metrics.lag.observe)
        sender = desk.outbox_sender()
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.add_job(
            self._sync_job, "interval", args=(desk, sync, sender), id="sync",
            seconds=self.config.require_mailbox().poll_interval,
            next_run_time=datetime.now(UTC), max_instances=2,
        )
        scheduler.add_job(
            self._outbox_job, "interval", args=(sender,), id="outbox",
            seconds=OUTBOX_INTERVAL_SECONDS,
        )
        # Periodic jobs first run a minute after start, so a daemon that restarts more
        # often than a job's interval (a daily retention pass) still runs it.
        first_run = datetime.now(UTC) + timedelta(seconds=PERIODIC_FIRST_RUN_SECONDS)
        for job in periodic_jobs():
            scheduler.add_job(
                self._guarded_periodic, "interval", args=(job, desk), id=job.name,
                seconds=job.interval_seconds, next_run_time=first_run,
            )
        return scheduler

    # --- jobs --------------------------------------------------------------------------

    @contextmanager
    def _job(self, name: str) -> Iterator[bool]:
        """Hold the job lock and track progress; yield False when the daemon is stopping."""
        with self._job_lock:
            self._running_job = name
            self._last_progress = time.monotonic()
            try:
                yield not self.stop_event.is_set()
            finally:
                self._running_job = None

    def _should_stop(self) -> bool:
        # Called between messages, so it doubles as the progress signal for the watchdog.
        self._last_progress = time.monotonic()
        return self.stop_event.is_set()

    def _sync_job(self, desk: Desk, sync: MailboxSync, sender: OutboxSender) -> None:
        with self._job("sync") as go:
            if not go:
                return
            self._sync(sync)
            self._send(sender)
            self._report_state(desk)

    def _outbox_job(self, sender: OutboxSender) -> None:
        with self._job("outbox") as go:
            if go:
                self._send(sender)

    def _guarded_periodic(self, job: PeriodicJob, desk: Desk) -> None:
        with self._job(job.name) as go:
            if not go:
                return
            try:
                job.run(desk, datetime.now(UTC))
            except MaildeskError as exc:
                log.error("%s job failed, retrying at the next run: %s", job.name, exc)
            except Exception:
                log.exception("%s job failed unexpectedly, retrying at the next run", job.name)

    def _sync(self, sync: MailboxSync) -> None:
        if not self.sync_gate.ready():
            # A retry is already scheduled; an early trigger (IDLE) does not skip the wait.
            return
        try:
            stats = sync.sync_once(self._should_stop)
        except (ConnectionSetupError, ConnectionLostError) as exc:
            self.metrics.imap_reconnects.inc()
            self._sync_failed(str(exc))
        except OperationalError as exc:
            # SQLite: "database is locked" after the busy timeout, "database or disk is full".
            self._sync_failed(f"database error: {exc.orig}")
        except OSError as exc:
            self._sync_failed(f"storage error: {exc}")
        except MaildeskError as exc:
            self._sync_failed(str(exc))
        except Exception as exc:
            log.exception("sync failed unexpectedly")
            self._sync_failed(f"{type(exc).__name__}: {exc}")
        else:
            self.sync_gate.succeeded()
            self.metrics.synced(stats)
            self._last_sync_at = datetime.now(UTC)

    def _sync_failed(self, reason: str) -> None:
        self.metrics.sync_failures.inc()
        delay = self.sync_gate.failed(reason)
        if self._scheduler is None:
            return
        try:
            self._scheduler.modify_job(
                "sync", next_run_time=datetime.now(UTC) + timedelta(seconds=delay)
            )
        except (JobLookupError, SchedulerNotRunningError):
            pass

    def _send(self, sender: OutboxSender) -> None:
        try:
            stats = sender.run_once(self._should_stop)
        except SQLAlchemyError as exc:
            log.error("outbox pass failed, retrying at the next run: database error: %s", exc)
        except OSError as exc:
            log.error("outbox pass failed, retrying at the next run: %s", exc)
        except MaildeskError as exc:
            log.error("outbox pass failed, retrying at the next run: %s", exc)
        except Exception:
            log.exception("outbox pass failed unexpectedly, retrying at the next run")
        else:
            self.metrics.sent_pass(stats)

    def _report_state(self, desk: Desk) -> None:
        status = self._status_line(desk.engine)
        if not self._ready_sent:
            self.notifier.ready(status)
            self._ready_sent = True
        else:
            self.notifier.status(status)

    def _status_line(self, engine: Engine) -> str:
        if self._last_sync_at is None:
            synced = f"no successful sync yet ({self.sync_gate.failures} failed)"
        else:
            synced = f"last sync {self._last_sync_at:%Y-%m-%d %H:%M:%S} UTC"
        try:
            with engine.connect() as connection:
                open_tickets = connection.execute(
                    select(func.count()).select_from(tickets).where(tickets.c.status != "closed")
                ).scalar_one()
                queued = connection.execute(
                    select(func.count()).select_from(outbox).where(outbox.c.status == "queued")
                ).scalar_one()
        except SQLAlchemyError as exc:
            log.debug("counting tickets for the status line failed: %s", exc)
            return synced
        return f"{synced}; open tickets {open_tickets}; replies queued {queued}"

    # --- threads and shutdown ------------------------------------------------------------

    def _start_idle_watchers(self) -> None:
        mailbox = self.config.require_mailbox()
        for folder in mailbox.folders:
            gate = RetryGate(
                f"IDLE connection for {folder}", on_failure=self.metrics.imap_reconnects.inc
            )
            watcher = IdleWatcher(mailbox, folder, self.request_sync, self.stop_event, gate=gate)
            watcher.start()
            self._watchers.append(watcher)

    def _start_metrics(self) -> None:
        settings = self.config.metrics
        if not settings.enabled:
            return
        try:
            self.metrics.serve(settings.address, settings.port)
        except OSError as exc:
            raise MaildeskError(
                f"[metrics] listening on {settings.address}:{settings.port} failed: "
                f"{exc.strerror or exc}; set metrics.port to a free port"
            ) from exc

    def _main_loop(self) -> None:
        """Wait for the stop signal, keeping the service manager informed while jobs progress.

        Before READY (the first sync can import much old mail) the start
        timeout is extended; after it the watchdog is pinged. Both stop when
        the running job has made no progress for half the watchdog timeout, so
        a hung job ends in a restart by systemd.
        """
        if not self.notifier.enabled:
            self.stop_event.wait()
            return
        timeout = self.notifier.watchdog_seconds
        stall_limit = timeout / 2 if timeout else DEFAULT_STALL_SECONDS
        tick = min(timeout / 3, NOTIFY_TICK_SECONDS) if timeout else NOTIFY_TICK_SECONDS
        warned = False
        while not self.stop_event.wait(tick):
            job = self._running_job
            stalled = time.monotonic() - self._last_progress
            if job is not None and stalled >= stall_limit:
                if not warned:
                    log.error(
                        "job %s has made no progress for %.0f s; stopped sending watchdog "
                        "pings to the service manager", job, stalled,
                    )
                    warned = True
                continue
            warned = False
            if not self._ready_sent:
                self.notifier.extend_timeout(3 * tick)
            elif timeout is not None:
                self.notifier.watchdog()

    def _shut_down(self) -> None:
        log.info("stopping: finishing the current message")
        self.notifier.stopping()
        assert self._scheduler is not None
        self._scheduler.shutdown(wait=False)
        acquired = self._job_lock.acquire(timeout=SHUTDOWN_WAIT_SECONDS)
        for watcher in self._watchers:
            watcher.join(timeout=IDLE_JOIN_SECONDS)
        self.metrics.close()
        self.notifier.close()
        self.job_abandoned = not acquired
        log.info("maildesk stopped" if acquired else "maildesk stopped with a job still running")

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
