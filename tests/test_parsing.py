"""Tests for parse_message: whole messages in, ParsedMessage out."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parser_samples import (
    build_message,
    build_tnef,
    build_tnef_with_property_count,
    mime_part,
    multipart_body,
    multipart_message,
    simple_message,
)

from maildesk.errors import MessageParseError
from maildesk.message import Address, ParsedMessage
from maildesk.parsing import MAX_MIME_DEPTH, parse_message

PLAIN = mime_part("Content-Type: text/plain; charset=utf-8", body="Teksti tässä.\r\n")
HTML = mime_part("Content-Type: text/html; charset=utf-8", body="<p>HTML <b>tässä</b>.</p>\r\n")


def attachment_part(
    disposition: str, content_type: str = "application/pdf", data: bytes = b"%PDF-1.4"
) -> bytes:
    """Return a base64 part with the given Content-Disposition line."""
    return mime_part(
        f"Content-Type: {content_type}",
        disposition,
        "Content-Transfer-Encoding: base64",
        body=base64.encodebytes(data),
    )


def filenames(parsed: ParsedMessage) -> list[str]:
    return [attachment.filename for attachment in parsed.attachments]


def has_internal_error(parsed: ParsedMessage) -> bool:
    return any(defect.startswith("internal parser error") for defect in parsed.defects)


# --- headers ---------------------------------------------------------------------


def test_basic_fields_read():
    """The common header fields come out decoded and normalized."""
    raw = simple_message(
        "Cc: Eeva <EEVA@example.com>, jussi@example.com",
        "Reply-To: <vastaus@example.com>",
        "In-Reply-To: <prev@example.fi>",
        "References: <first@example.fi>\r\n <prev@example.fi>",
        "Return-Path: <Aino@Example.com>",
    )

    parsed = parse_message(raw)

    assert parsed.message_id == "sample-1@example.com"
    assert parsed.subject == "Tilaus 1001"
    assert parsed.from_ == Address("aino@example.com", "Aino Asiakas")
    assert parsed.to == (Address("tuki@example.fi", "Tuki"),)
    assert parsed.cc == (Address("eeva@example.com", "Eeva"), Address("jussi@example.com"))
    assert parsed.reply_to == (Address("vastaus@example.com"),)
    assert parsed.in_reply_to == ("prev@example.fi",)
    assert parsed.references == ("first@example.fi", "prev@example.fi")
    assert parsed.return_path == "aino@example.com"
    assert parsed.date == datetime(2026, 11, 16, 7, 14, 5, tzinfo=UTC)
    assert parsed.text == "Hei.\n"
    assert parsed.size == len(raw)
    assert parsed.defects == ()


def test_split_utf8_subject():
    """A subject whose 'ä' is split across two base64 words decodes cleanly."""
    raw = simple_message(Subject="=?utf-8?B?cHl5ZMM=?=\r\n =?utf-8?B?pG4gaHl2aXR5c3TDpA==?=")

    assert parse_message(raw).subject == "pyydän hyvitystä"


def test_raw_8bit_from_and_subject():
    """Raw 8-bit From and Subject decode, and the From address is still read."""
    raw = build_message(
        b"From: J\xe4\xe4meren \xd6ljy Oy <laskutus@example.net>",
        b"Subject: Lasku er\xe4\xe4ntynyt \x96 muistutus",
        b"Content-Type: text/plain; charset=iso-8859-1",
        body=b"Hyv\xe4 asiakas\r\n",
    )

    parsed = parse_message(raw)

    assert parsed.subject == "Lasku erääntynyt – muistutus"
    assert parsed.from_ == Address("laskutus@example.net", "Jäämeren Öljy Oy")
    assert parsed.text == "Hyvä asiakas\n"


def test_comma_in_from_name():
    """'Surname, Firstname <addr>' gives one From address with the whole name."""
    parsed = parse_message(simple_message(From="Korhonen, Matti <matti@example.com>"))

    assert parsed.from_ == Address("matti@example.com", "Korhonen, Matti")


def test_subject_injection_one_line():
    """An encoded subject with line breaks and a Bcc: line comes out as one line."""
    raw = simple_message(Subject="=?UTF-8?Q?Palautus_5521=0ABcc:_kaikki@example.net=0A=0AHei?=")

    parsed = parse_message(raw)

    assert parsed.subject == "Palautus 5521 Bcc: kaikki@example.net Hei"
    assert parsed.header("Subject") == "Palautus 5521 Bcc: kaikki@example.net Hei"


def test_headers_in_order_sanitized():
    """headers lists every field in order with decoded one-line values."""
    raw = build_message(
        "Received: from a\r\n\tby b; Mon, 16 Nov 2026 09:14:05 +0200",
        "X-Note: =?utf-8?Q?Hyv=C3=A4=00?=   ok",
        "From: a@example.com",
        body="x\r\n",
    )

    parsed = parse_message(raw)

    assert parsed.headers == (
        ("Received", "from a by b; Mon, 16 Nov 2026 09:14:05 +0200"),
        ("X-Note", "Hyvä ok"),
        ("From", "a@example.com"),
    )


def test_nul_removed_everywhere():
    """NUL bytes in subject and body do not reach the text fields."""
    raw = simple_message(
        "Content-Transfer-Encoding: quoted-printable",
        Subject="=?utf-8?Q?Tilaus=00_8812?=",
        body="Hei,=00 tilaus 8812 on kesken.\r\n",
    )

    parsed = parse_message(raw)

    assert parsed.subject == "Tilaus 8812"
    assert parsed.text == "Hei, tilaus 8812 on kesken.\n"


def test_missing_message_id():
    """A message without Message-ID parses with message_id None."""
    assert parse_message(simple_message(Message_ID="")).message_id is None


def test_message_id_without_brackets():
    """A Message-ID without angle brackets is kept, whitespace stripped."""
    assert (
        parse_message(simple_message(Message_ID="  abc@example.com  ")).message_id
        == "abc@example.com"
    )


def test_thread_index_and_topic():
    """Thread-Index is base64-decoded and Thread-Topic decoded."""
    raw = simple_message(
        "Thread-Index: AQHZAAAA", "Thread-Topic: =?utf-8?Q?Laskun_er=C3=A4p=C3=A4iv=C3=A4?="
    )

    parsed = parse_message(raw)

    assert parsed.thread_index == bytes.fromhex("0101d9000000")
    assert parsed.thread_topic == "Laskun eräpäivä"


def test_content_language_read():
    """Content-Language gives its first tag in lower case."""
    assert parse_message(simple_message("Content-Language: fi-FI")).content_language == "fi-fi"


def test_missing_from_uses_reply_to():
    """Without a usable From, the Reply-To address is the sender, with a defect."""
    parsed = parse_message(simple_message("Reply-To: <asiakas@example.com>", From=""))

    assert parsed.from_ == Address("asiakas@example.com")
    assert "no usable From address; sender taken from Reply-To" in parsed.defects


# --- dates ------------------------------------------------------------------------


RECEIVED_NEW = "Received: from b.example.net by mx.example.fi; Tue, 17 Nov 2026 10:00:00 +0200"
RECEIVED_OLD = "Received: from a.example.net by b.example.net; Tue, 17 Nov 2026 09:00:00 +0200"


def test_received_date_without_date():
    """Without a Date header, received_header_date is the topmost Received date."""
    parsed = parse_message(simple_message(RECEIVED_NEW, RECEIVED_OLD, Date=""))

    assert parsed.date is None
    assert parsed.received_header_date == datetime(2026, 11, 17, 8, 0, tzinfo=UTC)


def test_received_date_with_bad_date():
    """An unparseable Date gives None, a defect and the Received date."""
    parsed = parse_message(simple_message(RECEIVED_NEW, Date="eilen"))

    assert parsed.date is None
    assert "unparseable Date header: 'eilen'" in parsed.defects
    assert parsed.received_header_date == datetime(2026, 11, 17, 8, 0, tzinfo=UTC)


def test_received_date_skipped_with_date():
    """With a valid Date the Received headers are not parsed."""
    assert parse_message(simple_message(RECEIVED_NEW)).received_header_date is None


def test_return_path_null():
    """Return-Path <> gives the empty string."""
    assert parse_message(simple_message("Return-Path: <>")).return_path == ""


def test_return_path_absent():
    """No Return-Path gives None."""
    assert parse_message(simple_message()).return_path is None


# --- body text --------------------------------------------------------------------


def test_alternative_prefers_plain():
    """multipart/alternative gives the plain part as text and keeps the HTML."""
    parsed = parse_message(multipart_message("alternative", PLAIN, HTML))

    assert parsed.text == "Teksti tässä."
    assert parsed.html == "<p>HTML <b>tässä</b>.</p>"


def test_html_only_converted():
    """An HTML-only windows-1252 mail gives readable text without markup."""
    html = (
        "<html><head><style>p.MsoNormal{margin:0cm;}</style></head><body>"
        '<p class=3D"MsoNormal">Hei,</p><p class=3D"MsoNormal">&nbsp;</p>'
        '<p class=3D"MsoNormal">Summa 89,00 =80 veloitettiin kahdesti.</p></body></html>'
    )
    raw = simple_message(
        "Content-Transfer-Encoding: quoted-printable",
        'Content-Type: text/html; charset="windows-1252"',
        body=html,
    )

    parsed = parse_message(raw)

    assert parsed.text == "Hei,\n\nSumma 89,00 € veloitettiin kahdesti."
    assert parsed.html is not None


def test_blank_plain_uses_html():
    """An empty plain alternative falls back to the HTML alternative."""
    empty = mime_part("Content-Type: text/plain; charset=utf-8", body="\r\n \r\n")

    assert parse_message(multipart_message("alternative", empty, HTML)).text == "HTML tässä."


def test_mixed_parts_shown_in_order():
    """Inline plain and HTML parts of a multipart/mixed are all shown, in order."""
    signature = mime_part("Content-Type: text/html; charset=utf-8", body="<p>-- Allekirjoitus</p>")

    parsed = parse_message(multipart_message("mixed", PLAIN, signature))

    assert parsed.text == "Teksti tässä.\n\n-- Allekirjoitus"


def test_nested_alternative_html_branch():
    """An alternative whose HTML branch is a multipart still shows only the plain branch."""
    related = mime_part(
        'Content-Type: multipart/mixed; boundary="inner"',
        body=multipart_body(
            "inner", HTML, mime_part("Content-Type: text/html", body="<p>lisää</p>")
        ),
    )

    parsed = parse_message(multipart_message("alternative", PLAIN, related))

    assert parsed.text == "Teksti tässä."
    assert parsed.html == "<p>HTML <b>tässä</b>.</p>\n<p>lisää</p>"


def test_unknown_body_charset():
    """A body in an unknown charset decodes as UTF-8, else windows-1252."""
    raw = simple_message(
        'Content-Type: text/plain; charset="x-user-defined"',
        "Content-Transfer-Encoding: 8bit",
        body=b"hinta 49,90 \x80\r\n",
    )

    parsed = parse_message(raw)

    assert parsed.text == "hinta 49,90 €\n"
    assert "unknown charset 'x-user-defined'" in parsed.defects


def test_unlabelled_iso_2022_jp_body():
    """An unlabelled 7-bit ISO-2022-JP body is decoded as Japanese."""
    raw = simple_message(
        "Content-Type: text/plain", body="テストです".encode("iso2022_jp") + b"\r\n"
    )

    assert parse_message(raw).text == "テストです\n"


def test_bad_base64_body_tolerated():
    """A body with broken base64 still parses."""
    raw = simple_message("Content-Transfer-Encoding: base64", body=b"SGVp!!!IG1hYWls\r\nx")

    parsed = parse_message(raw)

    assert parsed.text == "Hei maail"
    assert "MIME defect: InvalidBase64LengthDefect" in parsed.defects


def test_unknown_transfer_encoding():
    """An unknown Content-Transfer-Encoding leaves the body as it is."""
    raw = simple_message("Content-Transfer-Encoding: x-mystery", body="Hei sama\r\n")

    assert parse_message(raw).text == "Hei sama\n"


def test_missing_closing_boundary():
    """A multipart without its closing boundary still gives its text."""
    raw = build_message(
        "From: a@example.com",
        'Content-Type: multipart/mixed; boundary="open"',
        body=multipart_body("open", PLAIN, close=False),
    )

    assert parse_message(raw).text.strip() == "Teksti tässä."


@pytest.mark.parametrize("eol", [b"\n", b"\r"])
def test_bare_line_endings(eol: bytes):
    """Bare LF and bare CR line endings parse like CRLF."""
    raw = build_message(
        b"From: a@example.com",
        b"Subject: Rivit",
        b'Content-Type: multipart/mixed; boundary="e"',
        body=multipart_body(
            "e", PLAIN, attachment_part('Content-Disposition: attachment; filename="a.pdf"')
        ),
        eol=eol,
    ).replace(b"\r\n", eol)

    parsed = parse_message(raw)

    assert parsed.subject == "Rivit"
    assert parsed.text.strip() == "Teksti tässä."
    assert filenames(parsed) == ["a.pdf"]


def test_thousands_of_levels_no_crash():
    """MIME nested 5000 levels deep parses the headers and notes a defect."""
    levels = 5000
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="L%d"\r\n\r\n--L%d\r\n' % (i, i)
        for i in range(levels)
    )
    raw = (
        b"From: a@example.com\r\nSubject: syva\r\n"
        + opening
        + b"Content-Type: text/plain\r\n\r\nhei\r\n"
    )

    parsed = parse_message(raw)

    assert parsed.subject == "syva"
    assert "MIME nesting too deep for the parser; body not read" in parsed.defects


def test_walk_depth_capped():
    """Parts deeper than MAX_MIME_DEPTH are skipped with a defect."""
    levels = MAX_MIME_DEPTH + 10
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="L%d"\r\n\r\n--L%d\r\n' % (i, i)
        for i in range(levels)
    )
    raw = b"From: a@example.com\r\n" + opening + b"Content-Type: text/plain\r\n\r\nsyvalla\r\n"

    parsed = parse_message(raw)

    assert "syvalla" not in parsed.text
    assert (
        f"MIME nesting deeper than {MAX_MIME_DEPTH} levels; inner parts skipped" in parsed.defects
    )


def test_broken_boundary_parameter():
    """A boundary parameter the stdlib cannot decode gives the headers and a defect."""
    raw = build_message(
        "From: a@example.com",
        "Subject: rikki",
        "Content-Type: multipart/mixed; boundary*=x; boundary*0=y",
        body="--x\r\nContent-Type: text/plain\r\n\r\nhei\r\n--x--\r\n",
    )

    parsed = parse_message(raw)

    assert parsed.subject == "rikki"
    assert "MIME structure unreadable (TypeError); body not read" in parsed.defects


def test_junk_line_before_headers():
    """A junk line before the header block is skipped and the headers read."""
    raw = b"---- Original message ----\r\n" + simple_message(Subject="Yhteydenotto")

    parsed = parse_message(raw)

    assert parsed.subject == "Yhteydenotto"
    assert parsed.from_ == Address("aino@example.com", "Aino Asiakas")
    assert parsed.text == "Hei.\n"


def test_unindented_continuation_repaired():
    """A header continuation line without indentation is joined to its field."""
    raw = build_message(
        "Received: from a.example.net",
        "by mx.example.fi with ESMTP",
        "From: aino@example.com",
        "Subject: Jatko",
        body="Teksti\r\n",
    )

    parsed = parse_message(raw)

    assert parsed.header("Received") == "from a.example.net by mx.example.fi with ESMTP"
    assert parsed.subject == "Jatko"
    assert parsed.text == "Teksti\n"


def test_body_without_separator_kept():
    """Body text right after the headers, with no blank line, stays body text."""
    raw = b"From: aino@example.com\r\nSubject: Ei tyhjaa rivia\r\nTama on viesti.\r\n"

    parsed = parse_message(raw)

    assert parsed.subject == "Ei tyhjaa rivia"
    assert parsed.text == "Tama on viesti.\n"


# --- attachments --------------------------------------------------------------------


def test_attachment_kinds_collected():
    """Disposition attachment, a filename alone and a non-text leaf all become attachments."""
    raw = multipart_message(
        "mixed",
        PLAIN,
        attachment_part('Content-Disposition: attachment; filename="lasku.pdf"'),
        mime_part('Content-Type: text/plain; name="loki.txt"', body="rivi\r\n"),
        mime_part(
            "Content-Type: application/zip",
            "Content-Transfer-Encoding: base64",
            body="UEsDBA==\r\n",
        ),
    )

    parsed = parse_message(raw)

    assert filenames(parsed) == ["lasku.pdf", "loki.txt", "attachment-3.zip"]
    assert parsed.attachments[0].content == b"%PDF-1.4"
    assert parsed.attachments[0].content_type == "application/pdf"
    assert parsed.text == "Teksti tässä."


def test_inline_image_marked():
    """An image the HTML shows by cid: is inline, its content_id without brackets."""
    html = mime_part("Content-Type: text/html", body='<p>Kuva:</p><img src="cid:logo.png@01DA">')
    image = mime_part(
        "Content-Type: image/png",
        "Content-ID: <logo.png@01DA>",
        "Content-Disposition: inline",
        "Content-Transfer-Encoding: base64",
        body="iVBORw0KGgo=\r\n",
    )
    related = mime_part(
        'Content-Type: multipart/related; boundary="rel"', body=multipart_body("rel", html, image)
    )

    parsed = parse_message(multipart_message("alternative", PLAIN, related))

    assert len(parsed.attachments) == 1
    assert parsed.attachments[0].inline is True
    assert parsed.attachments[0].content_id == "logo.png@01DA"
    assert parsed.attachments[0].filename == "logo.png"


def test_unreferenced_image_not_inline():
    """An image no HTML refers to is an ordinary attachment."""
    image = mime_part("Content-Type: image/png", "Content-ID: <kuva1>", body="x")

    parsed = parse_message(multipart_message("mixed", PLAIN, image))

    assert parsed.attachments[0].inline is False
    assert parsed.attachments[0].filename == "attachment-1.png"


def test_rfc2231_continuation_filename():
    """An RFC 2231 filename in continuations decodes with its charset."""
    part = attachment_part(
        "Content-Disposition: attachment;\r\n filename*0*=iso-8859-1''p%E4iv%E4tty%20;\r\n filename*1*=14.11.pdf"
    )

    assert filenames(parse_message(multipart_message("mixed", PLAIN, part))) == [
        "päivätty 14.11.pdf"
    ]


def test_rfc2231_preferred_over_name():
    """filename* wins over a plain filename and the RFC 2047 name of Content-Type."""
    part = mime_part(
        'Content-Type: application/pdf; name="=?utf-8?Q?vanha.pdf?="',
        "Content-Disposition: attachment; filename=\"plain.pdf\"; filename*=UTF-8''%C3%84kk%C3%B6set.pdf",
        body="x",
    )

    assert filenames(parse_message(multipart_message("mixed", PLAIN, part))) == ["Äkköset.pdf"]


def test_rfc2047_name_used():
    """Without a Content-Disposition filename, the RFC 2047 name of Content-Type is used."""
    part = mime_part(
        'Content-Type: application/pdf; name="=?iso-8859-1?Q?Hyvitys_p=E4iv=E4.pdf?="', body="x"
    )

    assert filenames(parse_message(multipart_message("mixed", PLAIN, part))) == [
        "Hyvitys päivä.pdf"
    ]


def test_raw_8bit_filename():
    """A raw UTF-8 filename decodes without U+FFFD."""
    part = mime_part(
        "Content-Type: application/pdf",
        'Content-Disposition: attachment; filename="p\xe4iv\xe4.pdf"'.encode(),
        body="x",
    )

    assert filenames(parse_message(multipart_message("mixed", PLAIN, part))) == ["päivä.pdf"]


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('filename="../../../../etc/cron.d/maildesk"', "maildesk"),
        ('filename="..\\\\..\\\\AppData\\\\evil.bat"', "evil.bat"),
        ('filename="C:\\\\Windows\\\\evil.bat"', "evil.bat"),
        ('filename="/tmp/absolute.txt"', "absolute.txt"),
        ('filename="=?UTF-8?Q?=2E=2E=2F=2E=2E=2Fsalaisuus=2Etxt?="', "salaisuus.txt"),
        ("filename*=UTF-8''%2E%2E%2Fnimi%00.txt", "nimi.txt"),
        ('filename=".."', "attachment-1.txt"),
        ('filename="CON"', "_CON"),
        ('filename="NUL.txt"', "_NUL.txt"),
    ],
)
def test_hostile_filenames_sanitized(disposition: str, expected: str):
    """Path parts, NUL and reserved device names never survive into the filename."""
    part = mime_part(
        "Content-Type: text/plain", f"Content-Disposition: attachment; {disposition}", body="x"
    )

    assert filenames(parse_message(multipart_message("mixed", PLAIN, part))) == [expected]


def test_invalid_content_type_replaced():
    """A content type with raw 8-bit bytes becomes application/octet-stream."""
    part = mime_part(
        b"Content-Type: image/p\xe4ng", b'Content-Disposition: attachment; filename="a"', body="x"
    )

    parsed = parse_message(multipart_message("mixed", PLAIN, part))

    assert parsed.attachments[0].content_type == "application/octet-stream"
    assert "invalid content type 'image/päng'" in parsed.defects


def test_description_names_unnamed_part():
    """A part without filename is named after its Content-Description."""
    part = mime_part(
        "Content-Type: message/delivery-status",
        "Content-Description: Delivery report",
        body="A: b\r\n",
    )

    assert filenames(parse_message(multipart_message("mixed", PLAIN, part))) == [
        "Delivery report.txt"
    ]


# --- forwarded messages ----------------------------------------------------------------

INNER = build_message(
    "From: Verkkokauppa <noreply@example.fi>",
    "Subject: =?iso-8859-1?Q?Tilausvahvistus_55120_=96_kiitos?=",
    "Message-ID: <order-55120@example.fi>",
    'Content-Type: multipart/mixed; boundary="in"',
    body=multipart_body(
        "in",
        mime_part("Content-Type: text/plain", body="Tilauksesi on vastaanotettu.\r\n"),
        attachment_part('Content-Disposition: attachment; filename="kuitti.pdf"'),
    ),
)


def forward(*part_headers: str, inner: bytes = INNER) -> bytes:
    text = mime_part("Content-Type: text/plain; charset=utf-8", body="Summa on väärin.\r\n")
    attached = mime_part("Content-Type: message/rfc822", *part_headers, body=inner)

    return multipart_message("mixed", text, attached)


def test_forward_is_one_attachment():
    """A forwarded message is one .eml attachment holding the inner message bytes."""
    parsed = parse_message(forward('Content-Disposition: attachment; filename="Vahvistus.eml"'))

    assert filenames(parsed) == ["Vahvistus.eml"]
    assert parsed.attachments[0].content_type == "message/rfc822"
    assert b"Message-ID: <order-55120@example.fi>" in parsed.attachments[0].content
    assert b"kuitti.pdf" in parsed.attachments[0].content


def test_forward_content_is_original():
    """The attachment content equals the inner message bytes, up to the final line break."""
    parsed = parse_message(forward())

    assert parsed.attachments[0].content.rstrip(b"\r\n") == INNER.rstrip(b"\r\n")


def test_forward_inner_fields_isolated():
    """Inner headers, text and attachments never become the outer message's."""
    parsed = parse_message(forward())

    assert parsed.from_ == Address("aino@example.com", "Aino Asiakas")
    assert parsed.message_id == "sample-1@example.com"
    assert parsed.text == "Summa on väärin."
    assert "Tilauksesi" not in parsed.text
    assert len(parsed.attachments) == 1


