"""Tests for maildesk.replies: reply Message-IDs, subjects and the new-ticket acknowledgement."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import pytest

import maildesk.replies
from maildesk.config import AutoreplySettings, Config, SmtpSettings
from maildesk.message import Address, ParsedMessage
from maildesk.replies import (
    build_new_ticket_reply,
    clean_header_text,
    find_templates_dir,
    make_message_id,
    reply_subject,
    ticket_from_message_id,
)

SECRET = b"0123456789abcdef0123456789abcdef"
# 10:00 UTC is 12:00 in Helsinki in winter (UTC+2).
NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
CUSTOMER = Address("liisa.makinen@example.com", "Liisa Mäkinen")
REPOSITORY_TEMPLATES = Path(maildesk.replies.__file__).parents[1] / "templates"


def make_config(**fields: Any) -> Config:
    values: dict[str, Any] = {
        "path": None,
        "name": "Verkkokaupan asiakaspalvelu",
        "support_address": "tuki@example.fi",
        "language": "fi",
    }
    values.update(fields)
    return Config(**values)


def make_message(**fields: Any) -> ParsedMessage:
    values: dict[str, Any] = {
        "message_id": "c3@mail.example.com",
        "subject": "Tilaus 5521",
        "from_": CUSTOMER,
        "to": (Address("tuki@example.fi"),),
        "references": ("c1@mail.example.com", "c2@mail.example.com"),
    }
    values.update(fields)
    return ParsedMessage(**values)


def build(
    *,
    config: Config | None = None,
    message: ParsedMessage | None = None,
    customer: Address = CUSTOMER,
    subject: str = "Tilaus 5521",
    language: str = "fi",
    priority: str = "normal",
) -> EmailMessage:
    return build_new_ticket_reply(
        config=config or make_config(),
        ticket_number=42,
        subject=subject,
        priority=priority,
        customer=customer,
        message=message or make_message(),
        language=language,
        now=NOW,
        secret=SECRET,
    )


def header_lines(reply: EmailMessage) -> list[bytes]:
    """Return the rendered header section of ``reply`` split at CRLF."""
    head = reply.as_bytes().split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def plain_text(reply: EmailMessage) -> str:
    """Return the text/plain body of ``reply``."""
    body = reply.get_body(("plain",))
    assert body is not None
    return body.get_content()


def reparse(reply: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(reply.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# Message-IDs


def test_message_id_round_trip() -> None:
    """A generated id names its ticket again."""
    message_id = make_message_id(42, "example.fi", SECRET)

    assert 42 == ticket_from_message_id(message_id, SECRET)


def test_message_id_form() -> None:
    """The id is maildesk.<ticket>.<8 random>.<10 check>@<domain>, without brackets."""
    message_id = make_message_id(42, "example.fi", SECRET)

    assert re.fullmatch(r"maildesk\.42\.[a-z2-7]{8}\.[a-z2-7]{10}@example\.fi", message_id)


def test_message_id_random() -> None:
    """Two ids for the same ticket differ."""
    assert make_message_id(7, "example.fi", SECRET) != make_message_id(7, "example.fi", SECRET)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda value: f"<{value}>", id="angle-brackets"),
        pytest.param(lambda value: f"  <{value}>\t", id="whitespace"),
        pytest.param(lambda value: value.replace("example.fi", "EXAMPLE.FI"), id="domain-case"),
        pytest.param(str.upper, id="whole-id-upper"),
    ],
)
def test_message_id_tolerant(change: Any) -> None:
    """Brackets, whitespace and case changes still find the ticket."""
    message_id = make_message_id(42, "example.fi", SECRET)

    assert 42 == ticket_from_message_id(change(message_id), SECRET)


def test_message_id_forged_check() -> None:
    """An id whose check value was altered is rejected."""
    message_id = make_message_id(42, "example.fi", SECRET)
    left, domain = message_id.split("@")
    check = left.rsplit(".", 1)[1]
    forged_check = ("a" if check[0] != "a" else "b") + check[1:]
    forged = f"{left.rsplit('.', 1)[0]}.{forged_check}@{domain}"

    assert ticket_from_message_id(forged, SECRET) is None


def test_message_id_other_ticket() -> None:
    """Swapping in another ticket number under a valid check value is rejected."""
    message_id = make_message_id(42, "example.fi", SECRET)
    forged = message_id.replace("maildesk.42.", "maildesk.43.", 1)

    assert ticket_from_message_id(forged, SECRET) is None


def test_message_id_leading_zero() -> None:
    """A zero-padded ticket number is not a form maildesk writes, so it is rejected."""
    message_id = make_message_id(42, "example.fi", SECRET)
    padded = message_id.replace("maildesk.42.", "maildesk.042.", 1)

    assert ticket_from_message_id(padded, SECRET) is None


def test_message_id_other_secret() -> None:
    """An id made with another desk's secret is rejected."""
    message_id = make_message_id(42, "example.fi", b"another secret")

    assert ticket_from_message_id(message_id, SECRET) is None


