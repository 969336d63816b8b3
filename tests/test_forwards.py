"""Finding the customer inside a forward, as each mail client writes one."""

from __future__ import annotations

from email.message import EmailMessage

from maildesk.forwards import find_forwarded, looks_like_forward, quoted_forward
from maildesk.message import Address, ParsedMessage
from maildesk.parsing import parse_message
from tests.mailkit import make_mail


def _parsed(subject: str, text: str) -> ParsedMessage:
    return ParsedMessage(message_id="f@example.fi", subject=subject, from_=Address("myyja@example.fi"), text=text)


def test_gmail_inline_forward() -> None:
    """Gmail's "Forwarded message" block names the original sender and subject."""
    text = (
        "Tämä tuli minulle suoraan.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Maija Asiakas <maija@example.com>\n"
        "Date: Mon, 7 Dec 2026 at 9.12\n"
        "Subject: Palautus\n"
        "To: <myyja@example.fi>\n\n"
        "Haluan palauttaa kengät.\n"
    )

    found = find_forwarded(_parsed("Fwd: Palautus", text))

    assert Address("maija@example.com", "Maija Asiakas") == found.sender
    assert "Palautus" == found.subject


def test_outlook_finnish_inline_forward() -> None:
    """Finnish Outlook's Lähettäjä/Aihe block with [mailto:] names the sender."""
    text = (
        "\n"
        "Lähettäjä: Maija Asiakas [mailto:maija@example.com]\n"
        "Lähetetty: maanantai 7. joulukuuta 2026 9.12\n"
        "Vastaanottaja: Myyjä <myyja@example.fi>\n"
        "Aihe: Lasku 4411\n\n"
        "Lasku on väärin.\n"
    )

    found = find_forwarded(_parsed("VL: Lasku 4411", text))

    assert "maija@example.com" == found.sender.addr
    assert "Maija Asiakas" == found.sender.name
    assert "Lasku 4411" == found.subject


def test_outlook_swedish_inline_forward() -> None:
    """Swedish Outlook's Från/Ämne block names the sender."""
    text = "Från: Kund <kund@example.se>\nSkickat: den 7 december 2026\nTill: tuki@example.fi\nÄmne: Retur\n"

    found = find_forwarded(_parsed("VB: Retur", text))

    assert "kund@example.se" == found.sender.addr
    assert "Retur" == found.subject


def test_thunderbird_inline_forward() -> None:
    """Thunderbird's block puts Subject before From."""
    text = (
        "-------- Forwarded Message --------\n"
        "Subject: \tToimitus\n"
        "Date: \tMon, 7 Dec 2026 09:12:00 +0200\n"
        "From: \tMatti <matti@example.net>\n"
        "To: \tmyyja@example.fi\n"
    )

    found = quoted_forward(text)

    assert "matti@example.net" == found.sender.addr
    assert "Toimitus" == found.subject


def test_apple_mail_inline_forward() -> None:
    """Apple Mail's "Begin forwarded message" block names the sender."""
    text = (
        "Lähetetty iPhonesta\n\n"
        "Begin forwarded message:\n\n"
        "> From: Liisa <liisa@example.org>\n"
        "> Subject: Kysymys\n"
        "> Date: 7 December 2026 at 9.12.00 EET\n"
        "> To: myyja@example.fi\n"
    )

    found = find_forwarded(_parsed("Fwd: Kysymys", text))

    assert "liisa@example.org" == found.sender.addr


def test_reply_quote_not_forward() -> None:
    """A reply that quotes Outlook's header block is not a forward."""
    text = "Kiitos!\n\nFrom: Maija <maija@example.com>\nSent: Monday\nSubject: Palautus\n"

    assert find_forwarded(_parsed("RE: Palautus", text)) is None


def test_attached_forward_uses_inner_message() -> None:
    """A message/rfc822 forward gives the inner sender, subject and bytes."""
    inner = make_mail(sender="Maija <maija@example.com>", subject="Palautus", message_id="orig@example.com")
    outer = EmailMessage()
    outer["From"] = "myyja@example.fi"
    outer["To"] = "tuki@example.fi"
    outer["Subject"] = "Palautus"
    outer["Message-ID"] = "<fwd@example.fi>"
    outer.set_content("Katsokaa tätä.")
    outer.add_attachment(inner, maintype="message", subtype="rfc822")

    found = find_forwarded(parse_message(outer.as_bytes()))

    assert "maija@example.com" == found.sender.addr
    assert "orig@example.com" == found.message.message_id
    assert "Palautus" == found.subject


def test_forward_marker_without_prefix() -> None:
    """A forward marker in the text counts even when the subject has no prefix."""
    assert looks_like_forward(_parsed("Palautus", "---------- Forwarded message ---------\n"))


def test_plain_mail_not_forward() -> None:
    """Plain mail is not a forward."""
    assert not looks_like_forward(_parsed("Palautus", "Hei, haluan palauttaa kengät."))
