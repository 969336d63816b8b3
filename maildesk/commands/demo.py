"""``demo``: maildesk on sample mail with throwaway local servers."""

from __future__ import annotations

import argparse
from typing import Any

from maildesk.config import Config
from maildesk.i18n import _


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help=_("run maildesk on built-in sample mail with local test servers")
    )
    demo.set_defaults(handler=run_demo, needs_config=False, quiet_logs=True)


def run_demo(config: Config | None, args: argparse.Namespace) -> int:
    from maildesk.demo import run_demo as run

    return run(config)
