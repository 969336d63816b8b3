"""The schema revision for agents' work keeps old tickets usable."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from maildesk.db import make_engine
from maildesk.schema import _alembic_config, upgrade


def test_closed_ticket_gets_closed_at(tmp_path: Path) -> None:
    """A ticket closed before the revision gets its last update as closed_at."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(text(
            "INSERT INTO tickets (subject, subject_key, requester, requester_name, status, priority, language,"
            " created_at, updated_at) VALUES ('s', 's', 'a@example.com', '', 'closed', 'normal', 'fi',"
            " '2026-11-01T10:00:00.000000+00:00', '2026-11-02T10:00:00.000000+00:00')"
        ))

    upgrade(engine)

    with engine.connect() as connection:
        row = connection.execute(text("SELECT closed_at, status_changed_at, linked_ticket FROM tickets")).one()
    assert "2026-11-02T10:00:00.000000+00:00" == row.closed_at
    assert "2026-11-02T10:00:00.000000+00:00" == row.status_changed_at
    assert row.linked_ticket is None