def test_forward_named_after_subject():
    """Without a filename the attachment is named after the inner Subject."""
    assert filenames(parse_message(forward())) == ["Tilausvahvistus 55120 – kiitos.eml"]


def test_forward_subject_name_sanitized():
    """A path in the inner Subject does not reach the filename."""
    inner = b"Subject: ../../etc/passwd\r\n\r\nText\r\n"

    assert filenames(parse_message(forward(inner=inner))) == ["passwd.eml"]


def test_base64_forward_decoded():
    """A base64-encoded message/rfc822 part keeps the decoded inner message."""
    encoded = base64.encodebytes(b"Subject: Koodattu\r\n\r\nSisalto\r\n")

    parsed = parse_message(forward("Content-Transfer-Encoding: base64", inner=encoded))

    assert parsed.attachments[0].content == b"Subject: Koodattu\r\n\r\nSisalto\r\n"
    assert filenames(parsed) == ["Koodattu.eml"]


# --- winmail.dat --------------------------------------------------------------------


def tnef_part(data: bytes) -> bytes:
    return mime_part(
        'Content-Type: application/ms-tnef; name="winmail.dat"',
        'Content-Disposition: attachment; filename="winmail.dat"',
        "Content-Transfer-Encoding: base64",
        body=base64.encodebytes(data),
    )


