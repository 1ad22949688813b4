"""``aioqueue redrive POISON``: a poison queue's messages back to their queues, each re-sent before it is
deleted (:meth:`QueueClient.redrive`), with a progress line on a terminal and a summary at the end."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ._errors import ConfigurationError
from ._poison import PoisonRecord
from ._queue_client import QueueClient
from ._redrive import RedriveResult

__all__ = ["add_command", "redrive"]


class Cli(Protocol):
    """What this command uses of ``cli.Cli``."""

    args: argparse.Namespace

    def queue(self, name: str, container: str | None = None) -> QueueClient: ...

    def emit(self, data: Any, rows: Any = None, columns: Sequence[str] = (), text: str | None = None) -> None: ...


class Progress(Protocol):
    """``cli.Progress``: a counter on stderr when it is a terminal."""

    done: int

    def add(self, n: int) -> None: ...

    def finish(self) -> None: ...


def add_command(
    command: Callable[..., argparse.ArgumentParser],
    duration: Callable[[str], float],
    count: Callable[[int, int | None], Callable[[str], int]],
) -> None:
    """``aioqueue redrive POISON [--to QUEUE] [--dry-run] [--limit N] [--rate R] [--error TEXT]
    [--older-than DUR] [--newer-than DUR] [--id ID ...]``."""
    s = command("redrive", "move a poison queue's messages back to their queues (each re-sent, then deleted)")
    s.add_argument("queue", metavar="POISON", help="the poison queue")
    s.add_argument("--to", help="send them to this queue (default: each record's source queue; bare bodies need it)")
    s.add_argument("--dry-run", action="store_true", help="list what would move, and move nothing")
    s.add_argument("--limit", type=count(1, None), help="move at most this many")
    s.add_argument("--rate", type=float, help="move at most this many a second")
    s.add_argument("--error", help="only messages whose failure is of this exception type or holds this text")
    s.add_argument("--older-than", type=duration, help="only messages poisoned at least this long ago (15m, 2h, 7d)")
    s.add_argument("--newer-than", type=duration, help="only messages poisoned at most this long ago")
    s.add_argument(
        "--id", dest="ids", action="extend", nargs="+", metavar="ID", help="only these ids (original or poison message)"
    )


def _row(record: PoisonRecord, to: str | None) -> dict[str, Any]:
    last = record.failures[-1] if record.failures else None
    return {
        "id": record.poison_id,
        "message_id": record.message_id or "",
        "to": to or record.source_queue,
        "dequeue_count": "" if record.dequeue_count is None else record.dequeue_count,
        "reason": (record.reason or "")[:60],
        "error": f"{last.type}: {last.message}"[:60] if last else "",
    }


def _terminal() -> bool:
    """Whether progress is drawn (on a terminal): only then is the poison queue's length asked for."""
    return sys.stderr.isatty()


def _summary(queue: str, result: RedriveResult) -> str:
    moved = len(result.would_move) if result.dry_run else result.moved
    text = f"{'would move' if result.dry_run else 'moved'} {moved} message{'s' if moved != 1 else ''} from {queue}"
    text += f" ({result.skipped} skipped by the filters"
    if result.no_target:
        text += f", {result.no_target} left without a target queue"
    if result.duplicates:
        text += f", {result.duplicates} possible duplicates"
    return text + ")"


async def redrive(cli: Cli, progress: Callable[[str, int | None], Progress]) -> None:
    """``redrive``: what moved (or, with ``--dry-run``, would), then the summary; exit 2 when messages
    were left for want of a target (bare bodies without ``--to``, records of a missing source queue),
    after everything else moved."""
    a = cli.args

    async with cli.queue(a.queue) as queue:
        total = a.limit
        if _terminal():  # the bar's length: the poison queue's approximate count (one request)
            count = (await queue.get_queue_properties()).approximate_message_count
            total = count if total is None else min(total, count)
        shown = progress("would move" if a.dry_run else "moved", total)

        def on_progress(result: RedriveResult) -> None:
            moved = len(result.would_move) if result.dry_run else result.moved
            if moved > shown.done:
                shown.add(moved - shown.done)

        try:
            result = await queue.redrive(
                a.to,
                dry_run=a.dry_run,
                limit=a.limit,
                rate=a.rate,
                error=a.error,
                older_than=a.older_than,
                newer_than=a.newer_than,
                ids=a.ids,
                on_progress=on_progress,
            )
        finally:
            shown.finish()
    if a.dry_run and not a.json:
        columns = ["id", "message_id", "to", "dequeue_count", "reason", "error"]
        cli.emit(None, [_row(r, a.to) for r in result.would_move], columns)
    cli.emit({"poison_queue": a.queue, "to": a.to, **result.__dict__}, text=_summary(a.queue, result))
    if result.no_target:
        raise ConfigurationError(
            f"{result.no_target} messages of {a.queue} were left without a target queue: bare bodies (no poison "
            "record: poison_format='body' or an Azure Functions poison queue) and records whose source queue "
            "does not exist (named above); pass --to QUEUE to move them there, or create the missing queue"
        )
