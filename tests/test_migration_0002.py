"""Migration 0002 on a database that already contains messages."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from maildesk import views
from maildesk.db import make_engine
from maildesk.schema import _alembic_config, upgrade


def test_upgrade_keeps_old_messages(tmp_path: Path) -> None:
    """Messages stored before 0002 get visible_text "" and views show their full text there."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text(
            "INSERT INTO tickets (number, subject, subject_key, requester, requester_name, status,"
            " priority, language, created_at, updated_at)"
            " VALUES (1, 'Vanha', 'vanha', 'a@example.com', '', 'open', 'normal', 'fi',"
            " '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')"
        ))
        connection.execute(text(
            "INSERT INTO messages (ticket, direction, kind, dedupe_key, content_hash, in_reply_to,"
            " \"references\", from_addr, from_name, to_addrs, cc_addrs, reply_to, subject, stored_at,"
            " text, raw_sha256, size, defects)"
            " VALUES (1, 'inbound', 'customer', 'mid:old@example.com', 'h', '', '', 'a@example.com',"
            " '', '[]', '[]', '[]', 'Vanha', '2026-01-01T00:00:00+00:00', 'Vanha teksti', 'r', 1, '[]')"
        ))

    upgrade(engine)

    columns = {column["name"] for column in inspect(engine).get_columns("messages")}
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT visible_text FROM messages")).scalar_one()
        shown = views.show_ticket(connection, 1)["messages"][0]["visible_text"]
    assert "visible_text" in columns
    assert "bounced_recipients" in inspect(engine).get_table_names()
    assert "" == stored
    assert "Vanha teksti" == shown
