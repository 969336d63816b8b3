"""Helpers to run mail through ``maildesk import`` and read the result back as JSON."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from maildesk.cli import main

CASE_DESK = """
[desk]
name = "Verkkokauppa"
support_address = "tuki@example.fi"
own_addresses = ["noreply@example.fi"]
agents = ["myyja@example.fi", "asiakaspalvelu@example.fi"]
language = "fi"
state_dir = "{state}"
"""


@dataclass
class Desk:
    """A desk in a temporary folder, driven through the command line."""

    config_path: Path
    state_dir: Path
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str) -> str:
        self.capsys.readouterr()
        code = main(["--config", str(self.config_path), *args])
        output = self.capsys.readouterr().out
        assert code == 0, f"maildesk {' '.join(args)} exited with {code}"
        return output

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json"))

    def import_files(self, *paths: Path, auto_reply: bool = True) -> str:
        flags = ["--auto-reply"] if auto_reply else []
        return self.run("import", *flags, *(str(p) for p in paths))

    def tickets(self) -> list[dict[str, Any]]:
        return self.json("tickets", "list")

    def ticket(self, number: int) -> dict[str, Any]:
        return self.json("tickets", "show", str(number))

    def outbox(self) -> list[dict[str, Any]]:
        return self.json("outbox", "list")

    def ticketless(self) -> list[dict[str, Any]]:
        return self.json("messages", "list", "--ticketless")


def make_desk(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str = "") -> Desk:
    state = tmp_path / "state"
    config_path = tmp_path / "config.toml"
    config_path.write_text(CASE_DESK.format(state=state) + textwrap.dedent(extra), encoding="utf-8")
    return Desk(config_path, state, capsys)