def test_tnef_unpacked():
    """winmail.dat is replaced by the files packed in it."""
    data = build_tnef([(b"tarjous.pdf", b"%PDF-1.4"), (b"p\xe4iv\xe4.txt", b"rivi")])

    parsed = parse_message(multipart_message("mixed", PLAIN, tnef_part(data)))

    assert filenames(parsed) == ["tarjous.pdf", "päivä.txt"]
    assert parsed.attachments[0].content == b"%PDF-1.4"
    assert parsed.attachments[0].content_type == "application/pdf"


def test_tnef_broken_kept():
    """A winmail.dat that cannot be unpacked is kept as it is, with a defect."""
    parsed = parse_message(multipart_message("mixed", PLAIN, tnef_part(b"not a tnef stream")))

    assert filenames(parsed) == ["winmail.dat"]
    assert parsed.attachments[0].content == b"not a tnef stream"
    assert "winmail.dat could not be unpacked; kept as is" in parsed.defects


def test_tnef_hostile_count_rejected():
    """A property count of 0xFFFFFFFF is rejected before tnefparse loops over it."""
    data = build_tnef_with_property_count(0xFFFFFFFF)

    parsed = parse_message(multipart_message("mixed", PLAIN, tnef_part(data)))

    assert filenames(parsed) == ["winmail.dat"]


