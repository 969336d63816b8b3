"""The [autoreply] keys of auto-reply estimates, limits and FAQ answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from maildesk.config import parse_config
from maildesk.errors import ConfigError
from maildesk.faq import faq_answers


def parse(autoreply: dict[str, Any]) -> Any:
    return parse_config({"desk": {"support_address": "tuki@example.fi"}, "autoreply": autoreply})


def test_defaults() -> None:
    """An empty [autoreply] gives the documented defaults."""
    settings = parse({}).autoreply

    assert 80 == settings.estimate_percentile
    assert timedelta(days=30) == settings.estimate_window
    assert 5 == settings.estimate_min_tickets
    assert settings.reopened_reply
    assert not settings.closed_reply
    assert (50, timedelta(hours=1)) == (settings.per_domain_limit, settings.per_domain_window)
    assert (200, timedelta(hours=1)) == (settings.global_limit, settings.global_window)
    assert 3 == settings.per_ticket_limit
    assert timedelta(days=30) == settings.hard_bounce_block
    assert () == settings.faq


def test_faq_parsed() -> None:
    """FAQ entries keep their order, texts per language and links per language."""
    settings = parse(
        {
            "faq": [
                {"name": "returns", "match": "palaut|retur", "fi": "Palautus", "sv": "Retur",
                 "url": {"fi": "https://example.fi/palautus", "sv": "https://example.fi/sv/retur"}},
                {"match": "toimitus", "fi": "Toimitus", "url": "mailto:tuki@example.fi"},
            ]
        }
    ).autoreply

    first, second = settings.faq
    assert {"fi": "Palautus", "sv": "Retur"} == first.texts
    assert "https://example.fi/sv/retur" == first.urls["sv"]
    assert "faq 2" == second.name
    assert "mailto:tuki@example.fi" == second.urls["en"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"fi": "x"}, "missing key autoreply.faq\\[0\\].match"),
        ({"match": "x"}, "an answer in at least one of fi, sv, en"),
        ({"match": "(", "fi": "x"}, "a valid regular expression"),
        ({"match": "x", "fi": "x", "url": "javascript:alert(1)"}, "an https://, http:// or mailto: URL"),
        ({"match": "x", "fi": "x", "url": {"de": "https://example.de/"}}, "unknown key autoreply.faq\\[0\\].url.de"),
        ({"match": "x", "fi": "x", "answer": "y"}, "unknown key autoreply.faq\\[0\\].answer"),
    ],
)
def test_faq_invalid(entry: dict[str, Any], message: str) -> None:
    """An invalid FAQ entry names its key."""
    with pytest.raises(ConfigError, match=message):
        parse({"faq": [entry]})


@pytest.mark.parametrize(
    ("key", "value"),
    [("estimate_percentile", 101), ("per_ticket_limit", -1), ("global_window", "soon"), ("closed_reply", "yes")],
)
def test_invalid_values(key: str, value: Any) -> None:
    """Out-of-range and mistyped values are rejected with the key's name."""
    with pytest.raises(ConfigError, match=f"autoreply.{key}"):
        parse({key: value})


def test_faq_matching() -> None:
    """FAQ answers keep the entries' order and language, at most three."""
    entries = parse(
        {
            "faq": [
                {"name": f"entry{number}", "match": "kenk", "fi": f"Vastaus {number}", "url": "https://example.fi/"}
                for number in range(4)
            ]
            + [{"name": "swedish", "match": "kenk", "sv": "Svar"}]
        }
    ).autoreply.faq

    answers = faq_answers(entries, "Kenkien palautus", "", "fi")

    assert ["entry0", "entry1", "entry2"] == [answer.name for answer in answers]
    assert [] == faq_answers(entries, "Tilaus", "Missä paketti?", "fi")
