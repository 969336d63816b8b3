"""Fetch new mail from the IMAP folders and feed it to the ingest pipeline.

Per folder maildesk stores UIDVALIDITY and the highest UID it has stored.
Bodies are fetched with ``BODY.PEEK[]`` on a read-only SELECT, so the
``\\Seen`` flags agents rely on never change. A folder's highest UID is saved
in the same transaction as the messages of the batch, so a crash between
batches loses nothing and stores nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

from imapclient import IMAPClient
from sqlalchemy import Connection, Engine

from maildesk import repository as repo
from maildesk.config import Config
from maildesk.connections import connect_imap
from maildesk.ingest import BatchStats, IngestOptions, Ingestor
from maildesk.message import IncomingMessage

log = logging.getLogger(__name__)

# A batch is cut at batch_size messages or at this many bytes, whichever
# comes first, so a few 50 MB mails do not sit in memory together.
MAX_BATCH_BYTES = 32 * 1024 * 1024
# UIDs are asked for their sizes this many at a time.
SIZE_CHUNK = 2000


class MailboxSync:
    """One pass over every configured folder."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        ingestor: Ingestor,
        *,
        connect: Callable[..., IMAPClient] = connect_imap,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.mailbox = config.require_mailbox()
        self.engine = engine
        self.ingestor = ingestor
        self.connect = connect
        self.clock = clock

    def sync_once(self, should_stop: Callable[[], bool] = lambda: False) -> BatchStats:
        """Sync every folder once; a folder that fails is logged and the others go on."""
        total = BatchStats()
        client = self.connect(self.mailbox)
        # Keep INTERNALDATE aware instead of converted to naive local time.
        client.normalise_times = False
        try:
            for folder in self.mailbox.folders:
                if should_stop():
                    total.stopped = True
                    break
                try:
                    total.add(self.sync_folder(client, folder, should_stop))
                except IMAPClient.Error as exc:
                    log.error("sync of folder %s failed: %s", folder, exc)
        finally:
            _logout(client)
        return total

    def sync_folder(
        self, client: IMAPClient, folder: str, should_stop: Callable[[], bool]
    ) -> BatchStats:
        info = client.select_folder(folder, readonly=True)
        uidvalidity = int(info[b"UIDVALIDITY"])
        uidnext = int(info.get(b"UIDNEXT", 0))
        with self.engine.connect() as connection:
            state = repo.folder_state(connection, folder)

        if state is None:
            uids, options = self._first_start(client, folder)
            floor = max(uidnext - 1, 0)
        else:
            stored_validity, last_uid = state
            if stored_validity != uidvalidity:
                log.warning(
                    "UIDVALIDITY of %s changed from %s to %s; reading the folder again "
                    "(stored messages are recognized as duplicates)",
                    folder, stored_validity, uidvalidity,
                )
                last_uid = 0
            uids = [uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid]
            options = IngestOptions(autoreply=True, check_age=True)
            floor = 0

        total = BatchStats()
        for batch in self._batches(client, sorted(uids)):
            stats = self._ingest(client, folder, uidvalidity, batch, options, should_stop)
            total.add(stats)
            if stats.stopped:
                total.stopped = True
                return total
        # Record the folder even when nothing was fetched, so that a first start
        # with existing = "none" or "since:" does not read the old mail later.
        with self.engine.begin() as connection:
            state = repo.folder_state(connection, folder)
            last = state[1] if state and state[0] == uidvalidity else 0
            repo.save_folder_state(connection, folder, uidvalidity, max(last, floor), self.clock())
        if total.stored or total.duplicates:
            log.info(
                "folder %s synced: %d stored, %d duplicates, %d new tickets, %d replies queued, "
                "%d quarantined", folder, total.stored, total.duplicates, total.new_tickets,
                total.replies_queued, total.quarantined,
            )
        return total

    def _first_start(self, client: IMAPClient, folder: str) -> tuple[list[int], IngestOptions]:
        # Mail already in the mailbox at the first start never gets an auto-reply.
        options = IngestOptions(autoreply=False, check_age=True)
        existing = self.config.existing
        if existing == "none":
            log.info("first sync of %s: existing mail is left alone (import.existing = none)", folder)
            return [], options
        if existing == "all":
            criteria: list[object] = ["ALL"]
        else:
            days = self.config.existing_days or 0
            criteria = ["SINCE", (self.clock() - timedelta(days=days)).date()]
        uids = list(client.search(criteria))
        log.info(
            "first sync of %s: importing %d existing messages (import.existing = %s)",
            folder, len(uids), existing,
        )
        return uids, options

    def _batches(self, client: IMAPClient, uids: Sequence[int]) -> Iterator[list[int]]:
        batch_size = self.mailbox.batch_size
        for start in range(0, len(uids), SIZE_CHUNK):
            chunk = list(uids[start:start + SIZE_CHUNK])
            sizes = client.fetch(chunk, ["RFC822.SIZE"])
            batch: list[int] = []
            batch_bytes = 0
            for uid in chunk:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if batch and (len(batch) >= batch_size or batch_bytes + size > MAX_BATCH_BYTES):
                    yield batch
                    batch, batch_bytes = [], 0
                batch.append(uid)
                batch_bytes += size
            if batch:
                yield batch

    def _ingest(
        self,
        client: IMAPClient,
        folder: str,
        uidvalidity: int,
        batch: list[int],
        options: IngestOptions,
        should_stop: Callable[[], bool],
    ) -> BatchStats:
        response = client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE"])
        items = []
        for uid in batch:
            data = response.get(uid)
            if data is None or b"BODY[]" not in data:
                # Expunged between SEARCH and FETCH: there is nothing left to store.
                log.info("message %s UID %s was expunged before it could be fetched", folder, uid)
                continue
            items.append(
                IncomingMessage(
                    raw=bytes(data[b"BODY[]"]),
                    received_at=_aware(data.get(b"INTERNALDATE")),
                    folder=folder,
                    uid=uid,
                )
            )

        def save_state(connection: Connection, stats: BatchStats) -> None:
            last_uid = batch[-1] if not stats.stopped else stats.last_uid
            if last_uid is None:
                return
            state = repo.folder_state(connection, folder)
            if state is not None and state[0] == uidvalidity:
                last_uid = max(last_uid, state[1])
            repo.save_folder_state(connection, folder, uidvalidity, last_uid, self.clock())

        return self.ingestor.ingest_batch(items, options, should_stop=should_stop, on_commit=save_state)


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClient.Error, OSError) as exc:
        log.debug("IMAP logout failed: %s", exc)
