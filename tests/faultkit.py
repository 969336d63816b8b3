"""Helpers for the fault, IDLE and operations tests: configs, a daemon process, servers that fail."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from maildesk.config import Config, load_config
from maildesk.db import make_engine
from servers import DovecotServer, SmtpSink, make_dovecot_root

WAIT_SECONDS = 30.0


def write_config(
    tmp_path: Path,
    imap_port: int,
    imap_user: str,
    imap_password: str,
    smtp_sink: SmtpSink | None,
    extra: str = "",
    *,
    folders: tuple[str, ...] = ("INBOX",),
    poll_interval: int = 3600,
    batch_size: int = 200,
    idle: bool = True,
    existing: str = "all",
) -> Path:
    """Write a desk config for a Dovecot account and an SMTP sink; polling is slow unless set."""
    smtp = ""
    if smtp_sink is not None:
        smtp = f"""
            [smtp]
            host = "127.0.0.1"
            port = {smtp_sink.port}
            security = "none"
            username = "{smtp_sink.username}"
            password = "{smtp_sink.password}"
            from_address = "tuki@example.fi"
            timeout = 10
            """
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [desk]
            name = "Verkkokauppa"
            support_address = "tuki@example.fi"
            agents = ["myyja@example.fi"]
            state_dir = "{tmp_path / 'state'}"

            [mailbox]
            host = "127.0.0.1"
            port = {imap_port}
            security = "none"
            username = "{imap_user}"
            password = "{imap_password}"
            folders = {json.dumps(list(folders))}
            sent_folder = "Sent"
            append_to_sent = false
            poll_interval = {poll_interval}
            batch_size = {batch_size}
            idle = {"true" if idle else "false"}
            timeout = 10

            [import]
            existing = "{existing}"
            """
        )
        + textwrap.dedent(smtp)
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    return path


def account_config(tmp_path: Path, account: Any, smtp_sink: SmtpSink | None, extra: str = "", **options: Any) -> Path:
    """write_config for an ImapAccount."""
    return write_config(
        tmp_path, account.port, account.username, account.password, smtp_sink, extra, **options
    )


def rows(config: Config, table: Any) -> list[Any]:
    """Return every row of ``table`` in the desk's database, in primary key order."""
    engine = make_engine(config.database_url)
    try:
        with engine.connect() as connection:
            key = list(table.primary_key.columns)[0]
            return connection.execute(select(table).order_by(key)).all()
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_SECONDS, what: str = "condition") -> None:
    """Poll ``condition`` until it is true; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached within {timeout} s")


class DaemonProcess:
    """``maildesk run`` as a child process whose log goes to a file."""

    def __init__(self, config_path: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.env = dict(os.environ, **(env or {}))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *command: str) -> DaemonProcess:
        arguments = command or ("run",)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "maildesk", "--config", str(self.config_path), *arguments],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = WAIT_SECONDS, count: int = 1) -> None:
        """Wait until ``pattern`` (a regular expression) occurs ``count`` times in the log."""
        compiled = re.compile(pattern)
        try:
            wait_until(lambda: len(compiled.findall(self.log())) >= count, timeout, f"log line {pattern!r}")
        except TimeoutError as error:
            raise TimeoutError(f"{error}; log:\n{self.log()[-4000:]}") from None

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=15)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ConfigurableDovecot(DovecotServer):
    """A private Dovecot whose config gets extra lines, and which can restart on the same port."""

    def __init__(self, binary: str, extra_config: str = "", root: Path | None = None) -> None:
        super().__init__(binary, root or make_dovecot_root())
        self.extra_config = extra_config

    def _render_config(self) -> str:
        return super()._render_config() + "\n" + self.extra_config + "\n"

    def restart(self) -> None:
        """Stop and start again on the same port, closing every client connection on the way."""
        self.shut_down()
        self._launch()

    def shut_down(self) -> None:
        """Stop the master and the imap processes it leaves behind, as a system shutdown would."""
        self.stop()
        self._kill_leftovers()

    def remove(self) -> None:
        self.shut_down()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        # Dovecot 2.3's foreground master exits on SIGTERM without ending its imap,
        # log and stats processes, whose titles start with the instance name.
        marker = f"{self._instance}/".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in title:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass


@contextmanager
def private_dovecot(binary: str, extra_config: str = "") -> Iterator[ConfigurableDovecot]:
    server = ConfigurableDovecot(binary, extra_config)
    try:
        server.start()
        yield server
    finally:
        server.remove()


class SlowAcceptSink(SmtpSink):
    """An SMTP sink that stores each message at the end of DATA but delays its "250" reply.

    A real server has queued the message once it has read the final dot, so a
    client that dies while waiting for the reply has sent the message anyway.
    This sink makes that part of the duplicate window wide enough to hit.
    """

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)
        return reply


def load(config_path: Path) -> Config:
    return load_config(config_path)
