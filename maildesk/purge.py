"""Removal steps shared by erasure and retention: rows, stored files and SQLite's free space.

Stored files are content-addressed, so one file can belong to several
messages. A file is deleted only after the transaction that removed its
rows has committed, and only when no row in
:data:`maildesk.db.STORED_FILE_COLUMNS` names it any more. Callers hold the
state directory lock, so no ingest can start to use a file between the
check and the deletion.
"""

from __future__ import annotations

import heapq
import logging
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, delete, select

from maildesk.db import STORED_FILE_COLUMNS, attachments, messages
from maildesk.storage import KINDS, FileStore

log = logging.getLogger(__name__)

# Rows per IN (...) list, well below SQLite's limit of bound parameters.
CHUNK = 500


def new_pseudonym(prefix: str) -> str:
    """Return a random address under the reserved .invalid domain, such as ``erased-<hex>@invalid``.

    It is random instead of a hash of the real address, so a guessed address
    cannot be confirmed against it.
    """
    return f"{prefix}-{secrets.token_hex(8)}@invalid"


def chunks(values: Iterable[int]) -> Iterable[list[int]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start:start + CHUNK]


def attachment_digests(connection: Connection, message_ids: Collection[int]) -> set[str]:
    found: set[str] = set()
    for part in chunks(message_ids):
        found.update(
            connection.execute(
                select(attachments.c.sha256).where(attachments.c.message.in_(part))
            ).scalars()
        )
    return found


def delete_attachment_rows(connection: Connection, message_ids: Collection[int]) -> int:
    count = 0
    for part in chunks(message_ids):
        count += connection.execute(delete(attachments).where(attachments.c.message.in_(part))).rowcount
    return count


def delete_messages(connection: Connection, message_ids: Collection[int]) -> tuple[int, int]:
    """Delete messages and their attachment rows; return (messages, attachments) deleted."""
    attachment_count = delete_attachment_rows(connection, message_ids)
    message_count = 0
    for part in chunks(message_ids):
        message_count += connection.execute(delete(messages).where(messages.c.id.in_(part))).rowcount
    return message_count, attachment_count


@dataclass
class FilePlan:
    """Stored files to delete once the transaction has committed."""

    # (kind, sha256) of files whose last row is gone.
    released: set[tuple[str, str]] = field(default_factory=set)
    # Files of removed rows that other rows still use.
    still_used: int = 0
    # Files that no row named even before, such as the raw copy of a skipped duplicate.
    orphans: set[tuple[str, str]] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.released) + len(self.orphans)


def plan_file_deletion(
    connection: Connection, files: FileStore, candidates: Iterable[tuple[str, str]]
) -> FilePlan:
    """Decide which files to delete, inside the transaction that removed their rows.

    ``candidates`` are the files of the removed rows. Every other file that
    no row names is deleted too, because it can hold anyone's mail.
    """
    referenced = {kind: referenced_digests(connection, kind) for kind in KINDS}
    plan = FilePlan()
    candidate_set = {(kind, digest) for kind, digest in candidates if digest}
    for kind, digest in candidate_set:
        if digest in referenced[kind]:
            plan.still_used += 1
        else:
            plan.released.add((kind, digest))
    for kind in KINDS:
        for digest in files.digests(kind):
            if digest not in referenced[kind] and (kind, digest) not in candidate_set:
                plan.orphans.add((kind, digest))
    return plan


class DigestSet:
    """Sha256 digests, 32 bytes each in one sorted buffer, which can be tested for membership.

    A set of 100,000 hex strings takes about 15 MiB; this takes 3.2 MB, so the
    daily retention job of a large desk does not raise the daemon's peak memory.
    """

    def __init__(self, ordered_hex: Iterable[str]) -> None:
        """Build from hex digests in ascending order; repeats and values that are not hex are skipped."""
        self._buffer = bytearray()
        # Values that arrive out of order, such as uppercase hex: kept, never dropped,
        # because a digest missing here would get its file deleted.
        self._unordered: set[bytes] = set()
        last = b""
        for digest in ordered_hex:
            try:
                value = bytes.fromhex(digest)
            except ValueError:
                continue
            if len(value) != DIGEST_BYTES:
                continue
            if value > last:
                self._buffer += value
                last = value
            elif value < last:
                self._unordered.add(value)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        try:
            value = bytes.fromhex(digest)
        except ValueError:
            return False
        if len(value) != DIGEST_BYTES:
            return False
        if value in self._unordered:
            return True
        low, high = 0, len(self._buffer) // DIGEST_BYTES
        while low < high:
            middle = (low + high) // 2
            start = middle * DIGEST_BYTES
            found = self._buffer[start:start + DIGEST_BYTES]
            if found == value:
                return True
            if found < value:
                low = middle + 1
            else:
                high = middle
        return False


DIGEST_BYTES = 32


def referenced_digests(connection: Connection, kind: str) -> DigestSet:
    """Return the digests that any column of ``kind`` in STORED_FILE_COLUMNS names."""
    # Lowercase hex sorts like the bytes it encodes, so SQLite's order is the buffer's order.
    ordered = [
        connection.execute(select(column).distinct().order_by(column)).scalars()
        for column in STORED_FILE_COLUMNS[kind]
    ]
    return DigestSet(heapq.merge(*ordered))


def delete_files(files: FileStore, plan: FilePlan) -> int:
    """Delete the planned files and stale temporary files; return how many files were deleted."""
    deleted = 0
    for kind, digest in sorted(plan.released | plan.orphans):
        deleted += files.delete(kind, digest)
    stale = files.delete_temporary_files()
    if stale:
        log.info("deleted %d temporary files that an interrupted write left", stale)
    return deleted


def checkpoint_sqlite(engine: Engine, *, vacuum: bool) -> bool | None:
    """Move the WAL into the database file and truncate the WAL; VACUUM first if asked.

    With ``secure_delete`` on, deleted rows are zeroed in the database file,
    but their earlier versions stay in the WAL until a checkpoint. VACUUM
    also rewrites pages freed before ``secure_delete`` was on. Returns
    whether the checkpoint finished (False while another connection still
    reads an older snapshot), or None for a database that is not SQLite.
    """
    if engine.dialect.name != "sqlite":
        return None
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if vacuum:
            cursor.execute("VACUUM")
        busy, _log_frames, _checkpointed = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cursor.close()
    finally:
        raw.close()
    if busy:
        log.warning("WAL checkpoint incomplete: another connection is reading the database")
    return not busy
