"""The daemon measurement of the benchmarks: its helpers and a tiny --big run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.daemon import proc_status_kib, stored_last_uid, tree_rss_kib
from benchmarks.run import build_parser, run_benchmarks


def test_last_uid_without_database(tmp_path: Path) -> None:
    """Before the daemon creates its database, nothing is stored."""
    assert stored_last_uid(tmp_path / "missing.sqlite3", "INBOX") == 0


def test_last_uid_before_migration(tmp_path: Path) -> None:
    """A database without the folders table yet counts as nothing stored."""
    database = tmp_path / "maildesk.sqlite3"
    sqlite3.connect(database).close()
    assert stored_last_uid(database, "INBOX") == 0


def test_last_uid_of_folder(tmp_path: Path) -> None:
    """The highest committed UID of the named folder is returned."""
    database = tmp_path / "maildesk.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE folders (name TEXT, last_uid INTEGER)")
        connection.execute("INSERT INTO folders VALUES ('INBOX', 41), ('Sent', 7)")
    connection.close()
    assert stored_last_uid(database, "INBOX") == 41


def test_status_of_missing_process() -> None:
    """A process that does not exist reads as 0 KiB (the PID is above Linux's maximum)."""
    assert proc_status_kib(2**22 + 12345, "VmRSS") == 0


def test_tree_rss_includes_children() -> None:
    """The tree's RSS is the parent's plus its child's."""
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '30']); time.sleep(30)"]
    )
    try:
        child = _wait_for_child(parent.pid)
        parent_kib = proc_status_kib(parent.pid, "VmRSS")
        child_kib = proc_status_kib(child, "VmRSS")
        assert child_kib > 0
        # A few pages may come and go between the three readings.
        assert tree_rss_kib(parent.pid) >= parent_kib + child_kib - 64
    finally:
        parent.kill()
        parent.wait()


def _wait_for_child(pid: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                return int(entry)
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no child within 10 s")


@pytest.mark.usefixtures("dovecot_binary")
def test_tiny_big_run() -> None:
    """--big imports its mailbox with sync --once and with the daemon, which stores every thread."""
    args = build_parser().parse_args([
        "--messages", "50", "--no-peer", "--no-growth", "--no-latency",
        "--big", "--big-messages", "120", "--big-settle", "0",
    ])
    report = run_benchmarks(args, "pytest")
    assert report.values["big_daemon_tickets"] == report.values["big_threads"]
    assert report.values["big_daemon_rss_kib"] > 0
    assert report.values["big_daemon_import_rss_kib"] > 0
    assert report.values["big_daemon_tree_kib"] > 0
    assert report.values["big_single_rss_kib"] > 0
    assert "maildesk run, until every message is stored" in report.render()
    assert "maildesk run with parse_processes = 0" in report.render()
