"""Load and check ``config.toml``.

The file is read once into frozen dataclasses. Every invalid value raises
:class:`ConfigError` with the file, the key, the value and what would be
valid, so a bad config fails at start and not at the first mail.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True, kw_only=True)
class MailboxSettings(ServerSettings):
    folders: tuple[str, ...] = ("INBOX",)
    sent_folder: str = "Sent"
    append_to_sent: bool = True
    poll_interval: int = 60
    batch_size: int = 200


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
        """Return whether ``address`` is the support address or one of ``own_addresses``."""
        address = address.lower()
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
        with path.open("rb") as handle:
            data = tomllib.load(handle)
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
    known = {"desk", "mailbox", "smtp", "database", "storage", "autoreply", "rules", "import"}
    reader.reject_unknown(data, known, "")

    desk = reader.table(data, "desk", required=True)
    reader.reject_unknown(
        desk, {"name", "support_address", "language", "agents", "own_addresses", "state_dir"}, "desk"
    )
    support = reader.address(desk, "desk.support_address", required=True)
    state_dir = Path(
        reader.string(desk, "desk.state_dir", os.environ.get("STATE_DIRECTORY") or str(DEFAULT_STATE_DIR))
    )

    database = reader.table(data, "database")
    reader.reject_unknown(database, {"url"}, "database")
    storage = reader.table(data, "storage")
    reader.reject_unknown(storage, {"path"}, "storage")
    imports = reader.table(data, "import")
    reader.reject_unknown(imports, {"existing"}, "import")
    existing = reader.string(imports, "import.existing", "since:7d")
    if not _EXISTING.match(existing):
        reader.fail("import.existing", existing, 'one of "none", "all" or "since:<days>d", such as "since:7d"')

    return Config(
        path=path,
        name=reader.string(desk, "desk.name", "maildesk"),
        support_address=support,
        language=reader.choice(desk, "desk.language", LANGUAGES, "fi"),
        agents=reader.address_list(desk, "desk.agents", allow_domains=True),
        own_addresses=reader.address_list(desk, "desk.own_addresses"),
        state_dir=state_dir,
        mailbox=_mailbox(reader, data),
        smtp=_smtp(reader, data),
        database_url=reader.string(database, "database.url", f"sqlite:///{state_dir / 'maildesk.sqlite3'}"),
        storage_path=Path(reader.string(storage, "storage.path", str(state_dir / "storage"))),
        autoreply=_autoreply(reader, data),
        rules=_rules(reader, data),
        existing=existing,
    )


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
    if security == "none" and not _is_loopback(host):
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
        "password": _password(reader, table, section),
        "timeout": float(reader.integer(table, f"{section}.timeout", 60, minimum=1, maximum=3600)),
        "ca_file": Path(ca_file) if ca_file else None,
    }


_SERVER_KEYS = {
    "host", "port", "security", "username", "password", "password_file", "password_env",
    "timeout", "ca_file",
}


def _mailbox(reader: _Reader, data: dict[str, Any]) -> MailboxSettings | None:
    if "mailbox" not in data:
        return None
    table = reader.table(data, "mailbox")
    reader.reject_unknown(
        table,
        _SERVER_KEYS | {"folders", "sent_folder", "append_to_sent", "poll_interval", "batch_size"},
        "mailbox",
    )
    folders = reader.string_list(table, "mailbox.folders", ["INBOX"])
    if not folders:
        reader.fail("mailbox.folders", "[]", 'a list with at least one folder, such as ["INBOX"]')
    return MailboxSettings(
        **_server_fields(reader, table, "mailbox"),
        folders=tuple(folders),
        sent_folder=reader.string(table, "mailbox.sent_folder", "Sent"),
        append_to_sent=reader.boolean(table, "mailbox.append_to_sent", True),
        poll_interval=reader.integer(table, "mailbox.poll_interval", 60, minimum=5, maximum=86400),
        batch_size=reader.integer(table, "mailbox.batch_size", 200, minimum=1, maximum=5000),
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


def _password(reader: _Reader, table: dict[str, Any], section: str) -> str:
    given = [key for key in ("password", "password_file", "password_env") if key in table]
    if len(given) != 1:
        reader.fail(
            f"{section}.password",
            ", ".join(given) or "(none)",
            "exactly one of password, password_file or password_env",
        )
    key = given[0]
    value = reader.string(table, f"{section}.{key}", required=True)
    if key == "password":
        return value
    if key == "password_env":
        secret = os.environ.get(value)
        if secret is None:
            reader.fail(f"{section}.password_env", value, "the name of a set environment variable")
        return secret
    secret_path = Path(value)
    if not secret_path.is_absolute() and os.environ.get("CREDENTIALS_DIRECTORY"):
        secret_path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / secret_path
    try:
        return secret_path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        reader.fail(f"{section}.password_file", value, f"a readable file ({exc.strerror})")
    raise AssertionError("unreachable")


def _autoreply(reader: _Reader, data: dict[str, Any]) -> AutoreplySettings:
    table = reader.table(data, "autoreply")
    reader.reject_unknown(
        table, {"enabled", "max_age", "per_sender_window", "targets", "templates"}, "autoreply"
    )
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


def _is_loopback(host: str) -> bool:
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
        return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])

    def regex(self, table: dict[str, Any], key: str) -> re.Pattern[str]:
        value = self.string(table, key, required=True)
        try:
            return re.compile(value, re.IGNORECASE)
        except re.error as exc:
            self.fail(key, value, f"a valid regular expression ({exc})")
        raise AssertionError("unreachable")