@pytest.mark.parametrize(
    "message_id",
    ["c3@mail.example.com", "", "maildesk.42@example.fi", "maildesk.42.abcdefgh.abcdefghij"],
)
def test_message_id_foreign(message_id: str) -> None:
    """Ids not made by maildesk name no ticket."""
    assert ticket_from_message_id(message_id, SECRET) is None


def test_message_id_invalid_ticket() -> None:
    """Ticket numbers below 1 raise ValueError."""
    with pytest.raises(ValueError, match="invalid ticket number 0"):
        make_message_id(0, "example.fi", SECRET)


def test_message_id_invalid_domain() -> None:
    """A domain with an angle bracket raises ValueError."""
    with pytest.raises(ValueError, match="invalid Message-ID domain 'example.fi>'"):
        make_message_id(1, "example.fi>", SECRET)


def test_message_id_empty_secret() -> None:
    """An empty secret would make ids forgeable, so it raises ValueError."""
    with pytest.raises(ValueError, match="empty Message-ID secret"):
        make_message_id(1, "example.fi", b"")
    with pytest.raises(ValueError, match="empty Message-ID secret"):
        ticket_from_message_id("maildesk.1.abcdefgh.abcdefghij@example.fi", b"")


# Subjects


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Tilaus 5521", "Re: Tilaus 5521 [#5]"),
        ("Re: Tilaus 5521", "Re: Tilaus 5521 [#5]"),
        ("RE: Tilaus 5521", "RE: Tilaus 5521 [#5]"),
        ("re: Tilaus 5521", "re: Tilaus 5521 [#5]"),
        ("VS: Tilaus 5521", "VS: Tilaus 5521 [#5]"),
        ("Vs: Tilaus 5521", "Vs: Tilaus 5521 [#5]"),
        ("SV: Beställning 5521", "SV: Beställning 5521 [#5]"),
        ("AW: Bestellung 5521", "AW: Bestellung 5521 [#5]"),
        ("Antw: Bestelling 5521", "Antw: Bestelling 5521 [#5]"),
        ("Re[2]: Tilaus 5521", "Re[2]: Tilaus 5521 [#5]"),
        ("RE : Commande 5521", "RE : Commande 5521 [#5]"),
        ("Reklamaatio", "Re: Reklamaatio [#5]"),
        ("Fwd: Tilaus 5521", "Re: Fwd: Tilaus 5521 [#5]"),
        ("Tilaus 5521 [#5]", "Re: Tilaus 5521 [#5]"),
        ("Re: [#5] Tilaus 5521", "Re: [#5] Tilaus 5521"),
        ("Re: Tilaus [#5] [#5]", "Re: Tilaus [#5]"),
        ("Tilaus [#7]", "Re: Tilaus [#5]"),
        ("Tilaus [#55]", "Re: Tilaus [#5]"),
        ("", "Re: [#5]"),
        ("   ", "Re: [#5]"),
        ("Re:", "Re: [#5]"),
        ("Tilaus\r\n 5521", "Re: Tilaus 5521 [#5]"),
    ],
)
def test_reply_subject_variants(subject: str, expected: str) -> None:
    """Reply prefixes and ticket tags are added once and only when missing."""
    assert expected == reply_subject(subject, 5)


def test_reply_subject_injection() -> None:
    """Line breaks in the subject become spaces, so no new header line can start."""
    subject = "Palautus 5521\nBcc: kaikki@example.net\n\nHei kaikki"

    assert "Re: Palautus 5521 Bcc: kaikki@example.net Hei kaikki [#5]" == reply_subject(subject, 5)


@pytest.mark.parametrize(
    "text",
    [
        "a\rb",
        "a\nb",
        "a\r\nb",
        "a\x00b",
        "a\x0bb",
        "a\x1bb",
        "a\x7fb",
        "a\x85b",
        "a\u2028b",
        "a\u2029b",
    ],
)
def test_clean_header_text_controls(text: str) -> None:
    """Each control character and Unicode line separator becomes a space."""
    assert "a b" == clean_header_text(text)


def test_clean_header_text_keeps_letters() -> None:
    """Printable text, including Finnish letters, passes unchanged."""
    assert "Äänekoski – Öljy, å" == clean_header_text("Äänekoski – Öljy, å")


