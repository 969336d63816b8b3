"""The fast MIME tree builder must give the same compat32 tree as the stdlib parser."""

from __future__ import annotations

import email
from email.message import Message
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from maildesk import mimetree
from maildesk.mimetree import parse_tree


def tree_of(message: Message) -> list[object]:
    """Return everything the parser stores in a compat32 tree, for comparison."""
    payload = message._payload
    return [
        message.get_unixfrom(),
        list(message.raw_items()),
        message.preamble,
        message.epilogue,
        message.get_default_type(),
        [type(defect).__name__ for defect in message.defects],
        [tree_of(part) for part in payload] if isinstance(payload, list) else payload,
    ]


def stdlib_tree(data: bytes) -> list[object]:
    return tree_of(email.message_from_bytes(data, policy=compat32))


def takes_fast_path(data: bytes) -> bool:
    try:
        mimetree._message(data.decode("ascii", "surrogateescape"), 0)
    except mimetree._Irregular:
        return False
    return True


NESTED = (
    b"From: a@example.com\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    b"preamble text\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
    b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
    b"--inner\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\nContent-Type: application/pdf; name=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
    b"--outer--\r\nepilogue\r\n"
)


def test_nested_multipart_same_tree() -> None:
    """A nested multipart with preamble and epilogue gets the stdlib's tree."""
    assert tree_of(parse_tree(NESTED)) == stdlib_tree(NESTED)


def test_nested_multipart_fast_path() -> None:
    """A well-formed nested multipart is built without the feed parser."""
    assert takes_fast_path(NESTED)


def test_missing_close_delimiter_falls_back() -> None:
    """A multipart without its close delimiter goes to the stdlib parser."""
    data = NESTED.replace(b"--outer--\r\n", b"")
    assert not takes_fast_path(data)
    assert tree_of(parse_tree(data)) == stdlib_tree(data)


def test_forwarded_message_falls_back() -> None:
    """A message/rfc822 part goes to the stdlib parser."""
    data = NESTED.replace(b"Content-Type: application/pdf; name=a.pdf", b"Content-Type: message/rfc822")
    assert not takes_fast_path(data)
    assert tree_of(parse_tree(data)) == stdlib_tree(data)


def test_non_header_line_falls_back() -> None:
    """A header block cut short by a non-header line goes to the stdlib parser."""
    data = b"From: a@example.com\r\nthis is no header\r\nSubject: x\r\n\r\nbody\r\n"
    assert not takes_fast_path(data)
    assert tree_of(parse_tree(data)) == stdlib_tree(data)


def test_undecodable_bytes_kept() -> None:
    """Raw 8-bit bytes come back as the same surrogates as from the stdlib."""
    data = "Subject: Hyvää päivää\r\n\r\nKiitos äsken\r\n".encode("latin-1")
    assert tree_of(parse_tree(data)) == stdlib_tree(data)


# --- generated structures ------------------------------------------------------------------

LINE_ENDS = st.sampled_from(["\r\n", "\r\n", "\n", "\r"])
# True nine times in ten: most generated mail is well-formed, so the fast path is exercised.
MOSTLY = st.integers(0, 9).map(lambda number: number > 0)
TEXT_LINES = st.lists(
    st.sampled_from([
        "plain text", "", " indented", "--b", "--b-not", "--b --", "--b--x", "Subject: no",
        "=?utf-8?q?x?=", "\tTab", "x" * 90, "--", "From the start",
    ]),
    max_size=4,
)
HEADER_LINES = st.lists(
    st.sampled_from([
        "Content-Type: text/plain", "Content-Transfer-Encoding: base64", " folded",
        "X-Empty:", ":no name", "Content-Disposition: attachment; filename=a.txt",
        "not a header", "From someone", "Content-Type: text/html; charset=utf-8",
        "Content-Type: text/plain", "Content-ID: <a@b>", "Content-Type: image/png",
    ]),
    max_size=3,
)


@st.composite
def parts(draw: st.DrawFn, depth: int = 0) -> str:
    eol = draw(LINE_ENDS)
    if depth < 2 and not draw(MOSTLY):
        return draw(multipart(depth + 1, eol))
    headers = draw(HEADER_LINES)
    lines = [*headers]
    if draw(st.booleans()) or not headers:
        lines.append("")
    lines += draw(TEXT_LINES)
    return eol.join(lines) + (eol if draw(st.booleans()) else "")


@st.composite
def multipart(draw: st.DrawFn, depth: int, eol: str) -> str:
    boundary = draw(st.sampled_from(["b", "b2", "=_x y", "b--"]))
    subtype = draw(st.sampled_from(["mixed", "alternative", "related", "mixed", "digest"]))
    header = f'Content-Type: multipart/{subtype}; boundary="{boundary}"'
    if not draw(MOSTLY):
        header += eol + "Content-Transfer-Encoding: " + draw(st.sampled_from(["7bit", "base64"]))
    body = [header, ""]
    body += draw(TEXT_LINES)
    for part in draw(st.lists(parts(depth), min_size=0, max_size=3)):
        trailer = draw(st.sampled_from(["", "", "", " ", "\t", "--"]))
        body.append(f"--{boundary}{trailer}")
        body.append(part)
    if draw(MOSTLY):
        body.append(f"--{boundary}--" + draw(st.sampled_from(["", "  "])))
    body += draw(TEXT_LINES)
    return eol.join(body)


@settings(max_examples=400, deadline=None)
@given(st.one_of(parts(), multipart(0, "\r\n"), multipart(0, "\n")))
def test_generated_mail_same_tree(text: str) -> None:
    """Any generated structure, well-formed or broken, gets the stdlib's tree."""
    data = text.encode("utf-8")
    assert tree_of(parse_tree(data)) == stdlib_tree(data)
