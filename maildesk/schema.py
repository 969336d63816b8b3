"""Apply the Alembic migrations that create and change the database schema.

Alembic and the modules it loads add about 10 MiB to a process (measured with
alembic 1.20, SQLAlchemy 2.1 and Python 3.11), and a module once imported stays
for the life of the process. So :func:`upgrade` first reads the stored
revision with plain SQL and imports Alembic only when that revision is not
:data:`HEAD_REVISION`, and :func:`upgrade_in_child_process` runs Alembic in a
child process for the daemon, which then never imports it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from maildesk.errors import MaildeskError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest revision under migrations/versions. A new migration must change it
# too; tests/test_schema.py fails while it differs from Alembic's head.
HEAD_REVISION = "0007"


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def alembic_head() -> str:
    """Return the head revision that Alembic finds in the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def stored_revision(engine: Engine) -> str | None:
    """Return the revision recorded in the database, or None for a database without one.

    maildesk's migrations form one chain, so ``alembic_version`` contains at most one row.
    """
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as exc:
        if "no such table" not in str(exc.orig):
            raise
        return None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate the database to the newest schema; return the revisions before and after."""
    current = stored_revision(engine)
    if current == HEAD_REVISION:
        return current, HEAD_REVISION
    return _upgrade_with_alembic(engine)


def upgrade_in_child_process(engine: Engine) -> tuple[str | None, str]:
    """Migrate like :func:`upgrade`, but run Alembic in a child Python process.

    The child gets the database URL on stdin, so a password in it never shows
    in the process list. Raises MaildeskError when the child fails.
    """
    current = stored_revision(engine)
    if current == HEAD_REVISION:
        return current, HEAD_REVISION
    result = subprocess.run(
        [sys.executable, "-m", "maildesk.schema"],
        input=engine.url.render_as_string(hide_password=False),
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        log.error("database schema upgrade failed in the child process:\n%s", result.stderr.rstrip())
        last_line = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise MaildeskError(
            f"upgrading the database schema from {current or 'empty'} failed: {last_line}. "
            "Run `maildesk db upgrade` to see the whole error"
        )
    before, after = json.loads(result.stdout)
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "empty", after)
    return before, after


def _upgrade_with_alembic(engine: Engine) -> tuple[str | None, str]:
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = _alembic_config()
    head = alembic_head()
    with engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current != head:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            log.info("database schema upgraded from %s to %s", current or "empty", head)
    return current, head


def _main() -> int:
    """Upgrade the database whose URL is on stdin; print the revisions before and after as JSON."""
    from maildesk.db import make_engine

    engine = make_engine(sys.stdin.read().strip())
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    print(json.dumps([before, after]))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
