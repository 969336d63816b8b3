"""The compact digest set that decides which stored files no row names any more."""

from __future__ import annotations

import hashlib
from pathlib import Path

from maildesk.purge import DigestSet
from maildesk.storage import FileStore


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


ORDERED = sorted(digest(f"viesti {number}") for number in range(50))


def test_every_digest_found() -> None:
    """Each digest the set was built from is a member."""
    members = DigestSet(ORDERED)

    assert [True] * 50 == [value in members for value in ORDERED]


def test_other_digest_missing() -> None:
    """A digest the set was not built from is not a member."""
    assert digest("jokin muu") not in DigestSet(ORDERED)


def test_out_of_order_kept() -> None:
    """A digest that arrives out of order is still a member, so its file is never deleted."""
    late = ORDERED[0]
    members = DigestSet([*ORDERED[1:], late])

    assert late in members


def test_uppercase_reference_found() -> None:
    """An uppercase reference matches the lowercase file name of the same digest."""
    members = DigestSet([ORDERED[0].upper(), *ORDERED[1:]])

    assert ORDERED[0] in members


def test_invalid_values_skipped() -> None:
    """Empty, short and non-hex values are skipped, and a membership test of them returns False."""
    members = DigestSet(["", "abc", "z" * 64, *ORDERED])

    assert "" not in members
    assert "abc" not in members
    assert "z" * 64 not in members


def test_empty_set_contains_nothing() -> None:
    """An empty set has no members."""
    assert ORDERED[0] not in DigestSet([])


def test_store_lists_only_hex_names(tmp_path: Path) -> None:
    """The file store lists lowercase-hex sha256 names only, so retention never judges other files."""
    store = FileStore(tmp_path)
    stored = store.put("raw", b"viesti")
    folder = tmp_path / "raw" / stored[:2]
    (folder / ("g" * 64)).write_bytes(b"muu")
    (folder / stored.upper()).write_bytes(b"iso")

    assert [stored] == list(store.digests("raw"))
