"""The ``aioqueue`` command: everyday queue operations from a shell.

The connection comes from ``--connection-string``, else ``$AZURE_STORAGE_CONNECTION_STRING``, else the
local emulator (``UseDevelopmentStorage=true``; start one with ``aioqueue emulator``). Output is a
readable table, or JSON with ``--json``. Errors are one line on stderr (a traceback with ``--debug``).
Exit codes: 0 success, 1 service or connection error, 2 bad usage or configuration, 3 not found,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from . import _runner
from ._auth import SharedKeyCredential
from ._client import QueueClient, QueueServiceClient
from ._endpoint import parse_connection_string
from ._errors import (
    AioQueueError,
    ConfigurationError,
    MessageEncodingError,
    MessageNotFound,
    QueueNotFound,
    TransportError,
)
from ._models import QueueMessage
from ._sas import generate_account_sas, generate_queue_sas

ENV = "AZURE_STORAGE_CONNECTION_STRING"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)")


def duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h`` or ``7d`` as seconds (``-1`` passes through, for never)."""
    if text == "-1":
        return -1
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use 30, 30s, 15m, 2h or 7d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def when(text: str) -> datetime | timedelta:
    """A duration from now, or an ISO 8601 date-time (UTC when it names no zone)."""
    try:
        return timedelta(seconds=duration(text))
    except argparse.ArgumentTypeError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration or ISO date-time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def metadata_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"metadata must be name=value, not {text!r}")
    return name, value


