"""Parsing of mail commands: command lines, plus-addresses and Authentication-Results."""

from __future__ import annotations

from maildesk.mailcommands import (
    Command,
    address_commands,
    authentication_passes,
    parse_command_lines,
    recipient_commands,
    recipients,
)
from maildesk.message import Address, ParsedMessage


def _with_headers(*headers: tuple[str, str]) -> ParsedMessage:
    return ParsedMessage(message_id="m@example.fi", subject="s", from_=Address("myyja@example.fi"), headers=headers)


def test_command_lines_removed() -> None:
    """Command lines at the start are returned and removed from the text."""
    found = parse_command_lines("#close\n#tag Palautus\n\nHei, tilaus on matkalla.\n")

    assert (Command("close"), Command("tag", "Palautus")) == found.commands
    assert "Hei, tilaus on matkalla." == found.text.strip()


def test_command_after_text_ignored() -> None:
    """A command line after ordinary text is ordinary text."""
    found = parse_command_lines("Hei!\n#close\n")

    assert () == found.commands
    assert "Hei!\n#close\n" == found.text


def test_unknown_hash_word_is_text() -> None:
    """A # line with an unknown word ends the commands and stays in the text."""
    found = parse_command_lines("#1234 on tilausnumero\n")

    assert () == found.commands


def test_note_takes_rest_until_quote() -> None:
    """#note takes its line and the next lines up to the quoted history."""
    text = "#pending\n#note Soitin asiakkaalle.\nHän palaa asiaan.\n\nOn Mon, Maija wrote:\n> hei\n"

    found = parse_command_lines(text)

    assert (Command("pending"), Command("note")) == found.commands
    assert "Soitin asiakkaalle.\nHän palaa asiaan." == found.note
    assert "On Mon, Maija wrote:\n> hei" == found.text


def test_note_stops_at_finnish_attribution() -> None:
    """The Finnish attribution line "... kirjoitti:" ends the note."""
    found = parse_command_lines("#note VIP\nma 7.12.2026 klo 9.12 Maija kirjoitti:\n> hei\n")

    assert "VIP" == found.note


def test_commands_case_insensitive() -> None:
    """Command words are read in any case."""
    assert (Command("close"),) == parse_command_lines("#CLOSE\n").commands


def test_plus_address_commands() -> None:
    """Plus-addresses of the support address are commands; other addresses are not."""
    addresses = ["maija@example.com", "tuki+close@example.fi", "tuki+tag-vip@example.fi", "tuki+priority-high@example.fi"]

    found = address_commands(addresses, "tuki@example.fi", "+")

    assert (
        Command("close", "", "address"), Command("tag", "vip", "address"), Command("priority", "high", "address"),
    ) == found


def test_plus_address_dash_separator() -> None:
    """With "-" as separator, tuki-pending@ is #pending."""
    assert (Command("pending", "", "address"),) == address_commands(["tuki-pending@example.fi"], "tuki@example.fi", "-")


def test_plus_address_other_domain_ignored() -> None:
    """The same local part on another domain is not a command."""
    assert () == address_commands(["tuki+close@example.com"], "tuki@example.fi", "+")


def test_plus_address_unknown_word_ignored() -> None:
    """An unknown word after the separator is no command."""
    assert () == address_commands(["tuki+myynti@example.fi"], "tuki@example.fi", "+")


def test_recipients_include_delivery_headers() -> None:
    """Bcc recipients are found in Delivered-To and X-Original-To."""
    parsed = _with_headers(
        ("To", "Maija <maija@example.com>"), ("Delivered-To", "tuki+close@example.fi"),
        ("X-Original-To", "tuki+tag-vip@example.fi"),
    )

    assert ["maija@example.com", "tuki+close@example.fi", "tuki+tag-vip@example.fi"] == recipients(parsed)


def test_authentication_dmarc_pass() -> None:
    """A DMARC pass for the agent's domain from the trusted server passes."""
    parsed = _with_headers(
        ("Authentication-Results", "mx.example.fi; dkim=fail header.d=example.fi; dmarc=pass (p=none) header.from=example.fi"),
    )

    assert authentication_passes(parsed, "example.fi", "mx.example.fi")


def test_authentication_other_server_ignored() -> None:
    """A pass written by another server does not count."""
    parsed = _with_headers(("Authentication-Results", "mx.attacker.example; dmarc=pass header.from=example.fi"))

    assert not authentication_passes(parsed, "example.fi", "mx.example.fi")


def test_authentication_other_domain_fails() -> None:
    """A DKIM pass for another domain does not count for the agent's domain."""
    parsed = _with_headers(("Authentication-Results", "mx.example.fi; dkim=pass header.d=mailer.example.net"))

    assert not authentication_passes(parsed, "example.fi", "mx.example.fi")


def test_authentication_spf_pass_mailfrom() -> None:
    """An SPF pass whose smtp.mailfrom is on the agent's domain passes."""
    parsed = _with_headers(("Authentication-Results", "mx.example.fi; spf=pass smtp.mailfrom=myyja@example.fi"))

    assert authentication_passes(parsed, "example.fi", "mx.example.fi")


def test_authentication_missing_fails() -> None:
    """No Authentication-Results at all fails."""
    assert not authentication_passes(_with_headers(), "example.fi", "mx.example.fi")


def test_recipient_commands_upper_case() -> None:
    """A plus-address written in upper case in Cc is still a command."""
    parsed = _with_headers(("To", "Maija <maija@example.com>"), ("Cc", '"Tuki" <TUKI+CLOSE@Example.FI>'))

    assert (Command("close", "", "address"),) == recipient_commands(parsed, "tuki@example.fi", "+")


def test_recipient_commands_none() -> None:
    """Mail without a plus-address of the support address has no address commands."""
    parsed = _with_headers(("To", "tuki@example.fi"), ("Cc", "tuki+close@example.com, matti+close@example.fi"))

    assert () == recipient_commands(parsed, "tuki@example.fi", "+")