def test_tnef_body_used_without_text():
    """The body packed in winmail.dat is the text when the mail has none."""
    data = build_tnef([(b"a.pdf", b"%PDF")], body=b"Tarjouspyynt\xf6 liitteen\xe4")
    raw = build_message(
        "From: a@example.com",
        'Content-Type: multipart/mixed; boundary="t"',
        body=multipart_body("t", tnef_part(data)),
    )

    parsed = parse_message(raw)

    assert parsed.text == "Tarjouspyyntö liitteenä"
    assert filenames(parsed) == ["a.pdf"]


# --- hash and contract -------------------------------------------------------------


def test_redelivery_same_hash():
    """A second delivery with other Received lines and transfer encoding hashes the same."""
    first = simple_message(
        "Received: from a by b; Mon, 16 Nov 2026 09:14:06 +0200", body="Hyvä päivä\r\n"
    )
    second = simple_message(
        "Received: from c by d; Mon, 16 Nov 2026 09:20:00 +0200",
        "Received: from e by c; Mon, 16 Nov 2026 09:19:00 +0200",
        "Content-Transfer-Encoding: base64",
        body=base64.encodebytes("Hyvä päivä\r\n".encode()),
    )

    assert parse_message(first).content_hash == parse_message(second).content_hash


def test_different_mail_different_hash():
    """Mails that differ in body or subject hash differently."""
    base = parse_message(simple_message(body="yksi\r\n")).content_hash

    assert parse_message(simple_message(body="kaksi\r\n")).content_hash != base
    assert parse_message(simple_message(body="yksi\r\n", Subject="Toinen")).content_hash != base


