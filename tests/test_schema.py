"""Schema upgrades: Alembic is imported only when the stored revision is behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from maildesk.db import make_engine
from maildesk.errors import MaildeskError
from maildesk.schema import (
    HEAD_REVISION,
    alembic_head,
    stored_revision,
    upgrade,
    upgrade_in_child_process,
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, so its imports start from nothing."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )


def test_head_revision_is_alembic_head() -> None:
    """HEAD_REVISION names the newest migration script, so a new migration must update it."""
    assert HEAD_REVISION == alembic_head()


def test_stored_revision_of_new_database(tmp_path: Path) -> None:
    """A database without the alembic_version table has no revision."""
    engine = make_engine(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    assert stored_revision(engine) is None


def test_upgrade_new_database(tmp_path: Path) -> None:
    """A new database is migrated from nothing to the head."""
    engine = make_engine(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    assert upgrade(engine) == (None, HEAD_REVISION)
    assert stored_revision(engine) == HEAD_REVISION


def test_upgrade_current_database_again(tmp_path: Path) -> None:
    """A second upgrade finds the head and changes nothing."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine)
    assert upgrade(engine) == (HEAD_REVISION, HEAD_REVISION)


def test_current_database_skips_alembic(tmp_path: Path) -> None:
    """Opening a database at the head imports no Alembic module."""
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    upgrade(make_engine(url))
    result = run_python(f"""
        import sys
        from maildesk.db import make_engine
        from maildesk.schema import upgrade
        print(upgrade(make_engine({url!r})))
        print(sorted(name for name in sys.modules if name.split(".")[0] == "alembic"))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"('{HEAD_REVISION}', '{HEAD_REVISION}')", "[]"]


def test_child_process_upgrade_new_database(tmp_path: Path) -> None:
    """The child process creates the schema, and the calling process imports no Alembic module."""
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    result = run_python(f"""
        import sys
        from maildesk.db import make_engine
        from maildesk.schema import upgrade_in_child_process
        print(upgrade_in_child_process(make_engine({url!r})))
        print(sorted(name for name in sys.modules if name.split(".")[0] == "alembic"))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"(None, '{HEAD_REVISION}')", "[]"]
    tables = set(inspect(make_engine(url)).get_table_names())
    assert {"tickets", "messages", "outbox", "alembic_version"} <= tables


def test_child_process_upgrade_current_database(tmp_path: Path) -> None:
    """A database at the head starts no child process and returns the head twice."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine)
    assert upgrade_in_child_process(engine) == (HEAD_REVISION, HEAD_REVISION)


def test_child_process_upgrade_failure(tmp_path: Path) -> None:
    """A revision that no migration knows fails the upgrade with the child's error."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(MaildeskError) as raised:
        upgrade_in_child_process(engine)
    assert "upgrading the database schema from 9999 failed" in str(raised.value)
    assert "9999" in str(raised.value).partition("failed:")[2]
