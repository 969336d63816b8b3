"""Load and check ``config.toml``.

The file is read once into frozen dataclasses. Every invalid value raises
:class:`ConfigError` with the file, the key, the value and what would be
valid, so a bad config fails at start and not at the first mail.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maildesk.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/maildesk/config.toml")
DEFAULT_STATE_DIR = Path("/var/lib/maildesk")
PRIORITIES = ("low", "normal", "high", "urgent")
SECURITY_MODES = ("tls", "starttls", "none")
LANGUAGES = ("fi", "sv", "en")
RULE_MATCH_KEYS = ("from", "to", "subject", "body", "header")

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_EXISTING = re.compile(r"^(none|all|since:(\d+)d)$")


AUTH_METHODS = ("password", "xoauth2")


@dataclass(frozen=True, kw_only=True)
class OAuthSettings:
    """XOAUTH2 login: access tokens from the OAuth 2.0 refresh-token grant at ``token_url``."""

    token_url: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    refresh_token: str = field(repr=False)
    # Space-separated scopes to request; empty requests the scopes the refresh token has.
    scope: str = ""
    # Where a refresh token that the provider replaced is kept, in the state directory.
    cache_file: Path | None = None


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Connection settings shared by ``[mailbox]`` and ``[smtp]``."""

    section: str
    host: str
    port: int
    security: str
    username: str
    password: str = field(repr=False)
    timeout: float = 60.0
    ca_file: Path | None = None
    # "password", or "xoauth2" with an empty password and ``oauth`` set.
    auth: str = "password"
    oauth: OAuthSettings | None = None


@dataclass(frozen=True, kw_only=True)
class MailboxSettings(ServerSettings):
    folders: tuple[str, ...] = ("INBOX",)
    sent_folder: str = "Sent"
    append_to_sent: bool = True
    poll_interval: int = 60
    batch_size: int = 200
    # Wait for new mail with IMAP IDLE where the server offers it, besides polling.
    idle: bool = True


