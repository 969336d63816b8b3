"""The systemd unit (verify, hardening, exposure score) and the daemon's sd_notify messages."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from faultkit import DaemonProcess, account_config
from maildesk.notify import Notifier
from servers import SmtpSink
from tests.mailkit import make_mail

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "maildesk.service"
# The score README.md states; systemd 252 (Debian 12) gives 1.2 for this unit.
MAX_EXPOSURE = 1.2

HARDENING = {
    "Type": "notify",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service",
}


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def runnable_unit(tmp_path: Path) -> Path:
    """Return a copy of the unit whose ExecStart names this checkout's maildesk, which verify checks."""
    command = Path(sys.executable).with_name("maildesk")
    copy = tmp_path / "maildesk.service"
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={command}", UNIT.read_text(encoding="utf-8"))
    copy.write_text(text, encoding="utf-8")
    return copy


@pytest.fixture
def systemd_analyze() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    return binary


@pytest.mark.parametrize("key", sorted(HARDENING))
def test_unit_sets_hardening(key: str) -> None:
    """The unit sets each required hardening option to the expected value."""
    assert HARDENING[key] in unit_settings().get(key, [])


def test_unit_has_watchdog_and_credentials() -> None:
    """The unit sets a watchdog and hands the passwords over with LoadCredential."""
    settings = unit_settings()

    assert ["15min"] == settings["WatchdogSec"]
    assert [
        "imap-password:/etc/maildesk/imap-password",
        "smtp-password:/etc/maildesk/smtp-password",
    ] == settings["LoadCredential"]


def test_unit_passes_verify(tmp_path: Path, systemd_analyze: str) -> None:
    """systemd-analyze verify finds nothing to report in the unit."""
    result = subprocess.run(
        [systemd_analyze, "verify", str(runnable_unit(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )

    assert 0 == result.returncode, result.stderr
    assert "" == result.stderr.strip()


def test_unit_exposure_score(tmp_path: Path, systemd_analyze: str) -> None:
    """systemd-analyze security rates the unit no worse than the score stated in README.md."""
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=true", str(runnable_unit(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)

    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_notifier_abstract_socket_address() -> None:
    """An "@" name is a Linux abstract socket: a leading NUL byte."""
    notifier = Notifier({"NOTIFY_SOCKET": "@maildesk-test"})

    assert b"\0maildesk-test" == notifier.address


def test_notifier_ignores_foreign_watchdog() -> None:
    """WATCHDOG_USEC meant for another process (WATCHDOG_PID) turns the watchdog off here."""
    notifier = Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"})

    assert notifier.watchdog_seconds is None


def test_notifier_without_socket_is_silent() -> None:
    """Outside systemd every call does nothing."""
    notifier = Notifier({})
    notifier.ready("x")

    assert not notifier.enabled


@pytest.mark.dovecot
def test_daemon_notifies_systemd(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """maildesk run sends READY with a STATUS after its first sync, WATCHDOG pings, and STOPPING at SIGTERM."""
    imap_account.append(make_mail())
    config_path = account_config(tmp_path, imap_account, smtp_sink)
    socket_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(socket_path))
    listener.settimeout(30)
    received: list[str] = []
    daemon = DaemonProcess(
        config_path, tmp_path / "daemon.log",
        env={"NOTIFY_SOCKET": str(socket_path), "WATCHDOG_USEC": "1500000"},
    ).start()
    try:
        while "WATCHDOG=1" not in received or not any(m.startswith("READY=1") for m in received):
            received.append(listener.recv(4096).decode())
    finally:
        code = daemon.terminate()
    try:
        while not received[-1].startswith("STOPPING=1"):
            received.append(listener.recv(4096).decode())
    finally:
        listener.close()

    ready = next(message for message in received if message.startswith("READY=1"))
    assert 0 == code
    assert re.fullmatch(
        r"READY=1\nSTATUS=last sync \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; open tickets 1; replies queued 0",
        ready,
    )
    assert "STOPPING=1\nSTATUS=stopping" in received