# Templates and dates


def test_templates_dir_configured(tmp_path: Path) -> None:
    """autoreply.templates wins when it is set."""
    config = make_config(autoreply=AutoreplySettings(templates=tmp_path))

    assert tmp_path == find_templates_dir(config)


def test_templates_dir_missing(tmp_path: Path) -> None:
    """A configured folder that does not exist raises FileNotFoundError naming it."""
    missing = tmp_path / "missing"
    config = make_config(autoreply=AutoreplySettings(templates=missing))

    with pytest.raises(
        FileNotFoundError, match=f"templates folder {re.escape(str(missing))} not found"
    ):
        find_templates_dir(config)


def test_templates_dir_default() -> None:
    """Without a setting the package's templates, else the repository's, are used."""
    package_dir = Path(maildesk.replies.__file__).parent / "templates"
    expected = package_dir if package_dir.is_dir() else REPOSITORY_TEMPLATES

    assert expected == find_templates_dir(make_config())


# The new-ticket reply


@pytest.mark.parametrize(
    ("language", "expected_lines"),
    [
        (
            "fi",
            [
                "Hei Liisa Mäkinen,",
                "Pyrimme vastaamaan viimeistään keskiviikkona 9.12. klo 12.",
                "Ystävällisin terveisin",
            ],
        ),
        (
            "sv",
            [
                "Hej Liisa Mäkinen,",
                "Vi strävar efter att svara senast onsdag 9 december kl. 12.",
                "Med vänliga hälsningar",
            ],
        ),
        (
            "en",
            [
                "Hello Liisa Mäkinen,",
                "We aim to reply by Wednesday 9 December at 12:00.",
                "Kind regards,",
            ],
        ),
    ],
)
def test_reply_languages(language: str, expected_lines: list[str]) -> None:
    """Each language renders its template with Finnish letters intact after a round trip."""
    reply = reparse(build(language=language))
    text = plain_text(reply)
    lines = text.splitlines()

    assert language == reply["Content-Language"]
    for expected in expected_lines:
        assert expected in lines
    assert "[#42]" in text
    assert "Verkkokaupan asiakaspalvelu" == lines[-1]


def test_reply_body_is_7bit() -> None:
    """Both parts are quoted-printable UTF-8, so the rendered message is pure ASCII."""
    reply = build()
    parts = list(reply.iter_parts())

    assert ["text/plain", "text/html"] == [part.get_content_type() for part in parts]
    assert ["quoted-printable"] * 2 == [part["Content-Transfer-Encoding"] for part in parts]
    assert ["utf-8"] * 2 == [part.get_content_charset() for part in parts]
    assert reply.as_bytes().isascii()


def test_reply_empty_name() -> None:
    """Without a customer name the greeting is just "Hei,"."""
    reply = build(customer=Address("liisa.makinen@example.com"))

    assert "Hei," == plain_text(reply).splitlines()[0]
    assert "liisa.makinen@example.com" == reply["To"]


@pytest.mark.parametrize(
    ("language", "expected"),
    [("sv-FI", "sv"), ("SV", "sv"), ("de", "fi"), ("../../etc/passwd", "fi"), ("", "fi")],
)
def test_reply_language_fallback(language: str, expected: str) -> None:
    """A language tag picks its primary language, else config.language."""
    assert expected == build(language=language)["Content-Language"]


def test_reply_fallback_english(tmp_path: Path) -> None:
    """A custom folder without the desk's language falls back to English."""
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "new_ticket.txt.j2").write_text(
        "Ticket {{ ticket_number }} by {{ expected_by }}\n", encoding="utf-8"
    )
    config = make_config(autoreply=AutoreplySettings(templates=tmp_path))

    reply = build(config=config, language="sv")

    assert "en" == reply["Content-Language"]
    assert "Ticket 42 by Wednesday 9 December at 12:00\n" == reply.get_content()


def test_reply_no_template(tmp_path: Path) -> None:
    """A folder without any usable template raises FileNotFoundError."""
    config = make_config(autoreply=AutoreplySettings(templates=tmp_path))

    with pytest.raises(
        FileNotFoundError, match="template new_ticket.txt.j2 not found for languages sv, fi, en"
    ):
        build(config=config, language="sv")