class Progress:
    """A one-line progress counter on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None, stream: TextIO = sys.stderr) -> None:
        self.label, self.total, self.done, self.stream = label, total, 0, stream
        self.enabled = stream.isatty() and (total is None or total > 32)

    def add(self, n: int) -> None:
        self.done += n
        if self.enabled:
            of = f"/{self.total}" if self.total else ""
            self.stream.write(f"\r{self.label} {self.done}{of}")
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _message_dict(m: Any) -> dict[str, Any]:
    fields = ("id", "content", "pop_receipt", "dequeue_count", "inserted_on", "expires_on", "next_visible_on")
    return {f: _jsonable(getattr(m, f)) for f in fields if hasattr(m, f)}


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    if not rows:
        out.write("(none)\n")
        return
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    out.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def connection_string(args: argparse.Namespace) -> str:
    """``--connection-string``, else ``$AZURE_STORAGE_CONNECTION_STRING``, else the local emulator."""
    return str(args.connection_string or os.environ.get(ENV) or "UseDevelopmentStorage=true")


class Cli:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.conn_str = connection_string(args)

    def emit(
        self,
        data: Any,
        rows: Sequence[dict[str, Any]] | None = None,
        columns: Sequence[str] = (),
        text: str | None = None,
    ) -> None:
        if self.args.json:
            self.out.write(json.dumps(_jsonable(data), ensure_ascii=False) + "\n")
        elif rows is not None:
            _table(rows, columns, self.out)
        elif text is not None:
            self.out.write(text + "\n")

    def service(self) -> QueueServiceClient:
        return QueueServiceClient.from_connection_string(
            self.conn_str, allow_insecure_http=self.args.allow_insecure_http
        )

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(
            self.conn_str, name, allow_insecure_http=self.args.allow_insecure_http
        )

    async def run(self) -> None:
        handler = getattr(self, "cmd_" + self.args.command)
        await handler()

    async def cmd_queues(self) -> None:
        async with self.service() as service:
            items = [q async for q in service.list_queues(prefix=self.args.prefix, include_metadata=self.args.metadata)]
        rows = [{"name": q.name, "metadata": ",".join(f"{k}={v}" for k, v in q.metadata.items())} for q in items]
        self.emit(items, rows, ["name", "metadata"] if self.args.metadata else ["name"])

    async def cmd_create(self) -> None:
        async with self.queue(self.args.queue) as q:
            created = await q.create_queue(metadata=dict(self.args.metadata or []), exist_ok=self.args.exist_ok)
        self.emit(
            {"queue": q.queue_name, "created": created}, text=f"{'created' if created else 'exists'}: {q.queue_name}"
        )

    async def cmd_delete(self) -> None:
        async with self.queue(self.args.queue) as q:
            deleted = await q.delete_queue(missing_ok=self.args.missing_ok)
        self.emit(
            {"queue": q.queue_name, "deleted": deleted}, text=f"{'deleted' if deleted else 'not found'}: {q.queue_name}"
        )

    def _contents(self) -> list[str]:
        a = self.args
        if a.text is not None and a.file is not None:
            raise ConfigurationError("give the message as an argument or with --file, not both")
        if a.text is not None:
            text = a.text
        elif a.file is not None:
            with open(a.file, encoding="utf-8") as f:
                text = f.read()
        else:
            text = sys.stdin.read()
        if a.lines:
            return [line for line in text.splitlines() if line]
        return [text]

    async def cmd_send(self) -> None:
        contents = self._contents()
        progress = Progress("sent", len(contents))
        receipts = []
        async with self.queue(self.args.queue) as q:
            for start in range(0, len(contents), 256):
                chunk = contents[start : start + 256]
                receipts += await q.send_messages(
                    chunk, visibility_timeout=self.args.visibility, time_to_live=self.args.ttl
                )
                progress.add(len(chunk))
        progress.finish()
        rows = [{"id": r.id, "pop_receipt": r.pop_receipt, "expires": r.expires_on.isoformat()} for r in receipts]
        self.emit(receipts, rows, ["id", "pop_receipt", "expires"])

    async def cmd_peek(self) -> None:
        async with self.queue(self.args.queue) as q:
            messages = await q.peek_messages(max_messages=self.args.count)
        self.emit(
            [_message_dict(m) for m in messages],
            [_message_dict(m) for m in messages],
            ["id", "dequeue_count", "content"],
        )

    async def cmd_receive(self) -> None:
        a = self.args
        messages: list[QueueMessage] = []
        progress = Progress("received", a.count)
        async with self.queue(a.queue) as q:
            while len(messages) < a.count:
                batch = await q.receive_messages(
                    max_messages=min(32, a.count - len(messages)), visibility_timeout=a.visibility
                )
                if not batch:
                    break
                if a.delete:
                    await asyncio.gather(*(q.delete_message(m) for m in batch))
                messages += batch
                progress.add(len(batch))
        progress.finish()
        columns = ["id", "dequeue_count", "content"] if a.delete else ["id", "pop_receipt", "dequeue_count", "content"]
        self.emit([_message_dict(m) for m in messages], [_message_dict(m) for m in messages], columns)

    async def cmd_update(self) -> None:
        a = self.args
        kwargs: dict[str, Any] = {"visibility_timeout": a.visibility}
        if a.content is not None:
            kwargs["content"] = a.content
        async with self.queue(a.queue) as q:
            receipt = await q.update_message(a.id, a.pop_receipt, **kwargs)
        self.emit(
            receipt,
            [{"pop_receipt": receipt.pop_receipt, "next_visible": receipt.next_visible_on.isoformat()}],
            ["pop_receipt", "next_visible"],
        )

    async def cmd_clear(self) -> None:
        async with self.queue(self.args.queue) as q:
            await q.clear_messages()
        self.emit({"queue": q.queue_name, "cleared": True}, text=f"cleared: {q.queue_name}")

    async def cmd_props(self) -> None:
        async with self.queue(self.args.queue) as q:
            props = await q.get_queue_properties()
        rows = [
            {
                "name": props.name,
                "messages": props.approximate_message_count,
                "metadata": ",".join(f"{k}={v}" for k, v in props.metadata.items()),
            }
        ]
        self.emit(props, rows, ["name", "messages", "metadata"])

    async def cmd_sas(self) -> None:
        a = self.args
        settings = parse_connection_string(self.conn_str)
        cred = settings.credential
        if not isinstance(cred, SharedKeyCredential):
            raise ConfigurationError("generating a SAS needs a connection string with AccountName and AccountKey")
        if a.account:
            token = generate_account_sas(
                cred.account_name,
                cred.account_key,
                resource_types=a.resource_types,
                permission=a.permission,
                expiry=a.expiry,
                start=a.start,
                ip=a.ip,
                protocol=a.protocol,
            )
        else:
            if not a.queue:
                raise ConfigurationError("name the queue, or pass --account for an account SAS")
            token = generate_queue_sas(
                cred.account_name,
                a.queue,
                cred.account_key,
                permission=a.permission,
                expiry=a.expiry,
                start=a.start,
                policy_id=a.policy_id,
                ip=a.ip,
                protocol=a.protocol,
            )
        self.emit({"sas": token}, text=token)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aioqueue", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--connection-string", help=f"default: ${ENV}, else the local emulator")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="let a SAS or token travel over plain http to a host that is not loopback (test setups only)",
    )
    p.add_argument("--debug", action="store_true", help="tracebacks and request logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("queues", help="list queues")
    s.add_argument("--prefix")
    s.add_argument("--metadata", action="store_true", help="include metadata")
    s = sub.add_parser("create", help="create a queue")
    s.add_argument("queue")
    s.add_argument("--metadata", type=metadata_pair, action="append", metavar="NAME=VALUE")
    s.add_argument("--exist-ok", action="store_true")
    s = sub.add_parser("delete", help="delete a queue")
    s.add_argument("queue")
    s.add_argument("--missing-ok", action="store_true")
    s = sub.add_parser("send", help="send a message (argument, --file, or stdin)")
    s.add_argument("queue")
    s.add_argument("text", nargs="?")
    s.add_argument("--file")
    s.add_argument("--lines", action="store_true", help="one message per non-empty line")
    s.add_argument("--ttl", type=duration, help="time to live (30s, 15m, 2h, 7d; -1 never expires)")
    s.add_argument("--visibility", type=duration, help="hidden for this long first")
    s = sub.add_parser("peek", help="look at messages without hiding them")
    s.add_argument("queue")
    s.add_argument("--count", type=int, default=1, help="1..32")
    s = sub.add_parser("receive", help="receive messages (and delete them with --delete)")
    s.add_argument("queue")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--visibility", type=duration, default=30.0)
    s.add_argument("--delete", action="store_true")
    s = sub.add_parser("update", help="change a message's visibility and content")
    s.add_argument("queue")
    s.add_argument("id")
    s.add_argument("pop_receipt")
    s.add_argument("--content")
    s.add_argument("--visibility", type=duration, default=0.0)
    s = sub.add_parser("clear", help="delete every message of a queue")
    s.add_argument("queue")
    s = sub.add_parser("props", help="approximate length and metadata")
    s.add_argument("queue")
    s = sub.add_parser("sas", help="generate a queue SAS (or an account SAS with --account)")
    s.add_argument("queue", nargs="?")
    s.add_argument("--account", action="store_true")
    s.add_argument("--permission", default="r", help="queue: raup; account: rwdlacup")
    s.add_argument("--resource-types", default="sco")
    s.add_argument("--expiry", type=when, default=timedelta(hours=1), help="duration from now or ISO date-time")
    s.add_argument("--start", type=when)
    s.add_argument("--policy-id")
    s.add_argument("--ip")
    s.add_argument("--protocol", choices=["https", "https,http"])
    s = sub.add_parser(
        "worker",
        help="run an async handler over a queue until SIGTERM (module:function)",
        description=_runner.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _runner.add_arguments(s, duration)
    s = sub.add_parser("emulator", help="run the Azurite emulator in the foreground")
    s.add_argument("--port", type=int, default=10001)
    s.add_argument("--host", default="127.0.0.1")
    return p


def run_emulator(args: argparse.Namespace, out: TextIO) -> int:
    from .testing import Azurite

    emulator = Azurite(host=args.host, port=args.port)
    emulator.start()
    out.write(
        f"Azurite queue service on {emulator.url} (in memory). Ctrl-C stops it.\n"
        f"connection string: {emulator.connection_string}\n"
    )
    out.flush()
    try:
        code = emulator.wait()
    finally:
        emulator.stop()
    if code not in _STOPPED_BY_SIGNAL:
        sys.stderr.write(f"aioqueue: the emulator exited with code {code}\n")
        return EXIT_ERROR
    return EXIT_OK


# a clean end, or the emulator stopped with the terminal's Ctrl-C or a SIGTERM (as a signal, or as 128 + N)
_STOPPED_BY_SIGNAL = frozenset({0, -2, -15, 130, 143})


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    error: BaseException
    args = parser.parse_args(argv)
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
    try:
        if args.command == "emulator":
            return run_emulator(args, out)
        if args.command == "worker":
            return _runner.run_worker(args, connection_string(args), list(sys.argv[1:] if argv is None else argv))
        asyncio.run(Cli(args, out).run())
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (QueueNotFound, MessageNotFound) as exc:
        code, error, hint = EXIT_NOT_FOUND, exc, ""
    except (ConfigurationError, MessageEncodingError) as exc:
        code, error, hint = EXIT_USAGE, exc, ""
    except TransportError as exc:
        local = not (args.connection_string or os.environ.get(ENV))
        code, error = EXIT_ERROR, exc
        hint = " (no emulator running? start one with 'aioqueue emulator')" if local else ""
    except AioQueueError as exc:
        code, error, hint = EXIT_ERROR, exc, ""
    except (ValueError, OSError, ImportError, TypeError) as exc:  # e.g. a --file or handler that cannot be read
        code, error, hint = EXIT_USAGE, exc, ""
    if args.debug:
        import traceback

        traceback.print_exception(error)
    sys.stderr.write(f"aioqueue: {error}{hint}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
