"""Tests that config.example.fi.toml differs from config.example.toml only in its comments."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"
EXAMPLE_FI = ROOT / "config.example.fi.toml"

# A comment line that is a commented-out key, such as `# state_dir = "/var/lib/maildesk"`.
COMMENTED_KEY = re.compile(r"^#\s*[a-z_]+\s*=")


def _commented_keys(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line for line in lines if COMMENTED_KEY.match(line)}


def test_finnish_example_same_values() -> None:
    """Both example files decode to the same TOML document."""
    with EXAMPLE.open("rb") as english, EXAMPLE_FI.open("rb") as finnish:
        assert tomllib.load(finnish) == tomllib.load(english)


def test_finnish_example_same_commented_keys() -> None:
    """Both example files contain the same commented-out key lines."""
    assert _commented_keys(EXAMPLE_FI) == _commented_keys(EXAMPLE)
