"""Tests for header decoding, charsets, addresses, Message-IDs, dates and filenames."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.policy import compat32

import pytest

from maildesk.headers import (
    clean_text,
    decode_bytes,
    decode_filename_param,
    decode_header_value,
    decode_thread_index,
    extract_message_ids,
    header_params,
    parse_addresses,
    parse_content_language,
    parse_date,
    parse_return_path,
    raw_header,
    resolve_charset,
    sanitize_filename,
)
from maildesk.message import Address


def surrogates(data: bytes) -> str:
    """Return ``data`` as compat32 stores header text: raw 8-bit bytes as surrogates."""
    return data.decode("ascii", "surrogateescape")


# --- encoded words and charsets -----------------------------------------------------


def test_split_encoded_words_joined():
    """Two base64 words that split the UTF-8 bytes of 'ä' decode to 'ä'."""
    first = "=?utf-8?B?" + "cHl5ZMM=" + "?="  # "pyyd" + first byte of 'ä'
    second = "=?utf-8?B?" + "pG4=" + "?="  # second byte of 'ä' + "n"
    defects: list[str] = []

    decoded = decode_header_value(f"{first}\r\n {second}", defects)

    assert decoded == "pyydän"
    assert "\ufffd" not in decoded
    assert defects == []


def test_encoded_words_different_charsets():
    """Adjacent words in different charsets decode separately, white space between them dropped."""
    value = "=?iso-8859-1?Q?p=E4iv=E4?= =?utf-8?Q?_m=C3=A4=C3=A4r=C3=A4?="

    assert decode_header_value(value, []) == "päivä määrä"


def test_encoded_word_text_keeps_spaces():
    """Plain text between encoded-words keeps its spaces."""
    assert decode_header_value("Re: =?utf-8?Q?T=C3=A4m=C3=A4?= ja tuo", []) == "Re: Tämä ja tuo"


@pytest.mark.parametrize(
    ("label", "data", "expected"),
    [
        ("utf8", "Hyvä".encode(), "Hyvä"),
        ("latin1", b"Hyv\xe4", "Hyvä"),
        ("iso-8859-15", b"\xa4 5", "€ 5"),
        ("windows-1252", b"5 \x80", "5 €"),
        ("cp1252", b"a \x96 b", "a – b"),
        ("iso-8859-1", b"5 \x80", "5 €"),
        ("ks_c_5601-1987", "한국".encode("cp949"), "한국"),
        ("ISO-2022-JP", "テスト".encode("iso2022_jp"), "テスト"),
        ('"UTF-8"', "Hyvä".encode(), "Hyvä"),
        ("x-mac-roman", b"\x8a", "ä"),
        ("windows-874", "ไทย".encode("cp874"), "ไทย"),
        ("gb2312", "中文".encode("gb18030"), "中文"),
    ],
)
def test_charset_aliases_decode(label: str, data: bytes, expected: str):
    """Common charset labels and aliases decode without a defect."""
    defects: list[str] = []

    assert decode_bytes(data, label, defects) == expected
    assert defects == []


@pytest.mark.parametrize(
    "label", ["x-unknown", "x-user-defined", "utf-88", "unicode_escape", "base64"]
)
def test_unknown_charset_falls_back(label: str):
    """A label Python cannot use decodes as UTF-8, else windows-1252, with a defect."""
    defects: list[str] = []

    assert decode_bytes("Hyvä".encode(), label, defects) == "Hyvä"
    assert decode_bytes(b"49,90 \x80", label, defects) == "49,90 €"
    assert defects[0] == f"unknown charset {label!r}"


def test_resolve_charset_rejects_escape_codec():
    """unicode_escape is never used, because it evaluates backslash escapes."""
    assert resolve_charset("unicode_escape") == ()


def test_wrong_declared_charset_falls_back():
    """UTF-8 bytes declared as us-ascii decode as UTF-8."""
    assert decode_bytes("Hyvä".encode(), "us-ascii", []) == "Hyvä"


def test_undecodable_bytes_replaced():
    """Bytes that fit no codec give U+FFFD and a defect, never an exception."""
    defects: list[str] = []

    assert decode_bytes(b"a\x81b", "utf-8", defects) == "a\ufffdb"
    assert defects == ["text does not match charset 'utf-8'"]


def test_unlabelled_iso_2022_jp_detected():
    """ISO-2022-JP without a charset label is recognized by its escape sequences."""
    data = "テストです".encode("iso2022_jp")

    assert decode_bytes(data, None, []) == "テストです"


def test_unknown_charset_encoded_word():
    """An encoded-word with an unknown charset still decodes."""
    defects: list[str] = []

    assert decode_header_value("=?x-unknown?Q?ty=F6kalu?=", defects) == "työkalu"
    assert defects == ["unknown charset 'x-unknown'"]


def test_raw_utf8_header_decoded():
    """Raw UTF-8 header bytes without an encoded-word decode as UTF-8."""
    value = surrogates("Jäämeren Öljy".encode())

    assert decode_header_value(value, []) == "Jäämeren Öljy"


def test_raw_cp1252_header_decoded():
    """Raw header bytes that are not UTF-8 decode as windows-1252 (0x96 is an en dash)."""
    value = surrogates(b"Lasku er\xe4\xe4ntynyt \x96 muistutus")

    assert decode_header_value(value, []) == "Lasku erääntynyt – muistutus"


# --- sanitizing -----------------------------------------------------------------


def test_newlines_in_encoded_subject_flattened():
    """An encoded subject that decodes to several lines comes out as one line."""
    value = "=?UTF-8?Q?Palautus_1=0ABcc:_kaikki@example.net=0D=0A=0AHei?="

    assert decode_header_value(value, []) == "Palautus 1 Bcc: kaikki@example.net Hei"


def test_controls_and_runs_collapsed():
    """Control characters become spaces and white space runs collapse to one."""
    value = "=?utf-8?Q?a=00b=07c=1B__d=E2=80=A8e?=\t\r\n  f "

    assert decode_header_value(value, []) == "a b c d e f"


def test_clean_text_removes_nul_and_surrogates():
    """clean_text drops NUL and lone surrogates and keeps everything else."""
    assert clean_text("a\x00b\ud800c\udcffd\n") == "abcd\n"


# --- addresses ------------------------------------------------------------------


def test_unquoted_comma_in_display_name():
    """An unquoted comma in the display name gives one address with the whole name."""
    defects: list[str] = []

    found = parse_addresses("Korhonen, Matti <Matti.Korhonen@Example.com>", defects)

    assert found == (Address("matti.korhonen@example.com", "Korhonen, Matti"),)
    assert defects == []


def test_half_address_never_returned():
    """A name without an address is dropped with a defect, never returned as an address."""
    defects: list[str] = []

    found = parse_addresses("Matti Korhonen, aino@example.com", defects)

    assert found == (Address("aino@example.com"),)
    assert defects == ["address without domain dropped: 'Matti Korhonen'"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("user@example.com (Aino Asiakas)", (Address("user@example.com", "Aino Asiakas"),)),
        ("Aino Asiakas user@example.com", (Address("user@example.com", "Aino Asiakas"),)),
        ('"Aino <aino@example.com>', (Address("aino@example.com", "Aino"),)),
        ('Aino" <aino@example.com>', (Address("aino@example.com", "Aino"),)),
        ("<aino@example.com>", (Address("aino@example.com"),)),
        ("mailto:Aino@Example.com", (Address("aino@example.com"),)),
        ("Aino <aino @ example . com>", (Address("aino@example.com", "Aino"),)),
        ("<@relay.example.net:aino@example.com>", (Address("aino@example.com"),)),
        (
            '"aino@example.com" <real@example.net>',
            (Address("real@example.net", "aino@example.com"),),
        ),
        ("=?utf-8?Q?aino?=@example.com", (Address("aino@example.com"),)),
        (
            '"Lottery Office transfer"@example.com>',
            (Address('"lottery office transfer"@example.com'),),
        ),
        (
            "Tiimi: a@example.com, b@example.com;",
            (Address("a@example.com"), Address("b@example.com")),
        ),
        ("undisclosed-recipients:;", ()),
    ],
)
def test_address_forms_parsed(value: str, expected: tuple[Address, ...]):
    """Comments, missing brackets, broken quotes and groups give sensible addresses."""
    assert parse_addresses(value, []) == expected


def test_encoded_display_name_decoded():
    """An encoded display name with a comma is decoded and stays one address."""
    found = parse_addresses("=?utf-8?Q?Korhonen=2C_M=C3=A4tti?= <m@example.com>", [])

    assert found == (Address("m@example.com", "Korhonen, Mätti"),)


def test_raw_8bit_display_name():
    """A raw UTF-8 display name is decoded and the address still read."""
    value = surrogates("Jäämeren Öljy Oy <laskutus@example.net>".encode())

    assert parse_addresses(value, []) == (Address("laskutus@example.net", "Jäämeren Öljy Oy"),)


def test_space_in_local_part_rejected():
    """A local part with inner spaces is malformed and dropped with a defect."""
    defects: list[str] = []

    assert parse_addresses("Spam <power quadrant system@example.com>", defects) == ()
    assert defects == ["invalid address dropped: 'power quadrant system@example.com'"]


def test_address_without_domain_dropped():
    """ "user@" has no domain and is dropped."""
    assert parse_addresses("Aino <aino@>", []) == ()


# --- Return-Path, Message-IDs, dates ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("<>", ""), (" < > ", ""), ("<Aino@Example.COM>", "aino@example.com")],
)
def test_return_path_values(value: str | None, expected: str | None):
    """Return-Path is None when absent, "" for the null path, else the address lower-case."""
    assert parse_return_path(value, []) == expected


def test_message_id_without_brackets():
    """A Message-ID without angle brackets is taken as it is."""
    assert extract_message_ids("  abc.123@example.com ") == ("abc.123@example.com",)


def test_references_folded_with_junk():
    """Folded References with commas and junk give the ids in order, once each."""
    value = "<a@x>\r\n\t<b@x>,<c@x> (comment) junk <a@x> < d @x >"

    assert extract_message_ids(value) == ("a@x", "b@x", "c@x", "d@x")


def test_references_without_brackets():
    """References without any brackets are split at white space and commas."""
    assert extract_message_ids("a@x, b@x\r\n c@x") == ("a@x", "b@x", "c@x")


def test_date_converted_to_utc():
    """A Date with an offset becomes an aware datetime in UTC."""
    parsed = parse_date("Mon, 16 Nov 2026 09:14:05 +0200", [])

    assert parsed == datetime(2026, 11, 16, 7, 14, 5, tzinfo=UTC)
    assert parsed.tzinfo is UTC


def test_naive_date_taken_as_utc():
    """A Date with "-0000" (no zone information) is taken as UTC."""
    assert parse_date("Mon, 16 Nov 2026 09:14:05 -0000", []) == datetime(
        2026, 11, 16, 9, 14, 5, tzinfo=UTC
    )


def test_unparseable_date_noted():
    """An unreadable Date gives None and a defect."""
    defects: list[str] = []

    assert parse_date("next tuesday", defects) is None
    assert defects == ["unparseable Date header: 'next tuesday'"]


def test_content_language_first_tag():
    """Content-Language gives its first tag, lower-case."""
    assert parse_content_language("fi-FI, en") == "fi-fi"


def test_content_language_junk_ignored():
    """A Content-Language value that is no language tag gives None."""
    assert parse_content_language("<script>") is None


def test_thread_index_decoded():
    """Thread-Index is base64-decoded."""
    assert decode_thread_index("AQHZ\r\n AAAA", []) == bytes.fromhex("0101d9000000")


def test_thread_index_invalid():
    """An invalid Thread-Index gives None and a defect."""
    defects: list[str] = []

    assert decode_thread_index("not base64!", defects) is None
    assert defects == ["invalid Thread-Index"]


# --- parameters and filenames -----------------------------------------------------------


def test_header_params_keep_8bit():
    """Raw 8-bit bytes in a parameter stay as surrogates instead of becoming U+FFFD."""
    message = email.message_from_bytes(
        b'Content-Disposition: attachment; filename="p\xc3\xa4iv\xc3\xa4.pdf"\r\n\r\nx',
        policy=compat32,
    )

    params = header_params(message, "content-disposition")

    assert params == [("filename", surrogates("päivä.pdf".encode()))]
    assert decode_filename_param(params[0][1], []) == "päivä.pdf"


def test_header_params_broken_rfc2231():
    """Mixing "filename*=" and "filename*0=" (a TypeError in Python 3.11) gives no crash."""
    message = email.message_from_bytes(
        b"Content-Disposition: attachment; filename*=utf-8''a; filename*0=b; size=3\r\n\r\nx",
        policy=compat32,
    )

    assert header_params(message, "content-disposition") == [("size", "3")]


def test_raw_header_reads_first_value():
    """raw_header returns the stored text of the first matching field."""
    message = email.message_from_bytes(b"X-A: one\r\nx-a: two\r\n\r\n", policy=compat32)

    assert raw_header(message, "X-a") == "one"


def test_rfc2231_continuation_decoded():
    """An RFC 2231 tuple decodes with its charset."""
    value = ("iso-8859-1", "", "p\xe4iv\xe4tty 14.11.pdf")

    assert decode_filename_param(value, []) == "päivätty 14.11.pdf"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/maildesk", "maildesk"),
        ("C:\\Windows\\evil.bat", "evil.bat"),
        ("/tmp/absolute.txt", "absolute.txt"),
        ("..\\..\\AppData\\x.txt", "x.txt"),
        ("nimi\x00.txt", "nimi.txt"),
        ("a\x07b\r\nc.txt", "abc.txt"),
        ("lasku\u202etxt.exe", "laskutxt.exe"),
        ("  raportti.pdf  ", "raportti.pdf"),
        ("evil.bat. . ", "evil.bat"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.log", "_com1.log"),
        ("lpt9", "_lpt9"),
        ("console.txt", "console.txt"),
    ],
)
def test_filename_sanitized(name: str, expected: str):
    """Only the last path part survives, without controls, reserved names prefixed."""
    assert sanitize_filename(name, ".bin", 1) == expected


@pytest.mark.parametrize("name", [None, "", "..", ".", "../..", "/", "\x00\x01"])
def test_filename_fallback_when_empty(name: str | None):
    """A name with nothing usable left becomes attachment-<index><extension>."""
    assert sanitize_filename(name, ".pdf", 3) == "attachment-3.pdf"


def test_long_filename_truncated():
    """A name over 255 bytes is cut, keeping its extension."""
    result = sanitize_filename("ä" * 300 + ".pdf", ".bin", 1)

    assert result.endswith("ä.pdf")
    assert len(result.encode()) <= 255
