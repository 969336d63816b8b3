"""Store and parse fetched mail before ingest, in the main process or in worker processes.

Parsing and writing the raw files take about half of the time ingest spends
on a message. During a sync of many messages, :class:`ProcessPreparer` hands
each fetched batch to a worker process, which writes the raw files and parses
them while the main process stores the previous batch in the database. The
workers only write content-addressed files, which are harmless to write twice
or to leave behind: a database row names a file only after the main process
has flushed every file with :meth:`FileStore.sync` and committed.

The workers are started with the "spawn" method, so they import only this
module and the parser, not the database, IMAP and scheduler code of the main
process, and no thread of the main process is copied into them.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from maildesk.config import LimitSettings
from maildesk.errors import MessageParseError
from maildesk.limits import trim_for_ticket
from maildesk.message import IncomingMessage, ParsedMessage
from maildesk.parsing import parse_message
from maildesk.storage import FileStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """A fetched message with its raw file stored and its parse result (None when it failed)."""

    raw_sha: str
    parsed: ParsedMessage | None
    error: str = ""


def prepare_message(item: IncomingMessage, files: FileStore, limits: LimitSettings) -> PreparedMessage:
    """Store the raw file of ``item``, parse it within ``limits`` and store its attachments."""
    raw_sha = files.put("raw", item.raw)
    try:
        parsed = parse_message(item.raw)
    except MessageParseError as exc:
        return PreparedMessage(raw_sha, None, f"parse error: {exc}")
    # Ingest reads the text made from the HTML, never the HTML itself, and a
    # worker sends the result back pickled: without it, loading takes a third less.
    parsed = dataclasses.replace(trim_for_ticket(parsed, item, limits), html=None)
    if parsed.attachments:
        stored = tuple(
            dataclasses.replace(attachment, stored_sha256=files.put("attachments", attachment.content))
            for attachment in parsed.attachments
        )
        parsed = dataclasses.replace(parsed, attachments=stored)
    return PreparedMessage(raw_sha, parsed)


class ProcessPreparer:
    """Prepares batches in worker processes while the caller stores earlier ones.

    ``depth`` is how many batches may be submitted ahead of the one being
    stored. When a worker fails, the batch is prepared in the calling process
    and, if the pool is broken, every later one too.
    """

    def __init__(self, storage_path: Path, limits: LimitSettings, processes: int) -> None:
        self.depth = processes
        self._executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(str(storage_path), limits, os.getpid()),
        )

    def submit(self, items: Sequence[IncomingMessage]) -> Future[list[PreparedMessage]] | None:
        if self._executor is None:
            return None
        try:
            # The pool starts its processes inside submit. A process inherits the signal
            # mask of the thread that starts it, so with SIGINT blocked here a Ctrl-C on
            # the terminal cannot interrupt a worker before its initializer ignores SIGINT.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                return self._executor.submit(_prepare_batch, list(items))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        except (BrokenProcessPool, RuntimeError) as exc:
            self._give_up(exc)
            return None

    def collect(
        self, items: Sequence[IncomingMessage], submitted: Future[list[PreparedMessage]] | None
    ) -> list[PreparedMessage] | None:
        """Return the prepared batch, or None for the caller to prepare it itself."""
        if submitted is None:
            return None
        try:
            return submitted.result()
        except BrokenProcessPool as exc:
            self._give_up(exc)
        except Exception:  # noqa: BLE001 - a failed worker must not lose the batch
            log.exception("preparing %d messages in a worker process failed; preparing them here", len(items))
        return None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _give_up(self, exc: BaseException) -> None:
        log.warning("the parse worker processes stopped (%s); parsing in the main process from now on", exc)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


# State of a worker process, set once by its initializer.
_worker_files: FileStore | None = None
_worker_limits: LimitSettings | None = None


def _start_worker(storage_path: str, limits: LimitSettings, parent: int) -> None:
    global _worker_files, _worker_limits
    # Ctrl-C on a terminal reaches the whole process group; the main process decides
    # when to stop, and the pool ends its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _end_with_parent(parent)
    _worker_files = FileStore(Path(storage_path))
    _worker_limits = limits


def _end_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when the main process dies, even by SIGKILL.

    Without it a worker whose main process was killed lives on, holding the
    main process's stdout and stderr open (a pipe reader such as ``| tee``
    then never ends). Linux sends the signal when the thread that started the
    worker ends, which is why one thread creates, uses and closes a
    :class:`ProcessPreparer`. Elsewhere only the pool's own shutdown applies.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:
        # The main process died before the request above: end now.
        os._exit(1)


# From <linux/prctl.h>: deliver a signal to this process when its parent dies.
_PR_SET_PDEATHSIG = 1


def _prepare_batch(items: list[IncomingMessage]) -> list[PreparedMessage]:
    assert _worker_files is not None and _worker_limits is not None
    return [prepare_message(item, _worker_files, _worker_limits) for item in items]
