"""Content-addressed files for raw messages and attachments.

Every file is named by the sha256 of its bytes, under ``[storage] path``
only, so a sender's file name never becomes a path and writing the same
bytes twice (after a crash, or a second delivery) is harmless. Files are
written to a temporary name and renamed, so a crash never leaves half a file
under a final name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class FileStore:
    """A folder of files named ``<kind>/<ab>/<sha256>``, readable only by the service user."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, kind: str, content: bytes) -> str:
        """Store ``content`` under ``kind`` ("raw" or "attachments") and return its sha256."""
        digest = hashlib.sha256(content).hexdigest()
        path = self.path(kind, digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{digest}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return digest

    def get(self, kind: str, digest: str) -> bytes:
        return self.path(kind, digest).read_bytes()

    def path(self, kind: str, digest: str) -> Path:
        if kind not in ("raw", "attachments") or len(digest) != 64 or not digest.isalnum():
            raise ValueError(f"invalid stored file reference {kind}/{digest}")
        return self.root / kind / digest[:2] / digest
