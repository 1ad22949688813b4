"""``aioqueue stats QUEUE``: how far behind a queue's consumers are, from :meth:`QueueClient.lag`: the
approximate length and how long the next message has waited for a handler, by the service's clock."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from ._queue_client import QueueClient

__all__ = ["add_command", "span", "stats"]


class Cli(Protocol):
    """What this command uses of ``cli.Cli``."""

    args: argparse.Namespace

    def queue(self, name: str, container: str | None = None) -> QueueClient: ...

    def emit(self, data: Any, rows: Any = None, columns: Sequence[str] = (), text: str | None = None) -> None: ...


def add_command(command: Callable[..., argparse.ArgumentParser], queue_help: str) -> None:
    s = command("stats", "approximate length and how long the next message has waited (one peek)")
    s.add_argument("queue", help=queue_help)


def span(age: timedelta | None) -> str:
    """``-`` (no visible message), ``42s``, ``5m 3s``, ``2h 0m``, ``3d 4h``: two units at most."""
    if age is None:
        return "-"
    seconds = int(age.total_seconds())
    for unit, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            return f"{seconds // size}{unit} {seconds % size // small_size}{smaller}"
    return f"{seconds}s"


async def stats(cli: Cli) -> None:
    """``stats``: one row (or with ``--json`` one object) of the queue's lag."""
    name = cli.args.queue
    async with cli.queue(name) as queue:
        lag = await queue.lag()
    age = lag.oldest_message_age
    measured = lag.measured_on.isoformat()
    data = {
        "queue": name,
        "approximate_message_count": lag.approximate_message_count,
        "oldest_message_age_seconds": None if age is None else age.total_seconds(),
        "measured_on": measured,
    }
    row = {"name": name, "messages": lag.approximate_message_count, "oldest_age": span(age), "measured": measured}
    cli.emit(data, [row], ["name", "messages", "oldest_age", "measured"])
