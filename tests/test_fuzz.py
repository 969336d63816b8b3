"""Hypothesis fuzz targets over parsing, threading and the whole ingest pipeline.

The number of examples bounds the run time in CI; set MAILDESK_FUZZ_EXAMPLES
to run longer, for example MAILDESK_FUZZ_EXAMPLES=20000 before a release.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from maildesk.config import parse_config
from maildesk.db import messages
from maildesk.errors import MessageParseError
from maildesk.ingest import IngestOptions
from maildesk.message import IncomingMessage, ParsedMessage
from maildesk.parsing import parse_message
from maildesk.service import Desk

EXAMPLES = int(os.environ.get("MAILDESK_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    # No example database: it would write .hypothesis/ into the checkout.
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LINE_ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r"])
HEADER_NAMES = st.sampled_from(
    [b"From", b"To", b"Cc", b"Reply-To", b"Subject", b"Date", b"Message-ID", b"In-Reply-To",
     b"References", b"Content-Type", b"Content-Transfer-Encoding", b"Content-Disposition",
     b"Auto-Submitted", b"Return-Path", b"Thread-Index", b"X-Random"]
)
TRICKY_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "=?utf-8?q?a=0D=0AX-Injected:_1?=", "=?x-unknown?b?AAAA?=", "=?utf-8?b?//79?=",
            "<a@b> <c@d>", '"Name, Quoted" <q@example.com>', "[#1] Re: Re: VS: tilaus",
            "multipart/mixed; boundary=x", "base64", "quoted-printable", "attachment; filename=../x",
            "<>", "auto-replied", "\x00\x01\x7f", "\ud800",
        ]
    ),
)


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@st.composite
def raw_mail(draw: st.DrawFn) -> bytes:
    """A message with random header lines, line endings and an optionally nested multipart body."""
    eol = draw(LINE_ENDINGS)
    lines = [
        draw(HEADER_NAMES) + b": " + encode(draw(TRICKY_TEXT)).replace(b"\n", b" ")
        for _ in range(draw(st.integers(0, 12)))
    ]
    if draw(st.booleans()):
        lines.append(b"Message-ID: <" + encode(draw(st.text(max_size=20))) + b"@fuzz>")
    body = draw(st.binary(max_size=300))
    for depth in range(draw(st.integers(0, 4))):
        boundary = b"b%d" % depth
        close = draw(st.booleans())
        body = (
            b"Content-Type: multipart/mixed; boundary=" + boundary + eol + eol
            + b"--" + boundary + eol + body + eol + (b"--" + boundary + b"--" + eol if close else b"")
        )
    return eol.join(lines) + eol + eol + body


def check_invariants(parsed: ParsedMessage) -> None:
    for text in (parsed.subject, parsed.from_.name if parsed.from_ else "", *(a.filename for a in parsed.attachments)):
        assert "\x00" not in text
        assert "\r" not in text
        assert "\n" not in text
        text.encode("utf-8")
    for attachment in parsed.attachments:
        assert "/" not in attachment.filename
        assert "\\" not in attachment.filename
        assert attachment.filename not in ("", ".", "..")
    if parsed.message_id is not None:
        assert not parsed.message_id.startswith("<")
        assert not parsed.message_id.endswith(">")
        assert not any(character.isspace() or character == "\x00" for character in parsed.message_id)
    assert 64 == len(parsed.content_hash)


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_parse_random_bytes(raw: bytes) -> None:
    """Any bytes either parse into a ParsedMessage that keeps its invariants or raise MessageParseError."""
    try:
        parsed = parse_message(raw)
    except MessageParseError:
        return
    check_invariants(parsed)


@FUZZ
@given(raw_mail())
def test_fuzz_parse_structured_mail(raw: bytes) -> None:
    """Mail-shaped input with hostile headers and broken multiparts keeps the ParsedMessage invariants."""
    try:
        parsed = parse_message(raw)
    except MessageParseError:
        return
    check_invariants(parsed)


@pytest.fixture(scope="module")
def fuzz_desk() -> Iterator[Desk]:
    """One desk (a real SQLite file) that every ingest example adds to, so threading finds earlier mail."""
    with tempfile.TemporaryDirectory(prefix="maildesk-fuzz-") as folder:
        config = parse_config(
            {
                "desk": {"support_address": "tuki@example.fi", "agents": ["agent@example.fi"], "state_dir": folder},
            },
            path=Path(folder) / "config.toml",
        )
        desk = Desk.open(config)
        yield desk
        desk.engine.dispose()


@st.composite
def threaded_mail(draw: st.DrawFn) -> bytes:
    """Mail that refers to earlier fuzz mail by Message-ID, subject tag or sender, to drive threading."""
    known = [b"<fuzz-%d@fuzz.example>" % n for n in range(draw(st.integers(0, 30)))]
    sender = draw(st.sampled_from([b"a@example.com", b"b@example.org", b"agent@example.fi", b"tuki@example.fi", b"<>"]))
    tag = b"[#%d] " % draw(st.integers(0, 40)) if draw(st.booleans()) else b""
    lines = [
        b"From: " + sender,
        b"To: tuki@example.fi",
        b"Subject: " + draw(st.sampled_from([b"", b"Re: "])) + tag + encode(draw(TRICKY_TEXT)).replace(b"\n", b" "),
        b"Message-ID: <fuzz-%d@fuzz.example>" % draw(st.integers(0, 60)),
    ]
    if known and draw(st.booleans()):
        lines.append(b"In-Reply-To: " + draw(st.sampled_from(known)))
    if known and draw(st.booleans()):
        lines.append(b"References: " + b" ".join(draw(st.lists(st.sampled_from(known), max_size=5))))
    if draw(st.booleans()):
        lines.append(b"Auto-Submitted: auto-replied")
    return b"\r\n".join(lines) + b"\r\n\r\n" + draw(st.binary(max_size=200))


@FUZZ
@given(st.lists(st.one_of(threaded_mail(), raw_mail()), min_size=1, max_size=6))
def test_fuzz_ingest_never_fails(fuzz_desk: Desk, batch: list[bytes]) -> None:
    """Any batch is ingested without an exception: each mail is stored, quarantined or a duplicate."""
    items = [IncomingMessage(raw=raw, folder="INBOX") for raw in batch]

    stats = fuzz_desk.ingestor.ingest_batch(items, IngestOptions(autoreply=True, check_age=False))

    assert len(items) == stats.stored + stats.duplicates
    with fuzz_desk.engine.connect() as connection:
        subjects = connection.execute(select(messages.c.subject, messages.c.defects)).all()
    for subject, defects in subjects:
        assert "\r" not in subject
        assert "\n" not in subject
        json.loads(defects)


def test_message_id_inner_bracket_removed() -> None:
    """A Message-ID with an angle bracket inside ("0<0", found by the fuzz target) keeps no bracket."""
    parsed = parse_message(b"Message-ID: 0<0\r\n\r\n")

    assert parsed.message_id is None or "<" not in parsed.message_id