def test_hash_is_sha256_hex():
    """content_hash is 64 lower-case hex digits, the length of a sha256 digest."""
    digest = parse_message(simple_message()).content_hash

    assert len(digest) == len(hashlib.sha256().hexdigest())
    assert set(digest) <= set("0123456789abcdef")


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n\t"])
def test_empty_input_raises(raw: bytes):
    """Input with nothing to read raises MessageParseError."""
    with pytest.raises(MessageParseError, match="message is empty"):
        parse_message(raw)


def test_non_bytes_rejected():
    """A str is a caller error and raises TypeError."""
    with pytest.raises(TypeError, match="needs bytes, not str"):
        parse_message("From: a@example.com\r\n\r\nx")  # type: ignore[arg-type]


def test_headerless_bytes_parse():
    """Bytes with no header block still give a message with the bytes as text."""
    parsed = parse_message(b"\x00\xff just some bytes")

    assert parsed.from_ is None
    assert parsed.text == "ÿ just some bytes"


# --- property tests -----------------------------------------------------------------

SAMPLES = [
    simple_message(),
    multipart_message("alternative", PLAIN, HTML),
    forward(),
    multipart_message("mixed", PLAIN, tnef_part(build_tnef([(b"a.pdf", b"%PDF")], body=b"x"))),
    build_message(
        "Return-Path: <>",
        "From: MAILER-DAEMON@mx.example.net",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
        body=multipart_body(
            "r",
            PLAIN,
            mime_part(
                "Content-Type: message/delivery-status",
                body="X: y\r\n\r\nFinal-Recipient: rfc822; a@b.c\r\nAction: failed\r\n",
            ),
            mime_part("Content-Type: text/rfc822-headers", body="Message-ID: <m@x>\r\n"),
        ),
    ),
]


