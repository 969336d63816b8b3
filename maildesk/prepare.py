"""Store and parse fetched mail before ingest, in the main process or in worker processes.

Parsing and writing the raw files take about half of the time ingest spends
on a message. During a sync of many messages, :class:`ProcessPreparer` hands
the fetched messages to worker processes, which write the raw files and parse
them while the main process stores the previous batch in the database. The
workers only write content-addressed files, which are harmless to write twice
or to leave behind: a database row names a file only after the main process
has flushed every file with :meth:`FileStore.sync` and committed.

A worker is a plain child process (``python -m maildesk.parseworker``) that
reads a pickled batch from its stdin, prepares its messages one at a time,
dropping each raw message once it is on disk, and writes the results back as
one pickle. It imports only the parser. It ends when its stdin closes, and
Linux kills it when the main process dies.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from maildesk.config import LimitSettings
from maildesk.errors import MessageParseError
from maildesk.limits import trim_for_ticket
from maildesk.message import IncomingMessage, ParsedMessage
from maildesk.parsing import FORWARDED_TYPES, parse_message
from maildesk.storage import FileStore

log = logging.getLogger(__name__)

# Seconds a closing worker gets to finish the message in hand before it is killed.
WORKER_EXIT_SECONDS = 10.0

# A worker that has messages and sends no result for this long is killed, and the main
# process prepares its messages. A worker sends its results at least every
# RESULT_FLUSH_SECONDS, so only a stopped or hung worker, or one message that takes
# a minute to parse, reaches it.
WORKER_STALL_SECONDS = 60.0
STALL_CHECK_SECONDS = 1.0
RESULT_FLUSH_SECONDS = 1.0

# Size of the pipe buffers to and from a worker, and of the streams over them. 1 MiB is
# Linux's default /proc/sys/fs/pipe-max-size.
PIPE_BUFFER_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """A fetched message with its raw file stored and its parse result (None when it failed)."""

    raw_sha: str
    parsed: ParsedMessage | None
    error: str = ""


def prepare_message(item: IncomingMessage, files: FileStore, limits: LimitSettings) -> PreparedMessage:
    """Store the raw file of ``item``, parse it within ``limits`` and store its attachments.

    The result keeps no HTML and no attachment bytes but those of attached
    messages: ingest reads only the text made from the HTML and the stored
    files, and a worker sends the result back pickled.
    """
    raw_sha = files.put("raw", item.raw)
    try:
        parsed = parse_message(item.raw)
    except MessageParseError as exc:
        return PreparedMessage(raw_sha, None, f"parse error: {exc}")
    parsed = dataclasses.replace(trim_for_ticket(parsed, item, limits), html=None)
    if parsed.attachments:
        stored = tuple(
            dataclasses.replace(
                attachment,
                stored_sha256=files.put("attachments", attachment.content),
                stored_size=len(attachment.content),
                # Ingest parses an attached message again when it looks for a forward.
                content=attachment.content if attachment.content_type in FORWARDED_TYPES else b"",
            )
            for attachment in parsed.attachments
        )
        parsed = dataclasses.replace(parsed, attachments=stored)
    return PreparedMessage(raw_sha, parsed)


class PreparedBatch:
    """The results of one submitted batch, filled in by the workers' reader threads.

    An entry stays None when its worker failed on it or ended before it; the
    caller prepares that message itself.
    """

    def __init__(self, size: int) -> None:
        self.results: list[PreparedMessage | None] = [None] * size
        self._missing = size
        self._done = threading.Condition()

    def settle(self, index: int, result: PreparedMessage | None) -> None:
        with self._done:
            self.results[index] = result
            self._missing -= 1
            if self._missing == 0:
                self._done.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every result; return whether all are in."""
        with self._done:
            return self._done.wait_for(lambda: self._missing == 0, timeout)


