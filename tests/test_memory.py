"""The allocator setting that keeps a long import's memory down."""

from __future__ import annotations

import sys

import pytest

from maildesk.memory import tune_allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_threshold_set_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Linux with glibc the mmap threshold is set."""
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)

    assert tune_allocator() is True


def test_environment_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's MALLOC_MMAP_THRESHOLD_ is left alone."""
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")

    assert tune_allocator() is False
