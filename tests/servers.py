"""Private mail servers for the tests: a Dovecot IMAP instance and an aiosmtpd SMTP sink.

Both listen on 127.0.0.1 only. The Dovecot config is written for Dovecot 2.3 (Debian 12's
dovecot-imapd). Dovecot 2.4 uses a different syntax, for example
``passdb passwd-file { passwd_file_path = ... }``, so it is reported as unsupported.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import grp
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import string
import subprocess
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient, imap_utf7

from maildesk.config import MailboxSettings, SmtpSettings

LOOPBACK = "127.0.0.1"
DOVECOT_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")
SUPPORTED_DOVECOT = "2.3"
START_TIMEOUT = 10.0
CLIENT_TIMEOUT = 10.0

# Files that carry a Maildir folder's UIDVALIDITY in Dovecot 2.3. dovecot-uidlist
# stores it in its header and the indexes cache it. dovecot-keywords stays, so
# custom keywords keep their meaning.
_FOLDER_INDEX_FILES = (
    "dovecot.index",
    "dovecot.index.log",
    "dovecot.index.log.2",
    "dovecot.index.cache",
    "dovecot-uidlist",
)
# The mailbox list index in the Maildir root caches every folder's UIDVALIDITY for STATUS.
_LIST_INDEX_FILES = ("dovecot.list.index", "dovecot.list.index.log", "dovecot.list.index.log.2")

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


def unused_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


# --- Dovecot -------------------------------------------------------------------------


class DovecotUnavailable(Exception):
    """Dovecot is not installed here, or the installed version is not supported."""


def find_dovecot() -> str:
    """Return the path of a supported ``dovecot`` binary or raise DovecotUnavailable.

    /usr/sbin is searched too, because a non-root PATH often lacks it.
    """
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *DOVECOT_SBIN_DIRS])
    binary = shutil.which("dovecot", path=search_path)
    if binary is None:
        raise DovecotUnavailable(
            f"dovecot not found on PATH or in {', '.join(DOVECOT_SBIN_DIRS)}; "
            "install Debian's dovecot-imapd package"
        )
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not version.startswith(SUPPORTED_DOVECOT + "."):
        raise DovecotUnavailable(
            f"{binary} is version {version or '(unknown)'}, but the test config is written "
            f"for Dovecot {SUPPORTED_DOVECOT}"
        )
    return binary


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS-enabled Dovecot: server certificate chain and private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class _ProcessUsers:
    """Who Dovecot's processes run as, and who owns the mail."""

    login_user: str
    internal_user: str
    internal_group: str
    mail_uid: int
    mail_gid: int
    as_root: bool


def _process_users() -> _ProcessUsers:
    # Dovecot refuses to access mail as uid 0, so as root the mail belongs to the user nobody.
    # The dovenull and dovecot users come with Debian's dovecot-core package.
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        return _ProcessUsers(
            "dovenull", "dovecot", "dovecot", nobody.pw_uid, nobody.pw_gid, as_root=True
        )
    me = pwd.getpwuid(os.geteuid())
    group = grp.getgrgid(me.pw_gid).gr_name
    return _ProcessUsers(me.pw_name, me.pw_name, group, me.pw_uid, me.pw_gid, as_root=False)


_CONFIG = string.Template("""\
instance_name = $instance
base_dir = $root/run
state_dir = $root/state
log_path = $root/dovecot.log
protocols = imap
listen = $host
$ssl
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# No auth cache, so a new user or a changed password applies at the next login.
auth_cache_size = 0
# A failed login still takes about 0.5 s (measured with Dovecot 2.3.19).
auth_failure_delay = 0
default_login_user = $login_user
default_internal_user = $internal_user
default_internal_group = $internal_group
first_valid_uid = $mail_uid
first_valid_gid = $mail_gid
mail_location = maildir:~/Maildir
mail_fsync = never

# One file per user: Dovecot 2.3.19 did not see a user appended to a passwd-file it had
# read in the same second, but it reads a file that it has not opened yet at once.
passdb {
  driver = passwd-file
  args = $root/passwd.d/%u
}
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$root/mail/%u
}

namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
}

service imap-login {
  inet_listener imap {
    address = $host
    port = $imap_port
  }
  inet_listener imaps {
    address = $host
    port = $imaps_port
  }
$login_chroot}

# Without the penalty socket Dovecot skips its per-IP delay of up to 15 s after
# failed logins, which would slow down every later test.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
$anvil_chroot}
""")