def test_reply_template_context(tmp_path: Path) -> None:
    """Templates receive every documented variable, cleaned of line breaks."""
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "new_ticket.txt.j2").write_text(
        "{{ desk_name }}|{{ ticket_number }}|{{ customer_name }}|{{ subject }}|"
        "{{ priority }}|{{ expected_by }}|{{ support_address }}\n",
        encoding="utf-8",
    )
    config = make_config(language="en", autoreply=AutoreplySettings(templates=tmp_path))

    reply = build(config=config, subject="Tilaus\n5521", priority="urgent", language="en")

    expected = (
        "Verkkokaupan asiakaspalvelu|42|Liisa Mäkinen|Tilaus 5521|urgent|"
        "Tuesday 8 December at 16:00|tuki@example.fi\n"
    )
    assert expected == reply.get_content()


def test_reply_template_undefined(tmp_path: Path) -> None:
    """An unknown variable in a template raises instead of rendering empty text."""
    (tmp_path / "fi").mkdir()
    (tmp_path / "fi" / "new_ticket.txt.j2").write_text("{{ tilausnumero }}\n", encoding="utf-8")
    config = make_config(autoreply=AutoreplySettings(templates=tmp_path))

    with pytest.raises(jinja2.UndefinedError, match="'tilausnumero' is undefined"):
        build(config=config)


def test_reply_template_sandboxed(tmp_path: Path) -> None:
    """A template cannot reach Python internals."""
    (tmp_path / "fi").mkdir()
    (tmp_path / "fi" / "new_ticket.txt.j2").write_text(
        "{{ desk_name.__class__.__mro__ }}\n", encoding="utf-8"
    )
    config = make_config(autoreply=AutoreplySettings(templates=tmp_path))

    with pytest.raises(jinja2.sandbox.SecurityError):
        build(config=config)


def test_reply_template_no_escaping(tmp_path: Path) -> None:
    """Plain-text templates are not HTML-escaped."""
    (tmp_path / "fi").mkdir()
    (tmp_path / "fi" / "new_ticket.txt.j2").write_text("{{ customer_name }}\n", encoding="utf-8")
    config = make_config(autoreply=AutoreplySettings(templates=tmp_path))

    reply = build(config=config, customer=Address("a@example.com", "Törmä & <Poika>"))

    assert "Törmä & <Poika>\n" == reply.get_content()


def test_reply_unknown_priority() -> None:
    """A priority without a reply-time target raises ValueError."""
    with pytest.raises(ValueError, match="invalid priority 'asap'"):
        build(priority="asap")


def test_reply_headers_basic() -> None:
    """From, To, Subject, Date and the RFC 3834 fields are set, and no Precedence."""
    reply = reparse(build())

    assert "Verkkokaupan asiakaspalvelu <tuki@example.fi>" == reply["From"]
    assert "Liisa Mäkinen <liisa.makinen@example.com>" == reply["To"]
    assert "Re: Tilaus 5521 [#42]" == reply["Subject"]
    assert "Tue, 08 Dec 2026 10:00:00 +0000" == reply["Date"]
    assert "auto-replied" == reply["Auto-Submitted"]
    assert "All" == reply["X-Auto-Response-Suppress"]
    assert reply["Precedence"] is None
    assert reply["Reply-To"] is None


def test_reply_name_encoded() -> None:
    """A non-ASCII customer name is sent as an RFC 2047 encoded word."""
    to_line = next(line for line in header_lines(build()) if line.startswith(b"To:"))

    assert b"To: Liisa =?utf-8?q?M=C3=A4kinen?= <liisa.makinen@example.com>" == to_line


def test_reply_message_id_ticket() -> None:
    """The reply's Message-ID is on the support domain and names the ticket."""
    message_id = build()["Message-ID"]

    assert message_id.endswith("@example.fi>")
    assert 42 == ticket_from_message_id(message_id, SECRET)


def test_reply_thread_headers() -> None:
    """In-Reply-To is the customer's id, and References is their References plus that id."""
    reply = reparse(build())

    assert "<c3@mail.example.com>" == reply["In-Reply-To"]
    assert (
        "<c1@mail.example.com> <c2@mail.example.com> <c3@mail.example.com>" == reply["References"]
    )


def test_reply_thread_no_message_id() -> None:
    """Without a customer Message-ID there is no In-Reply-To, and References keeps theirs."""
    reply = reparse(build(message=make_message(message_id=None)))

    assert reply["In-Reply-To"] is None
    assert "<c1@mail.example.com> <c2@mail.example.com>" == reply["References"]


def test_reply_thread_nothing() -> None:
    """A first mail without any ids gives neither header."""
    reply = build(message=make_message(message_id=None, references=()))

    assert reply["In-Reply-To"] is None
    assert reply["References"] is None


