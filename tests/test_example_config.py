"""Tests that config.example.toml loads and contains the documented values."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from maildesk.config import Config, Rule, load_config
from maildesk.message import Address, ParsedMessage
from maildesk.rules import apply_rules

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """Load a copy of the example with its password files beside it in tmp_path."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    imap_password = tmp_path / "imap-password"
    imap_password.write_text("imap-secret\n", encoding="utf-8")
    smtp_password = tmp_path / "smtp-password"
    smtp_password.write_text("smtp-secret\n", encoding="utf-8")

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    # The example names the password files relative to itself, so a copy finds the files beside it.
    copy = tmp_path / "config.toml"
    copy.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    return load_config(copy)


def _rule(config: Config, name: str) -> Rule:
    return next(rule for rule in config.rules if rule.name == name)


def _message(subject: str, text: str, sender: str = "asiakas@example.com") -> ParsedMessage:
    return ParsedMessage(
        message_id="test@example.com", subject=subject, from_=Address(sender), text=text
    )


def test_example_desk_values(config: Config) -> None:
    """The [desk] section describes the example shop."""
    assert config.support_address == "tuki@example.fi"
    assert config.language == "fi"
    assert config.agents == ("aino@example.fi", "janne@example.fi")
    assert config.own_addresses == ("noreply@example.fi",)


def test_example_state_defaults(config: Config) -> None:
    """Without STATE_DIRECTORY, state, database and storage sit in /var/lib/maildesk."""
    assert config.state_dir == Path("/var/lib/maildesk")
    assert config.database_url == "sqlite:////var/lib/maildesk/maildesk.sqlite3"
    assert config.storage_path == Path("/var/lib/maildesk/storage")


def test_example_mailbox_values(config: Config) -> None:
    """[mailbox] uses implicit TLS on 993 and the documented defaults."""
    mailbox = config.require_mailbox()
    assert mailbox.host == "mail.example.fi"
    assert mailbox.port == 993
    assert mailbox.security == "tls"
    assert mailbox.password == "imap-secret"
    assert mailbox.folders == ("INBOX", "Sent")
    assert mailbox.sent_folder == "Sent"
    assert mailbox.append_to_sent is True
    assert mailbox.poll_interval == 60
    assert mailbox.batch_size == 200
    assert mailbox.timeout == 60.0
    assert mailbox.ca_file is None


def test_example_smtp_values(config: Config) -> None:
    """[smtp] uses implicit TLS on 465 and sends as the support address."""
    smtp = config.require_smtp()
    assert smtp.host == "smtp.example.fi"
    assert smtp.port == 465
    assert smtp.security == "tls"
    assert smtp.password == "smtp-secret"
    assert smtp.from_address == "tuki@example.fi"


def test_example_import_existing(config: Config) -> None:
    """[import] existing is since:7d."""
    assert config.existing == "since:7d"
    assert config.existing_days == 7


def test_example_autoreply_windows(config: Config) -> None:
    """[autoreply] max_age is 1 h and per_sender_window 4 h."""
    assert config.autoreply.enabled is True
    assert config.autoreply.max_age == timedelta(hours=1)
    assert config.autoreply.per_sender_window == timedelta(hours=4)
    assert config.autoreply.templates is None


def test_example_autoreply_targets(config: Config) -> None:
    """[autoreply.targets] lists the promised response time per priority."""
    assert config.autoreply.targets == {
        "urgent": timedelta(hours=4),
        "high": timedelta(hours=8),
        "normal": timedelta(days=1),
        "low": timedelta(days=3),
    }


def test_example_rule_names(config: Config) -> None:
    """The example has five rules, marketplace messages first."""
    assert [rule.name for rule in config.rules] == [
        "Kauppapaikan viestit",
        "Kiireelliset",
        "Palautukset ja hyvitykset",
        "Laskut",
        "Toimitukset",
    ]


def test_example_rule_actions(config: Config) -> None:
    """Each rule sets the documented priority, tags and auto-reply flag."""
    marketplace = _rule(config, "Kauppapaikan viestit")
    assert marketplace.priority == "low"
    assert marketplace.tags == ("kauppapaikka",)
    assert marketplace.autoreply is False
    assert marketplace.stop is True
    assert _rule(config, "Kiireelliset").priority == "urgent"
    assert _rule(config, "Palautukset ja hyvitykset").tags == ("palautus",)
    assert _rule(config, "Laskut").tags == ("lasku",)
    assert _rule(config, "Toimitukset").tags == ("toimitus",)


@pytest.mark.parametrize(
    "subject",
    ["Kiireellinen: väärä koko", "KIIRE!", "Tarvitsen vastauksen heti", "URGENT: wrong size", "asap"],
)
def test_urgent_rule_matches(config: Config, subject: str) -> None:
    """The urgent words in a subject raise the priority to urgent."""
    outcome = apply_rules(config.rules, _message(subject, "Hei"))
    assert outcome.priority == "urgent"


@pytest.mark.parametrize("subject", ["Kysymys tilauksesta", "Hetimaksu ei toiminut", "Kiitos"])
def test_urgent_rule_ignores(config: Config, subject: str) -> None:
    """Subjects without an urgent word keep priority normal."""
    outcome = apply_rules(config.rules, _message(subject, "Hei"))
    assert outcome.priority == "normal"


def test_urgent_rule_ignores_body(config: Config) -> None:
    """"ei kiirettä" in the body leaves the priority normal."""
    outcome = apply_rules(config.rules, _message("Kysymys", "Ei kiirettä, vastaa kun ehdit."))
    assert outcome.priority == "normal"


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("Haluaisin palauttaa kengät.", "palautus"),
        ("Milloin saan hyvityksen palautuksesta?", "palautus"),
        ("Saanko rahat takaisin?", "palautus"),
        ("I would like a refund.", "palautus"),
        ("Laskutus meni väärin.", "lasku"),
        ("Voiko eräpäivää siirtää?", "lasku"),
        ("The invoice has a wrong address.", "lasku"),
        ("Paketti ei ole vielä saapunut.", "toimitus"),
        ("Mikä on seurantakoodi?", "toimitus"),
        ("Where is my delivery?", "toimitus"),
    ],
)
def test_topic_rules_tag(config: Config, text: str, tag: str) -> None:
    """Finnish inflected forms and English words get the topic tag."""
    outcome = apply_rules(config.rules, _message("Kysymys", text))
    assert outcome.tags == (tag,)


def test_marketplace_rule_stops(config: Config) -> None:
    """A marketplace message gets only its own tag and no auto-reply."""
    message = _message(
        "Uusi tilaus", "Toimitus ja palautus hoidetaan sovitusti.", "viestit@marketplace.example"
    )
    outcome = apply_rules(config.rules, message)
    assert outcome.tags == ("kauppapaikka",)
    assert outcome.autoreply is False
    assert outcome.priority == "low"
