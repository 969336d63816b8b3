"""Run the maildesk benchmarks and print the results with the targets as Markdown.

``python -m benchmarks.run`` (or ``make bench``) runs, in this order, on one
private Dovecot: the fetch and parse floor, maildesk's full ingest of the same
mailbox, the peer on 1,000 mails, the growth comparison, and the reply
latency. ``--big`` adds the 100,000-message mailbox for peak RSS. See
``docs/benchmarks.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks import daemon, desk, floor, latency, peer
from benchmarks.corpus import CorpusSpec
from benchmarks.machine import describe
from benchmarks.mailbox import DovecotServer, ImapAccount, SmtpSink, dovecot, fill_account
from benchmarks.report import Report, mib, rate

log = logging.getLogger("benchmarks")

# Targets: full ingest / floor, growth ratio, peak RSS, latency quantiles.
INGEST_SHARE_TARGET = 0.40
GROWTH_TARGET = 0.8
RSS_TARGET_MIB = 100
P50_TARGET = 1.0
P95_TARGET = 2.0


@dataclass
class Sizes:
    """How much each stage does."""

    messages: int
    peer_messages: int
    growth_small: int
    growth_large: int
    growth_new: int
    growth_repeats: int
    latency_count: int
    latency_interval: float
    big_messages: int


FULL = Sizes(10_000, 1_000, 1_000, 100_000, 1_000, 3, 30, 2.0, 100_000)
QUICK = Sizes(1_000, 300, 1_000, 10_000, 300, 1, 10, 1.0, 100_000)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes for a run of about two minutes")
    parser.add_argument("--big", action="store_true",
                        help="also import a 100,000-message mailbox with `maildesk sync --once` and "
                             "with `maildesk run`, and report their peak RSS")
    parser.add_argument("--messages", type=int, help="messages in the main mailbox (default 10,000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mail generator (default 1)")
    parser.add_argument("--batch-size", type=int, default=200,
                        help="maildesk's [mailbox] batch_size (default 200, its own default)")
    parser.add_argument("--peer-messages", type=int, help="messages for the peer (default 1,000)")
    parser.add_argument("--no-peer", action="store_true", help="skip django-helpdesk")
    parser.add_argument("--peer-venv", type=Path, default=peer.DEFAULT_VENV,
                        help=f"virtualenv for django-helpdesk (default {peer.DEFAULT_VENV})")
    parser.add_argument("--growth-small", type=int, help="tickets in the small desk (default 1,000)")
    parser.add_argument("--growth-large", type=int, help="tickets in the large desk (default 100,000)")
    parser.add_argument("--growth-new", type=int, help="new mails ingested into each desk (default 1,000)")
    parser.add_argument("--growth-repeats", type=int, help="runs per desk; the median counts (default 3)")
    parser.add_argument("--no-growth", action="store_true", help="skip the growth comparison")
    parser.add_argument("--latency-count", type=int, help="mails APPENDed for the latency (default 30)")
    parser.add_argument("--latency-interval", type=float, help="seconds between APPENDs (default 2)")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument("--no-idle", action="store_true",
                        help="measure the latency with polling every 5 s instead of IDLE")
    parser.add_argument("--big-messages", type=int, help="messages of the --big mailbox (default 100,000)")
    parser.add_argument("--big-settle", type=float, default=90.0,
                        help="seconds that `maildesk run` goes on after storing the --big mailbox, "
                             "for the jobs that were due during the import (default 90)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--work-dir", type=Path,
                        help="folder for the mailboxes and desks (default: a new one under /tmp)")
    return parser


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    return Sizes(
        messages=args.messages or base.messages,
        peer_messages=args.peer_messages or base.peer_messages,
        growth_small=args.growth_small or base.growth_small,
        growth_large=args.growth_large or base.growth_large,
        growth_new=args.growth_new or base.growth_new,
        growth_repeats=args.growth_repeats or base.growth_repeats,
        latency_count=args.latency_count or base.latency_count,
        latency_interval=args.latency_interval or base.latency_interval,
        big_messages=args.big_messages or base.big_messages,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    # aiosmtpd and the test servers log every SMTP command and account.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("servers").setLevel(logging.WARNING)
    report = run_benchmarks(args, "python -m benchmarks.run " + shlex.join(argv))
    print(report.render())
    if args.json:
        report.write_json(args.json)
    return 0


def run_benchmarks(args: argparse.Namespace, command: str) -> Report:
    """Run every stage that ``args`` asks for and return the report."""
    sizes = sizes_from(args)
    report = Report(command=command, machine=describe())
    work = Path(tempfile.mkdtemp(prefix="maildesk-bench-", dir=args.work_dir))
    try:
        with dovecot() as server:
            _run_stages(server, work, args, sizes, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.machine["load average at end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return report


def _run_stages(
    server: DovecotServer, work: Path, args: argparse.Namespace, sizes: Sizes, report: Report
) -> None:
    bench_floor_and_ingest(server, work, args, sizes, report)
    if not args.no_peer:
        bench_peer(server, work, args, sizes, report)
    if not args.no_growth:
        bench_growth(server, work, args, sizes, report)
    if not args.no_latency:
        bench_latency(server, work, args, sizes, report)
    if args.big:
        bench_big(server, work, args, sizes, report)
    else:
        report.target(f"peak RSS < {RSS_TARGET_MIB} MiB, 100,000-message mailbox",
                      "run with --big", None)


# --- stages -----------------------------------------------------------------------------


def bench_floor_and_ingest(
    server: DovecotServer, work: Path, args: argparse.Namespace, sizes: Sizes, report: Report
) -> None:
    """Floor, mail-parser and maildesk's full ingest on the same mailbox."""
    spec = CorpusSpec(messages=sizes.messages, seed=args.seed)
    box = fill_account(server, spec)
    account = box.account
    client = floor.connect(account.host, account.port, account.username, account.password)
    best, batch_rates = floor.best_batch_size(client)
    times = floor.fetch_pass(client, best, tuple(floor.PARSERS))
    client.logout()
    default_client = floor.connect(
        account.host, account.port, account.username, account.password, debug=5
    )
    debug_rate = floor.fetch_pass(default_client, best).rate("fetch")
    default_client.logout()

    state = work / "ingest"
    config = desk.write_config(state, account, batch_size=args.batch_size)
    result = desk.run_sync_cli(config)
    threads = desk.threading_result(state, box.stats.threads, spec.id_prefix)
    shutil.rmtree(state, ignore_errors=True)

    megabytes = box.stats.bytes / 1e6
    floor_rate = times.rate("fetch", "compat32")
    ingest_rate = sizes.messages / result.seconds
    report.values.update({
        "messages": sizes.messages, "mailbox_mb": megabytes, "batch_rates": batch_rates,
        "best_batch": best, "stage_seconds": times.seconds, "fetch_rate_debug5": debug_rate,
        "floor_rate": floor_rate, "ingest_rate": ingest_rate, "ingest_seconds": result.seconds,
        "ingest_rss_kib": result.max_rss_kib, "tickets": threads.tickets, "threads": threads.threads,
    })
    report.table(
        f"Import of {sizes.messages:,} messages ({megabytes:.0f} MB, {box.stats.threads:,} threads)",
        ["what", "messages/s", "MB/s", "share of floor"],
        [
            [f"fetch only, imapclient debug 0, batches of {best}", rate(times.rate("fetch")),
             f"{times.megabytes_per_second('fetch'):.1f}", ""],
            [f"fetch only, imapclient as constructed (imaplib debug 5), batches of {best}",
             rate(debug_rate), "", ""],
            ["**floor**: fetch + stdlib compat32 parse, needed headers", rate(floor_rate),
             f"{times.megabytes_per_second('fetch', 'compat32'):.1f}", "100 %"],
            ["fetch + mail-parser", rate(times.rate("fetch", "mail-parser")),
             f"{times.megabytes_per_second('fetch', 'mail-parser'):.1f}",
             _share(times.rate("fetch", "mail-parser"), floor_rate)],
            ["fetch + maildesk's parser", rate(times.rate("fetch", "maildesk-parser")),
             f"{times.megabytes_per_second('fetch', 'maildesk-parser'):.1f}",
             _share(times.rate("fetch", "maildesk-parser"), floor_rate)],
            ["**maildesk sync --once** (full ingest, wall clock)", rate(ingest_rate),
             f"{megabytes / result.seconds:.1f}", _share(ingest_rate, floor_rate)],
        ],
    )
    report.table(
        "Fetch rate by batch size (imapclient debug 0)",
        ["batch size", "messages/s"],
        [[str(size), rate(value)] for size, value in batch_rates.items()],
    )
    report.table(
        "Threading of the full ingest",
        ["true threads", "tickets", "split threads", "mixed tickets", "messages on no ticket",
         f"peak RSS ({sizes.messages:,} messages)"],
        [[f"{threads.threads:,}", f"{threads.tickets:,}", str(threads.split_threads),
          str(threads.mixed_tickets), str(threads.ticketless), mib(result.max_rss_kib)]],
    )
    share = ingest_rate / floor_rate
    report.target(f"full ingest >= {INGEST_SHARE_TARGET:.0%} of the floor",
                  f"{share:.0%} ({rate(ingest_rate)} of {rate(floor_rate)} messages/s)",
                  share >= INGEST_SHARE_TARGET)
    report.target("tickets == true threads", f"{threads.tickets:,} tickets, {threads.threads:,} threads",
                  threads.tickets == threads.threads and threads.split_threads == 0
                  and threads.mixed_tickets == 0)
    account.close()
    _remove_maildir(account)