@dataclass(frozen=True, kw_only=True)
class SmtpSettings(ServerSettings):
    from_address: str


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One ``[[rules]]`` entry. Every given pattern must match for the rule to apply."""

    name: str
    patterns: dict[str, re.Pattern[str]]
    priority: str | None = None
    tags: tuple[str, ...] = ()
    autoreply: bool | None = None
    stop: bool = False


@dataclass(frozen=True, kw_only=True)
class AutoreplySettings:
    enabled: bool = True
    max_age: timedelta = timedelta(hours=1)
    per_sender_window: timedelta = timedelta(hours=4)
    # Expected answer time per priority, as shown to the customer.
    targets: dict[str, timedelta] = field(
        default_factory=lambda: {
            "urgent": timedelta(hours=4),
            "high": timedelta(hours=8),
            "normal": timedelta(days=1),
            "low": timedelta(days=3),
        }
    )
    templates: Path | None = None
    # The stated answer time is the later of the target and this percentile of the measured
    # first-response times of the same priority within estimate_window; 0 turns it off.
    estimate_percentile: int = 80
    estimate_window: timedelta = timedelta(days=30)
    # Fewer measured tickets than this leave the target alone.
    estimate_min_tickets: int = 5
    reopened_reply: bool = True
    closed_reply: bool = False
    # Limits on auto-replies of every kind; a limit of 0 turns that limit off.
    per_domain_limit: int = 50
    per_domain_window: timedelta = timedelta(hours=1)
    global_limit: int = 200
    global_window: timedelta = timedelta(hours=1)
    per_ticket_limit: int = 3
    # No auto-reply goes to an address for this long after a reply to it bounced.
    hard_bounce_block: timedelta = timedelta(days=30)
    faq: tuple[FaqEntry, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FaqEntry:
    """One ``[[autoreply.faq]]`` entry: a short answer added to replies whose mail matches."""

    name: str
    pattern: re.Pattern[str]
    # Answer text and optional link per language code; a language without text gets nothing.
    texts: dict[str, str]
    urls: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class HoursSettings:
    """``[hours]``: when the shop answers, for due times and the times stated in replies."""

    time_zone: str = "Europe/Helsinki"
    # ISO 3166 code of the country whose public holidays close the shop; "" for none.
    country: str = "FI"
    # Christmas Eve (24 December) and Midsummer Eve (the Friday from 19 to 25 June).
    closed_eves: bool = True
    # Inclusive (first, last) date ranges when the shop is closed, such as a summer break.
    closed_dates: tuple[tuple[date, date], ...] = ()
    # Opening intervals per weekday, Monday first, in minutes after local midnight;
    # an end of 1440 is midnight at the end of the day.
    week: tuple[tuple[tuple[int, int], ...], ...] = (((480, 960),),) * 5 + ((),) * 2


@dataclass(frozen=True, kw_only=True)
class ThreadingSettings:
    """``[threading]``: the fallbacks used when no header links a mail to a ticket."""

    # Join the sender's ticket with the same subject (prefixes stripped) when nothing else does.
    subject_fallback: bool = True
    subject_fallback_window: timedelta = timedelta(days=7)
    # A customer reply to a ticket closed longer ago than this opens a new ticket that
    # links the old one; zero lets every reply reopen its ticket.
    reopen_limit: timedelta = timedelta(days=30)
    # Besides agents, the addresses (or "@domain") whose forwards of a customer's mail
    # into the support mailbox open a ticket for that customer.
    forwarders: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """``[agents]``: commands by mail, ownership notices and auto-close."""

    # Character between the support address's local part and a command: tuki+close@.
    plus_separator: str = "+"
    # authserv-id of the receiving server whose Authentication-Results header is trusted;
    # empty means commands are not checked against DKIM, SPF or DMARC.
    trusted_authserv_id: str = ""
    second_agent_notice: bool = True
    # Pending tickets without a customer reply for this long are closed; zero turns it off.
    auto_close_after: timedelta = timedelta(days=7)
    # Whether the customer gets the auto_close template when a ticket is closed so.
    auto_close_notice: bool = False


@dataclass(frozen=True, kw_only=True)
class KeywordSettings:
    """``[keywords]``: ticket state shown as IMAP keywords or Gmail labels."""

    enabled: bool = True
    prefix: str = "md:"
    # Folder for the messages of closed tickets; empty leaves them where they are.
    closed_folder: str = ""
    # Maximum number of messages one keyword pass changes on the server (stored or moved).
    # The next pass continues with the rest.
    max_updates_per_pass: int = 500


@dataclass(frozen=True, kw_only=True)
class DigestSettings:
    """``[digest]``: the overdue digest mailed to agents on the business days of ``[hours]``."""

    # Times of day in the time zone of [hours] at which the digest is sent; empty turns it off.
    times: tuple[time, ...] = (time(8, 0),)
    # Default: every address listed in desk.agents ("@domain" entries name nobody).
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    """``[retention]``: how long data of closed tickets is kept.

    Each time counts from the ticket's closing, and for mail on no ticket
    from when it was stored. None sets no limit of its own: the data then
    stays until a later stage removes its message or ticket, or forever.
    """

    # Raw messages and attachment files, and the raw copies of sent replies.
    raw_mail_and_attachments: timedelta | None = None
    # Messages with their text, addresses and names, and the sent replies; the
    # ticket keeps only metadata without personal data.
    message_text: timedelta | None = None
    # The ticket rows themselves, that is the metadata kept for statistics.
    ticket_metadata: timedelta | None = None


MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class LimitSettings:
    """``[limits]``: the most maildesk takes from one message; the rest is left out and noted."""

    # Bytes. A larger message is fetched only up to this size.
    max_message_size: int = 25 * MIB
    max_attachment_size: int = 20 * MIB
    # To and Cc addresses kept per message.
    max_recipients: int = 200


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """``[metrics]``: Prometheus metrics of ``maildesk run`` over HTTP on a loopback address."""

    enabled: bool = False
    address: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True, kw_only=True)
class Config:
    path: Path | None
    name: str
    support_address: str
    language: str = "fi"
    agents: tuple[str, ...] = ()
    own_addresses: tuple[str, ...] = ()
    state_dir: Path = DEFAULT_STATE_DIR
    mailbox: MailboxSettings | None = None
    smtp: SmtpSettings | None = None
    database_url: str = ""
    storage_path: Path = Path()
    autoreply: AutoreplySettings = field(default_factory=AutoreplySettings)
    rules: tuple[Rule, ...] = ()
    existing: str = "since:7d"
    # Processes that parse fetched mail beside the main one during a large sync; 0 parses in it.
    parse_processes: int = 1
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    threading: ThreadingSettings = field(default_factory=ThreadingSettings)
    agent_settings: AgentSettings = field(default_factory=AgentSettings)
    keywords: KeywordSettings = field(default_factory=KeywordSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    hours: HoursSettings = field(default_factory=HoursSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @property
    def support_domain(self) -> str:
        return self.support_address.rpartition("@")[2]

    @property
    def existing_days(self) -> int | None:
        """Return N for ``since:Nd``, else None."""
        match = _EXISTING.match(self.existing)
        return int(match.group(2)) if match and match.group(2) else None

    def is_agent(self, address: str) -> bool:
        """Return whether ``address`` is an agent (listed, or in a listed ``@domain``)."""
        address = address.lower()
        domain = "@" + address.rpartition("@")[2]
        return address in self.agents or domain in self.agents

    def is_own(self, address: str) -> bool:
        """Return whether ``address`` is the support address, the SMTP sender or one of ``own_addresses``."""
        address = address.lower()
        if self.smtp is not None and address == self.smtp.from_address:
            return True
        return address == self.support_address or address in self.own_addresses

    def require_mailbox(self) -> MailboxSettings:
        if self.mailbox is None:
            raise ConfigError(f"{self._where()}: section [mailbox] is missing; add it to connect")
        return self.mailbox

    def require_smtp(self) -> SmtpSettings:
        if self.smtp is None:
            raise ConfigError(f"{self._where()}: section [smtp] is missing; add it to send mail")
        return self.smtp

    def _where(self) -> str:
        return str(self.path) if self.path else "configuration"


def default_config_path() -> Path:
    """Return ``$MAILDESK_CONFIG`` when set, else ``/etc/maildesk/config.toml``."""
    env = os.environ.get("MAILDESK_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(path: Path) -> Config:
    """Read and check the TOML file at ``path``."""
    try:
        content = path.read_bytes()
        # Editors on Windows may start the file with a byte order mark, which TOML does not allow.
        text = content.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        data = tomllib.loads(text)
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; pass the configuration file itself") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 (invalid byte at offset {exc.start}); save the file as UTF-8"
        ) from None
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file not found; copy config.example.toml there "
            "or pass --config FILE"
        ) from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, path=path)


def parse_config(data: dict[str, Any], *, path: Path | None = None) -> Config:
    """Check a decoded TOML document and build a :class:`Config`."""
    reader = _Reader(path)
    known = {
        "desk", "mailbox", "smtp", "database", "storage", "autoreply", "rules", "import", "retention",
        "threading", "agents", "keywords", "digest", "hours", "limits", "metrics",
    }
    # Each section is checked even when an earlier one failed, so one run of
    # check-config names the invalid key of every section at once.
    errors: list[str] = []

    def checked(build: Callable[[], Any]) -> Any:
        try:
            return build()
        except ConfigError as exc:
            errors.append(str(exc))
            return None

    checked(lambda: reader.reject_unknown(data, known, ""))
    desk = reader.table(data, "desk", required=True)
    checked(lambda: reader.reject_unknown(
        desk, {"name", "support_address", "language", "agents", "own_addresses", "state_dir"}, "desk"
    ))
    support = checked(lambda: reader.address(desk, "desk.support_address", required=True))
    default_state = os.environ.get("STATE_DIRECTORY") or str(DEFAULT_STATE_DIR)
    state_dir = checked(lambda: _relative_to(path, reader.string(desk, "desk.state_dir", default_state)))
    if state_dir is None:
        # Later sections derive default paths from it; their own errors still count.
        state_dir = Path(default_state)

    def existing_value() -> str:
        imports = reader.table(data, "import")
        reader.reject_unknown(imports, {"existing", "parse_processes"}, "import")
        value = reader.string(imports, "import.existing", "since:7d")
        if not _EXISTING.match(value):
            reader.fail("import.existing", value, 'one of "none", "all" or "since:<days>d", such as "since:7d"')
        return value

    def parse_processes() -> int:
        imports = reader.table(data, "import")
        return reader.integer(imports, "import.parse_processes", 1, minimum=0, maximum=16)

    def database_url() -> str:
        database = reader.table(data, "database")
        reader.reject_unknown(database, {"url"}, "database")
        return _database_url(reader, database, state_dir)

    def storage_path() -> Path:
        storage = reader.table(data, "storage")
        reader.reject_unknown(storage, {"path"}, "storage")
        return _relative_to(path, reader.string(storage, "storage.path", str(state_dir / "storage")))

    values = {
        "name": checked(lambda: reader.string(desk, "desk.name", "maildesk")),
        "language": checked(lambda: reader.choice(desk, "desk.language", LANGUAGES, "fi")),
        "agents": checked(lambda: reader.address_list(desk, "desk.agents", allow_domains=True)),
        "own_addresses": checked(lambda: reader.address_list(desk, "desk.own_addresses")),
        "mailbox": checked(lambda: _with_token_cache(_mailbox(reader, data), state_dir)),
        "smtp": checked(lambda: _with_token_cache(_smtp(reader, data), state_dir)),
        "database_url": checked(database_url),
        "storage_path": checked(storage_path),
        "autoreply": checked(lambda: _autoreply(reader, data)),
        "rules": checked(lambda: _rules(reader, data)),
        "existing": checked(existing_value),
        "parse_processes": checked(parse_processes),
        "retention": checked(lambda: _retention(reader, data)),
        "threading": checked(lambda: _threading(reader, data)),
        "agent_settings": checked(lambda: _agent_settings(reader, data)),
        "keywords": checked(lambda: _keywords(reader, data)),
        "digest": checked(lambda: _digest(reader, data)),
        "hours": checked(lambda: _hours(reader, data)),
        "limits": checked(lambda: _limits(reader, data)),
        "metrics": checked(lambda: _metrics(reader, data)),
    }
    if errors:
        raise ConfigError("\n".join(errors))
    return Config(path=path, support_address=support, state_dir=state_dir, **values)


def _server_fields(reader: _Reader, table: dict[str, Any], section: str) -> dict[str, Any]:
    host = reader.string(table, f"{section}.host", required=True)
    security = reader.choice(table, f"{section}.security", SECURITY_MODES, "tls")
    default_port = {
        ("mailbox", "tls"): 993,
        ("mailbox", "starttls"): 143,
        ("mailbox", "none"): 143,
        ("smtp", "tls"): 465,
        ("smtp", "starttls"): 587,
        ("smtp", "none"): 25,
    }[(section, security)]
    port = reader.integer(table, f"{section}.port", default_port, minimum=1, maximum=65535)
    if security == "none" and not is_loopback(host):
        reader.fail(
            f"{section}.security",
            "none",
            f'"tls" or "starttls", because {host} is not a loopback host and the password '
            "would cross the network in plain text",
        )
    ca_file = reader.string(table, f"{section}.ca_file", "")
    return {
        "section": section,
        "host": host,
        "port": port,
        "security": security,
        "username": reader.string(table, f"{section}.username", required=True),
        **_credentials(reader, table, section),
        "timeout": float(reader.integer(table, f"{section}.timeout", 60, minimum=1, maximum=3600)),
        "ca_file": Path(ca_file) if ca_file else None,
    }


_OAUTH_KEYS = {
    "oauth_token_url", "oauth_client_id", "oauth_scope",
    "oauth_client_secret", "oauth_client_secret_file", "oauth_client_secret_env",
    "oauth_refresh_token", "oauth_refresh_token_file", "oauth_refresh_token_env",
}
_SERVER_KEYS = {
    "host", "port", "security", "username", "password", "password_file", "password_env",
    "timeout", "ca_file", "auth",
} | _OAUTH_KEYS


def _credentials(reader: _Reader, table: dict[str, Any], section: str) -> dict[str, Any]:
    auth = reader.choice(table, f"{section}.auth", AUTH_METHODS, "password")
    if auth == "password":
        return {"auth": auth, "password": _password(reader, table, section)}
    for key in ("password", "password_file", "password_env"):
        if key in table:
            # The value is a secret, so the message names only the key.
            reader.fail(f"{section}.{key}", "(set)", f'no password when {section}.auth = "xoauth2"')
    token_url = reader.string(table, f"{section}.oauth_token_url", required=True)
    host = urllib.parse.urlsplit(token_url).hostname or ""
    if not (token_url.startswith("https://") or (token_url.startswith("http://") and is_loopback(host))):
        reader.fail(
            f"{section}.oauth_token_url", token_url,
            "an https:// URL (http:// only for a loopback host), because it carries the refresh token",
        )
    oauth = OAuthSettings(
        token_url=token_url,
        client_id=reader.string(table, f"{section}.oauth_client_id", required=True),
        client_secret=_secret(reader, table, section, "oauth_client_secret", required=False),
        refresh_token=_secret(reader, table, section, "oauth_refresh_token", required=True),
        scope=reader.string(table, f"{section}.oauth_scope", ""),
    )
    return {"auth": auth, "password": "", "oauth": oauth}


def _with_token_cache(settings: Any, state_dir: Path) -> Any:
    """Give XOAUTH2 settings their file for replaced refresh tokens in the state directory."""
    if settings is None or settings.oauth is None:
        return settings
    oauth = dataclasses.replace(settings.oauth, cache_file=state_dir / f"oauth-{settings.section}.json")
    return dataclasses.replace(settings, oauth=oauth)


def _mailbox(reader: _Reader, data: dict[str, Any]) -> MailboxSettings | None:
    if "mailbox" not in data:
        return None
    table = reader.table(data, "mailbox")
    reader.reject_unknown(
        table,
        _SERVER_KEYS
        | {"folders", "sent_folder", "append_to_sent", "poll_interval", "batch_size", "idle"},
        "mailbox",
    )
    sent_folder = reader.string(table, "mailbox.sent_folder", "Sent")
    # Agents' replies sent from the shared mailbox land in the Sent folder, so it is read too.
    folders = reader.string_list(table, "mailbox.folders", ["INBOX", sent_folder])
    if not folders:
        reader.fail("mailbox.folders", "[]", 'a list with at least one folder, such as ["INBOX"]')
    return MailboxSettings(
        **_server_fields(reader, table, "mailbox"),
        folders=tuple(dict.fromkeys(folders)),
        sent_folder=sent_folder,
        append_to_sent=reader.boolean(table, "mailbox.append_to_sent", True),
        poll_interval=reader.integer(table, "mailbox.poll_interval", 60, minimum=5, maximum=86400),
        batch_size=reader.integer(table, "mailbox.batch_size", 200, minimum=1, maximum=5000),
        idle=reader.boolean(table, "mailbox.idle", True),
    )


def _smtp(reader: _Reader, data: dict[str, Any]) -> SmtpSettings | None:
    if "smtp" not in data:
        return None
    table = reader.table(data, "smtp")
    reader.reject_unknown(table, _SERVER_KEYS | {"from_address"}, "smtp")
    return SmtpSettings(
        **_server_fields(reader, table, "smtp"),
        from_address=reader.address(table, "smtp.from_address", required=True),
    )


def _relative_to(config_path: Path | None, value: str) -> Path:
    """Return ``value`` as a path, a relative one taken from the config file's folder.

    The working directory is no anchor: under systemd it is ``/``.
    """
    path = Path(value)
    if path.is_absolute() or config_path is None:
        return path
    return config_path.resolve().parent / path


def _database_url(reader: _Reader, table: dict[str, Any], state_dir: Path) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    value = reader.string(table, "database.url", f"sqlite:///{state_dir / 'maildesk.sqlite3'}")
    try:
        make_url(value).get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ValueError):
        reader.fail("database.url", value, 'a SQLAlchemy URL such as "sqlite:////var/lib/maildesk/maildesk.sqlite3"')
    except ImportError as exc:
        reader.fail("database.url", value, f"a database whose driver is installed ({exc})")
    return value


def _password(reader: _Reader, table: dict[str, Any], section: str) -> str:
    return _secret(reader, table, section, "password", required=True)


def _secret(reader: _Reader, table: dict[str, Any], section: str, base: str, *, required: bool) -> str:
    """Read the secret ``base`` given as ``base``, ``base_file`` or ``base_env``; "" when optional and unset."""
    keys = (base, f"{base}_file", f"{base}_env")

    given = [key for key in keys if key in table]
    if len(given) > 1 or (required and not given):
        reader.fail(
            f"{section}.{base}",
            ", ".join(given) or "(none)",
            f"{'exactly' if required else 'at most'} one of {keys[0]}, {keys[1]} or {keys[2]}",
        )
    if not given:
        return ""
    key = given[0]
    value = reader.string(table, f"{section}.{key}", required=True)
    if key == base:
        return value
    if key.endswith("_env"):
        secret = os.environ.get(value)
        if secret is None:
            reader.fail(f"{section}.{key}", value, "the name of a set environment variable")
        return secret
    secret_path = Path(value)
    if not secret_path.is_absolute():
        # systemd's LoadCredential= hands the file to the service in $CREDENTIALS_DIRECTORY;
        # a command run by hand finds the same name beside the config file.
        if os.environ.get("CREDENTIALS_DIRECTORY"):
            secret_path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / secret_path
        elif reader.path is not None:
            secret_path = reader.path.parent / secret_path
    try:
        secret = secret_path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        reader.fail(f"{section}.{key}", value, f"a readable file ({exc.strerror})")
        raise AssertionError("unreachable") from None
    except UnicodeDecodeError:
        reader.fail(f"{section}.{key}", value, "a file in UTF-8")
    if not secret:
        reader.fail(f"{section}.{key}", value, "a file that contains the password, not an empty one")
    return secret


def _autoreply(reader: _Reader, data: dict[str, Any]) -> AutoreplySettings:
    table = reader.table(data, "autoreply")
    reader.reject_unknown(table, _AUTOREPLY_KEYS, "autoreply")
    defaults = AutoreplySettings()
    targets = dict(defaults.targets)
    target_table = reader.table(table, "targets", prefix="autoreply.")
    reader.reject_unknown(target_table, set(PRIORITIES), "autoreply.targets")
    for priority in PRIORITIES:
        if priority in target_table:
            targets[priority] = reader.duration(target_table, f"autoreply.targets.{priority}", None)
    templates = reader.string(table, "autoreply.templates", "")
    return AutoreplySettings(
        enabled=reader.boolean(table, "autoreply.enabled", True),
        max_age=reader.duration(table, "autoreply.max_age", defaults.max_age),
        per_sender_window=reader.duration(
            table, "autoreply.per_sender_window", defaults.per_sender_window
        ),
        targets=targets,
        templates=Path(templates) if templates else None,
        estimate_percentile=reader.integer(
            table, "autoreply.estimate_percentile", defaults.estimate_percentile,
            minimum=0, maximum=100,
        ),
        estimate_window=reader.duration(table, "autoreply.estimate_window", defaults.estimate_window),
        estimate_min_tickets=reader.integer(
            table, "autoreply.estimate_min_tickets", defaults.estimate_min_tickets,
            minimum=1, maximum=100000,
        ),
        reopened_reply=reader.boolean(table, "autoreply.reopened_reply", True),
        closed_reply=reader.boolean(table, "autoreply.closed_reply", False),
        per_domain_limit=reader.integer(
            table, "autoreply.per_domain_limit", defaults.per_domain_limit,
            minimum=0, maximum=1000000,
        ),
        per_domain_window=reader.duration(
            table, "autoreply.per_domain_window", defaults.per_domain_window
        ),
        global_limit=reader.integer(
            table, "autoreply.global_limit", defaults.global_limit, minimum=0, maximum=1000000
        ),
        global_window=reader.duration(table, "autoreply.global_window", defaults.global_window),
        per_ticket_limit=reader.integer(
            table, "autoreply.per_ticket_limit", defaults.per_ticket_limit, minimum=0, maximum=1000
        ),
        hard_bounce_block=reader.duration(
            table, "autoreply.hard_bounce_block", defaults.hard_bounce_block
        ),
        faq=_faq_entries(reader, table),
    )


_AUTOREPLY_KEYS = {
    "enabled", "max_age", "per_sender_window", "targets", "templates", "estimate_percentile",
    "estimate_window", "estimate_min_tickets", "reopened_reply", "closed_reply",
    "per_domain_limit", "per_domain_window", "global_limit", "global_window", "per_ticket_limit",
    "hard_bounce_block", "faq",
}


def _faq_entries(reader: _Reader, table: dict[str, Any]) -> tuple[FaqEntry, ...]:
    raw_entries = table.get("faq", [])
    if not isinstance(raw_entries, list):
        reader.fail("autoreply.faq", raw_entries, "an array of tables written as [[autoreply.faq]]")
    entries = []
    for index, entry in enumerate(raw_entries):
        where = f"autoreply.faq[{index}]"
        if not isinstance(entry, dict):
            reader.fail(where, entry, "a table written as [[autoreply.faq]]")
        reader.reject_unknown(entry, {"name", "match", "url", *LANGUAGES}, where)
        texts = {lang: reader.string(entry, f"{where}.{lang}", "") for lang in LANGUAGES}
        texts = {lang: text.strip() for lang, text in texts.items() if text.strip()}
        if not texts:
            reader.fail(where, "(no text)", f"an answer in at least one of {', '.join(LANGUAGES)}")
        entries.append(
            FaqEntry(
                name=reader.string(entry, f"{where}.name", f"faq {index + 1}"),
                pattern=reader.regex(entry, f"{where}.match"),
                texts=texts,
                urls=_faq_urls(reader, entry, where),
            )
        )
    return tuple(entries)


def _faq_urls(reader: _Reader, entry: dict[str, Any], where: str) -> dict[str, str]:
    """Return the link of an FAQ entry per language: one ``url`` for all, or a table of them."""
    value = entry.get("url", {})
    if isinstance(value, str):
        value = {lang: value for lang in LANGUAGES}
    if not isinstance(value, dict):
        reader.fail(f"{where}.url", value, "a URL, or a table of URLs per language")
    reader.reject_unknown(value, set(LANGUAGES), f"{where}.url")
    for lang, url in value.items():
        # Only web and mail links reach a reply, never javascript: or data: URLs.
        if not isinstance(url, str) or not re.fullmatch(r"(?:https?://|mailto:)[^\s<>\"]+", url):
            reader.fail(f"{where}.url", url, "an https://, http:// or mailto: URL without spaces")
    return dict(value)


_DAY_KEYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# "8-16", "08:00-16:30": hours 0 to 24 with optional minutes.
_INTERVAL = re.compile(
    r"^\s*([01]?\d|2[0-4])(?::([0-5]\d))?\s*-\s*([01]?\d|2[0-4])(?::([0-5]\d))?\s*$"
)


def _hours(reader: _Reader, data: dict[str, Any]) -> HoursSettings:
    table = reader.table(data, "hours")
    reader.reject_unknown(
        table, {"time_zone", "country", "closed_eves", "closed_dates", *_DAY_KEYS}, "hours"
    )
    defaults = HoursSettings()
    time_zone = reader.string(table, "hours.time_zone", defaults.time_zone)
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        reader.fail(
            "hours.time_zone", time_zone, 'an IANA time zone name such as "Europe/Helsinki"'
        )
    country = reader.string(table, "hours.country", defaults.country).strip().upper()
    if country and not _known_country(country, time_zone):
        reader.fail(
            "hours.country", country,
            'an ISO 3166 country code that the holidays package knows, such as "FI", or ""',
        )
    week = tuple(
        _day_intervals(reader, table, f"hours.{key}", default)
        for key, default in zip(_DAY_KEYS, defaults.week)
    )
    if not any(week):
        reader.fail(
            "hours", "(every day closed)",
            'opening hours on at least one weekday, such as monday = "8-16"',
        )
    return HoursSettings(
        time_zone=time_zone,
        country=country,
        closed_eves=reader.boolean(table, "hours.closed_eves", True),
        closed_dates=tuple(
            _date_range(reader, value)
            for value in reader.string_list(table, "hours.closed_dates", [])
        ),
        week=week,
    )


def _known_country(country: str, time_zone: str) -> bool:
    # The check loads this year's holidays in a child process, the same ones that the
    # desk's calendar uses, so the daemon never imports the holidays package.
    from maildesk.publicholidays import is_supported

    return is_supported(country, datetime.now(ZoneInfo(time_zone)).year)


def _day_intervals(
    reader: _Reader, table: dict[str, Any], key: str, default: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    """Parse ``"8-16"``, ``"08:00-11:30, 12:00-16:00"`` or ``"closed"`` into minute intervals."""
    if key.rpartition(".")[2] not in table:
        return default
    value = reader.string(table, key, "")
    if value.strip().lower() in ("", "closed"):
        return ()
    intervals = []
    for part in value.split(","):
        match = _INTERVAL.match(part)
        if match is None:
            reader.fail(
                key, value,
                'opening hours such as "8-16" or "08:00-11:30, 12:00-16:00", or "closed"',
            )
        start = int(match.group(1)) * 60 + int(match.group(2) or 0)
        end = int(match.group(3)) * 60 + int(match.group(4) or 0)
        if not 0 <= start < end <= 1440:
            reader.fail(key, value, "intervals whose start is before their end, within 00:00-24:00")
        intervals.append((start, end))
    intervals.sort()
    if any(earlier[1] > later[0] for earlier, later in zip(intervals, intervals[1:])):
        reader.fail(key, value, "intervals that do not overlap")
    return tuple(intervals)


def _date_range(reader: _Reader, value: str) -> tuple[date, date]:
    """Parse ``"2026-07-06"`` or ``"2026-07-06..2026-07-31"`` into an inclusive date range."""
    first_text, _, last_text = value.partition("..")
    try:
        first = date.fromisoformat(first_text.strip())
        last = date.fromisoformat(last_text.strip()) if last_text else first
    except ValueError:
        reader.fail(
            "hours.closed_dates", value, 'dates such as "2026-12-31" or "2026-07-06..2026-07-31"'
        )
    if last < first:
        reader.fail("hours.closed_dates", value, "a range whose first date is not after its last")
    return first, last


def _threading(reader: _Reader, data: dict[str, Any]) -> ThreadingSettings:
    table = reader.table(data, "threading")
    reader.reject_unknown(
        table, {"subject_fallback", "subject_fallback_window", "reopen_limit", "forwarders"}, "threading"
    )
    defaults = ThreadingSettings()
    return ThreadingSettings(
        subject_fallback=reader.boolean(table, "threading.subject_fallback", True),
        subject_fallback_window=reader.duration(
            table, "threading.subject_fallback_window", defaults.subject_fallback_window
        ),
        reopen_limit=reader.duration(table, "threading.reopen_limit", defaults.reopen_limit),
        forwarders=reader.address_list(table, "threading.forwarders", allow_domains=True),
    )


_PLUS_SEPARATORS = ("+", "-", "_", "=", ".")


def _agent_settings(reader: _Reader, data: dict[str, Any]) -> AgentSettings:
    table = reader.table(data, "agents")
    reader.reject_unknown(
        table,
        {
            "plus_separator", "trusted_authserv_id", "second_agent_notice", "auto_close_after",
            "auto_close_notice",
        },
        "agents",
    )
    defaults = AgentSettings()
    authserv_id = reader.string(table, "agents.trusted_authserv_id", "").strip().lower()
    if authserv_id and not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", authserv_id):
        reader.fail("agents.trusted_authserv_id", authserv_id, "a host name such as mx.example.fi")
    return AgentSettings(
        plus_separator=reader.choice(table, "agents.plus_separator", _PLUS_SEPARATORS, "+"),
        trusted_authserv_id=authserv_id,
        second_agent_notice=reader.boolean(table, "agents.second_agent_notice", True),
        auto_close_after=reader.duration(table, "agents.auto_close_after", defaults.auto_close_after),
        auto_close_notice=reader.boolean(table, "agents.auto_close_notice", False),
    )


def _keywords(reader: _Reader, data: dict[str, Any]) -> KeywordSettings:
    table = reader.table(data, "keywords")
    reader.reject_unknown(
        table, {"enabled", "prefix", "closed_folder", "max_updates_per_pass"}, "keywords"
    )
    prefix = reader.string(table, "keywords.prefix", "md:")
    # An IMAP keyword is an atom (RFC 3501 section 9), and a leading backslash marks a system flag.
    if not re.fullmatch(r"[A-Za-z0-9$:_.+/-]{1,20}", prefix):
        reader.fail(
            "keywords.prefix", prefix,
            "1 to 20 characters of A-Z, a-z, 0-9 and $ : _ . + / -, such as \"md:\"",
        )
    return KeywordSettings(
        enabled=reader.boolean(table, "keywords.enabled", True),
        prefix=prefix,
        closed_folder=reader.string(table, "keywords.closed_folder", ""),
        max_updates_per_pass=reader.integer(
            table, "keywords.max_updates_per_pass", 500, minimum=1, maximum=1_000_000
        ),
    )


def _digest(reader: _Reader, data: dict[str, Any]) -> DigestSettings:
    table = reader.table(data, "digest")
    reader.reject_unknown(table, {"times", "recipients"}, "digest")
    times = []
    for value in reader.string_list(table, "digest.times", ["08:00"]):
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
        if match is None:
            reader.fail("digest.times", value, 'times of day written as "HH:MM", such as "08:00"')
        times.append(time(int(match.group(1)), int(match.group(2))))
    return DigestSettings(
        times=tuple(sorted(set(times))),
        recipients=reader.address_list(table, "digest.recipients"),
    )


def _rules(reader: _Reader, data: dict[str, Any]) -> tuple[Rule, ...]:
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        reader.fail("rules", raw_rules, "an array of tables written as [[rules]]")
    rules = []
    for index, table in enumerate(raw_rules):
        where = f"rules[{index}]"
        if not isinstance(table, dict):
            reader.fail(where, table, "a table written as [[rules]]")
        reader.reject_unknown(
            table, {"name", *RULE_MATCH_KEYS, "priority", "tags", "autoreply", "stop"}, where
        )
        patterns = {key: reader.regex(table, f"{where}.{key}") for key in RULE_MATCH_KEYS if key in table}
        if not patterns:
            reader.fail(where, "(no pattern)", f"at least one of {', '.join(RULE_MATCH_KEYS)}")
        priority = None
        if "priority" in table:
            priority = reader.choice(table, f"{where}.priority", PRIORITIES, "normal")
        autoreply = reader.boolean(table, f"{where}.autoreply", True) if "autoreply" in table else None
        rules.append(
            Rule(
                name=reader.string(table, f"{where}.name", f"rule {index + 1}"),
                patterns=patterns,
                priority=priority,
                tags=tuple(tag.lower() for tag in reader.string_list(table, f"{where}.tags", [])),
                autoreply=autoreply,
                stop=reader.boolean(table, f"{where}.stop", False),
            )
        )
    return tuple(rules)


_RETENTION_KEYS = ("raw_mail_and_attachments", "message_text", "ticket_metadata")


def _retention(reader: _Reader, data: dict[str, Any]) -> RetentionSettings:
    table = reader.table(data, "retention")
    reader.reject_unknown(table, set(_RETENTION_KEYS), "retention")
    limits = {key: _retention_limit(reader, table, f"retention.{key}") for key in _RETENTION_KEYS}
    # Each stage also removes what the stages before it cover, so a limit
    # longer than a later stage's limit would never take effect.
    for index, shorter in enumerate(_RETENTION_KEYS):
        for longer in _RETENTION_KEYS[index + 1:]:
            first, second = limits[shorter], limits[longer]
            if first is not None and second is not None and first > second:
                reader.fail(
                    f"retention.{shorter}",
                    table[shorter],
                    f"a time no longer than retention.{longer} ({table[longer]}), because "
                    f"removing the {longer.replace('_', ' ')} removes these too",
                )
    return RetentionSettings(**limits)


def _retention_limit(reader: _Reader, table: dict[str, Any], key: str) -> timedelta | None:
    """Return a retention time, or None for 0, "0" or a missing key (keep forever)."""
    value = table.get(key.rpartition(".")[2])
    if value is None or value == 0 or value == "0":
        return None
    if isinstance(value, bool) or not isinstance(value, str):
        reader.fail(key, value, 'a duration such as "365d", or 0 to keep forever')
    limit = reader.duration(table, key, None)
    return limit if limit > timedelta(0) else None


_SIZE = re.compile(r"^\s*(\d+)\s*(|k|kb|kib|m|mb|mib|g|gb|gib)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}


def _size(reader: _Reader, table: dict[str, Any], key: str, default: int) -> int:
    """Read a byte count: a whole number, or a string such as "25MB" (units are powers of 1024)."""
    value = table.get(key.rpartition(".")[2])
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        reader.fail(key, value, 'a size in bytes, or a string such as "512KB", "25MB" or "1GB"')
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)[:1].lower()]


def _limits(reader: _Reader, data: dict[str, Any]) -> LimitSettings:
    table = reader.table(data, "limits")
    reader.reject_unknown(
        table, {"max_message_size", "max_attachment_size", "max_recipients"}, "limits"
    )
    defaults = LimitSettings()
    return LimitSettings(
        max_message_size=_size(reader, table, "limits.max_message_size", defaults.max_message_size),
        max_attachment_size=_size(
            reader, table, "limits.max_attachment_size", defaults.max_attachment_size
        ),
        max_recipients=reader.integer(
            table, "limits.max_recipients", defaults.max_recipients, minimum=1, maximum=100000
        ),
    )


def _metrics(reader: _Reader, data: dict[str, Any]) -> MetricsSettings:
    table = reader.table(data, "metrics")
    reader.reject_unknown(table, {"enabled", "address", "port"}, "metrics")
    address = reader.string(table, "metrics.address", "127.0.0.1")
    if not is_loopback(address):
        reader.fail(
            "metrics.address", address,
            'a loopback address such as "127.0.0.1", because the metrics have no authentication',
        )
    return MetricsSettings(
        enabled=reader.boolean(table, "metrics.enabled", False),
        address=address,
        port=reader.integer(table, "metrics.port", 9464, minimum=1, maximum=65535),
    )


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is "localhost" or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Reader:
    """Typed access to TOML tables that raises ConfigError naming file, key, value and fix."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def fail(self, key: str, value: Any, expected: str) -> None:
        where = f"{self.path}: " if self.path else ""
        raise ConfigError(f"{where}invalid value {value!r} for {key}: expected {expected}")

    def reject_unknown(self, table: dict[str, Any], known: set[str], section: str) -> None:
        for key in table:
            if key not in known:
                name = f"{section}.{key}" if section else key
                valid = ", ".join(sorted(known))
                where = f"{self.path}: " if self.path else ""
                raise ConfigError(f"{where}unknown key {name}; valid keys here are: {valid}")

    def _get(self, table: dict[str, Any], key: str) -> Any:
        return table.get(key.rpartition(".")[2])

    def table(
        self, data: dict[str, Any], key: str, *, required: bool = False, prefix: str = ""
    ) -> dict[str, Any]:
        if key not in data:
            if required:
                where = f"{self.path}: " if self.path else ""
                raise ConfigError(f"{where}section [{prefix}{key}] is missing")
            return {}
        value = data[key]
        if not isinstance(value, dict):
            self.fail(prefix + key, value, "a table")
        return value

    def string(
        self, table: dict[str, Any], key: str, default: str | None = None, *, required: bool = False
    ) -> str:
        value = self._get(table, key)
        if value is None:
            if required or default is None:
                where = f"{self.path}: " if self.path else ""
                raise ConfigError(f"{where}missing key {key}")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(key, value, "a non-empty string")
        return value

    def boolean(self, table: dict[str, Any], key: str, default: bool) -> bool:
        value = self._get(table, key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, value, "true or false")
        return value

    def integer(
        self, table: dict[str, Any], key: str, default: int, *, minimum: int, maximum: int
    ) -> int:
        value = self._get(table, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            self.fail(key, value, f"a whole number from {minimum} to {maximum}")
        return value

    def choice(self, table: dict[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
        value = self._get(table, key)
        if value is None:
            return default
        if value not in choices:
            self.fail(key, value, "one of " + ", ".join(f'"{c}"' for c in choices))
        return value

    def string_list(self, table: dict[str, Any], key: str, default: list[str]) -> list[str]:
        value = self._get(table, key)
        if value is None:
            return list(default)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(key, value, "a list of strings")
        return value

    def address(self, table: dict[str, Any], key: str, *, required: bool = False) -> str:
        value = self.string(table, key, None if required else "", required=required)
        if value and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value):
            self.fail(key, value, "a plain address such as tuki@example.fi")
        return value.lower()

    def address_list(
        self, table: dict[str, Any], key: str, *, allow_domains: bool = False
    ) -> tuple[str, ...]:
        values = self.string_list(table, key, [])
        for item in values:
            if allow_domains and re.fullmatch(r"@[^@\s<>]+\.[^@\s<>]+", item):
                continue
            if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", item):
                expected = "a plain address" + (' or "@domain"' if allow_domains else "")
                self.fail(key, item, expected)
        return tuple(item.lower() for item in values)

    def duration(self, table: dict[str, Any], key: str, default: timedelta | None) -> timedelta:
        value = self._get(table, key)
        if value is None:
            if default is None:
                where = f"{self.path}: " if self.path else ""
                raise ConfigError(f"{where}missing key {key}")
            return default
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            self.fail(key, value, 'a duration such as "30m", "4h" or "2d"')
        try:
            return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])
        except OverflowError:
            self.fail(key, value, "a duration shorter than 10,000 years")
        raise AssertionError("unreachable")

    def regex(self, table: dict[str, Any], key: str) -> re.Pattern[str]:
        value = self.string(table, key, required=True)
        try:
            return re.compile(value, re.IGNORECASE)
        except re.error as exc:
            self.fail(key, value, f"a valid regular expression ({exc})")
        raise AssertionError("unreachable")