class DovecotServer:
    """A private Dovecot 2.3 serving Maildir accounts on 127.0.0.1.

    Every file lives under ``root``. Without ``tls`` the server has ``ssl = no``, so it
    offers neither STARTTLS nor an implicit TLS port. With ``tls`` it offers STARTTLS
    on ``port`` and implicit TLS on ``imaps_port``.
    """

    _instances = itertools.count(1)

    def __init__(self, binary: str, root: Path, *, tls: TlsFiles | None = None) -> None:
        self.binary = binary
        self.root = root
        self.tls = tls
        self.host = LOOPBACK
        self.port = 0
        self.imaps_port = 0
        self.users = _process_users()
        self._process: subprocess.Popen[bytes] | None = None
        self._account_numbers = itertools.count(1)
        self._instance = f"maildesk-test-{os.getpid()}-{next(self._instances)}"

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def start(self, attempts: int = 3) -> None:
        """Start Dovecot in the foreground as a child process and wait for its IMAP port.

        A port taken between choosing and binding it is retried with a new one.
        """
        self._prepare_directories()
        for attempt in range(1, attempts + 1):
            self.port = unused_port()
            self.imaps_port = unused_port() if self.tls else 0
            self.config_path.write_text(self._render_config(), encoding="utf-8")
            try:
                self._launch()
                return
            except RuntimeError as error:
                if "Address already in use" not in str(error) or attempt == attempts:
                    raise

    def stop(self) -> None:
        """Stop Dovecot and its child processes."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of Dovecot's log and of its stderr, for error messages."""
        parts = []
        for path in (self.log_path, self.root / "stderr.log"):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace")
                parts.append("\n".join(text.splitlines()[-lines:]))
        return "\n".join(part for part in parts if part)

    def create_account(self) -> ImapAccount:
        """Add a user with a unique name, a random password and an empty Maildir."""
        number = next(self._account_numbers)
        username = f"user{number:04d}"
        password = secrets.token_urlsafe(12)
        self._write_passwd_entry(username, password)

        home = self.root / "mail" / username
        home.mkdir(mode=0o700)
        os.chown(home, self.users.mail_uid, self.users.mail_gid)
        account = ImapAccount(self, username, password, home / "Maildir")
        account.prepare()
        return account

    def _prepare_directories(self) -> None:
        # As root, the mail processes run as the user nobody and must reach root/mail.
        self.root.chmod(0o755)
        (self.root / "passwd.d").mkdir(mode=0o755, exist_ok=True)
        mail = self.root / "mail"
        mail.mkdir(mode=0o700, exist_ok=True)
        os.chown(mail, self.users.mail_uid, self.users.mail_gid)

    def _render_config(self) -> str:
        if self.tls is None:
            ssl_lines = "ssl = no"
        else:
            ssl_lines = f"ssl = yes\nssl_cert = <{self.tls.cert}\nssl_key = <{self.tls.key}"
        # chroot needs root, so a non-root Dovecot runs its login and anvil processes without it.
        chroot = "" if self.users.as_root else "  chroot =\n"
        return _CONFIG.substitute(
            instance=self._instance,
            root=self.root,
            host=self.host,
            ssl=ssl_lines,
            login_user=self.users.login_user,
            internal_user=self.users.internal_user,
            internal_group=self.users.internal_group,
            mail_uid=self.users.mail_uid,
            mail_gid=self.users.mail_gid,
            imap_port=self.port,
            imaps_port=self.imaps_port,
            login_chroot=chroot,
            anvil_chroot=chroot,
        )

    def _launch(self) -> None:
        with (self.root / "stderr.log").open("wb") as stderr:
            self._process = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"Dovecot exited during start:\n{self.log_tail()}")
            if self._sends_greeting():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"Dovecot did not accept connections on {self.host}:{self.port} "
            f"within {START_TIMEOUT} s:\n{self.log_tail()}"
        )

    def _sends_greeting(self) -> bool:
        # The port accepts connections as soon as it is bound, even if Dovecot then fails
        # to start, so only the IMAP greeting shows that it is ready.
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as probe:
                return probe.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def _write_passwd_entry(self, username: str, password: str) -> None:
        # Written under a temporary name and renamed, so Dovecot never reads half a file.
        # The auth process runs as the internal user and must be able to read it.
        target = self.root / "passwd.d" / username
        partial = target.with_name(f".{username}.partial")
        partial.write_text(f"{username}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
        partial.chmod(0o644)
        partial.replace(target)


class ImapAccount:
    """One user on a :class:`DovecotServer`, with helpers that set up mail for a test.

    Helpers use a private connection of their own, separate from :meth:`client`.
    """

    def __init__(self, server: DovecotServer, username: str, password: str, maildir: Path) -> None:
        self.server = server
        self.host = server.host
        self.port = server.port
        self.username = username
        self.password = password
        self.maildir = maildir
        self._clients: list[IMAPClient] = []
        self._helper: IMAPClient | None = None

    def settings(self, **overrides: Any) -> MailboxSettings:
        """Build ``[mailbox]`` settings for this account: plain IMAP unless overridden."""
        values: dict[str, Any] = {
            "section": "mailbox",
            "host": self.host,
            "port": self.port,
            "security": "none",
            "username": self.username,
            "password": self.password,
            "timeout": CLIENT_TIMEOUT,
        }
        values.update(overrides)
        return MailboxSettings(**values)

    def client(self) -> IMAPClient:
        """Open a new logged-in plain IMAP connection, logged out when the account closes."""
        client = _login(self.host, self.port, self.username, self.password)
        self._clients.append(client)
        return client

    def append(
        self,
        raw: bytes,
        folder: str = "INBOX",
        flags: Iterable[str | bytes] = (),
        internaldate: datetime | None = None,
    ) -> int:
        """APPEND ``raw`` to ``folder`` and return the UID from Dovecot's APPENDUID."""
        helper = self._helper_client()
        response = helper.append(folder, raw, flags=tuple(flags), msg_time=internaldate)
        match = _APPENDUID.search(response)
        if match is None:
            raise RuntimeError(f"APPEND to {folder!r} returned no APPENDUID: {response!r}")
        return int(match.group(2))

    def create_folder(self, name: str) -> None:
        """Create and subscribe folder ``name`` ("/" separates hierarchy levels)."""
        helper = self._helper_client()
        helper.create_folder(name)
        helper.subscribe_folder(name)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        """Return the folder's UIDVALIDITY from a STATUS on a fresh connection."""
        with _login(self.host, self.port, self.username, self.password) as client:
            return client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"]

    def reset_uidvalidity(self, folder: str = "INBOX") -> int:
        """Force a new UIDVALIDITY on ``folder`` and return it.

        Deletes the folder's Dovecot index files and uidlist, so Dovecot numbers the
        messages again from UID 1 under a new UIDVALIDITY. Connections opened before
        go stale: they keep the old UIDs, and a new SELECT on them fails with
        [SERVERBUG] (seen with Dovecot 2.3.19). Open new ones after the reset.
        """
        self._close_helper()
        before = self.uidvalidity(folder)

        folder_dir = self.folder_path(folder)
        for name in _FOLDER_INDEX_FILES:
            (folder_dir / name).unlink(missing_ok=True)
        for name in _LIST_INDEX_FILES:
            (self.maildir / name).unlink(missing_ok=True)

        after = self.uidvalidity(folder)
        if after == before:
            raise RuntimeError(
                f"UIDVALIDITY of {folder!r} stayed {before} after deleting its index files"
            )
        return after

    def folder_path(self, folder: str) -> Path:
        """Return the Maildir++ directory of ``folder``: the root for INBOX, else ``.A.B``."""
        if folder.upper() == "INBOX":
            return self.maildir
        encoded = imap_utf7.encode(folder).decode("ascii")
        path = self.maildir / ("." + encoded.replace("/", "."))
        if not path.is_dir():
            raise FileNotFoundError(f"folder {folder!r} has no Maildir directory at {path}")
        return path

    def prepare(self) -> None:
        """Log in once so that Dovecot creates the Maildir and the Sent folder."""
        self._helper_client().list_folders()

    def close(self) -> None:
        """Log out every connection this account opened."""
        self._close_helper()
        for client in self._clients:
            _logout_quietly(client)
        self._clients.clear()

    def _helper_client(self) -> IMAPClient:
        if self._helper is None:
            self._helper = _login(self.host, self.port, self.username, self.password)
        return self._helper

    def _close_helper(self) -> None:
        if self._helper is not None:
            _logout_quietly(self._helper)
            self._helper = None


def _login(host: str, port: int, username: str, password: str) -> IMAPClient:
    client = IMAPClient(host, port=port, ssl=False, timeout=CLIENT_TIMEOUT)
    # imapclient 4.1 sets imaplib's debug level to 5, which formats every response.
    client._imap.debug = 0
    client.login(username, password)
    return client


def _logout_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClient.Error):
        client.shutdown()


