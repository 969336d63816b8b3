"""Cut the quoted history and the signature from a mail's text, keeping what its author wrote.

Three kinds of quoting are recognized:

* Lines that start with ``>``. They are dropped wherever they are, and unquoted lines
  between them (answers written inline) stay.
* A reply header block, as Outlook writes it without any ``>``: a "From" line and at
  least two more of Sent, Date, To, Cc and Subject, in English, Finnish ("Lähettäjä:",
  "Lähetetty:", "Vastaanottaja:", "Aihe:"), Swedish ("Från:", "Skickat:", "Till:",
  "Ämne:") or German. Everything from the block on is history.
* An attribution line such as "On Mon, 7 Dec 2026 ... wrote:", "ma 7.12.2026 klo 10.00
  X <x@example.fi> kirjoitti:" or "Den 7 dec. 2026 kl. 10:00 skrev X <x@example.fi>:",
  also when a mail client wrapped it over two lines. Followed by ``>`` lines it only
  introduces them; followed by unquoted text it starts the history.

A forwarded mail keeps its forwarded part, because a customer forwards mail to show it.
The signature after a ``-- `` line and a closing "Sent from my phone" line are dropped.
"""

from __future__ import annotations

import functools
import re

# Header names of reply header blocks, in lower case, by their meaning.
_FROM_NAMES = ("from", "lähettäjä", "från", "von", "fra", "de")
_OTHER_NAMES = (
    "sent", "date", "to", "cc", "subject",
    "lähetetty", "päivämäärä", "vastaanottaja", "kopio", "aihe",
    "skickat", "datum", "till", "kopia", "ämne",
    "gesendet", "an", "betreff",
)
_HEADER_LINE = re.compile(r"^\s*\*{0,2}([^\W\d_]+)\s*\*{0,2}:\*{0,2}(?:\s|$)")
# How many lines after a "From" line the other header lines of its block may be.
_HEADER_BLOCK_LINES = 8
_MIN_OTHER_HEADERS = 2

_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:original message|alkuperäinen viesti|ursprungligt meddelande"
    r"|originalmeddelande|ursprüngliche nachricht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
# Outlook draws a line of underscores above its header block.
_RULE_LINE = re.compile(r"^\s*_{8,}\s*$")

# English and most other languages end the line with the verb ("... wrote:"). Finnish and
# Swedish clients may put the name or the date after it ("skrev Butik <x@example.fi>:",
# "Verkkokauppa kirjoitti 7.12.2026 klo 10.00:").
_ATTRIBUTION = re.compile(
    r"(?:\b(?:wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:"
    r"|\b(?:kirjoitti|skrev)\b(?:\s+(?:seuraavaa|följande))?[^\n]{0,160}:)\s*$",
    re.IGNORECASE,
)
# An attribution names the time or the address of the quoted mail.
_ATTRIBUTION_DETAIL = re.compile(r"@|\d{1,2}[:.]\d{2}")
# Start of the first line of a wrapped attribution: "On", "Den", "Am", "Le", "El", a
# Finnish weekday abbreviation before a date, or a date.
_ATTRIBUTION_START = re.compile(
    r"^\s*(?:(?:on|den|am|le|el|il|op)\b|(?:ma|ti|ke|to|pe|la|su)\s+\d|\d{1,4}[./-])",
    re.IGNORECASE,
)
_MAX_ATTRIBUTION_LENGTH = 300

_FORWARD_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*)?(?:forwarded message|begin forwarded message|välitetty viesti"
    r"|edelleenlähetetty viesti|vidarebefordrat meddelande|weitergeleitete nachricht)",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|vl|vb|wg|tr|vs\s*fw)\s*:", re.IGNORECASE)

_SIGNATURE_SEPARATOR = re.compile(r"^--\s?$")
# A signature after "-- " is at most this many non-blank lines; a longer tail is kept.
_MAX_SIGNATURE_LINES = 12
_DEVICE_SIGNATURE = re.compile(
    r"^\s*(?:sent from my \S.*|get outlook for \S.*|lähetetty (?:\S+ )?(?:iphonesta|ipadista"
    r"|android\S*|puhelimesta|mobiilista)\b.*|hanki outlook \S.*|skickat från min \S.*"
    r"|hämta outlook för \S.*|von meinem \S.* gesendet)\s*$",
    re.IGNORECASE,
)


