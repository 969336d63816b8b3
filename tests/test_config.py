"""Configuration loading and the errors a bad file gets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from maildesk.config import load_config, parse_config
from maildesk.errors import ConfigError

MINIMAL = {"desk": {"support_address": "tuki@example.fi", "state_dir": "/tmp/maildesk-test"}}


def _with(section: str, values: dict) -> dict:
    return {**MINIMAL, section: values}


def test_minimal_config_defaults() -> None:
    """A file with only the support address gets the documented defaults."""
    config = parse_config(MINIMAL)

    assert "fi" == config.language
    assert "since:7d" == config.existing
    assert timedelta(hours=1) == config.autoreply.max_age
    assert timedelta(hours=4) == config.autoreply.per_sender_window
    assert "sqlite:////tmp/maildesk-test/maildesk.sqlite3" == config.database_url
    assert Path("/tmp/maildesk-test/storage") == config.storage_path
    assert config.mailbox is None


def test_missing_file_names_path(tmp_path: Path) -> None:
    """A missing file names the path and how to fix it."""
    with pytest.raises(ConfigError, match=r"nope\.toml: configuration file not found; copy"):
        load_config(tmp_path / "nope.toml")


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    """A syntax error names the file."""
    path = tmp_path / "bad.toml"
    path.write_text("[desk\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_config(path)


def test_bad_language_names_key_value_and_choices() -> None:
    """An unknown language names the key, the value and the valid ones."""
    data = {"desk": {**MINIMAL["desk"], "language": "de"}}

    with pytest.raises(ConfigError, match=r"invalid value 'de' for desk\.language: expected one of \"fi\", \"sv\", \"en\""):
        parse_config(data)


def test_unknown_key_is_rejected() -> None:
    """A misspelt key is an error that lists the valid keys."""
    data = {"desk": {**MINIMAL["desk"], "langauge": "fi"}}

    with pytest.raises(ConfigError, match=r"unknown key desk\.langauge; valid keys here are: agents"):
        parse_config(data)


def test_plaintext_to_remote_host_rejected() -> None:
    """security = "none" is accepted only for a loopback host."""
    mailbox = {"host": "mail.example.fi", "security": "none", "username": "u", "password": "p"}

    with pytest.raises(ConfigError, match=r"invalid value 'none' for mailbox\.security: expected \"tls\" or \"starttls\", because mail\.example\.fi is not a loopback host"):
        parse_config(_with("mailbox", mailbox))


def test_plaintext_to_loopback_allowed() -> None:
    """Loopback hosts may use security = "none"."""
    mailbox = {"host": "127.0.0.1", "security": "none", "username": "u", "password": "p"}

    config = parse_config(_with("mailbox", mailbox))

    assert 143 == config.mailbox.port
    assert ("INBOX", "Sent") == config.mailbox.folders


def test_two_password_sources_rejected() -> None:
    """Exactly one of password, password_file and password_env is allowed."""
    mailbox = {"host": "127.0.0.1", "username": "u", "password": "p", "password_env": "X"}

    with pytest.raises(ConfigError, match=r"for mailbox\.password: expected exactly one of password, password_file or password_env"):
        parse_config(_with("mailbox", mailbox))


def test_password_file_read(tmp_path: Path) -> None:
    """password_file is read and its trailing newline dropped."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    mailbox = {"host": "127.0.0.1", "username": "u", "password_file": str(secret)}

    config = parse_config(_with("mailbox", mailbox))

    assert "s3cret" == config.mailbox.password


