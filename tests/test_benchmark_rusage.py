"""The benchmark's peak-RSS figure of a child is the child's own, not the benchmark's."""

from __future__ import annotations

import sys

from benchmarks.desk import run_process


def test_child_rss_excludes_parent() -> None:
    """A small child started by a 150 MiB benchmark process reports well under 150 MiB."""
    ballast = b"x" * (150 * 1024 * 1024)

    result = run_process([sys.executable, "-c", "pass"])

    assert 0 == result.returncode
    assert result.max_rss_kib < 50 * 1024
    assert len(ballast) == 150 * 1024 * 1024
