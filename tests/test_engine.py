"""SQLite connection settings of the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from maildesk.db import SQLITE_CACHED_STATEMENTS, make_engine


def test_statement_cache_size(tmp_path: Path) -> None:
    """Each SQLite connection keeps at most SQLITE_CACHED_STATEMENTS prepared statements."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    seen: list[dict[str, Any]] = []

    @event.listens_for(engine, "do_connect")
    def record(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seen.append(dict(cparams))

    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert len(seen) == 1
    assert seen[0]["cached_statements"] == SQLITE_CACHED_STATEMENTS
    assert seen[0]["timeout"] == 30

