"""Subcommands of ``maildesk``, one module per group.

Each module has ``register(commands)``, which adds its parsers to the
``argparse`` subparsers and sets ``handler`` (called as
``handler(config, args)`` and returning the exit code) with
``set_defaults``. A parser that sets ``needs_config=False`` gets
``config=None`` when no ``--config`` was given.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# In the order their commands appear in ``maildesk --help``.
COMMAND_MODULES = (
    "maildesk.commands.daemon",
    "maildesk.commands.tickets",
    "maildesk.commands.customers",
    "maildesk.commands.maintenance",
    "maildesk.commands.templates",
    "maildesk.commands.ops",
    "maildesk.commands.demo",
)


def load_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in COMMAND_MODULES]
