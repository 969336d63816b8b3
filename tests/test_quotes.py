"""Tests for maildesk.quotes: what the author wrote, without quoted history and signature."""

from __future__ import annotations

import pytest

from maildesk.quotes import visible_text

OUTLOOK_FINNISH = """\
Kiitos, koko 42 sopii hyvin.

Terveisin
Aino

Lähettäjä: Kenkäkauppa <tuki@example.fi>
Lähetetty: tiistai 1. joulukuuta 2026 9.05
Vastaanottaja: Aino Asiakas <aino@example.com>
Aihe: [#7] Koon vaihto

Hei Aino,

sopiiko koko 42?
"""

OUTLOOK_SWEDISH = """\
Tack, storlek 42 passar.

________________________________
Från: Skobutiken <support@example.se>
Skickat: den 1 december 2026 09:05
Till: Aino Kund <aino@example.com>
Ämne: [#7] Byte av storlek

Hej Aino,
passar storlek 42?
"""

OUTLOOK_ENGLISH = """\
Yes, please send the bigger size.

-----Original Message-----
From: Shoe shop <support@example.com>
Sent: Tuesday, December 1, 2026 9:05 AM
To: Aino <aino@example.com>
Subject: [#7] Size change

Hello Aino, does size 42 fit?
"""

GMAIL_FINNISH = """\
Paketti tuli, kiitos!

ti 1.12.2026 klo 9.05 Kenkäkauppa <tuki@example.fi> kirjoitti:

> Hei Aino,
>
> paketti on matkalla.
"""

GMAIL_SWEDISH_WRAPPED = """\
Paketet kom, tack!

Den tis 1 dec. 2026 kl 09:05 skrev Skobutiken <
support@example.se>:

> Hej Aino,
> paketet är på väg.
"""

INLINE_ANSWERS = """\
Hei,

ti 1.12.2026 klo 9.05 Kenkäkauppa <tuki@example.fi> kirjoitti:
> Mikä koko?
42
> Mikä väri?
Sininen, jos sitä on.
>
> Terveisin kauppa

--
Aino Asiakas
040 123 4567
"""


@pytest.mark.parametrize(
    ("text", "kept", "dropped"),
    [
        pytest.param(OUTLOOK_FINNISH, "koko 42 sopii hyvin", "Lähettäjä:", id="outlook-fi"),
        pytest.param(OUTLOOK_SWEDISH, "storlek 42 passar", "Från:", id="outlook-sv"),
        pytest.param(OUTLOOK_ENGLISH, "send the bigger size", "Original Message", id="outlook-en"),
        pytest.param(GMAIL_FINNISH, "Paketti tuli", "kirjoitti", id="gmail-fi"),
        pytest.param(GMAIL_SWEDISH_WRAPPED, "Paketet kom", "skrev", id="gmail-sv-wrapped"),
    ],
)
def test_history_cut(text: str, kept: str, dropped: str) -> None:
    """The reply header or attribution and everything quoted after it are cut."""
    visible = visible_text(text)

    assert kept in visible
    assert dropped not in visible


def test_outlook_fi_exact() -> None:
    """The Finnish Outlook reply keeps the answer and the closing."""
    assert "Kiitos, koko 42 sopii hyvin.\n\nTerveisin\nAino" == visible_text(OUTLOOK_FINNISH)


def test_quoted_body_dropped() -> None:
    """The quoted text of the shop's earlier mail is gone."""
    assert "sopiiko koko 42" not in visible_text(OUTLOOK_FINNISH)


def test_rule_line_dropped() -> None:
    """Outlook's underscore rule above the header block goes with it."""
    assert "Tack, storlek 42 passar." == visible_text(OUTLOOK_SWEDISH)


def test_inline_answers_kept() -> None:
    """Answers written between quoted lines stay, the quotes and the signature go."""
    assert "Hei,\n\n42\nSininen, jos sitä on." == visible_text(INLINE_ANSWERS)


def test_bottom_posting_kept() -> None:
    """A reply below the quote keeps the reply."""
    text = "On Tue, 1 Dec 2026 at 09:05 Shop <support@example.com> wrote:\n> Which size?\n\nSize 42, thanks."

    assert "Size 42, thanks." == visible_text(text)


def test_unmarked_attribution_cut() -> None:
    """An attribution followed by unquoted text (HTML mail turned to text) starts the history."""
    text = "Thanks!\n\nOn 1 Dec 2026, at 09.05, Shop <support@example.com> wrote:\n\nHello Aino"

    assert "Thanks!" == visible_text(text)


def test_sentence_with_wrote_kept() -> None:
    """A sentence that ends in "wrote:" without a time or an address is not an attribution."""
    text = "My neighbour wrote:\nthe parcel was left at the door."

    assert text == visible_text(text)


def test_sentence_mentioning_time_kept() -> None:
    """A sentence with "wrote" in the middle is not an attribution."""
    text = "I wrote to you on 5.12. at 10:00 about this:\nThe zipper broke."

    assert text == visible_text(text)


def test_header_words_in_text_kept() -> None:
    """A From line without other header lines after it is the customer's own text."""
    text = "From: Helsinki\nI ordered two pairs.\nThanks"

    assert text == visible_text(text)


@pytest.mark.parametrize(
    "closing",
    ["Lähetetty iPhonesta", "Sent from my iPhone", "Skickat från min iPhone", "Get Outlook for Android"],
)
def test_device_signature_dropped(closing: str) -> None:
    """A closing "sent from my phone" line is dropped."""
    assert "Kiitos!" == visible_text(f"Kiitos!\n\n{closing}\n")


def test_long_tail_after_dashes_kept() -> None:
    """A "--" line followed by more than a signature's worth of lines is not a signature."""
    lines = "\n".join(f"rivi {number}" for number in range(20))
    text = f"Lista:\n--\n{lines}"

    assert text == visible_text(text)


def test_forward_kept() -> None:
    """A forwarded mail keeps the forwarded part, which is what the customer wants shown."""
    text = (
        "Katsokaa alla oleva.\n\n"
        "Lähettäjä: Kuljetus <info@example.net>\n"
        "Lähetetty: maanantai 30. marraskuuta 2026 8.00\n"
        "Vastaanottaja: Aino <aino@example.com>\n"
        "Aihe: Toimitus viivästyy\n\n"
        "Toimitus viivästyy viikolla."
    )

    assert "Toimitus viivästyy viikolla." in visible_text(text, subject="VL: Toimitus viivästyy")


def test_only_quote_falls_back() -> None:
    """A mail that only quotes keeps its whole text, so agents see something."""
    text = "> Hei Aino,\n> paketti on matkalla."

    assert text == visible_text(text)


def test_crlf_normalized() -> None:
    """CRLF line ends are read like LF."""
    assert "Kiitos!" == visible_text("Kiitos!\r\n\r\n-- \r\nAino\r\n")


def test_bare_attribution_before_quote_dropped() -> None:
    """An attribution line without a time or an address goes with the quote that follows it."""
    assert "Kiitos!" == visible_text("Kiitos!\n\nMatti Meikäläinen kirjoitti:\n> hei\n> moi\n")


def test_bare_attribution_without_quote_kept() -> None:
    """A sentence that only looks like an attribution stays when no quote follows."""
    text = "Ystäväni kirjoitti: paketti on myöhässä.\nAuttakaa."

    assert text == visible_text(text)
