"""Apply the Alembic migrations that create and change the database schema."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate the database to the newest schema; return the revisions before and after."""
    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current != head:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            log.info("database schema upgraded from %s to %s", current or "empty", head)
    assert head is not None
    return current, head