def bench_peer(
    server: DovecotServer, work: Path, args: argparse.Namespace, sizes: Sizes, report: Report
) -> None:
    """django-helpdesk's get_email and maildesk on two copies of the same mailbox."""
    spec = CorpusSpec(messages=sizes.peer_messages, seed=args.seed + 100, id_prefix="p")
    try:
        python = peer.ensure_venv(args.peer_venv)
    except Exception as exc:  # noqa: BLE001 - the reason goes into the report
        report.notes.append(f"The peer was not run: installing it failed ({exc}).")
        return
    ours_box = fill_account(server, spec)
    peer_box = fill_account(server, spec)
    state = work / "peer-maildesk"
    ours = desk.run_sync_cli(desk.write_config(state, ours_box.account, batch_size=args.batch_size))
    threads = desk.threading_result(state, ours_box.stats.threads, spec.id_prefix)
    theirs = peer.run_peer(python, work / "peer-django", peer_box.account)
    count = sizes.peer_messages
    report.values.update({"peer_rate": count / theirs.process.seconds, "peer_tickets": theirs.tickets,
                          "peer_rss_kib": theirs.process.max_rss_kib, "peer_version": theirs.version})
    report.table(
        f"Peer comparison on {count:,} messages ({ours_box.stats.threads:,} true threads)",
        ["helpdesk", "messages/s", "peak RSS", "tickets", "true threads"],
        [
            ["maildesk sync --once", rate(count / ours.seconds), mib(ours.max_rss_kib),
             f"{threads.tickets:,}", f"{threads.threads:,}"],
            [f"{theirs.version}: manage.py get_email", rate(count / theirs.process.seconds),
             mib(theirs.process.max_rss_kib), f"{theirs.tickets:,}", f"{ours_box.stats.threads:,}"],
        ],
    )
    for box in (ours_box, peer_box):
        box.account.close()
        _remove_maildir(box.account)


