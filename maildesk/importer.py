"""Read messages from .eml files, Maildir folders and mbox files for ``maildesk import``."""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Iterator
from pathlib import Path

from maildesk.message import IncomingMessage

log = logging.getLogger(__name__)


def read_messages(paths: list[Path]) -> Iterator[IncomingMessage]:
    """Yield every message under ``paths`` in order; the files of a folder go in name order.

    A folder with ``cur`` and ``new`` subfolders is read as a Maildir, any
    other folder file by file (recursively); a file that starts with
    ``From `` is read as an mbox, any other file as one message.
    """
    for path in paths:
        if path.is_dir():
            yield from _read_folder(path)
        elif path.is_file():
            yield from _read_file(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")


def _read_folder(folder: Path) -> Iterator[IncomingMessage]:
    if (folder / "cur").is_dir() and (folder / "new").is_dir():
        for sub in ("new", "cur"):
            for path in sorted((folder / sub).iterdir()):
                if path.is_file():
                    yield _incoming(path.read_bytes(), path)
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield from _read_file(path)


def _read_file(path: Path) -> Iterator[IncomingMessage]:
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"From ":
        box = mailbox.mbox(path, create=False)
        try:
            for key in box.iterkeys():
                yield _incoming(box.get_bytes(key), path)
        finally:
            box.close()
        return
    yield _incoming(path.read_bytes(), path)


def _incoming(raw: bytes, path: Path) -> IncomingMessage:
    return IncomingMessage(raw=raw, received_at=None, folder=None, uid=None, source=str(path))