# --- SMTP sink -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the sink accepted, with its SMTP envelope."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: email.message.Message
    login: str | None


@dataclass(frozen=True)
class _Failure:
    code: int
    stage: str

    @property
    def reply(self) -> str:
        kind = "Temporary" if self.code < 500 else "Permanent"
        return f"{self.code} {self.code // 100}.0.0 {kind} failure requested by the test"


class _LoopbackController(Controller):
    """aiosmtpd Controller that binds port 0 and then records the port it got."""

    def _trigger_server(self) -> None:
        # aiosmtpd 1.4 connects to self.port to start the server, so set the real port first.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that stores every message it accepts.

    Without ``tls_context`` it speaks plain SMTP and accepts AUTH PLAIN and LOGIN with
    ``username``/``password`` in plain text. With ``tls_context`` it offers STARTTLS
    and AUTH only after it, or with ``implicit_tls`` it speaks TLS from the start.
    With ``offer_auth=False`` a plain sink does not offer AUTH at all. Logging in is
    optional, and each message records who logged in, if anyone did.
    """

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        offer_auth: bool = True,
    ) -> None:
        self.host = LOOPBACK
        self.username = "maildesk"
        self.password = secrets.token_urlsafe(12)
        self._messages: list[ReceivedMessage] = []
        self._failures: deque[_Failure] = deque()
        self._failing_envelopes: weakref.WeakKeyDictionary[Envelope, _Failure] = (
            weakref.WeakKeyDictionary()
        )
        self._changed = threading.Condition()

        smtp_options: dict[str, Any] = {"server_hostname": "localhost"}
        if offer_auth:
            smtp_options["authenticator"] = self._authenticate
            # aiosmtpd 1.4 counts only STARTTLS as TLS, not a TLS listening socket.
            smtp_options["auth_require_tls"] = tls_context is not None and not implicit_tls
        else:
            # aiosmtpd offers AUTH over plain text only when auth_require_tls is off.
            smtp_options["auth_require_tls"] = True
        if implicit_tls:
            smtp_options["ssl_context"] = tls_context
        elif tls_context is not None:
            smtp_options["tls_context"] = tls_context
        self._controller = _LoopbackController(self, hostname=self.host, port=0, **smtp_options)

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Return a snapshot of the accepted messages, oldest first."""
        with self._changed:
            return list(self._messages)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def settings(self, **overrides: Any) -> SmtpSettings:
        """Build ``[smtp]`` settings for this sink: plain SMTP unless overridden."""
        values: dict[str, Any] = {
            "section": "smtp",
            "host": self.host,
            "port": self.port,
            "security": "none",
            "username": self.username,
            "password": self.password,
            "timeout": CLIENT_TIMEOUT,
            "from_address": "tuki@example.fi",
        }
        values.update(overrides)
        return SmtpSettings(**values)

    def fail_next(self, code: int = 451, count: int = 1, *, stage: str = "DATA") -> None:
        """Reject the next ``count`` messages with ``code`` at the DATA or the RCPT stage.

        At the RCPT stage every recipient of a rejected message gets the same reply.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"code must be a 4xx or 5xx reply code, not {code}")
        if stage not in ("DATA", "RCPT"):
            raise ValueError(f'stage must be "DATA" or "RCPT", not {stage!r}')
        with self._changed:
            self._failures.extend(_Failure(code, stage) for _ in range(count))

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until at least ``count`` messages arrived and return them all.

        Raises TimeoutError if fewer arrived within ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"SMTP sink received {len(self._messages)} of {count} expected "
                    f"messages within {timeout} s"
                )
            return list(self._messages)

    # aiosmtpd handler hooks, run on the controller's event loop thread.

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        failure = self._failure_for(envelope, "RCPT")
        if failure is not None:
            return failure.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self._failure_for(envelope, "DATA")
        if failure is not None:
            return failure.reply
        raw = envelope.original_content or b""
        received = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            message=email.message_from_bytes(raw, policy=email.policy.default),
            login=session.auth_data if session.authenticated else None,
        )
        with self._changed:
            self._messages.append(received)
            self._changed.notify_all()
        return "250 2.0.0 Message accepted"

    def _failure_for(self, envelope: Envelope, stage: str) -> _Failure | None:
        # A message takes the next queued failure at its first RCPT (or at DATA)
        # and keeps it for the rest of its transaction.
        with self._changed:
            failure = self._failing_envelopes.get(envelope)
            if failure is None and self._failures and self._failures[0].stage == stage:
                failure = self._failures.popleft()
                self._failing_envelopes[envelope] = failure
            return failure if failure is not None and failure.stage == stage else None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if login == self.username and password == self.password:
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)


def make_dovecot_root() -> Path:
    """Create an empty directory for a Dovecot instance outside pytest's 0700 basetemp.

    As root, Dovecot's mail processes run as the user nobody and must be able to reach it.
    """
    return Path(tempfile.mkdtemp(prefix="maildesk-dovecot-"))