def bench_growth(
    server: DovecotServer, work: Path, args: argparse.Namespace, sizes: Sizes, report: Report
) -> None:
    """Ingest the same new mails into a small and a large desk; compare the rates."""
    rows = []
    rates: dict[int, float] = {}
    for stored in (sizes.growth_small, sizes.growth_large):
        seconds, seed_seconds = _growth_runs(server, work, args, sizes, stored)
        rates[stored] = sizes.growth_new / seconds
        rows.append([f"{stored:,}", f"{seed_seconds:.1f} s", f"{seconds:.2f} s", rate(rates[stored])])
    ratio = rates[sizes.growth_large] / rates[sizes.growth_small]
    report.values.update({"growth_rates": rates, "growth_ratio": ratio})
    report.table(
        f"Growth: {sizes.growth_new:,} new mails into a desk that already holds N tickets "
        f"(median of {sizes.growth_repeats})",
        ["stored tickets", "seeding", "sync pass", "messages/s"],
        rows,
    )
    report.target(f"rate at {sizes.growth_large:,} tickets >= {GROWTH_TARGET} x rate at "
                  f"{sizes.growth_small:,}", f"{ratio:.2f} x", ratio >= GROWTH_TARGET)


def _growth_runs(
    server: DovecotServer, work: Path, args: argparse.Namespace, sizes: Sizes, stored: int
) -> tuple[float, float]:
    """Return the median sync-pass seconds over the repeats and the seeding seconds."""
    template = work / f"growth-{stored}-template"
    config = desk.write_config(template, server.create_account(), batch_size=args.batch_size)
    seed_seconds = desk.seed_desk(config, stored)
    now = datetime.now(UTC)
    spec = CorpusSpec(messages=sizes.growth_new, seed=args.seed + 200, id_prefix="g",
                      ticket_offset=stored, start=now - timedelta(minutes=50),
                      span=timedelta(minutes=40))
    passes = []
    for repeat in range(sizes.growth_repeats):
        box = fill_account(server, spec)
        state = work / f"growth-{stored}-{repeat}"
        shutil.copytree(template, state, ignore=shutil.ignore_patterns("config.toml", "storage"))
        run_config = desk.write_config(state, box.account, batch_size=args.batch_size)
        desk.mark_folder_synced(run_config, box.account.uidvalidity())
        seconds, _ = desk.run_sync_in_child(run_config)
        passes.append(seconds)
        shutil.rmtree(state, ignore_errors=True)
        box.account.close()
        _remove_maildir(box.account)
    shutil.rmtree(template, ignore_errors=True)
    passes.sort()
    return passes[len(passes) // 2], seed_seconds


def bench_latency(
    server: DovecotServer, work: Path, args: argparse.Namespace, sizes: Sizes, report: Report
) -> None:
    """APPEND to auto-reply accepted, with the daemon on IDLE (or polling with --no-idle)."""
    account = server.create_account()
    idle = not args.no_idle
    result = latency.measure_latency(
        account, work / "latency", count=sizes.latency_count, interval=sizes.latency_interval,
        idle=idle, poll_interval=60 if idle else 5,
    )
    p50, p95 = result.percentile(0.50), result.percentile(0.95)
    worst = max(result.seconds, default=float("nan"))
    report.values.update({"latency_seconds": result.seconds, "latency_missing": result.missing})
    mode = "IMAP IDLE" if idle else "polling every 5 s"
    report.table(
        f"Latency: new mail APPENDed to auto-reply accepted by SMTP ({mode})",
        ["mails", "interval", "p50", "p95", "max", "no reply"],
        [[str(result.sent), f"{sizes.latency_interval:g} s", f"{p50:.2f} s", f"{p95:.2f} s",
          f"{worst:.2f} s", str(result.missing)]],
    )
    complete = result.missing == 0
    report.target(f"p50 < {P50_TARGET:g} s", f"{p50:.2f} s", complete and p50 < P50_TARGET)
    report.target(f"p95 < {P95_TARGET:g} s", f"{p95:.2f} s", complete and p95 < P95_TARGET)
    account.close()


def bench_big(
    server: DovecotServer, work: Path, args: argparse.Namespace, sizes: Sizes, report: Report
) -> None:
    """Peak RSS and rate of ``maildesk sync --once`` and of ``maildesk run`` on the big mailbox."""
    spec = CorpusSpec(messages=sizes.big_messages, seed=args.seed + 300, id_prefix="b")
    box = fill_account(server, spec)
    count = sizes.big_messages
    state = work / "big"
    result = desk.run_sync_cli(desk.write_config(state, box.account, batch_size=args.batch_size))
    threads = desk.threading_result(state, box.stats.threads, spec.id_prefix)
    shutil.rmtree(state, ignore_errors=True)

    # The same mailbox again, into a new state folder: sync --once read it
    # read-only and changed nothing that a first import reads.
    state = work / "big-daemon"
    with SmtpSink() as sink:
        config = desk.write_config(state, box.account, batch_size=args.batch_size, smtp=sink)
        run = daemon.run_daemon_until_stored(
            config, state, _last_uid(box.account), settle_seconds=args.big_settle
        )
    daemon_threads = desk.threading_result(state, box.stats.threads, spec.id_prefix)
    shutil.rmtree(state, ignore_errors=True)

    # Once more with the parsing in the daemon's own process: the whole service in one process.
    state = work / "big-single"
    with SmtpSink() as sink:
        config = desk.write_config(
            state, box.account, batch_size=args.batch_size, smtp=sink, parse_processes=0
        )
        single = daemon.run_daemon_until_stored(
            config, state, _last_uid(box.account), settle_seconds=args.big_settle
        )
    shutil.rmtree(state, ignore_errors=True)

    report.values.update({
        "big_rss_kib": result.max_rss_kib, "big_rate": count / result.seconds,
        "big_daemon_rss_kib": run.max_rss_kib, "big_daemon_import_rss_kib": run.hwm_at_stored_kib,
        "big_daemon_tree_kib": run.tree_peak_kib, "big_daemon_rate": count / run.seconds,
        "big_daemon_tickets": daemon_threads.tickets, "big_threads": box.stats.threads,
        "big_single_rss_kib": single.max_rss_kib, "big_single_rate": count / single.seconds,
    })
    report.table(
        f"Big mailbox: {count:,} messages ({box.stats.bytes / 1e6:,.0f} MB), first start, existing = \"all\"",
        ["command", "messages/s", "peak RSS", "peak RSS, parse workers included (sampled)",
         "tickets", "true threads"],
        [
            ["maildesk sync --once", rate(count / result.seconds), mib(result.max_rss_kib), "",
             f"{threads.tickets:,}", f"{threads.threads:,}"],
            ["maildesk run, until every message is stored", rate(count / run.seconds),
             mib(run.hwm_at_stored_kib), "", f"{daemon_threads.tickets:,}", f"{daemon_threads.threads:,}"],
            [f"maildesk run, the same and {args.big_settle:g} s more, then SIGTERM", "",
             mib(run.max_rss_kib), mib(run.tree_peak_kib), "", ""],
            [f"maildesk run with parse_processes = 0, until stored and {args.big_settle:g} s more",
             rate(count / single.seconds), mib(single.max_rss_kib), mib(single.tree_peak_kib), "", ""],
        ],
    )
    daemon_mib = run.max_rss_kib / 1024
    tree_mib = run.tree_peak_kib / 1024
    single_mib = single.max_rss_kib / 1024
    # The target is the daemon process's peak. Its parse worker is a second process,
    # shown beside it, and parse_processes = 0 runs the whole service in one.
    report.target(
        f"peak RSS < {RSS_TARGET_MIB} MiB, {count:,}-message mailbox (maildesk run)",
        f"{daemon_mib:.0f} MiB; {tree_mib:.0f} MiB summed with its parse worker; "
        f"{single_mib:.0f} MiB with parse_processes = 0",
        daemon_mib < RSS_TARGET_MIB and single_mib < RSS_TARGET_MIB,
    )
    box.account.close()
    _remove_maildir(box.account)


def _last_uid(account: ImapAccount) -> int:
    """Return the highest UID in the account's INBOX."""
    client = floor.connect(account.host, account.port, account.username, account.password)
    try:
        return int(client.folder_status("INBOX", [b"UIDNEXT"])[b"UIDNEXT"]) - 1
    finally:
        client.logout()


def _share(value: float, whole: float) -> str:
    return f"{value / whole:.0%}" if whole else ""


def _remove_maildir(account: object) -> None:
    """Free the disk space of a finished mailbox; Dovecot no longer has it open."""
    maildir = getattr(account, "maildir", None)
    if isinstance(maildir, Path):
        shutil.rmtree(maildir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
