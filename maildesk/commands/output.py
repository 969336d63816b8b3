"""Printing helpers shared by the commands: JSON and plain text tables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from maildesk.i18n import _


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def print_table(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> None:
    """Print ``rows`` as left-aligned columns with a header line, or "(none)".

    ``columns`` maps each row key to print, in order, to its header text.
    """
    if not rows:
        print(_("(none)"))
        return
    headers = list(columns.values())
    cells = [[_cell(row[key]) for key in columns] for row in rows]
    widths = [max(len(header), *(len(line[i]) for line in cells)) for i, header in enumerate(headers)]
    print("  ".join(header.ljust(width) for header, width in zip(headers, widths)).rstrip())
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