def text_fields(value: object) -> list[str]:
    """Return every str inside a ParsedMessage, its addresses, attachments and tuples."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (tuple, list)):
        return [text for item in value for text in text_fields(item)]
    if dataclasses.is_dataclass(value):
        return [
            text
            for item in dataclasses.fields(value)
            for text in text_fields(getattr(value, item.name))
        ]

    return []


def assert_parses(raw: bytes) -> None:
    """Parse ``raw``; blank input may raise MessageParseError, nothing else may raise."""
    try:
        parsed = parse_message(raw)
    except MessageParseError:
        assert not raw.strip()
        return
    assert not has_internal_error(parsed)
    for value in text_fields(parsed):
        assert "\x00" not in value
        value.encode("utf-8")  # raises on a lone surrogate
    for name, value in (("subject", parsed.subject), *parsed.headers):
        assert "\n" not in value, name
        assert "\r" not in value, name


@pytest.fixture(autouse=True)
def quiet_tnefparse() -> None:
    """tnefparse logs an error for every damaged stream the property tests feed it."""
    logging.getLogger("tnefparse").setLevel(logging.CRITICAL)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(raw: bytes):
    """Arbitrary bytes parse or, when blank, raise MessageParseError."""
    assert_parses(raw)


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """A sample message with a few bytes replaced, inserted, deleted or cut."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        position = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        action = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
        chunk = draw(
            st.binary(min_size=1, max_size=8)
            | st.sampled_from([b"\r\n", b"--", b"=?", b'"', b";", b"<"])
        )
        if action == "replace":
            data[position : position + len(chunk)] = chunk
        elif action == "insert":
            data[position:position] = chunk
        elif action == "delete":
            del data[position : position + len(chunk)]
        else:
            del data[position:]

    return bytes(data)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutated_samples())
def test_mutated_mail_never_crashes(raw: bytes):
    """Valid mail with random damage parses without an internal error."""
    assert_parses(raw)
