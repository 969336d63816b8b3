"""Run maildesk on a benchmark mailbox and read what it stored.

``run_sync_cli`` times the real command line (``maildesk sync --once``) and
reads the child's peak RSS from ``wait4``. ``run_sync_in_child`` times only
the sync pass inside a child process, without the interpreter start and
imports, for the growth comparison where a second of start-up would hide the
difference. ``seed_desk`` fills a desk with stored tickets by direct inserts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text

from benchmarks.corpus import (
    AGENTS,
    SUPPORT_ADDRESS,
    CorpusSpec,
    _make_thread,
    message_id,
)
from benchmarks.mailbox import ImapAccount, SmtpSink

# The thread and index that corpus Message-IDs carry: "<prefix><hex>.<thread>.<index>@".
_CORPUS_ID = re.compile(r"^[a-z]+[0-9a-f]+\.(\d+)\.(\d+)@")
VENV_BIN = Path(sys.executable).parent


@dataclass
class ProcessResult:
    """One finished child process: wall time, peak RSS and output."""

    seconds: float
    max_rss_kib: int
    returncode: int
    stdout: str
    stderr: str


@dataclass
class ThreadingResult:
    """Stored tickets compared with the true threads of the corpus."""

    tickets: int
    threads: int
    messages: int
    # True threads whose messages ended up on more than one ticket.
    split_threads: int
    # Tickets holding messages of more than one true thread.
    mixed_tickets: int
    ticketless: int


def write_config(
    state_dir: Path,
    account: ImapAccount,
    *,
    batch_size: int = 200,
    existing: str = "all",
    smtp: SmtpSink | None = None,
    idle: bool = True,
    poll_interval: int = 60,
    parse_processes: int | None = None,
) -> Path:
    """Write a config for ``account`` into ``state_dir`` and return its path.

    ``parse_processes`` sets ``[import] parse_processes``; None keeps maildesk's default.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "[desk]",
        'name = "Esimerkkikauppa"',
        f'support_address = "{SUPPORT_ADDRESS}"',
        'language = "fi"',
        f"agents = {json.dumps(list(AGENTS))}",
        f'state_dir = "{state_dir}"',
        "",
        "[mailbox]",
        f'host = "{account.host}"',
        f"port = {account.port}",
        'security = "none"',
        f'username = "{account.username}"',
        f'password = "{account.password}"',
        f"batch_size = {batch_size}",
        f"poll_interval = {poll_interval}",
        f"idle = {'true' if idle else 'false'}",
        "",
        "[import]",
        f'existing = "{existing}"',
    ]
    if parse_processes is not None:
        lines.append(f"parse_processes = {parse_processes}")
    if smtp is not None:
        lines += [
            "",
            "[smtp]",
            f'host = "{smtp.host}"',
            f"port = {smtp.port}",
            'security = "none"',
            f'username = "{smtp.username}"',
            f'password = "{smtp.password}"',
            f'from_address = "{SUPPORT_ADDRESS}"',
        ]
    path = state_dir / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_process(
    command: list[str], *, env: dict[str, str] | None = None, timeout: float = 3600
) -> ProcessResult:
    """Run ``command`` and return its wall time and peak RSS (its own ru_maxrss, KiB).

    ``env`` is added to this process's environment. ``timeout`` bounds the
    wait for the output after the child exits.
    """
    # benchmarks.rusage starts the command, so its ru_maxrss does not start from this
    # process's own size (see that module).
    rusage_file = Path(tempfile.mkstemp(prefix="maildesk-bench-rss-")[1])
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.rusage", str(rusage_file), "--", *command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **env} if env else None,
        cwd=Path(__file__).resolve().parent.parent,
    )
    # Threads drain the output while the command runs, so it never blocks on a full pipe.
    stdout_chunks: list[bytes] = []
    stderr_chunks: list[bytes] = []

    def drain(stream, sink: list[bytes]) -> None:  # type: ignore[no-untyped-def]
        for chunk in iter(lambda: stream.read(65536), b""):
            sink.append(chunk)

    readers = [
        threading.Thread(target=drain, args=(process.stdout, stdout_chunks), daemon=True),
        threading.Thread(target=drain, args=(process.stderr, stderr_chunks), daemon=True),
    ]
    for reader in readers:
        reader.start()
    process.wait()
    seconds = time.perf_counter() - began
    for reader in readers:
        reader.join(timeout)
    max_rss = int(rusage_file.read_text(encoding="ascii") or 0)
    rusage_file.unlink(missing_ok=True)
    return ProcessResult(
        seconds=seconds,
        max_rss_kib=max_rss,
        returncode=process.returncode,
        stdout=b"".join(stdout_chunks).decode("utf-8", "replace"),
        stderr=b"".join(stderr_chunks).decode("utf-8", "replace"),
    )


