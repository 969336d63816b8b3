"""Stored mail, attachments and the database are readable by the service user only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from maildesk.storage import FileStore
from tests.casekit import make_desk
from tests.privacykit import build_scenario


@pytest.fixture(autouse=True)
def common_umask() -> Iterator[None]:
    """Run with umask 022, under which new files would be world-readable by default."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_dir_private(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The state directory is created with mode 0700."""
    scenario = build_scenario(make_desk(tmp_path, capsys), tmp_path / "mail")

    assert mode(scenario.desk.state_dir) == 0o700


def test_storage_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every stored raw mail and attachment is 0600 and every storage folder 0700."""
    scenario = build_scenario(make_desk(tmp_path, capsys), tmp_path / "mail")
    paths = [scenario.storage, *scenario.storage.rglob("*")]

    assert {mode(path) for path in paths if path.is_dir()} == {0o700}
    assert {mode(path) for path in paths if path.is_file()} == {0o600}
    assert sum(1 for path in paths if path.is_file()) == 12


def test_database_files_private(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The SQLite file and its WAL and shared-memory files are 0600."""
    scenario = build_scenario(make_desk(tmp_path, capsys), tmp_path / "mail")
    files = sorted(scenario.desk.state_dir.glob("maildesk.sqlite3*"))

    assert {path.name: mode(path) for path in files} == {
        "maildesk.sqlite3": 0o600,
        "maildesk.sqlite3-shm": 0o600,
        "maildesk.sqlite3-wal": 0o600,
    }


def test_new_storage_root_private(tmp_path: Path) -> None:
    """A storage path whose folders do not exist yet gets them with mode 0700."""
    root = tmp_path / "srv" / "maildesk-files"
    FileStore(root).put("raw", b"From: a@example.com\r\n\r\nhi\r\n")

    assert [mode(path) for path in (root, root / "raw")] == [0o700, 0o700]


def test_removed_folder_made_again(tmp_path: Path) -> None:
    """A store whose folders were removed while it ran creates them again, private."""
    root = tmp_path / "files"
    store = FileStore(root)
    content = b"From: a@example.com\r\n\r\nhi\r\n"
    digest = store.put("raw", content)
    os.unlink(store.path("raw", digest))
    os.rmdir(store.path("raw", digest).parent)

    store.put("raw", content)

    assert content == store.get("raw", digest)
    assert 0o700 == mode(store.path("raw", digest).parent)
