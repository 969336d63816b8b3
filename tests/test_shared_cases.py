"""Run the team's shared corpus of mail that broke other helpdesks through ``maildesk import``.

The corpus lives outside this repository (``../shared/cases`` beside the
checkout, or ``$MAILDESK_SHARED_CASES``); where it is missing these tests
skip. Every fault kind it shows also has a test of its own with our own
input elsewhere in this folder, so the suite does not depend on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.casekit import Desk, make_desk

CASES_DIR = Path(
    os.environ.get("MAILDESK_SHARED_CASES", Path(__file__).resolve().parents[2] / "shared" / "cases")
)

# Cases that need a feature another open issue asks for: case name -> feature.
PENDING_FEATURES: dict[str, str] = {}

# Expectations that contradict the bytes of their own case: case name -> (field, corrected value).
# Case 14's second file name is encoded as %C3%84%C3%A4kk%C3%B6set ("Ääkköset"), while its
# expect.json lists "Äkköset".
CORRECTED_EXPECTATIONS = {
    "14-rfc2231-filename": (
        "attachments",
        ["Hyvityslomake päivätty 14.11.2026.pdf", "Ääkköset ja tuotteet.txt"],
    ),
}


def _cases() -> list[Any]:
    if not CASES_DIR.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no shared cases at {CASES_DIR}"))]
    params = []
    for expect in sorted(CASES_DIR.glob("*.expect.json")):
        name = expect.name.removesuffix(".expect.json")
        marks = []
        if name in PENDING_FEATURES:
            marks.append(pytest.mark.xfail(reason=f"needs {PENDING_FEATURES[name]}", strict=True))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


def _inputs(name: str) -> list[Path]:
    single = CASES_DIR / f"{name}.eml"
    if single.is_file():
        return [single]
    return sorted((CASES_DIR / name).glob("*.eml"))


def _last_message(desk: Desk, tickets: list[dict[str, Any]]) -> dict[str, Any] | None:
    messages = [m for t in tickets for m in desk.ticket(t["number"])["messages"]]
    return messages[-1] if messages else None


def _header_lines_starting(row: dict[str, Any], fragment: str) -> list[str]:
    lines = [f"{name}: {value}" for name, value in row["headers"].items()]
    folded = [part.strip() for line in lines for part in line.splitlines()]
    return [line for line in folded if line.lower().startswith(fragment.lower())]


def _files_outside(root: Path, allowed: Path) -> list[Path]:
    return [
        path for path in root.rglob("*")
        if path.is_file() and allowed not in path.parents and path.name != "config.toml"
    ]


@pytest.mark.shared_cases
@pytest.mark.parametrize("name", _cases())
def test_shared_case(name: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each shared case ends in the state its expect.json describes."""
    assert name is not None
    expect = json.loads((CASES_DIR / f"{name}.expect.json").read_text(encoding="utf-8"))
    if name in CORRECTED_EXPECTATIONS:
        field, value = CORRECTED_EXPECTATIONS[name]
        expect[field] = value
    monkeypatch.chdir(tmp_path)
    desk = make_desk(tmp_path, capsys)

    desk.import_files(*_inputs(name))
    tickets = sorted(desk.tickets(), key=lambda t: t["number"])
    outbox = desk.outbox()
    ticketless = desk.ticketless()
    last = _last_message(desk, tickets)

    if "tickets" in expect:
        assert expect["tickets"] == len(tickets)
    if "max_tickets" in expect:
        assert len(tickets) <= expect["max_tickets"]
    first = desk.ticket(tickets[0]["number"])["messages"][0] if tickets else None
    if "subject" in expect:
        assert expect["subject"] == tickets[0]["subject"]
    for field in ("from", "from_name"):
        if field in expect and tickets:
            assert expect[field] == first[field]
    if "from" in expect and not tickets and ticketless:
        assert expect["from"] == ticketless[-1]["from"]
    if "requester" in expect:
        assert expect["requester"] == tickets[0]["requester"]
    for fragment in expect.get("body_contains", []):
        assert fragment in last["text"]
    for fragment in expect.get("body_not_contains", []):
        assert fragment not in last["text"]
    if "attachments" in expect:
        names = {a["filename"] for a in last["attachments"] if not a["inline"]}
        assert set(expect["attachments"]) == names
    for fragment in expect.get("visible_text_contains", []):
        assert fragment in last["visible_text"]
    for fragment in expect.get("visible_text_not_contains", []):
        assert fragment not in last["visible_text"]

    replies_to_last = [
        row for row in outbox
        if last is not None and last["message_id"]
        and last["message_id"] in row["headers"].get("In-Reply-To", "")
    ]
    if "auto_reply" in expect:
        assert expect["auto_reply"] == bool(replies_to_last)
    if "auto_reply_to" in expect:
        assert expect["auto_reply_to"] == replies_to_last[0]["to"]
    if "auto_replies_sent" in expect:
        assert expect["auto_replies_sent"] == len(outbox)
    for fragment in expect.get("auto_reply_headers_not_contain", []):
        # No header field may be, or look like, the forbidden one; the customer's
        # own subject text may still contain the words.
        for row in outbox:
            names = [f"{name}:" for name in row["headers"]]
            assert fragment.lower() not in [name.lower() for name in names]
            assert [] == _header_lines_starting(row, fragment)
    if expect.get("bounce"):
        bounces = [m for m in ticketless if m["kind"] == "bounce"]
        assert 1 == len(bounces)
        assert expect["failed_recipient"] == bounces[0]["failed_recipient"]
    if "files_written_outside_attachment_dir" in expect:
        assert [] == _files_outside(tmp_path, desk.state_dir)
