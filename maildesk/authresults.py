"""Read ``Authentication-Results`` header fields (RFC 8601).

Any sender can write such a field, so only fields whose authserv-id names the desk's own
receiving server count. That server must remove fields with its own authserv-id from
incoming mail before it adds its own (RFC 8601 section 5). Without that removal, a field
forged by the sender would be trusted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# method=result, as in "dmarc=fail" or "dkim=pass"; the method may carry a version "/1".
_RESULT = re.compile(r"^\s*([A-Za-z0-9_-]+)(?:\s*/\s*\d+)?\s*=\s*([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class AuthenticationResults:
    """One ``Authentication-Results`` field: who wrote it and each method's result."""

    authserv_id: str
    # (method, result) pairs in field order, both lower-case.
    results: tuple[tuple[str, str], ...]


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """Parse one field value; return None when it has no authserv-id."""
    text = _strip_comments(value)
    head, _, rest = text.partition(";")
    words = head.split()
    if not words:
        return None

    results = []
    for resinfo in rest.split(";"):
        match = _RESULT.match(resinfo)
        if match is not None:
            results.append((match.group(1).lower(), match.group(2).lower()))

    return AuthenticationResults(words[0].strip('"').lower(), tuple(results))


def trusted_results(values: Iterable[str], authserv_id: str) -> list[tuple[str, str]]:
    """Return the (method, result) pairs of the fields written by ``authserv_id``."""
    wanted = authserv_id.strip().lower()
    if not wanted:
        return []

    pairs: list[tuple[str, str]] = []
    for value in values:
        parsed = parse_authentication_results(value)
        if parsed is not None and parsed.authserv_id == wanted:
            pairs.extend(parsed.results)

    return pairs


def _strip_comments(value: str) -> str:
    """Remove RFC 5322 comments in parentheses, nested ones included."""
    depth = 0
    kept = []
    escaped = False
    for character in value:
        if escaped:
            escaped = False
            if depth == 0:
                kept.append(character)
            continue
        if character == "\\":
            escaped = True
            if depth == 0:
                kept.append(character)
        elif character == "(":
            depth += 1
        elif character == ")" and depth > 0:
            depth -= 1
        elif depth == 0:
            kept.append(character)

    return "".join(kept)
