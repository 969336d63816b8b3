"""Tests for maildesk.language: Content-Language, the detector, earlier tickets, the default."""

from __future__ import annotations

import pytest

from maildesk.language import LanguageChoice, choose_language, detect_language, language_from_header

SUPPORTED = ("fi", "sv", "en")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fi", "fi"),
        ("sv-FI", "sv"),
        ("EN-gb", "en"),
        ("de-DE, sv", "sv"),
        ("de", None),
        ("", None),
        (None, None),
        ("../../etc", None),
    ],
)
def test_header_language(value: str | None, expected: str | None) -> None:
    """The first supported primary subtag of Content-Language is used."""
    assert expected == language_from_header(value, SUPPORTED)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Missä tilaukseni on?", "fi"),
        ("Haluan palauttaa kengät", "fi"),
        ("Lasku 4411 on väärin", "fi"),
        ("Var är min beställning?", "sv"),
        ("Jag vill returnera skorna", "sv"),
        ("Leveransen är försenad", "sv"),
        ("Where is my order?", "en"),
        ("I want to return the shoes", "en"),
        ("The parcel has not arrived yet.", "en"),
    ],
)
def test_detect_short_text(text: str, expected: str) -> None:
    """Short support questions are recognized in each desk language."""
    assert expected == detect_language(text, SUPPORTED)


@pytest.mark.parametrize("text", ["Order 1234", "Tack!", "ok", "12345 !!", ""])
def test_detect_unsure(text: str) -> None:
    """Text too short or too mixed to tell gives no language."""
    assert detect_language(text, SUPPORTED) is None


def test_detect_one_language() -> None:
    """With a single supported language there is nothing to detect."""
    assert detect_language("Where is my order?", ("en",)) is None


def test_choose_header_first() -> None:
    """Content-Language wins over the text."""
    choice = choose_language(
        content_language="sv", text="Where is my order?", supported=SUPPORTED,
        earlier=lambda: "fi", default="fi",
    )

    assert LanguageChoice("sv", "content-language") == choice


def test_choose_detector() -> None:
    """Without a usable header, the detector decides."""
    choice = choose_language(
        content_language="de", text="Where is my order? It should have arrived.",
        supported=SUPPORTED, earlier=lambda: "fi", default="fi",
    )

    assert LanguageChoice("en", "detector") == choice


def test_choose_earlier_ticket() -> None:
    """Text too short to tell takes the language of the customer's earlier ticket."""
    choice = choose_language(
        content_language=None, text="Tack!", supported=SUPPORTED,
        earlier=lambda: "sv", default="fi",
    )

    assert LanguageChoice("sv", "earlier-ticket") == choice


def test_choose_default() -> None:
    """With nothing else to go on, the desk's default is used."""
    choice = choose_language(
        content_language=None, text="Order 1234", supported=SUPPORTED,
        earlier=lambda: None, default="fi",
    )

    assert LanguageChoice("fi", "default") == choice


def test_choose_earlier_not_asked() -> None:
    """The earlier tickets are not read when the text decides."""
    def fail() -> str:
        raise AssertionError("earlier tickets read")

    choice = choose_language(
        content_language=None, text="Var är min beställning?", supported=SUPPORTED,
        earlier=fail, default="fi",
    )

    assert "sv" == choice.language