def run_sync_cli(config: Path) -> ProcessResult:
    """Run ``maildesk --config CONFIG sync --once`` and fail loudly when it fails."""
    result = run_process([str(VENV_BIN / "maildesk"), "--config", str(config), "sync", "--once"])
    _check(result, "maildesk sync --once")
    return result


def run_sync_in_child(config: Path) -> tuple[float, ProcessResult]:
    """Time one sync pass inside a child process; return (pass seconds, process result)."""
    result = run_process([sys.executable, "-m", "benchmarks.syncchild", str(config)])
    _check(result, "benchmarks.syncchild")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return float(report["seconds"]), result


def _check(result: ProcessResult, what: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{what} exited with {result.returncode}:\n{result.stderr[-3000:]}")


def database_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'maildesk.sqlite3'}"


def threading_result(state_dir: Path, threads: int, id_prefix: str) -> ThreadingResult:
    """Compare the stored tickets with the true threads of the corpus with ``id_prefix``."""
    engine = create_engine(database_url(state_dir))
    with engine.connect() as connection:
        tickets = connection.execute(text("SELECT count(*) FROM tickets")).scalar_one()
        rows = connection.execute(
            text("SELECT message_id, ticket FROM messages WHERE message_id LIKE :prefix"),
            {"prefix": f"{id_prefix}%"},
        ).all()
    engine.dispose()
    tickets_of_thread: dict[int, set[int | None]] = defaultdict(set)
    threads_of_ticket: dict[int, set[int]] = defaultdict(set)
    ticketless = 0
    for message_id_value, ticket in rows:
        match = _CORPUS_ID.match(message_id_value or "")
        if match is None:
            continue
        thread = int(match.group(1))
        tickets_of_thread[thread].add(ticket)
        if ticket is None:
            ticketless += 1
        else:
            threads_of_ticket[ticket].add(thread)
    return ThreadingResult(
        tickets=tickets,
        threads=threads,
        messages=len(rows),
        split_threads=sum(1 for found in tickets_of_thread.values() if len(found) > 1),
        mixed_tickets=sum(1 for found in threads_of_ticket.values() if len(found) > 1),
        ticketless=ticketless,
    )


# --- seeding a desk that already holds tickets --------------------------------------------


def seed_desk(config_path: Path, count: int, *, seed: int = 7, chunk: int = 5000) -> float:
    """Insert ``count`` realistic closed and open tickets with their first message and auto-reply.

    Rows go in with executemany through SQLAlchemy Core into the tables that
    the migrations created; raw files are not written, since ingest never
    reads stored files. Returns the seconds it took.
    """
    from maildesk.config import load_config
    from maildesk.db import messages, outbox, ticket_participants, tickets
    from maildesk.service import Desk
    from maildesk.threader import subject_key

    began = time.perf_counter()
    desk = Desk.open(load_config(config_path))
    spec = CorpusSpec(messages=count, seed=seed, reply_share=0.0, id_prefix="s")
    now = datetime.now(UTC)
    first = now - timedelta(days=400)
    step = timedelta(days=390) / max(count, 1)
    with desk.engine.begin() as connection:
        for start in range(0, count, chunk):
            ticket_rows, message_rows, outbox_rows, participant_rows = [], [], [], []
            for number in range(start + 1, min(count, start + chunk) + 1):
                created = first + step * number
                thread = _make_thread(spec, number - 1, created)
                status = ("closed", "closed", "closed", "closed", "closed", "closed", "closed",
                          "pending", "open", "new")[number % 10]
                own_id = message_id(spec, number - 1, 0, thread.customer_addr.rpartition("@")[2])
                ticket_rows.append({
                    "number": number, "subject": thread.subject,
                    "subject_key": subject_key(thread.subject), "requester": thread.customer_addr,
                    "requester_name": thread.customer_name, "status": status, "priority": "normal",
                    "language": "fi" if thread.finnish else "en", "created_at": created,
                    "updated_at": created + timedelta(hours=20),
                    "first_response_due": created + timedelta(hours=24),
                    "first_response_at": created + timedelta(hours=6),
                    "closed_at": created + timedelta(days=2) if status == "closed" else None,
                    "status_changed_at": created + timedelta(hours=20),
                })
                message_rows.append(_seed_message(number, thread, own_id, created))
                outbox_rows.append(_seed_reply(number, thread, own_id, created))
                if number % 5 == 0:
                    participant_rows.append({"ticket": number, "address": f"cc{number}@example.net"})
            connection.execute(insert(tickets), ticket_rows)
            connection.execute(insert(messages), message_rows)
            connection.execute(insert(outbox), outbox_rows)
            if participant_rows:
                connection.execute(insert(ticket_participants), participant_rows)
        stored = connection.execute(select(func.count()).select_from(tickets)).scalar_one()
    desk.engine.dispose()
    if stored != count:
        raise RuntimeError(f"seeding stored {stored} tickets, expected {count}")
    return time.perf_counter() - began


