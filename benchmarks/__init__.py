"""Benchmarks of maildesk: mailbox import rate, growth, memory and reply latency.

Run with ``make bench`` or ``python -m benchmarks.run --help``; results and
the commands behind them are recorded in ``docs/benchmarks.md``.
"""
