"""The rate-limit counts read a time range of the outbox through its created_at index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event

from maildesk.config import load_config
from maildesk.replyhistory import reply_history
from maildesk.service import Desk


def test_counts_use_created_index(tmp_path: Path) -> None:
    """Neither count scans the whole outbox: both search the created_at range."""
    config_path = tmp_path / "maildesk.toml"
    config_path.write_text(
        f'[desk]\nname = "Kauppa"\nsupport_address = "tuki@example.fi"\nstate_dir = "{tmp_path / "state"}"\n',
        encoding="utf-8",
    )
    desk = Desk.open(load_config(config_path))
    captured: list[tuple[str, tuple[object, ...]]] = []

    def capture(connection, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().startswith("SELECT outbox.recipient"):
            captured.append((statement, parameters))

    now = datetime.now(UTC)
    event.listen(desk.engine, "before_cursor_execute", capture)
    with desk.engine.connect() as connection:
        reply_history(
            connection, recipient="maija@example.com", ticket=None, now=now,
            domain_since=now - timedelta(hours=1), global_since=now - timedelta(hours=1),
            bounced_since=now - timedelta(days=7), is_agent=lambda address: False,
        )
        plans = [
            " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            for statement, parameters in captured
        ]
    desk.engine.dispose()

    assert 2 == len(plans)
    for plan in plans:
        assert "USING INDEX ix_outbox_created (created_at>?)" in plan
