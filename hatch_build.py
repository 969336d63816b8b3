"""Hatch build hook: compile the gettext catalogs so that a wheel carries .mo files."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CompileCatalogsHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        # Compiled files go to a temporary folder, never beside the .po files, where
        # a stale .mo would shadow later edits of the catalog in a source checkout.
        output = Path(tempfile.mkdtemp(prefix="maildesk-catalogs-"))
        for source in sorted(Path(self.root, "maildesk", "locale").glob("*/LC_MESSAGES/*.po")):
            with source.open("rb") as handle:
                catalog = read_po(handle)
            relative = source.with_suffix(".mo").relative_to(self.root)
            compiled = output / relative
            compiled.parent.mkdir(parents=True, exist_ok=True)
            with compiled.open("wb") as handle:
                write_mo(handle, catalog)
            build_data["force_include"][str(compiled)] = relative.as_posix()