class ProcessPreparer:
    """Prepares messages in worker processes while the caller stores earlier batches.

    ``depth`` is how many batches may be submitted ahead of the one being
    stored. The messages of a batch are dealt out to the workers in turn.
    When a worker ends, its messages without a result come back as None and the
    other workers take the later ones; with none left, :meth:`submit`
    returns None.
    """

    depth = 1

    def __init__(self, storage_path: Path, limits: LimitSettings, processes: int) -> None:
        self._workers: list[_Worker] = []
        try:
            for _ in range(processes):
                self._workers.append(_Worker(storage_path, limits))
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """Process IDs of the workers still running."""
        return [worker.pid for worker in self._workers if worker.alive]

    def submit(self, items: Sequence[IncomingMessage]) -> PreparedBatch | None:
        workers = [worker for worker in self._workers if worker.alive]
        if not workers:
            return None
        batch = PreparedBatch(len(items))
        for number, worker in enumerate(workers):
            share = [(index, items[index]) for index in range(number, len(items), len(workers))]
            if share:
                worker.send(batch, share)
        return batch

    def collect(self, submitted: PreparedBatch | None) -> list[PreparedMessage | None] | None:
        """Return the prepared batch (None entries for the caller to prepare), or None for all of it."""
        if submitted is None:
            return None
        while not submitted.wait(STALL_CHECK_SECONDS):
            for worker in self._workers:
                worker.stop_if_stalled()
        return submitted.results

    def close(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()


class _Worker:
    """One worker process, the thread that writes its messages and the one that reads its results."""

    def __init__(self, storage_path: Path, limits: LimitSettings) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "maildesk.parseworker", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=PIPE_BUFFER_BYTES,
            # A Ctrl-C on the terminal reaches the whole foreground process group; the
            # main process decides when to stop, and closing stdin ends the worker.
            process_group=0,
        )
        self.pid = self.process.pid
        self.alive = True
        self._outbox: queue.SimpleQueue[tuple[PreparedBatch, list[tuple[int, IncomingMessage]]] | None]
        self._outbox = queue.SimpleQueue()
        # Messages written to the worker that have no result yet, oldest first.
        self._waiting: deque[tuple[PreparedBatch, int]] = deque()
        # When the worker last took up messages after being idle or sent a result.
        self._last_progress = time.monotonic()
        self._lock = threading.Lock()
        assert self.process.stdin is not None and self.process.stdout is not None
        for stream in (self.process.stdin, self.process.stdout):
            _widen_pipe(stream.fileno())
        _send(self.process.stdin, (str(storage_path), limits))
        self._writer = threading.Thread(target=self._write_all, args=(self.process.stdin,), daemon=True,
                                        name=f"parse-worker-{self.pid}-writer")
        self._reader = threading.Thread(target=self._read_all, args=(self.process.stdout,), daemon=True,
                                        name=f"parse-worker-{self.pid}-reader")
        self._writer.start()
        self._reader.start()

    def stop_if_stalled(self) -> None:
        """Kill the worker when it has messages and sent no result for WORKER_STALL_SECONDS."""
        with self._lock:
            stalled_for = time.monotonic() - self._last_progress
            stalled = self.alive and bool(self._waiting) and stalled_for > WORKER_STALL_SECONDS
        if stalled:
            log.warning(
                "parse worker %d sent no result for %.0f s; stopping it, and the main process "
                "prepares its messages", self.pid, stalled_for,
            )
            self.process.kill()

    def send(self, batch: PreparedBatch, share: list[tuple[int, IncomingMessage]]) -> None:
        """Queue ``share``, (index in ``batch``, message) pairs, for the worker."""
        self._outbox.put((batch, share))

    def close(self) -> None:
        # Messages not yet written are dropped; the caller prepares what it still needs.
        while True:
            try:
                pending = self._outbox.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                for index, _item in pending[1]:
                    pending[0].settle(index, None)
        self._outbox.put(None)
        self._writer.join(WORKER_EXIT_SECONDS)
        if self._writer.is_alive():
            # The worker does not read: killing it ends the writer's blocked write.
            self.process.kill()
            self._writer.join()
        self._reap()
        self._reader.join()

    def _reap(self) -> int:
        """Wait up to WORKER_EXIT_SECONDS for the worker to exit, kill it after that, and return its status."""
        try:
            return self.process.wait(timeout=WORKER_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def _write_all(self, stdin: IO[bytes]) -> None:
        try:
            while (queued := self._outbox.get()) is not None:
                batch, share = queued
                try:
                    self._write_share(stdin, batch, share)
                except OSError:
                    # The worker ended; the reader settles what it was given.
                    continue
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _write_share(self, stdin: IO[bytes], batch: PreparedBatch, share: list[tuple[int, IncomingMessage]]) -> None:
        # One pickle per share, written in few system calls: each call gives up the GIL,
        # and the main thread, busy storing, can keep it for a whole switch interval.
        with self._lock:
            if not self.alive:
                for index, _item in share:
                    batch.settle(index, None)
                return
            if not self._waiting:
                self._last_progress = time.monotonic()
            self._waiting.extend((batch, index) for index, _item in share)
        # If the write fails, the reader settles every message of the share.
        _send(stdin, [item for _index, item in share])

    def _read_all(self, stdout: IO[bytes]) -> None:
        try:
            while True:
                try:
                    replies = pickle.load(stdout)
                except EOFError:
                    break
                with self._lock:
                    targets = [self._waiting.popleft() for _reply in replies]
                    self._last_progress = time.monotonic()
                for (batch, index), (result, error) in zip(targets, replies, strict=True):
                    if error:
                        log.error("a parse worker failed on a message; preparing it in the main process:\n%s", error)
                    batch.settle(index, result)
        except Exception:
            # Whatever broke, the messages without a result must come back to the caller.
            log.exception("reading from parse worker %d failed", self.pid)
        finally:
            self._stop_reading(stdout)

    def _stop_reading(self, stdout: IO[bytes]) -> None:
        with self._lock:
            without_result = list(self._waiting)
            self._waiting.clear()
            was_alive, self.alive = self.alive, False
        stdout.close()
        for batch, index in without_result:
            batch.settle(index, None)
        # Its stdout closed, so the worker is ending, or it wrote something else there.
        returncode = self._reap()
        if was_alive and (without_result or returncode != 0):
            log.warning(
                "parse worker %d stopped (exit status %s) with %d message(s) without a result; "
                "the main process prepares them", self.pid, returncode, len(without_result),
            )


def _widen_pipe(descriptor: int) -> None:
    """Ask Linux for a pipe buffer of PIPE_BUFFER_BYTES, so a batch crosses in few system calls."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    try:
        fcntl.fcntl(descriptor, set_size, PIPE_BUFFER_BYTES)
    except OSError as error:
        # Over /proc/sys/fs/pipe-max-size: the default 64 KiB works, in more system calls.
        log.debug("cannot widen the parse worker's pipe: %s", error)


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Run a worker: read the storage path and limits, then prepare batches until stdin ends."""
    storage_path, limits = pickle.load(stdin)
    files = FileStore(Path(storage_path))
    while True:
        try:
            items: list[IncomingMessage | None] = pickle.load(stdin)
        except EOFError:
            return
        replies: list[tuple[PreparedMessage | None, str]] = []
        sent_at = time.monotonic()
        for position, item in enumerate(items):
            assert item is not None
            # The raw bytes of a prepared message are on disk: drop them here.
            items[position] = None
            replies.append(_prepare_reply(item, files, limits))
            # A slow batch sends its results at least every RESULT_FLUSH_SECONDS, and the
            # main process's stall check counts each result as progress.
            if time.monotonic() - sent_at > RESULT_FLUSH_SECONDS:
                _send(stdout, replies)
                replies, sent_at = [], time.monotonic()
        _send(stdout, replies)


def _prepare_reply(
    item: IncomingMessage, files: FileStore, limits: LimitSettings
) -> tuple[PreparedMessage | None, str]:
    try:
        return prepare_message(item, files, limits), ""
    except Exception:  # noqa: BLE001 - the main process prepares this message itself
        return None, f"folder={item.folder} UID={item.uid}\n{traceback.format_exc()}"


def _send(stream: IO[bytes], value: object) -> None:
    pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()
