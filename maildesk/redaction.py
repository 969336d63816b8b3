"""Recognize and remove one person's data in text that other people's records keep.

Pure functions over strings, so the rules are testable without a database.
A :class:`Redactor` has the person's address, their display names and the
lines of text they wrote. It decides whether a text mentions them and
rewrites a text without them:

- the address becomes a pseudonym such as ``erased-<random>@invalid``;
- each display name becomes ``[removed]``, and so does each word that
  starts with a part of it, so inflected forms ("Maijalle") go too;
- a quote of their mail is removed: a line such as "Maija <maija@example.com>
  wrote:" with the quoted block after it, an Outlook-style header block
  ("From: Maija ...") with everything after it, and any other line that is
  equal to one of their lines once quote marks and spacing are ignored.

Names and name parts shorter than :data:`MIN_NAME_CHARS` and lines shorter
than :data:`MIN_LINE_CHARS` are not matched, because words that short
("Hei,", "Kiitos!") would remove other people's text without protecting
anyone. A name part that is also a common word ("Anna", "Kivi") is removed
wherever it starts a word in the texts that are redacted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from maildesk.threader import subject_key

# The text that replaces removed names, lines and subjects.
REMOVED = "[removed]"
MIN_NAME_CHARS = 3
MIN_LINE_CHARS = 8

_QUOTE_PREFIX = re.compile(r"^[\s>]+")
_SPACE = re.compile(r"\s+")
_NAME_PART = re.compile(r"\w+")
# An e-mail address as it appears in text: RFC 5322 atext and dots, @, then domain labels.
_ADDRESS_TOKEN = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# The first line of a quoted header block, as mail clients write it in several languages.
_HEADER_BLOCK = re.compile(
    r"^\s*\**\s*(from|lähettäjä|från|von|de|van|fra)\s*\**\s*:", re.IGNORECASE
)


def normalize_line(line: str) -> str:
    """Return ``line`` without quote marks, with single spaces, case-folded."""
    return _SPACE.sub(" ", _QUOTE_PREFIX.sub("", line)).strip().casefold()


def text_lines(texts: Iterable[str]) -> frozenset[str]:
    """Return the normalized lines of ``texts`` that are long enough to match."""
    found = set()
    for text in texts:
        for line in text.splitlines():
            normalized = normalize_line(line)
            if len(normalized) >= MIN_LINE_CHARS:
                found.add(normalized)
    return frozenset(found)


def authored_lines(texts: Iterable[str]) -> frozenset[str]:
    """Return the lines that the writers of ``texts`` wrote themselves.

    Quoted lines (``>``) and everything from an Outlook-style header block on
    are someone else's words, such as an agent's earlier reply.
    """
    own_parts = []
    for text in texts:
        own_lines = []
        for line in text.splitlines():
            if _HEADER_BLOCK.match(line):
                break
            if not line.lstrip().startswith(">"):
                own_lines.append(line)
        own_parts.append("\n".join(own_lines))
    return text_lines(own_parts)


def usable_names(names: Iterable[str], address: str) -> tuple[str, ...]:
    """Return the display names worth matching, longest first, without duplicates."""
    usable = {name.strip() for name in names if len(name.strip()) >= MIN_NAME_CHARS}
    usable.discard(address)
    return tuple(sorted(usable, key=lambda name: (-len(name), name)))


def contains_address(text: str, address: str) -> bool:
    """Return whether ``text`` contains ``address`` as a whole address, in any letter case.

    A longer address that ends with it, such as ``anna.maija@example.com`` for
    ``maija@example.com``, does not count.
    """
    return any(token.group(0).lower() == address for token in _ADDRESS_TOKEN.finditer(text))


@dataclass(frozen=True)
class Redactor:
    """One person's address, names and lines, and how to remove them from text.

    Name matching skips e-mail addresses, so another person's address that
    happens to contain their name stays intact.
    """

    address: str
    pseudonym: str
    names: tuple[str, ...] = ()
    lines: frozenset[str] = frozenset()
    # Subject keys of their tickets: a subject with one of these is theirs.
    subject_keys: frozenset[str] = frozenset()
    _full_names: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _name_parts: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        full_names = tuple(re.compile(re.escape(name), re.IGNORECASE) for name in self.names)
        parts = {part for name in self.names for part in _NAME_PART.findall(name)}
        name_parts = tuple(
            re.compile(rf"(?<!\w){re.escape(part)}\w*", re.IGNORECASE)
            for part in sorted(parts, key=lambda part: (-len(part), part))
            if len(part) >= MIN_NAME_CHARS and not part.isdigit()
        )
        object.__setattr__(self, "_full_names", full_names)
        object.__setattr__(self, "_name_parts", name_parts)

    def names_them(self, text: str) -> bool:
        """Return whether ``text`` contains their address or one of their full names."""
        if contains_address(text, self.address):
            return True
        return any(pattern.search(part) for part in _outside_addresses(text) for pattern in self._full_names)

    def mentions(self, text: str) -> bool:
        """Return whether ``text`` names them or contains a line of theirs.

        Parts of a name alone ("Maija") do not count, because someone else
        may have the same first name.
        """
        if self.names_them(text):
            return True
        return any(normalize_line(line) in self.lines for line in text.splitlines())

    def replace_names(self, text: str) -> str:
        """Replace their address with the pseudonym and their names and name parts with the marker."""
        pieces = []
        position = 0
        for token in _ADDRESS_TOKEN.finditer(text):
            pieces.append(self._replace_name_words(text[position:token.start()]))
            pieces.append(self.pseudonym if token.group(0).lower() == self.address else token.group(0))
            position = token.end()
        pieces.append(self._replace_name_words(text[position:]))
        return "".join(pieces)

    def _replace_name_words(self, text: str) -> str:
        for pattern in self._full_names + self._name_parts:
            text = pattern.sub(REMOVED, text)
        return text

    def _introduces_quote(self, line: str) -> bool:
        """Return whether ``line`` names them by address, full name or a part of it."""
        if self.names_them(line):
            return True
        return any(pattern.search(part) for part in _outside_addresses(line) for pattern in self._name_parts)

    def text(self, text: str) -> str:
        """Return ``text`` without their quoted mail, lines, names and address."""
        output_lines: list[str] = []
        skipping_quote = False
        for line in text.splitlines():
            quoted = line.lstrip().startswith(">")
            if skipping_quote and quoted:
                continue
            skipping_quote = False
            if _HEADER_BLOCK.match(line) and self._introduces_quote(line):
                # An Outlook-style quote runs to the end of the text.
                _append_marker(output_lines)
                break
            if line.rstrip().endswith(":") and self._introduces_quote(line):
                # An attribution line such as "Maija <maija@example.com> wrote:" or "Maija kirjoitti:".
                _append_marker(output_lines)
                skipping_quote = True
                continue
            if normalize_line(line) in self.lines:
                _append_marker(output_lines)
                continue
            output_lines.append(self.replace_names(line))
        ending = "\n" if text.endswith("\n") else ""
        return "\n".join(output_lines) + ending

    def subject(self, subject: str) -> str:
        """Return the marker for a subject of theirs, else ``subject`` without their names."""
        if subject_key(subject) in self.subject_keys:
            return REMOVED
        return self.replace_names(subject)

    def addresses_json(self, value: str) -> str:
        """Rewrite a stored JSON list of [address, name] pairs with the pseudonym for them."""
        pairs = json.loads(value) if value else []
        changed = [
            [self.pseudonym, ""] if address == self.address else [address, self.replace_names(name)]
            for address, name in pairs
        ]
        return json.dumps(changed, ensure_ascii=False)


def _outside_addresses(text: str) -> list[str]:
    """Return the pieces of ``text`` between the e-mail addresses in it."""
    return _ADDRESS_TOKEN.split(text)


def _append_marker(output_lines: list[str]) -> None:
    # Consecutive removed lines become a single marker.
    if not output_lines or output_lines[-1] != REMOVED:
        output_lines.append(REMOVED)