def _seed_message(number: int, thread, own_id: str, created: datetime) -> dict[str, object]:  # type: ignore[no-untyped-def]
    body = (
        "Hei,\n\ntilasin villasukat kaksi viikkoa sitten, mutta paketti ei ole tullut. "
        "Seurantakoodi näyttää, että lähetys on ollut jakelussa jo viikon.\n\n"
        f"Ystävällisin terveisin,\n{thread.customer_name}\n"
    ) * 2
    return {
        "ticket": number, "direction": "inbound", "kind": "customer",
        "dedupe_key": f"mid:{own_id}", "message_id": own_id,
        "content_hash": f"{number:064x}", "in_reply_to": "", "references": "",
        "from_addr": thread.customer_addr, "from_name": thread.customer_name,
        "to_addrs": json.dumps([[SUPPORT_ADDRESS, "Esimerkkikauppa asiakaspalvelu"]]),
        "cc_addrs": "[]", "reply_to": "[]", "subject": thread.subject,
        "date": created, "received_at": created, "stored_at": created, "text": body,
        "raw_sha256": f"{number:064x}", "size": 6000 + number % 9000, "folder": "INBOX",
        "uid": None, "thread_rule": "new-ticket", "defects": "[]",
    }


def _seed_reply(number: int, thread, own_id: str, created: datetime) -> dict[str, object]:  # type: ignore[no-untyped-def]
    reply_id = f"maildesk.{number}.seed{number:08d}.x@example.fi"
    subject = f"Re: {thread.subject} [#{number}]"
    headers = {"From": f"Esimerkkikauppa <{SUPPORT_ADDRESS}>", "To": thread.customer_addr,
               "Subject": subject, "Message-ID": f"<{reply_id}>", "In-Reply-To": f"<{own_id}>",
               "Auto-Submitted": "auto-replied"}
    raw = ("\r\n".join(f"{k}: {v}" for k, v in headers.items()) + "\r\n\r\n"
           + "Kiitos viestistäsi. Vastaamme arkisin 24 tunnin kuluessa.\r\n" * 12)
    return {
        "ticket": number, "kind": "new_ticket", "message_id": reply_id,
        "recipient": thread.customer_addr, "to_addrs": json.dumps([thread.customer_addr]),
        "subject": subject, "headers": json.dumps(headers), "raw": raw.encode("utf-8"),
        "status": "sent", "attempts": 1, "next_attempt_at": created, "created_at": created,
        "sent_at": created + timedelta(seconds=2), "sent_copy": "done",
    }


def mark_folder_synced(config_path: Path, uidvalidity: int) -> None:
    """Record INBOX as synced up to UID 0, so the next sync handles its mail as new mail."""
    from maildesk import repository as repo
    from maildesk.config import load_config
    from maildesk.db import make_engine

    config = load_config(config_path)
    engine = make_engine(config.database_url)
    with engine.begin() as connection:
        repo.save_folder_state(connection, "INBOX", uidvalidity, 0, datetime.now(UTC))
    engine.dispose()