# Ingest needs the visible text of a new ticket's first mail twice (language, stored row);
# a str caches its hash, so a hit costs a dictionary lookup.
@functools.lru_cache(maxsize=8)
def visible_text(text: str, subject: str = "") -> str:
    """Return the part of ``text`` its author wrote, without quoted history and signature.

    ``subject`` marks forwarded mail (Fwd:, VL:, VB:), whose forwarded part stays.
    When nothing would remain, for a mail that only quotes, the whole text is returned.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    forwarded = bool(_FORWARD_SUBJECT.match(subject))
    if not forwarded:
        lines = lines[: _history_start(lines)]
    lines = _drop_quoted(lines)
    lines = _drop_signature(lines)

    visible = _tidy(lines)
    return visible if visible else text.strip()


def _history_start(lines: list[str]) -> int:
    """Return the index of the first line of unmarked quoted history, or len(lines)."""
    for index, line in enumerate(lines):
        if _is_quoted(line):
            continue
        if _FORWARD_MARKER.match(line):
            # A forward inside a reply: what follows is the forwarded mail, not history.
            return len(lines)
        if _SEPARATOR.match(line):
            return index
        if _starts_header_block(lines, index):
            return _rule_line_before(lines, index)
        attribution = _attribution_length(lines, index)
        if attribution and not _quoted_follows(lines, index + attribution):
            return index

    return len(lines)


def _starts_header_block(lines: list[str], index: int) -> bool:
    name = _header_name(lines[index])
    if name not in _FROM_NAMES:
        return False
    others = set()
    for line in lines[index + 1 : index + 1 + _HEADER_BLOCK_LINES]:
        other = _header_name(line)
        if other in _OTHER_NAMES:
            others.add(other)

    return len(others) >= _MIN_OTHER_HEADERS


def _header_name(line: str) -> str | None:
    match = _HEADER_LINE.match(line)
    return match.group(1).lower() if match else None


def _rule_line_before(lines: list[str], index: int) -> int:
    """Return the index of an underscore or dash rule just above ``index``, else ``index``."""
    before = index - 1
    while before >= 0 and not lines[before].strip():
        before -= 1
    if before >= 0 and (_RULE_LINE.match(lines[before]) or _SEPARATOR.match(lines[before])):
        return before

    return index


def _attribution_length(lines: list[str], index: int) -> int:
    """Return how many lines (1 or 2) an attribution starting at ``index`` spans, else 0."""
    line = lines[index]
    if _is_attribution(line):
        return 1
    if index + 1 < len(lines) and line.strip() and _ATTRIBUTION_START.match(line):
        joined = f"{line.rstrip()} {lines[index + 1].strip()}"
        if not _is_attribution(line) and _is_attribution(joined):
            return 2

    return 0


def _is_attribution(line: str) -> bool:
    # Requiring a time or an address keeps a sentence such as "My friend wrote:" out.
    return (
        len(line) <= _MAX_ATTRIBUTION_LENGTH
        and bool(_ATTRIBUTION.search(line))
        and bool(_ATTRIBUTION_DETAIL.search(line))
    )


def _quoted_follows(lines: list[str], index: int) -> bool:
    """Return whether the next non-blank line from ``index`` on starts with ``>``."""
    for line in lines[index:]:
        if line.strip():
            return _is_quoted(line)

    return False


def _drop_quoted(lines: list[str]) -> list[str]:
    """Drop ``>`` lines and the attribution lines that introduce them."""
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        attribution = 0 if _is_quoted(line) else _attribution_length(lines, index)
        if not attribution and not _is_quoted(line) and _introduces_quote(line):
            attribution = 1
        if attribution and _quoted_follows(lines, index + attribution):
            index += attribution
            continue
        if not _is_quoted(line):
            kept.append(line)
        index += 1

    return kept


def _introduces_quote(line: str) -> bool:
    # Right before ">" lines, even "John wrote:" without a time or an address
    # introduces the quote, so it goes with it.
    return len(line) <= _MAX_ATTRIBUTION_LENGTH and bool(_ATTRIBUTION.search(line))


def _drop_signature(lines: list[str]) -> list[str]:
    for index in range(len(lines) - 1, -1, -1):
        if _SIGNATURE_SEPARATOR.match(lines[index]):
            tail = [line for line in lines[index + 1 :] if line.strip()]
            if len(tail) <= _MAX_SIGNATURE_LINES:
                lines = lines[:index]
            break

    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if lines and _DEVICE_SIGNATURE.match(lines[-1]):
        lines = lines[:-1]

    return lines


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _tidy(lines: list[str]) -> str:
    """Join ``lines`` with runs of blank lines collapsed to one and the ends stripped."""
    tidy: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not tidy or not tidy[-1]):
            continue
        tidy.append(line)

    return "\n".join(tidy).strip("\n")
