"""Removing one person's address, names and quoted lines from other people's text."""

from __future__ import annotations

import json

from maildesk.redaction import (
    REMOVED,
    Redactor,
    authored_lines,
    contains_address,
    text_lines,
    usable_names,
)

ADDRESS = "maija.meikalainen@example.com"
PSEUDONYM = "erased-0123456789abcdef@invalid"


def redactor(lines: tuple[str, ...] = (), subjects: tuple[str, ...] = ()) -> Redactor:
    return Redactor(
        ADDRESS,
        PSEUDONYM,
        usable_names(["Maija Meikäläinen"], ADDRESS),
        text_lines(lines),
        frozenset(subjects),
    )


def test_address_becomes_pseudonym() -> None:
    """The address is replaced in any letter case."""
    assert redactor().text("Kopio: Maija.Meikalainen@Example.com\n") == f"Kopio: {PSEUDONYM}\n"


def test_full_name_replaced() -> None:
    """The display name is replaced by the marker."""
    assert redactor().text("Terveisin Maija Meikäläinen") == f"Terveisin {REMOVED}"


def test_inflected_first_name_replaced() -> None:
    """A word that starts with a part of the name goes, so inflected forms go too."""
    assert redactor().text("Kiitos Maijalle!") == f"Kiitos {REMOVED}!"


def test_name_inside_word_kept() -> None:
    """A part of the name in the middle of another word is not a name."""
    assert redactor().text("Ammaija ja kamaija") == "Ammaija ja kamaija"


def test_attribution_block_removed() -> None:
    """An attribution line naming them and the quoted block after it become one marker."""
    text = (
        "Samaa mieltä.\n\n"
        f"ma 1.12.2026 klo 10.00 Maija Meikäläinen <{ADDRESS}> kirjoitti:\n"
        "> Rivi jota ei tunneta\n"
        "> toinen rivi\n"
        "Oma loppu.\n"
    )

    assert redactor().text(text) == f"Samaa mieltä.\n\n{REMOVED}\nOma loppu.\n"


def test_outlook_header_block_removed() -> None:
    """An Outlook-style quote starting with their From line runs to the end of the text."""
    text = (
        "Käy minulle.\n\n"
        "-----Original Message-----\n"
        f"From: Maija Meikäläinen <{ADDRESS}>\n"
        "Sent: Monday\n"
        "Ovikoodini on 2580.\n"
    )

    assert redactor().text(text) == f"Käy minulle.\n\n-----Original Message-----\n{REMOVED}\n"


def test_their_line_removed_anywhere() -> None:
    """A line equal to one of theirs is removed, whatever its quote marks and spacing."""
    text = "Alku\n>>   Ovikoodini on   2580.\nLoppu"

    assert redactor(lines=("Ovikoodini on 2580.",)).text(text) == f"Alku\n{REMOVED}\nLoppu"


def test_short_line_kept() -> None:
    """Lines shorter than the minimum are not matched, so greetings stay."""
    assert redactor(lines=("Hei,",)).text("Hei,\nmuuta") == "Hei,\nmuuta"


def test_subject_of_theirs_removed() -> None:
    """A subject with the key of their ticket becomes the marker."""
    assert redactor(subjects=("tilaus 4471",)).subject("Re: Tilaus 4471 [#1]") == REMOVED


def test_other_subject_keeps_words() -> None:
    """Another subject only loses their name."""
    assert redactor().subject("Maijan paketti") == f"{REMOVED} paketti"


def test_address_list_pseudonymized() -> None:
    """Their entry in a stored address list gets the pseudonym and no name."""
    value = json.dumps([["b@example.net", "Bertta"], [ADDRESS, "Maija Meikäläinen"]])

    assert json.loads(redactor().addresses_json(value)) == [["b@example.net", "Bertta"], [PSEUDONYM, ""]]


def test_mentions_by_line() -> None:
    """A text that quotes one of their lines mentions them."""
    assert redactor(lines=("Ovikoodini on 2580.",)).mentions("> Ovikoodini on 2580.")


def test_unrelated_text_not_mentioned() -> None:
    """A text without their address, name or lines does not mention them."""
    assert not redactor().mentions("Bertta kirjoitti lahjakortista.")


def test_authored_lines_skip_quotes() -> None:
    """Quoted lines and an Outlook quote are not counted as the writer's own."""
    text = "Oma rivi tässä.\n> Agentin vastaus tässä.\nFrom: Aino\nVanha viesti tässä."

    assert authored_lines([text]) == frozenset({"oma rivi tässä."})


def test_longer_address_kept() -> None:
    """Another address that ends with theirs is neither replaced nor taken apart."""
    text = f"Kopio: toinen.{ADDRESS}"

    assert redactor().replace_names(text) == text


def test_longer_address_not_mentioned() -> None:
    """Another address that ends with theirs does not mention them."""
    assert not redactor().mentions(f"From: toinen.{ADDRESS}")


def test_first_name_not_a_mention() -> None:
    """A first name alone does not make a text theirs, since others share it."""
    assert not redactor().mentions("Terveisin Maija Virtanen")


def test_first_name_attribution_removed() -> None:
    """An attribution by first name alone still starts a quote of theirs."""
    assert redactor().text("Ok.\nMaija kirjoitti:\n> jotain\n") == f"Ok.\n{REMOVED}\n"


def test_contains_address_whole_only() -> None:
    """Only the whole address counts, in any letter case."""
    assert [contains_address(text, ADDRESS) for text in (f"<{ADDRESS.upper()}>", f"x.{ADDRESS}")] == [True, False]


def test_file_name_loses_name() -> None:
    """A file name with their name in it keeps only the rest."""
    assert redactor().replace_names("Maija Meikäläinen kuitti.pdf") == f"{REMOVED} kuitti.pdf"
