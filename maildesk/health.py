"""Failed folder syncs, stored for ``maildesk status``.

A folder that fails to sync (the server rejected SELECT, the connection
broke, the disk was full) gets a row in ``folder_errors`` with the error and
the time of its first failure. The folder's next successful sync deletes the
row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from maildesk.db import folder_errors

log = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000


def record_folder_errors(
    engine: Engine, names: Sequence[str], error: str, now: datetime
) -> None:
    """Store ``error`` as the last failure of each folder in ``names``.

    The database may be the thing that failed (locked, disk full), so a
    failure to store is logged and otherwise ignored.
    """
    error = error[:MAX_ERROR_LENGTH]
    try:
        with engine.begin() as connection:
            for name in names:
                _record(connection, name, error, now)
    except SQLAlchemyError as exc:
        log.warning("storing the sync error of %s failed: %s", ", ".join(names), exc)


def clear_folder_error(connection: Connection, name: str) -> None:
    """Forget the last failure of folder ``name``, inside the caller's transaction."""
    connection.execute(delete(folder_errors).where(folder_errors.c.name == name))


def _record(connection: Connection, name: str, error: str, now: datetime) -> None:
    failures = connection.execute(
        select(folder_errors.c.failures).where(folder_errors.c.name == name)
    ).scalar()
    if failures is None:
        connection.execute(
            insert(folder_errors).values(
                name=name, error=error, first_failed_at=now, last_failed_at=now, failures=1
            )
        )
    else:
        connection.execute(
            update(folder_errors)
            .where(folder_errors.c.name == name)
            .values(error=error, last_failed_at=now, failures=failures + 1)
        )