def test_password_env_unset_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset password_env variable is named in the error."""
    monkeypatch.delenv("MAILDESK_TEST_PW", raising=False)
    mailbox = {"host": "127.0.0.1", "username": "u", "password_env": "MAILDESK_TEST_PW"}

    with pytest.raises(ConfigError, match=r"'MAILDESK_TEST_PW' for mailbox\.password_env"):
        parse_config(_with("mailbox", mailbox))


def test_bad_duration_names_format() -> None:
    """Durations must look like "4h"."""
    with pytest.raises(ConfigError, match=r"'four hours' for autoreply\.max_age: expected a duration"):
        parse_config(_with("autoreply", {"max_age": "four hours"}))


def test_bad_regex_in_rule_named() -> None:
    """An invalid regular expression names the rule and key."""
    rules = [{"subject": "(unclosed", "priority": "high"}]

    with pytest.raises(ConfigError, match=r"for rules\[0\]\.subject: expected a valid regular expression"):
        parse_config({**MINIMAL, "rules": rules})


def test_bad_existing_value() -> None:
    """import.existing accepts none, all and since:<days>d."""
    with pytest.raises(ConfigError, match=r"'since:7' for import\.existing"):
        parse_config(_with("import", {"existing": "since:7"}))


def test_agents_accept_domains() -> None:
    """Agents may be addresses or @domain entries."""
    config = parse_config({"desk": {**MINIMAL["desk"], "agents": ["@Example.fi", "ext@partner.fi"]}})

    assert config.is_agent("anyone@example.fi")
    assert config.is_agent("EXT@partner.fi")
    assert not config.is_agent("someone@partner.fi")


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    return path


def test_byte_order_mark_accepted(tmp_path: Path) -> None:
    """A UTF-8 file that starts with a byte order mark loads."""
    path = _write(tmp_path, b'\xef\xbb\xbf[desk]\nsupport_address = "tuki@example.fi"\n')

    assert "tuki@example.fi" == load_config(path).support_address


def test_latin1_file_named(tmp_path: Path) -> None:
    """A file saved in Latin-1 gets an error that asks for UTF-8."""
    path = _write(tmp_path, '[desk]\nname = "Kauppa ä"\nsupport_address = "a@b.fi"\n'.encode("latin-1"))

    with pytest.raises(ConfigError, match=r"config\.toml: not UTF-8 \(invalid byte at offset 22\); save the file as UTF-8"):
        load_config(path)


def test_folder_as_config_named(tmp_path: Path) -> None:
    """--config pointing at a folder is a clear error."""
    with pytest.raises(ConfigError, match=r"is a folder; pass the configuration file itself"):
        load_config(tmp_path)


def test_relative_state_dir_from_config_folder(tmp_path: Path) -> None:
    """A relative state_dir is taken from the config file's folder, not the working directory."""
    path = _write(tmp_path, b'[desk]\nsupport_address = "tuki@example.fi"\nstate_dir = "state"\n')

    config = load_config(path)

    assert tmp_path.resolve() / "state" == config.state_dir
    assert tmp_path.resolve() / "state" / "storage" == config.storage_path


def test_empty_password_file_rejected(tmp_path: Path) -> None:
    """An empty password file is an error at load time, not a failed login later."""
    secret = tmp_path / "pw"
    secret.write_text("\n", encoding="utf-8")
    mailbox = {"host": "127.0.0.1", "username": "u", "password_file": str(secret)}

    with pytest.raises(ConfigError, match=r"for mailbox\.password_file: expected a file that contains the password"):
        parse_config(_with("mailbox", mailbox))


def test_invalid_database_url_rejected() -> None:
    """A database URL SQLAlchemy cannot read is named with an example."""
    with pytest.raises(ConfigError, match=r"invalid value 'nonsense' for database\.url: expected a SQLAlchemy URL"):
        parse_config(_with("database", {"url": "nonsense"}))


def test_missing_database_driver_named() -> None:
    """A URL whose driver is not installed says so."""
    with pytest.raises(ConfigError, match=r"for database\.url: expected a database whose driver is installed"):
        parse_config(_with("database", {"url": "postgresql+psycopg://u@localhost/maildesk"}))


def test_huge_duration_rejected() -> None:
    """A duration too long for a timedelta is an error, not a traceback."""
    with pytest.raises(ConfigError, match=r"'999999999999w' for autoreply\.max_age: expected a duration shorter"):
        parse_config(_with("autoreply", {"max_age": "999999999999w"}))


def test_every_section_error_reported() -> None:
    """Invalid keys in several sections are all named in one error, one line each."""
    data = {
        "desk": {**MINIMAL["desk"], "language": "de"},
        "autoreply": {"max_age": "soon"},
        "import": {"existing": "some"},
    }

    with pytest.raises(ConfigError) as caught:
        parse_config(data)

    lines = str(caught.value).splitlines()
    assert 3 == len(lines)
    assert lines[0].startswith("invalid value 'de' for desk.language")
    assert lines[1].startswith("invalid value 'soon' for autoreply.max_age")
    assert lines[2].startswith("invalid value 'some' for import.existing")


def test_desk_and_section_errors_together() -> None:
    """An unknown top-level section, a [desk] mistake and a later section's mistake are all named."""
    data = {
        "desk": {"support_address": "tuki", "agnets": [], "state_dir": "/tmp/maildesk-test"},
        "smtpp": {"foo": 1},
        "import": {"existing": "some"},
    }

    with pytest.raises(ConfigError) as caught:
        parse_config(data)

    lines = str(caught.value).splitlines()
    assert 4 == len(lines)
    assert lines[0].startswith("unknown key smtpp")
    assert lines[1].startswith("unknown key desk.agnets")
    assert lines[2].startswith("invalid value 'tuki' for desk.support_address")
    assert lines[3].startswith("invalid value 'some' for import.existing")


def test_unknown_country_names_key() -> None:
    """A country the holidays package does not know names hours.country, the value and the fix."""
    with pytest.raises(ConfigError, match=r"invalid value 'XX' for hours\.country: expected an ISO 3166 country code"):
        parse_config(_with("hours", {"country": "xx"}))


def test_known_country_accepted() -> None:
    """A supported country code is stored upper-case."""
    assert "SE" == parse_config(_with("hours", {"country": "se"})).hours.country
