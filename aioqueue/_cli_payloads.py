"""Large payloads in the ``aioqueue`` command: ``aioqueue payloads sweep QUEUE --container C``,
``--container`` on ``send`` (content over 64 KiB through a blob), ``--resolve`` on ``peek`` and
``receive`` (a large message's payload instead of its reference), and ``send QUEUE @FILE``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ._errors import ConfigurationError
from ._messages import peeked_messages
from ._models import PeekedMessage, SendReceipt
from ._payloads import BlobPayloads, Reference
from ._queue_client import QueueClient

__all__ = ["add_command", "add_container", "add_resolve", "argument_text", "option", "peek", "send", "sweep"]


class Cli(Protocol):
    """What these commands use of ``cli.Cli``."""

    args: argparse.Namespace

    def queue(self, name: str, container: str | None = None) -> QueueClient: ...

    def emit(self, data: Any, rows: Any = None, columns: Sequence[str] = (), text: str | None = None) -> None: ...


CONTAINER_HELP = "the large payloads' blob container (BlobPayloads(container=...))"


def add_container(parser: argparse.ArgumentParser, help: str = CONTAINER_HELP, required: bool = False) -> None:
    parser.add_argument("--container", required=required, help=help)


def add_resolve(parser: argparse.ArgumentParser, *, receive: bool) -> None:
    """``--resolve`` (and ``--container``) for ``peek`` and ``receive``."""
    parser.add_argument(
        "--resolve",
        action="store_true",
        help="show a large message's payload, fetched from its blob (default: its reference's JSON text)",
    )
    where = "needed with --resolve" if receive else "default: the one the reference names"
    add_container(parser, f"{CONTAINER_HELP}; {where}")


def add_command(command: Callable[..., argparse.ArgumentParser], queue_help: str) -> None:
    """``aioqueue payloads sweep QUEUE --container C [--dry-run]``."""
    s = command("payloads", "large payloads: 'payloads sweep' deletes orphaned payload blobs whose expiry passed")
    s.add_argument("action", choices=["sweep"], help="sweep: delete the queue's payload blobs whose expiry passed")
    s.add_argument("queue", help=queue_help)
    add_container(s, required=True)
    s.add_argument("--dry-run", action="store_true", help="only count the blobs a sweep would delete")


def option(args: argparse.Namespace, container: str | None = None) -> BlobPayloads | None:
    """The ``large_payloads`` option the command line asks for (checked before any request)."""
    container = container or getattr(args, "container", None)
    resolve = getattr(args, "resolve", None)  # None: a command without --resolve
    if resolve is False and container is not None:
        raise ConfigurationError(f"--container goes with --resolve in '{args.command}'")
    if resolve and container is None and args.command == "receive":
        raise ConfigurationError(
            "receive --resolve needs --container C (the payloads' container, where a deleted message's blob goes too)"
        )
    return None if container is None else BlobPayloads(container=container)


def argument_text(text: str) -> str:
    """``send``'s argument: ``@FILE`` is that file's content (UTF-8, verbatim, as ``--file``), ``@@...``
    a text starting with one ``@``; anything else is the text itself."""
    if not text.startswith("@") or text.startswith("@@"):
        return text[1:] if text.startswith("@@") else text
    if text == "@":
        raise ConfigurationError("'@' needs a file name: @FILE reads the message from FILE (@@ for a literal @)")
    with open(text[1:], encoding="utf-8", newline="") as f:
        return f.read()


async def send(
    queue: QueueClient, contents: Sequence[Any], visibility: float | None, ttl: float | None
) -> list[SendReceipt]:
    """Send ``contents``: concurrently, or one at a time through the large payloads when on."""
    if queue._pool.payloads is None:
        return await queue.send_messages(contents, visibility_timeout=visibility, time_to_live=ttl)
    return [await queue.send_message(c, visibility_timeout=visibility, time_to_live=ttl) for c in contents]


async def peek(cli: Cli) -> list[PeekedMessage]:
    """``peek``: a large message shows its reference's text, or with ``--resolve`` its payload, from
    ``--container`` or else from the container its reference names (one per call)."""
    a = cli.args
    async with cli.queue(a.queue) as queue:
        if a.resolve and a.container:
            return await queue.peek_messages(max_messages=a.count)
        raws = await queue._ops.peek_messages(a.count, None, False)
        if not a.resolve:
            return peeked_messages(raws, queue._ops.undecoded)
        refs = [ref for raw in raws if (ref := Reference.parse(raw.text or "")) is not None]
        if not refs:
            return peeked_messages(raws, queue._ops.decode)
    containers = sorted({ref.container for ref in refs})
    if len(containers) > 1:
        names = ", ".join(containers)
        raise ConfigurationError(f"the payloads are in several containers ({names}): name one with --container")
    async with cli.queue(a.queue, containers[0]) as queue:
        return peeked_messages(await queue._ops.resolve_peeked(raws), queue._ops.decode)


async def sweep(cli: Cli) -> None:
    """``payloads sweep``: how many payload blobs it deleted (or would, with ``--dry-run``)."""
    a = cli.args
    async with cli.queue(a.queue, a.container) as queue:
        removed = await queue.sweep_payloads(dry_run=a.dry_run)
    blobs = f"{removed} payload blob{'s' if removed != 1 else ''}"
    cli.emit(
        {"queue": a.queue, "container": a.container, "removed": removed, "dry_run": a.dry_run},
        text=f"{'would remove' if a.dry_run else 'removed'} {blobs} of {a.queue} (container {a.container})",
    )
