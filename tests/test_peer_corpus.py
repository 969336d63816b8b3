"""Run another helpdesk's parser fixtures through ``maildesk import`` and compare.

The fixtures are AGPL test data kept outside this repository
(``../shared/peer-corpus`` beside the checkout, or
``$MAILDESK_PEER_CORPUS``); where they are missing this test skips. Nothing
of them is copied here. The test pins the exact set of fixtures whose
sender, subject or body text differs from the peer's, each with the reason,
so a regression or an improvement both show up.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.casekit import Desk, make_desk

CORPUS_DIR = Path(
    os.environ.get(
        "MAILDESK_PEER_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "peer-corpus" / "zammad"
    )
)

# Fixture -> why maildesk differs from the peer's recorded values.
KNOWN_DIFFERENCES = {
    "mail017": "the peer shows the HTML alternative; maildesk shows the text/plain one",
    "mail085": "the peer shows the HTML alternative; maildesk shows the text/plain one",
    "mail035": "the peer keeps the quotes in the address",
    "mail076": "the peer keeps a broken From raw; maildesk reads the quoted local part",
    "mail046": "raw GBK header bytes without a charset label; UTF-8 and windows-1252 cannot guess GBK",
    "mail053": "From: MAILER-DAEMON has no domain, so maildesk stores no half address",
    "mail071": "a From address with spaces in it is malformed and dropped",
}


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _differences(desk: Desk, expect: dict[str, Any]) -> list[str]:
    tickets = desk.tickets()
    ticketless = desk.ticketless()
    if tickets:
        message = desk.ticket(tickets[0]["number"])["messages"][0]
    elif ticketless:
        message = dict(ticketless[0], text=None)
    else:
        return ["not stored"]
    problems = []
    if expect.get("from_email") and expect["from_email"].lower() != message["from"]:
        problems.append(f"from {message['from']!r}")
    if _normalize(expect.get("subject") or "") != _normalize(message["subject"] or ""):
        problems.append(f"subject {message['subject']!r}")
    if message["text"] is not None:
        text = _normalize(message["text"])
        missing = [f for f in expect.get("body_contains", []) if _normalize(f) not in text]
        if missing:
            problems.append(f"body lacks {missing!r}")
    return problems


@pytest.mark.shared_cases
def test_peer_corpus_matches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every peer fixture but the known ones matches on sender, subject and body text."""
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"no peer corpus at {CORPUS_DIR}")

    failures: dict[str, list[str]] = {}
    boxes = sorted(CORPUS_DIR.glob("*.box"))
    for box in boxes:
        expect = json.loads(box.with_suffix(".expect.json").read_text(encoding="utf-8"))
        (tmp_path / box.stem).mkdir()
        desk = make_desk(tmp_path / box.stem, capsys)
        desk.import_files(box, auto_reply=True)
        problems = _differences(desk, expect)
        if problems:
            failures[box.stem] = problems

    with capsys.disabled():
        print(f"\npeer corpus: {len(boxes) - len(failures)} of {len(boxes)} match")
    assert set(KNOWN_DIFFERENCES) == set(failures), failures
