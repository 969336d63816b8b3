"""Tests for maildesk.rules: matching [[rules]] against parsed messages."""

from __future__ import annotations

import re
from typing import Any

import pytest

from maildesk.config import Rule, parse_config
from maildesk.message import Address, ParsedMessage
from maildesk.rules import RuleOutcome, apply_rules, rule_matches


def make_message(**fields: Any) -> ParsedMessage:
    values: dict[str, Any] = {
        "message_id": "m1@example.com",
        "subject": "Reklamaatio: rikkinäinen kahvinkeitin",
        "from_": Address("liisa.makinen@example.com", "Liisa Mäkinen"),
        "to": (Address("tuki@example.fi", "Asiakaspalvelu"),),
        "cc": (Address("matti@example.net", "Matti Virtanen"),),
        "text": "Kahvinkeitin hajosi viikossa. Tilausnumero 5521.",
        "headers": (
            ("From", "Liisa Mäkinen <liisa.makinen@example.com>"),
            ("To", "Asiakaspalvelu <tuki@example.fi>"),
            ("X-Priority", "1 (Highest)"),
        ),
    }
    values.update(fields)
    return ParsedMessage(**values)


def make_rule(name: str, stop: bool = False, **settings: Any) -> Rule:
    """Build a rule. Keyword arguments named like RULE_MATCH_KEYS become patterns."""
    patterns = {
        key: re.compile(settings.pop(key), re.IGNORECASE)
        for key in ("from", "to", "subject", "body", "header")
        if key in settings
    }
    return Rule(name=name, patterns=patterns, stop=stop, **settings)


def test_no_rules_defaults() -> None:
    """Without rules the outcome is normal priority, no tags and an auto-reply."""
    assert RuleOutcome() == apply_rules([], make_message())
    assert RuleOutcome("normal", (), True, ()) == RuleOutcome()


def test_rule_keys_and() -> None:
    """A rule applies only when every one of its patterns matches."""
    both = make_rule("both", **{"from": r"@example\.com$", "subject": "reklamaatio"})
    one_fails = make_rule("one-fails", **{"from": r"@example\.com$", "subject": "lasku"})

    assert rule_matches(both, make_message()) is True
    assert rule_matches(one_fails, make_message()) is False


def test_rule_from_name_form() -> None:
    """A from pattern also searches "Name <addr>", so it can match the display name."""
    rule = make_rule("name", **{"from": r"^liisa mäkinen <"})

    assert rule_matches(rule, make_message()) is True


def test_rule_from_plain_address() -> None:
    """A from pattern anchored on the address matches the plain address form."""
    rule = make_rule("address", **{"from": r"^liisa\.makinen@example\.com$"})

    assert rule_matches(rule, make_message()) is True


def test_rule_from_missing() -> None:
    """A message without From matches no from pattern."""
    rule = make_rule("any-sender", **{"from": ".*"})

    assert rule_matches(rule, make_message(from_=None)) is False


def test_rule_to_matches_cc() -> None:
    """A to pattern also looks at the Cc addresses."""
    rule = make_rule("cc", to=r"^Matti Virtanen <matti@example\.net>$")

    assert rule_matches(rule, make_message()) is True


def test_rule_body_text() -> None:
    """A body pattern searches the text body."""
    rule = make_rule("order", body=r"tilausnumero \d+")

    assert rule_matches(rule, make_message()) is True


def test_rule_header_line() -> None:
    """A header pattern searches each header as a "Name: value" line."""
    rule = make_rule("x-priority", header=r"^X-Priority: 1")

    assert rule_matches(rule, make_message()) is True
    assert rule_matches(rule, make_message(headers=(("X-Priority", "3"),))) is False


def test_rules_stop() -> None:
    """stop = true ends the list after that rule matched."""
    rules = [
        make_rule("first", stop=True, subject="reklamaatio", tags=("reklamaatio",)),
        make_rule("second", subject="kahvinkeitin", tags=("kahvi",)),
    ]

    outcome = apply_rules(rules, make_message())

    assert ("first",) == outcome.matched
    assert ("reklamaatio",) == outcome.tags


def test_rules_stop_unmatched() -> None:
    """A rule with stop = true that did not match does not end the list."""
    rules = [
        make_rule("invoice", stop=True, subject="lasku"),
        make_rule("complaint", subject="reklamaatio"),
    ]

    assert ("complaint",) == apply_rules(rules, make_message()).matched


def test_rules_priority_override() -> None:
    """A later matching rule's priority replaces an earlier one's."""
    rules = [
        make_rule("urgent", subject="reklamaatio", priority="urgent"),
        make_rule("low", body="kahvinkeitin", priority="low"),
        make_rule("no-priority", body="tilausnumero", tags=("tilaus",)),
    ]

    assert "low" == apply_rules(rules, make_message()).priority


def test_rules_tags_deduplicated() -> None:
    """Tags keep their first-seen order and appear once."""
    rules = [
        make_rule("a", subject="reklamaatio", tags=("reklamaatio", "kiire")),
        make_rule("b", body="kahvinkeitin", tags=("kahvi", "reklamaatio")),
        make_rule("c", body="tilausnumero", tags=("kiire", "tilaus")),
    ]

    assert ("reklamaatio", "kiire", "kahvi", "tilaus") == apply_rules(rules, make_message()).tags


def test_rules_autoreply_false() -> None:
    """A matching rule with autoreply = false turns the auto-reply off."""
    rules = [
        make_rule("supplier", **{"from": "@example\\.com$", "autoreply": False}),
        make_rule("unrelated", body="kahvinkeitin", tags=("kahvi",)),
    ]

    assert apply_rules(rules, make_message()).autoreply is False


def test_rules_autoreply_override() -> None:
    """A later rule's explicit autoreply = true overrides an earlier false."""
    rules = [
        make_rule("quiet", subject="reklamaatio", autoreply=False),
        make_rule("loud", body="kahvinkeitin", autoreply=True),
    ]

    assert apply_rules(rules, make_message()).autoreply is True


def test_rules_matched_names() -> None:
    """matched lists the names of the applied rules in order."""
    rules = [
        make_rule("a", subject="reklamaatio"),
        make_rule("b", subject="lasku"),
        make_rule("c", body="kahvinkeitin"),
    ]

    assert ("a", "c") == apply_rules(rules, make_message()).matched


def test_rule_unknown_key() -> None:
    """A pattern key outside RULE_MATCH_KEYS raises ValueError naming it."""
    rule = Rule(name="odd", patterns={"sender": re.compile("x")})

    with pytest.raises(ValueError, match="rule 'odd': unknown pattern key 'sender'"):
        rule_matches(rule, make_message())


def test_rules_from_config() -> None:
    """Rules read by parse_config apply with case-insensitive patterns and lower-case tags."""
    config = parse_config(
        {
            "desk": {"support_address": "tuki@example.fi", "state_dir": "/nonexistent/maildesk"},
            "rules": [
                {"name": "vip", "from": "@EXAMPLE\\.COM$", "priority": "high", "tags": ["VIP"]},
                {
                    "name": "x-priority",
                    "header": "^x-priority: 1",
                    "priority": "urgent",
                    "stop": True,
                },
                {"name": "never", "subject": ".", "tags": ["never"]},
            ],
        }
    )

    outcome = apply_rules(config.rules, make_message())

    assert RuleOutcome("urgent", ("vip",), True, ("vip", "x-priority")) == outcome
