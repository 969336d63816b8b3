"""The machine, Python and package versions that go with every result."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

from benchmarks.mailbox import find_dovecot

PACKAGES = ("IMAPClient", "mail-parser", "SQLAlchemy", "alembic", "APScheduler", "aiosmtpd",
            "lingua-language-detector", "Jinja2")


def describe() -> dict[str, str]:
    """Return the facts about this machine and its software, as name to text."""
    facts = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "dovecot": _dovecot_version(),
        "load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    for package in PACKAGES:
        try:
            facts[package] = version(package)
        except PackageNotFoundError:
            facts[package] = "not installed"
    return facts


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _dovecot_version() -> str:
    try:
        binary = find_dovecot()
    except Exception as exc:  # noqa: BLE001 - only reported
        return f"unavailable ({exc})"
    return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
