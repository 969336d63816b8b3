"""Collect benchmark results and render them as Markdown tables with the targets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Target:
    """One target of the issue: what was measured and whether it passed (None: not run)."""

    name: str
    measured: str
    passed: bool | None


@dataclass
class Report:
    """Sections of result rows, the targets, and the facts about the machine."""

    command: str
    machine: dict[str, str]
    sections: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    values: dict[str, object] = field(default_factory=dict)

    def table(self, title: str, header: list[str], rows: list[list[str]]) -> None:
        self.sections.append((title, header, rows))

    def target(self, name: str, measured: str, passed: bool | None) -> None:
        self.targets.append(Target(name, measured, passed))

    def render(self) -> str:
        """Return the whole report as Markdown."""
        lines = [f"Command: `{self.command}`", ""]
        lines += _table(["machine", "value"], [[key, value] for key, value in self.machine.items()])
        for title, header, rows in self.sections:
            lines += ["", f"### {title}", ""]
            lines += _table(header, rows)
        lines += ["", "### Targets", ""]
        lines += _table(
            ["target", "measured", "result"],
            [[t.name, t.measured, _verdict(t.passed)] for t in self.targets],
        )
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def write_json(self, path: Path) -> None:
        data = {
            "command": self.command,
            "machine": self.machine,
            "values": self.values,
            "targets": [t.__dict__ for t in self.targets],
            "notes": self.notes,
        }
        path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return "not run"
    return "pass" if passed else "FAIL"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def rate(value: float) -> str:
    return f"{value:,.0f}"


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"
