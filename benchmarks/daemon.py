"""Peak memory of ``maildesk run`` while it imports a whole mailbox on its first start.

The daemon runs as a child process with an aiosmtpd sink as its SMTP server.
This process polls the daemon's SQLite database read-only until the folder's
stored highest UID reaches the last UID of the mailbox. The daemon then runs
``settle_seconds`` longer, so that the periodic jobs that were due during the
import (such as the keyword pass) run too. Then it gets SIGTERM and is reaped
with ``wait4``. Three figures come out:

- ``hwm_at_stored_kib``: the daemon's ``VmHWM`` read from ``/proc`` at the
  poll that saw the last message stored: its peak RSS up to the end of the import.
- ``max_rss_kib``: the daemon's ``VmHWM`` read just before SIGTERM, its peak
  RSS over its whole life, settling included. Not ``ru_maxrss`` from
  ``wait4``, which on Linux starts from the size of this benchmark process
  when it started the daemon (see benchmarks/rusage.py).
- ``tree_peak_kib``: the largest sum of ``VmRSS`` over the daemon and its
  child processes (parse workers) among the samples taken every
  ``sample_seconds`` from the first committed batch to SIGTERM. The schema
  migration that a first start runs in a child process comes before that and
  is not counted. Sampling can miss a short peak, so this figure is a lower
  bound.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.desk import VENV_BIN

# How long the daemon gets to exit after SIGTERM before it is killed. It
# promises to exit within 10 seconds.
STOP_TIMEOUT = 30.0


@dataclass
class DaemonResult:
    """One daemon run: time to import, peak memory figures (KiB) and the end of its log."""

    seconds: float
    max_rss_kib: int
    hwm_at_stored_kib: int
    tree_peak_kib: int
    returncode: int
    log_tail: str


def run_daemon_until_stored(
    config: Path,
    state_dir: Path,
    last_uid: int,
    *,
    folder: str = "INBOX",
    timeout: float = 7200.0,
    settle_seconds: float = 0.0,
    sample_seconds: float = 0.25,
) -> DaemonResult:
    """Run ``maildesk --config CONFIG run`` until ``folder`` is stored up to ``last_uid``.

    ``state_dir`` is the daemon's state directory, where its log is written
    too. After the last message is stored the daemon runs ``settle_seconds``
    longer before SIGTERM. Raises RuntimeError when the daemon exits before
    SIGTERM, or when it has not stored everything within ``timeout`` seconds
    (it is stopped first).
    """
    log_path = state_dir / "daemon.log"
    database = state_dir / "maildesk.sqlite3"
    began = time.perf_counter()
    with log_path.open("wb") as log_file:
        daemon = subprocess.Popen(
            [str(VENV_BIN / "maildesk"), "--config", str(config), "run"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    tree_peak = 0
    hwm_at_stored = 0
    stored_at: float | None = None
    failure = ""
    # Popen.poll() would reap the daemon without its resource usage, so wait4 does it.
    exited: tuple[int, int] | None = None
    try:
        while True:
            stored = stored_last_uid(database, folder)
            if stored > 0:
                tree_peak = max(tree_peak, tree_rss_kib(daemon.pid))
            exited = _reap(daemon, os.WNOHANG)
            if exited is not None:
                when = "after storing every message" if stored_at else "before storing every message"
                failure = f"maildesk run exited with {exited[0]} {when}"
                break
            now = time.perf_counter()
            if stored_at is None and stored >= last_uid:
                stored_at = now
                hwm_at_stored = proc_status_kib(daemon.pid, "VmHWM")
            if stored_at is not None and now - stored_at >= settle_seconds:
                break
            if stored_at is None and now - began > timeout:
                failure = f"maildesk run did not store UID {last_uid} of {folder} within {timeout:.0f} s"
                break
            time.sleep(sample_seconds)
    finally:
        returncode, max_rss = exited if exited is not None else _stop(daemon)
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
    if failure or stored_at is None:
        raise RuntimeError(f"{failure}:\n{tail}")
    return DaemonResult(
        seconds=stored_at - began, max_rss_kib=max_rss, hwm_at_stored_kib=hwm_at_stored,
        tree_peak_kib=tree_peak, returncode=returncode, log_tail=tail,
    )


def _stop(daemon: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Send SIGTERM, reap the daemon and return (exit code, its VmHWM just before, in KiB).

    Not ``ru_maxrss`` from ``wait4``: on Linux that starts from the size of this
    benchmark process when it started the daemon (see benchmarks/rusage.py).
    """
    peak = proc_status_kib(daemon.pid, "VmHWM")
    daemon.send_signal(signal.SIGTERM)
    # wait4 blocks, so a daemon that ignores SIGTERM is killed by a timer.
    killer = threading.Timer(STOP_TIMEOUT, _kill_quietly, args=(daemon.pid,))
    killer.start()
    try:
        reaped = _reap(daemon, 0)
    finally:
        killer.cancel()
    assert reaped is not None
    return reaped[0], peak


def _reap(daemon: subprocess.Popen[bytes], options: int) -> tuple[int, int] | None:
    """Reap the daemon with wait4 and return (exit code, ru_maxrss in KiB), or None while it runs."""
    pid, status, usage = os.wait4(daemon.pid, options)
    if pid == 0:
        return None
    daemon.returncode = os.waitstatus_to_exitcode(status)
    return daemon.returncode, usage.ru_maxrss


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stored_last_uid(database: Path, folder: str) -> int:
    """Return the highest UID the daemon has committed for ``folder``, or 0 before the first batch."""
    if not database.exists():
        return 0
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return 0
    try:
        row = connection.execute("SELECT last_uid FROM folders WHERE name = ?", (folder,)).fetchone()
    except sqlite3.OperationalError:
        # The migrations have not created the table yet.
        return 0
    finally:
        connection.close()
    return int(row[0]) if row else 0


def proc_status_kib(pid: int, field: str) -> int:
    """Return a ``/proc/PID/status`` field in KiB (VmRSS, VmHWM), or 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name == field:
                    return int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """Return the summed VmRSS of ``pid`` and all of its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        parent = _parent_pid(int(entry))
        if parent is not None:
            children.setdefault(parent, []).append(int(entry))
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        total += proc_status_kib(current, "VmRSS")
        pending.extend(children.get(current, []))
    return total


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in brackets may contain spaces, but the fields after it do not.
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[1])