def test_reply_references_cleaned() -> None:
    """Unsafe or repeated ids are left out of References."""
    message = make_message(
        references=(
            "c1@mail.example.com",
            "bad id@example.com",
            "x>y@example.com",
            "c1@mail.example.com",
        )
    )

    assert (
        "<c1@mail.example.com> <c3@mail.example.com>"
        == reparse(build(message=message))["References"]
    )


def test_reply_references_capped() -> None:
    """A long thread keeps its first id and the newest ones, 20 in all."""
    references = tuple(f"r{index}@mail.example.com" for index in range(30))
    message = make_message(references=references)

    ids = reparse(build(message=message))["References"].split()

    assert 20 == len(ids)
    assert "<r0@mail.example.com>" == ids[0]
    assert "<r12@mail.example.com>" == ids[1]
    assert "<c3@mail.example.com>" == ids[-1]


def test_reply_smtp_from_address() -> None:
    """With [smtp], From is its from_address, and Reply-To leads replies to the support mailbox."""
    smtp = SmtpSettings(
        section="smtp",
        host="127.0.0.1",
        port=2525,
        security="none",
        username="tuki",
        password="salasana",
        from_address="asiakaspalvelu@example.fi",
    )
    reply = reparse(build(config=make_config(smtp=smtp)))

    assert "Verkkokaupan asiakaspalvelu <asiakaspalvelu@example.fi>" == reply["From"]
    assert "Verkkokaupan asiakaspalvelu <tuki@example.fi>" == reply["Reply-To"]


INJECTIONS = [
    pytest.param("Palautus 5521\r\nBcc: kaikki@example.net", "Anonyymi", id="subject-crlf"),
    pytest.param(
        "Palautus 5521\nBcc: kaikki@example.net\n\nHei kaikki", "Anonyymi", id="subject-lf"
    ),
    pytest.param("Palautus 5521\rBcc: kaikki@example.net", "Anonyymi", id="subject-cr"),
    pytest.param("Palautus\u2028Bcc: kaikki@example.net", "Anonyymi", id="subject-line-separator"),
    pytest.param("Palautus 5521", "Anonyymi\r\nBcc: kaikki@example.net", id="name-crlf"),
    pytest.param("Palautus 5521", "Anonyymi\nBcc: kaikki@example.net", id="name-lf"),
]


@pytest.mark.parametrize(("subject", "name"), INJECTIONS)
def test_reply_header_injection(subject: str, name: str) -> None:
    """Line breaks in the subject or name never start a header line or end the header."""
    customer = Address("hack@example.net", name)
    message = make_message(subject=subject, from_=customer)
    reply = build(message=message, customer=customer, subject=subject)

    lines = header_lines(reply)

    assert not any(line.lower().startswith(b"bcc:") for line in lines)
    assert not any(b"\r" in line or b"\n" in line for line in lines)
    assert reparse(reply)["Bcc"] is None


def test_reply_injection_subject_text() -> None:
    """The injected text stays inside the Subject value, on one logical line."""
    subject = "Palautus 5521\nBcc: kaikki@example.net\n\nHei kaikki"

    reply = reparse(build(subject=subject))

    assert "Re: Palautus 5521 Bcc: kaikki@example.net Hei kaikki [#42]" == reply["Subject"]


def test_reply_long_subject_folded() -> None:
    """A long subject is folded below 78 characters per line and reads back unchanged."""
    subject = "Pitkä kysymys toimituksesta, laskusta ja palautuksesta " * 4
    reply = build(subject=subject)

    lines = header_lines(reply)

    assert all(len(line) <= 78 for line in lines)
    assert f"Re: {subject.strip()} [#42]" == reparse(reply)["Subject"]


def test_reply_idn_domain() -> None:
    """A customer domain with non-ASCII letters is written in its IDNA form."""
    reply = build(customer=Address("liisa@äänekoski.example", "Liisa"))

    assert "Liisa <liisa@xn--nekoski-4waa.example>" == reply["To"]


def test_reply_non_ascii_local_part() -> None:
    """A non-ASCII local part needs SMTPUTF8 and raises ValueError."""
    with pytest.raises(ValueError, match="non-ASCII local part needs SMTPUTF8"):
        build(customer=Address("liisa.mäkinen@example.com", "Liisa"))


def test_overlong_parent_id_left_out() -> None:
    """An id too long for one header line is not written into In-Reply-To or References."""
    from email.message import EmailMessage

    from maildesk.replies import _set_thread_headers

    reply = EmailMessage()
    _set_thread_headers(reply, "a" * 990 + "@example.com", ("ok@example.com",))

    assert reply["In-Reply-To"] is None
    assert "<ok@example.com>" == str(reply["References"])
