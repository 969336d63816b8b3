"""``maildesk backup FILE``: a consistent copy of the SQLite database while maildesk runs.

SQLite's online backup API copies the database page by page. Between steps
it lets the daemon write; a write by another connection makes the copy start
over, so the result is always one consistent state. The copy is written to a
temporary file beside FILE, checked with ``PRAGMA quick_check`` and then
renamed to FILE, so FILE is never a half-written database.

Raw messages and attachment files live under ``[storage] path``, not in the
database; back that folder up as well (the files never change once written).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from maildesk.db import sqlite_path
from maildesk.errors import MaildeskError

log = logging.getLogger(__name__)

PAGES_PER_STEP = 1024
BUSY_TIMEOUT_MS = 30000


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int


def backup_database(database_url: str, target: Path) -> BackupResult:
    """Copy the SQLite database at ``database_url`` to ``target`` (replacing it).

    Raises MaildeskError for a database that is not a SQLite file, a missing
    database, a target that is the database itself, or a failed copy.
    """
    source_path = sqlite_path(database_url)
    if source_path is None:
        raise MaildeskError(
            f"backup supports SQLite databases only, not {database_url.split(':', 1)[0]}; "
            "use your database's own backup tool"
        )
    if not source_path.is_file():
        raise MaildeskError(f"database {source_path} not found; nothing to back up")
    target = target.absolute()
    if target.is_dir():
        raise MaildeskError(f"{target} is a folder; give the name of the backup file")
    if target.exists() and target.samefile(source_path):
        raise MaildeskError(f"{target} is the database itself; choose another file")

    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        _copy(source_path, partial)
        partial.replace(target)
    except sqlite3.Error as exc:
        raise MaildeskError(f"backup of {source_path} to {target} failed: {exc}") from exc
    except OSError as exc:
        raise MaildeskError(
            f"backup of {source_path} to {target} failed: {exc.strerror or exc}"
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    size = target.stat().st_size
    log.info("database %s backed up to %s (%d bytes)", source_path, target, size)
    return BackupResult(target, size)


def _copy(source_path: Path, partial: Path) -> None:
    # The file is created private first, because it contains customers' mail.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    source = sqlite3.connect(source_path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        destination = sqlite3.connect(partial)
        try:
            source.backup(destination, pages=PAGES_PER_STEP)
            # The copy would keep the source's WAL mode; a backup should be one plain file.
            destination.execute("PRAGMA journal_mode=DELETE")
            result = destination.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise MaildeskError(f"the backup copy failed its integrity check: {result}")
        finally:
            destination.close()
    finally:
        source.close()
