"""Fetch new mail from the IMAP folders and feed it to the ingest pipeline.

Per folder maildesk stores UIDVALIDITY and the highest UID it has stored.
Bodies are fetched with ``BODY.PEEK[]`` on a read-only SELECT, so the
``\\Seen`` flags agents rely on never change. A folder's highest UID is saved
in the same transaction as the messages of the batch, so a crash between
batches loses nothing and stores nothing twice.

A folder the server refuses (deleted, renamed) is logged and recorded for
``maildesk status`` while the other folders go on. A broken connection ends
the pass with :class:`ConnectionLostError`, so that the caller can reconnect
with backoff; what was committed before it stays.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from imapclient import IMAPClient
from sqlalchemy import Connection, Engine

from maildesk import repository as repo
from maildesk.config import Config
from maildesk.connections import ConnectionLostError, connect_imap
from maildesk.errors import ConnectionSetupError
from maildesk.faults import crash_point
from maildesk.health import clear_folder_error, record_folder_errors
from maildesk.ingest import BatchStats, IngestOptions, Ingestor
from maildesk.limits import PartialMessage
from maildesk.message import IncomingMessage
from maildesk.prepare import PreparedBatch, PreparedMessage, ProcessPreparer
from maildesk.progress import ImportProgress

log = logging.getLogger(__name__)

# A batch is cut at batch_size messages or at this many bytes, whichever
# comes first, so a few large mails do not sit in memory together. A batch's
# raw bytes, MIME parts and decoded attachments are all held while it is
# stored: on 150 mails of 1.3 to 5.4 MB, the daemon peaked at 188 MiB with
# 32 MiB batches and at 126 MiB with 8 MiB batches, at the same speed (2 cores,
# Python 3.11). Mail of usual size (200 mails of 15 KB) stays below either.
MAX_BATCH_BYTES = 8 * 1024 * 1024
# UIDs are asked for their sizes this many at a time.
SIZE_CHUNK = 2000
# Key of a partial fetch of the first N bytes in imapclient's FETCH response.
PARTIAL_BODY = b"BODY[]<0>"
# Worker processes parse a sync of at least this many messages. Starting one takes
# about half a second (2-core machine, Python 3.11), as long as parsing a few hundred
# messages in the main process, and costs about 45 MB of memory while it runs.
PARSE_PROCESS_MIN_MESSAGES = 1000


class MailboxSync:
    """One pass over every configured folder.

    ``on_lag`` receives, for each new message, the seconds from its arrival in
    the mailbox (INTERNALDATE) to its commit, for the metrics.
    """

    def __init__(
        self,
        config: Config,
        engine: Engine,
        ingestor: Ingestor,
        *,
        connect: Callable[..., IMAPClient] = connect_imap,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_lag: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.mailbox = config.require_mailbox()
        self.engine = engine
        self.ingestor = ingestor
        self.connect = connect
        self.clock = clock
        self.on_lag = on_lag

    def sync_once(self, should_stop: Callable[[], bool] = lambda: False) -> BatchStats:
        """Sync every folder once; a folder the server refuses is logged and the others go on.

        Raises ConnectionSetupError when the login fails and ConnectionLostError
        when the connection breaks; errors of the database or the disk propagate.
        """
        total = BatchStats()
        folders = self.mailbox.folders
        try:
            client = self.connect(self.mailbox)
        except ConnectionSetupError as exc:
            record_folder_errors(self.engine, folders, str(exc), self.clock())
            raise
        # Keep INTERNALDATE aware instead of converted to naive local time.
        client.normalise_times = False
        try:
            for index, folder in enumerate(folders):
                if should_stop():
                    total.stopped = True
                    break
                if self._sent_folder_not_created_yet(client, folder):
                    continue
                try:
                    total.add(self.sync_folder(client, folder, should_stop))
                except ConnectionLostError as exc:
                    record_folder_errors(self.engine, folders[index:], str(exc), self.clock())
                    raise
                except IMAPClient.Error as exc:
                    reason = _server_reply(exc)
                    log.error("sync of folder %s failed: %s", folder, reason)
                    record_folder_errors(self.engine, [folder], reason, self.clock())
                except Exception as exc:
                    record_folder_errors(
                        self.engine, [folder], f"{type(exc).__name__}: {exc}", self.clock()
                    )
                    raise
        finally:
            _logout(client)
        return total

    def _sent_folder_not_created_yet(self, client: IMAPClient, folder: str) -> bool:
        """Return whether ``folder`` is the Sent folder that the first reply will create.

        A new mailbox often has no Sent folder until something is sent; that is
        no error, and the folder is synced once it exists.
        """
        if folder != self.mailbox.sent_folder or not self.mailbox.append_to_sent:
            return False
        with _imap_step(self.mailbox.host, f"looking for {folder}"):
            exists = client.folder_exists(folder)
        if not exists:
            log.debug("folder %s does not exist yet; it is created with the first reply", folder)
        return not exists

    def sync_folder(
        self, client: IMAPClient, folder: str, should_stop: Callable[[], bool]
    ) -> BatchStats:
        with _imap_step(self.mailbox.host, f"selecting {folder}"):
            info = client.select_folder(folder, readonly=True)
        uidvalidity = int(info[b"UIDVALIDITY"])
        uidnext = int(info.get(b"UIDNEXT", 0))
        with self.engine.connect() as connection:
            state = repo.folder_state(connection, folder)

        new_mail = IngestOptions(autoreply=True, check_age=True)
        floor = 0
        if state is None:
            floor = max(uidnext - 1, 0)
            with self.engine.begin() as connection:
                repo.start_import(connection, folder, uidvalidity, floor)
            uids, options = self._first_start(client, folder)
            phases = [(uids, options)]
        else:
            stored_validity, last_uid = state
            if stored_validity != uidvalidity:
                # The recorded end of the first import counts UIDs of the old UIDVALIDITY.
                with self.engine.begin() as connection:
                    repo.forget_import(connection, folder)
                phases = [(self._reread(client, folder, stored_validity, uidvalidity), new_mail)]
            else:
                phases = self._resume(client, folder, last_uid, new_mail)

        total = BatchStats()
        for uids, options in phases:
            self._sync_uids(client, folder, uidvalidity, uids, options, should_stop, total)
            if total.stopped:
                return total
        # Record the folder even when nothing was fetched, so that a first start
        # with existing = "none" or "since:" does not read the old mail later.
        with self.engine.begin() as connection:
            state = repo.folder_state(connection, folder)
            last = state[1] if state and state[0] == uidvalidity else 0
            repo.save_folder_state(connection, folder, uidvalidity, max(last, floor), self.clock())
            clear_folder_error(connection, folder)
        if total.stored or total.duplicates:
            log.info(
                "folder %s synced: %d stored, %d duplicates, %d new tickets, %d replies queued, "
                "%d quarantined", folder, total.stored, total.duplicates, total.new_tickets,
                total.replies_queued, total.quarantined,
            )
        return total

    def _sync_uids(
        self,
        client: IMAPClient,
        folder: str,
        uidvalidity: int,
        uids: Sequence[int],
        options: IngestOptions,
        should_stop: Callable[[], bool],
        total: BatchStats,
    ) -> None:
        """Fetch and ingest ``uids`` in batches, adding the counts to ``total``."""
        # A first import of a big folder shows its progress: a line redrawn on a
        # terminal, or a log line a minute under systemd.
        progress = ImportProgress(len(uids), label=folder) if len(uids) > self.mailbox.batch_size else None
        preparer = self._preparer(len(uids))
        try:
            # With a preparer, the batches after the one being stored are already
            # parsed by its worker processes.
            pending: deque[tuple[list[tuple[int, int]], list[IncomingMessage], PreparedBatch | None]]
            pending = deque()
            batches = self._batches(client, folder, sorted(uids))
            while True:
                batch = next(batches, None)
                if batch is not None:
                    items = self._fetch(client, folder, batch)
                    crash_point("fetched")
                    pending.append((batch, items, preparer.submit(items) if preparer else None))
                    if len(pending) <= (preparer.depth if preparer else 0):
                        continue
                if not pending:
                    break
                batch, items, submitted = pending.popleft()
                prepared = preparer.collect(submitted) if preparer else None
                stats = self._ingest(folder, uidvalidity, batch, items, prepared, options, should_stop)
                total.add(stats)
                if progress is not None:
                    progress.advance(handled_count(batch, stats))
                if stats.stopped:
                    total.stopped = True
                    return
        finally:
            if preparer is not None:
                preparer.close()
        if progress is not None:
            progress.finish()

    def _resume(
        self, client: IMAPClient, folder: str, last_uid: int, new_mail: IngestOptions
    ) -> list[tuple[list[int], IngestOptions]]:
        """Return the UIDs after ``last_uid`` in phases: the rest of an interrupted import, then new mail."""
        with self.engine.connect() as connection:
            import_until = repo.import_until(connection, folder)
        with _imap_step(self.mailbox.host, f"searching {folder}"):
            found = client.search(["UID", f"{last_uid + 1}:*"])
        uids = [uid for uid in found if uid > last_uid]
        if import_until is None or last_uid >= import_until:
            return [(uids, new_mail)]
        # The first-start import was interrupted: the mail it had left to read still gets
        # no reply, and only what it selected is read.
        selected, options = self._first_start(client, folder, resumed=True)
        selected_uids = set(selected)
        rest = [uid for uid in uids if uid <= import_until and uid in selected_uids]
        log.info("continuing the first import of %s: %d messages left", folder, len(rest))
        return [(rest, options), ([uid for uid in uids if uid > import_until], new_mail)]

    def _reread(
        self, client: IMAPClient, folder: str, stored_validity: int, uidvalidity: int
    ) -> list[int]:
        """Return the UIDs to read again after a UIDVALIDITY change.

        Every mail that arrived since the last sync must be read; older mail was
        either stored already (a duplicate now) or left alone on purpose by
        ``import.existing``, so only ``existing = "all"`` reads the whole folder.
        """
        with self.engine.connect() as connection:
            last_sync = repo.folder_last_sync(connection, folder)
        criteria: list[object] = ["ALL"]
        if self.config.existing != "all" and last_sync is not None:
            # SINCE compares dates only; a day of margin covers time zones.
            criteria = ["SINCE", (last_sync - timedelta(days=1)).date()]
        log.warning(
            "UIDVALIDITY of %s changed from %s to %s; reading the folder again from %s "
            "(stored messages are recognized as duplicates)",
            folder, stored_validity, uidvalidity, "the start" if criteria == ["ALL"] else criteria[1],
        )
        with _imap_step(self.mailbox.host, f"searching {folder}"):
            return list(client.search(criteria))

    def _first_start(
        self, client: IMAPClient, folder: str, *, resumed: bool = False
    ) -> tuple[list[int], IngestOptions]:
        # Mail already in the mailbox at the first start never gets an auto-reply.
        options = IngestOptions(autoreply=False, check_age=True)
        existing = self.config.existing
        if existing == "none":
            if not resumed:
                log.info("first sync of %s: existing mail is left alone (import.existing = none)", folder)
            return [], options
        if existing == "all":
            criteria: list[object] = ["ALL"]
        else:
            days = self.config.existing_days or 0
            criteria = ["SINCE", (self.clock() - timedelta(days=days)).date()]
        with _imap_step(self.mailbox.host, f"searching {folder}"):
            uids = list(client.search(criteria))
        log.info(
            "first sync of %s: importing %d existing messages (import.existing = %s)",
            folder, len(uids), existing,
        )
        return uids, options

    def _batches(
        self, client: IMAPClient, folder: str, uids: Sequence[int]
    ) -> Iterator[list[tuple[int, int]]]:
        """Yield batches of (UID, RFC822.SIZE) within batch_size and MAX_BATCH_BYTES."""
        batch_size = self.mailbox.batch_size
        limit = self.config.limits.max_message_size
        for start in range(0, len(uids), SIZE_CHUNK):
            chunk = list(uids[start:start + SIZE_CHUNK])
            with _imap_step(self.mailbox.host, f"reading message sizes in {folder}"):
                sizes = client.fetch(chunk, ["RFC822.SIZE"])
            batch: list[tuple[int, int]] = []
            batch_bytes = 0
            for uid in chunk:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                fetched = min(size, limit)
                if batch and (len(batch) >= batch_size or batch_bytes + fetched > MAX_BATCH_BYTES):
                    yield batch
                    batch, batch_bytes = [], 0
                batch.append((uid, size))
                batch_bytes += fetched
            if batch:
                yield batch

    def _preparer(self, count: int) -> ProcessPreparer | None:
        """Return worker processes for parsing when ``count`` messages are worth them."""
        processes = self.config.parse_processes
        if processes < 1 or count < PARSE_PROCESS_MIN_MESSAGES or count <= self.mailbox.batch_size:
            return None
        # More workers than cores only compete with the main process for them.
        processes = min(processes, os.cpu_count() or 1)
        try:
            preparer = ProcessPreparer(self.config.storage_path, self.config.limits, processes)
        except OSError as exc:
            log.warning("cannot start parse worker processes (%s); parsing in the main process", exc)
            return None
        log.info("parsing in %d worker process(es) while storing %d messages", processes, count)
        return preparer

    def _ingest(
        self,
        folder: str,
        uidvalidity: int,
        batch: list[tuple[int, int]],
        items: list[IncomingMessage],
        prepared: list[PreparedMessage | None] | None,
        options: IngestOptions,
        should_stop: Callable[[], bool],
    ) -> BatchStats:
        last_in_batch = batch[-1][0]

        def save_state(connection: Connection, stats: BatchStats) -> None:
            last_uid = last_in_batch if not stats.stopped else stats.last_uid
            if last_uid is None:
                return
            state = repo.folder_state(connection, folder)
            if state is not None and state[0] == uidvalidity:
                last_uid = max(last_uid, state[1])
            repo.save_folder_state(connection, folder, uidvalidity, last_uid, self.clock())

        stats = self.ingestor.ingest_batch(
            items, options, should_stop=should_stop, on_commit=save_state, prepared=prepared
        )
        crash_point("committed")
        if options.autoreply:
            self._report_lag(items)
        return stats

    def _fetch(
        self, client: IMAPClient, folder: str, batch: list[tuple[int, int]]
    ) -> list[IncomingMessage]:
        """FETCH a batch; a message over max_message_size only up to that size."""
        limit = self.config.limits.max_message_size
        whole = [uid for uid, size in batch if size <= limit]
        partial = [uid for uid, size in batch if size > limit]
        response = {}
        with _imap_step(self.mailbox.host, f"fetching from {folder}"):
            if whole:
                response.update(client.fetch(whole, ["BODY.PEEK[]", "INTERNALDATE"]))
            if partial:
                response.update(client.fetch(partial, [f"BODY.PEEK[]<0.{limit}>", "INTERNALDATE"]))

        items: list[IncomingMessage] = []
        for uid, size in batch:
            data = response.get(uid, {})
            raw = data.get(b"BODY[]", data.get(PARTIAL_BODY))
            if raw is None:
                # Expunged between SEARCH and FETCH: there is nothing left to store.
                log.info("message %s UID %s was expunged before it could be fetched", folder, uid)
                continue
            received_at = _aware(data.get(b"INTERNALDATE"))
            if uid in partial:
                log.warning(
                    "message %s UID %s is %d bytes, over max_message_size; fetched its first %d",
                    folder, uid, size, limit,
                )
                items.append(
                    PartialMessage(
                        raw=bytes(raw), received_at=received_at, folder=folder, uid=uid,
                        full_size=size,
                    )
                )
            else:
                items.append(
                    IncomingMessage(raw=bytes(raw), received_at=received_at, folder=folder, uid=uid)
                )
        return items

    def _report_lag(self, items: list[IncomingMessage]) -> None:
        if self.on_lag is None:
            return
        now = self.clock()
        for item in items:
            if item.received_at is not None:
                self.on_lag(max(0.0, (now - item.received_at).total_seconds()))


def handled_count(batch: Sequence[tuple[int, int]], stats: BatchStats) -> int:
    """Return how many messages of ``batch`` were handled: all, or up to the UID where it stopped."""
    if not stats.stopped:
        return len(batch)
    if stats.last_uid is None:
        return 0
    return sum(1 for uid, _size in batch if uid <= stats.last_uid)


@contextmanager
def _imap_step(host: str, action: str) -> Iterator[None]:
    """Turn a broken connection inside into ConnectionLostError; IMAP NO and BAD pass through."""
    try:
        yield
    except IMAPClient.AbortError as exc:
        raise ConnectionLostError(f"IMAP connection to {host} lost while {action}: {exc}") from exc
    except OSError as exc:
        # Socket errors, TLS errors and timeouts; the storage is not touched inside.
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectionLostError(f"IMAP connection to {host} lost while {action}: {reason}") from exc


def _server_reply(error: Exception) -> str:
    """Return the server's reply in an imaplib error, decoded, without Python's bytes repr."""
    text = str(error)
    for argument in error.args:
        if isinstance(argument, bytes):
            return argument.decode("utf-8", "replace")
    return text


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClient.Error, OSError) as exc:
        log.debug("IMAP logout failed: %s", exc)
