"""aioqueue: everyday Azure Queue Storage operations from a shell.

The connection: --connection-string (or $AZURE_STORAGE_CONNECTION_STRING), or --account-url (with
--sas or --account-key, or a SAS in the URL; alone, requests go without a credential), or --emulator
(--port N) for the local Azurite emulator (start one with 'aioqueue emulator'). There is no silent
default: without one of them the command stops and says so. Options go before or after the command.
Output is a table, or JSON with --json. Errors are one line on stderr, or with --json one JSON object
{"error", "exit", "type"} (plus "status", "code", "request_id" when the service answered); a traceback
with --debug.

exit codes:
  0    success
  1    service or connection error
  2    bad usage or configuration (nothing was sent)
  3    not found: the queue, or the message (gone, or its pop receipt is stale)
  4    the queue already exists
  130  interrupted
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn, TextIO

from . import _cli_emulator, _cli_payloads, _cli_redrive, _cli_stats, _runner
from ._auth import SharedKeyCredential
from ._cli_errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    REPORTED,
    AlreadyExists,
    Failure,
    failure,
    in_flags,
)
from ._endpoint import parse_account_url, parse_connection_string
from ._errors import AuthenticationFailed, ConfigurationError, QueueAlreadyExists, TransportError
from ._models import QueueMessage
from ._queue_client import QueueClient
from ._sas import DEFAULT_SERVICES, generate_account_sas, generate_queue_sas
from ._service_client import QueueServiceClient
from ._validation import message_id as check_message_id
from ._validation import pop_receipt as check_pop_receipt
from ._validation import seconds
from ._version import __version__

ENV = "AZURE_STORAGE_CONNECTION_STRING"
DISTRIBUTION = "aioqueue-azure"  # what pip installs; `pip install aioqueue` is an unrelated package
ENCODINGS = ["text", "base64", "binary", "json", "base64-json"]
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


_BAR = 20  # characters of the progress bar


class Progress:
    """A one-line progress bar on stderr (a counter when the total is not known), only on a terminal."""

    def __init__(self, label: str, total: int | None, stream: TextIO = sys.stderr) -> None:
        self.label, self.total, self.done, self.stream = label, total, 0, stream
        self.enabled = stream.isatty() and (total is None or total > 32)

    def add(self, n: int) -> None:
        self.done += n
        if self.enabled:
            bar = ""
            if self.total:
                filled = min(_BAR, _BAR * self.done // self.total)
                bar = f" [{'#' * filled}{'-' * (_BAR - filled)}] {self.done}/{self.total}"
            self.stream.write(f"\r{self.label}{bar or f' {self.done}'}")
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


NO_CONNECTION = (
    "no connection given: pass --connection-string (or set $AZURE_STORAGE_CONNECTION_STRING), "
    "--account-url (with --sas or --account-key, or a SAS in the URL), or --emulator for the local "
    "Azurite emulator"
)


def connection_string(args: argparse.Namespace) -> str:
    """The connection the options name, as a connection string; never a silent default."""
    given = [
        flag
        for flag, value in (
            ("--connection-string", args.connection_string),
            ("--account-url", args.account_url),
            ("--emulator", args.emulator),
        )
        if value
    ]
    if len(given) > 1:
        raise ConfigurationError(f"give one connection, not {' and '.join(given)}")
    if (args.sas or args.account_key) and not args.account_url:
        raise ConfigurationError("--sas and --account-key go with --account-url")
    if args.port is not None and not args.emulator:
        raise ConfigurationError("--port goes with --emulator (the local emulator's port)")
    if args.emulator:
        return _cli_emulator.connection_string(args.port)
    if args.account_url:
        return _account_url_connection(args.account_url, args.sas, args.account_key)
    conn_str = args.connection_string or os.environ.get(ENV)
    if not conn_str:
        raise ConfigurationError(NO_CONNECTION)
    return str(conn_str)


def _account_url_connection(url: str, sas: str | None, account_key: str | None) -> str:
    """--account-url's connection: with --sas, --account-key, the SAS in the URL's query, or (none of
    them) no credential at all, as the clients take ``credential=None``."""
    endpoint = parse_account_url(url, "--account-url")
    if endpoint.sas is not None and (sas or account_key):
        raise ConfigurationError(
            f"the --account-url carries a SAS already: drop {'--sas' if sas else '--account-key'} "
            "(or the SAS from the URL)"
        )
    if sas and account_key:
        raise ConfigurationError("give --sas or --account-key, not both")
    conn = f"QueueEndpoint={endpoint.url}"
    sas = sas or endpoint.sas
    if sas:
        conn += f";SharedAccessSignature={sas.lstrip('?')}"
    elif account_key:
        if not endpoint.account_name:
            raise ConfigurationError("--account-key needs an --account-url that names the account")
        conn += f";AccountName={endpoint.account_name};AccountKey={account_key}"
    return conn


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

    def queue(self, name: str, container: str | None = None) -> QueueClient:
        return QueueClient.from_connection_string(
            self.conn_str,
            name,
            allow_insecure_http=self.args.allow_insecure_http,
            message_encoding=getattr(self.args, "encoding", "text"),
            large_payloads=_cli_payloads.option(self.args, container),
        )

    async def run(self) -> None:
        handler = getattr(self, "cmd_" + self.args.command.replace("-", "_"))
        await handler()

    async def cmd_queues(self) -> None:
        async with self.service() as service:
            items = [q async for q in service.list_queues(prefix=self.args.prefix, include_metadata=self.args.metadata)]
        rows = [{"name": q.name, "metadata": ",".join(f"{k}={v}" for k, v in q.metadata.items())} for q in items]
        self.emit(items, rows, ["name", "metadata"] if self.args.metadata else ["name"])

    async def cmd_create(self) -> None:
        async with self.queue(self.args.queue) as q:
            try:
                created = await q.create_queue(metadata=dict(self.args.metadata or []), exist_ok=self.args.exist_ok)
            except QueueAlreadyExists as exc:
                # the service answers 204 (identical metadata) or 409 (other metadata): the same to a user
                same = " with the same metadata" if exc.status == 204 else " with other metadata"
                raise AlreadyExists(f"queue already exists{same}: {q.queue_name} (--exist-ok accepts that)") from None
        self.emit(
            {"queue": q.queue_name, "created": created}, text=f"{'created' if created else 'exists'}: {q.queue_name}"
        )

    async def cmd_delete(self) -> None:
        async with self.queue(self.args.queue) as q:
            deleted = await q.delete_queue(missing_ok=self.args.missing_ok)
        self.emit(
            {"queue": q.queue_name, "deleted": deleted}, text=f"{'deleted' if deleted else 'not found'}: {q.queue_name}"
        )

    def _contents(self) -> list[Any]:
        a = self.args
        if a.text is not None and a.file is not None:
            raise ConfigurationError("give the message as an argument or with --file, not both")
        if a.text is not None:
            text = _cli_payloads.argument_text(a.text)
        elif a.file is not None:
            with open(a.file, encoding="utf-8", newline="") as f:
                text = f.read()
        else:
            text = sys.stdin.read()
            if not a.raw:  # what echo (or a here-string) adds, once: the message is the line
                text = text.removesuffix("\n")
        texts = [line for line in text.splitlines() if line] if a.lines else [text]
        if a.encoding in ("json", "base64-json"):  # the text is JSON: send the value it stands for
            try:
                return [json.loads(t) for t in texts]
            except ValueError as exc:
                raise ConfigurationError(f"--encoding {a.encoding} needs JSON text: {exc}") from None
        return texts

    async def cmd_send(self) -> None:
        contents = self._contents()
        progress = Progress("sent", len(contents))
        receipts = []
        async with self.queue(self.args.queue) as q:
            for start in range(0, len(contents), 256):
                chunk = contents[start : start + 256]
                receipts += await _cli_payloads.send(q, chunk, self.args.visibility, self.args.ttl)
                progress.add(len(chunk))
        progress.finish()
        rows = [{"id": r.id, "pop_receipt": r.pop_receipt, "expires": r.expires_on.isoformat()} for r in receipts]
        self.emit(receipts, rows, ["id", "pop_receipt", "expires"])

    async def cmd_peek(self) -> None:
        messages = await _cli_payloads.peek(self)
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

    async def cmd_delete_message(self) -> None:
        a = self.args
        async with self.queue(a.queue) as q:
            await q.delete_message(a.id, a.pop_receipt)
        self.emit({"queue": q.queue_name, "id": a.id, "deleted": True}, text=f"deleted: {a.id}")

    async def cmd_move(self) -> None:
        """Each message: stored in the destination as it is (its text, not decoded), then deleted from
        the source; one that cannot be stored stays in the source (visible again after --visibility)."""
        a = self.args
        wanted = a.count if a.count is not None else None
        moved = 0
        progress = Progress("moved", wanted)
        async with self.service() as service:
            # the operations layer: texts moved as stored, never decoded and encoded again
            source, destination = service.get_queue_client(a.source)._ops, service.get_queue_client(a.destination)._ops
            if source.queue_name == destination.queue_name:
                raise ConfigurationError("the source and destination are the same queue")
            ttl = {"messagettl": str(seconds(a.ttl, "--ttl", low=1, high=None, allow_never=True))}
            visibility = seconds(a.visibility, "--visibility", low=1)
            await destination.create_queue(metadata=None, exist_ok=True, extra=None)
            while wanted is None or moved < wanted:
                n = 32 if wanted is None else min(32, wanted - moved)
                batch, _ = await source.get_messages(n, visibility)
                if not batch:
                    break
                for raw in batch:
                    await destination.put_message(raw.text or "", ttl)
                    await source.delete_message(check_message_id(raw.id), check_pop_receipt(raw.pop_receipt or ""))
                    moved += 1
                progress.add(len(batch))
        progress.finish()
        self.emit(
            {"source": a.source, "destination": a.destination, "moved": moved},
            text=f"moved {moved} message{'s' if moved != 1 else ''}: {a.source} -> {a.destination}",
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

    async def cmd_payloads(self) -> None:
        await _cli_payloads.sweep(self)

    async def cmd_redrive(self) -> None:
        await _cli_redrive.redrive(self, Progress)

    async def cmd_stats(self) -> None:
        await _cli_stats.stats(self)

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
                services=a.services,
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


def count(low: int, high: int | None) -> Callable[[str], int]:
    """An argparse type for a whole number in [low, high], named by its flag in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {low}..{high}" if high is not None else f"must be >= {low}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors (exit 2) are one JSON object on stderr when the command line
    asks for --json."""

    def __init__(self, *args: Any, json_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            Failure(EXIT_USAGE, f"{self.prog}: {message}", "UsageError").write(sys.stderr, as_json=True)
            sys.exit(EXIT_USAGE)
        super().error(message)


def _common() -> _Parser:
    """The options that may stand before or after the command (defaults are filled in by main)."""
    c = _Parser(add_help=False)
    g = c.add_argument_group("connection (one of them) and output")
    S = argparse.SUPPRESS
    g.add_argument("--connection-string", default=S, help=f"a storage connection string (default: ${ENV})")
    g.add_argument(
        "--account-url",
        default=S,
        help="the queue service URL, https://<account>.queue.core.windows.net (may carry a SAS: ...?sv=...&sig=...)",
    )
    g.add_argument("--sas", default=S, help="a SAS token for --account-url")
    g.add_argument("--account-key", default=S, help="the account key for --account-url")
    g.add_argument("--emulator", action="store_true", default=S, help="use the local Azurite emulator")
    g.add_argument(
        "--port",
        type=count(0, 65535),
        default=S,
        help="the emulator's port, with --emulator or for 'aioqueue emulator' (default 10001; 0 with "
        "'aioqueue emulator': any free port)",
    )
    g.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=S,
        help="let a SAS or token travel over plain http to a host that is not loopback (test setups only)",
    )
    g.add_argument("--json", action="store_true", default=S, help="machine-readable output")
    g.add_argument("--debug", action="store_true", default=S, help="tracebacks and request logging")
    return c


_COMMON_DEFAULTS = {
    "connection_string": None,
    "account_url": None,
    "sas": None,
    "account_key": None,
    "emulator": False,
    "port": None,
    "allow_insecure_http": False,
    "json": False,
    "debug": False,
}


def _encoding_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--encoding",
        default="text",
        choices=ENCODINGS,
        help="how message text is encoded (default text; base64-json: Azure Functions' JSON messages)",
    )


def build_parser(json_errors: bool = False) -> argparse.ArgumentParser:
    """The command line's parser (with ``json_errors``, its errors are JSON on stderr)."""
    common = _common()
    p = _Parser(
        prog="aioqueue",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
        allow_abbrev=False,  # --account (sas) must not be read as a prefix of --account-url
        json_errors=json_errors,
    )
    p.add_argument(
        "--version",
        action="version",
        version=f"{DISTRIBUTION} {__version__} (import aioqueue)",
        help=f"the version (the package is {DISTRIBUTION} on PyPI, imported as aioqueue)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            parents=[common],
            allow_abbrev=False,
            json_errors=json_errors,
            **kwargs,
        )

    queue_help = "the queue's name"
    s = command("queues", "list queues")
    s.add_argument("--prefix", help="only queues whose names start with this")
    s.add_argument("--metadata", action="store_true", help="show each queue's metadata")
    s = command("create", "create a queue")
    s.add_argument("queue", help=queue_help)
    s.add_argument("--metadata", type=metadata_pair, action="append", metavar="NAME=VALUE", help="metadata (repeat)")
    s.add_argument("--exist-ok", action="store_true", help="succeed if the queue already exists")
    s = command("delete", "delete a queue and its messages")
    s.add_argument("queue", help=queue_help)
    s.add_argument("--missing-ok", action="store_true", help="succeed if the queue does not exist")
    s = command("send", "send a message (argument, @FILE, --file, or stdin)")
    s.add_argument("queue", help=queue_help)
    s.add_argument("text", nargs="?", help="the message, or @FILE: FILE's content (@@: a leading @; default: stdin)")
    s.add_argument("--file", help="read the message from this file")
    s.add_argument("--lines", action="store_true", help="one message per non-empty line")
    s.add_argument(
        "--raw",
        action="store_true",
        help="keep the input verbatim (default: drop one trailing newline, as echo adds)",
    )
    s.add_argument("--ttl", type=duration, help="time to live (30s, 15m, 2h, 7d; -1 never expires)")
    s.add_argument("--visibility", type=duration, help="hidden for this long first")
    _cli_payloads.add_container(s, _cli_payloads.CONTAINER_HELP + ": content over 64 KiB goes there")
    _encoding_option(s)
    s = command("peek", "look at messages without hiding them")
    s.add_argument("queue", help=queue_help)
    s.add_argument("--count", type=count(1, 32), default=1, help="how many, 1..32 (default 1)")
    _cli_payloads.add_resolve(s, receive=False)
    _encoding_option(s)
    s = command("receive", "receive messages (and delete them with --delete)")
    s.add_argument("queue", help=queue_help)
    s.add_argument("--count", type=count(1, None), default=1, help="how many (default 1; fetched 32 at a time)")
    s.add_argument("--visibility", type=duration, default=30.0, help="hidden for this long (default 30s)")
    s.add_argument("--delete", action="store_true", help="delete each message once received")
    _cli_payloads.add_resolve(s, receive=True)
    _encoding_option(s)
    s = command("update", "change a message's visibility and content")
    s.add_argument("queue", help=queue_help)
    s.add_argument("id", help="the message id")
    s.add_argument("pop_receipt", help="the pop receipt from receiving it")
    s.add_argument("--content", help="new content (default: keep it)")
    s.add_argument("--visibility", type=duration, default=0.0, help="hidden for this long from now (default 0)")
    _encoding_option(s)
    s = command("delete-message", "delete one received message")
    s.add_argument("queue", help=queue_help)
    s.add_argument("id", help="the message id")
    s.add_argument("pop_receipt", help="the pop receipt from receiving it")
    s = command("move", "move messages to another queue (e.g. a poison queue back into its queue)")
    s.add_argument("source", help="the queue to take messages from")
    s.add_argument("destination", help="the queue to put them in (created if missing)")
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--count", type=count(1, None), help="move this many")
    group.add_argument("--all", action="store_true", help="move until the source is empty")
    s.add_argument("--ttl", type=duration, default=7 * 86400.0, help="time to live in the destination (default 7d)")
    s.add_argument("--visibility", type=duration, default=60.0, help="how long a message being moved is held")
    s = command("clear", "delete every message of a queue")
    s.add_argument("queue", help=queue_help)
    s = command("props", "approximate length and metadata")
    s.add_argument("queue", help=queue_help)
    _cli_stats.add_command(command, queue_help)
    s = command("sas", "generate a queue SAS (or an account SAS with --account)")
    s.add_argument("queue", nargs="?", help="the queue (not with --account)")
    s.add_argument("--account", action="store_true", help="an account SAS instead of a queue SAS")
    s.add_argument("--permission", default="r", help="queue: letters from raup; account: rwdlacup (default r)")
    s.add_argument("--resource-types", default="sco", help="account SAS: letters from sco (default sco)")
    s.add_argument(
        "--services",
        default=DEFAULT_SERVICES,
        help=f"account SAS: letters from bqtf (default {DEFAULT_SERVICES}; bq: with large payloads' Blob service)",
    )
    s.add_argument("--expiry", type=when, default=timedelta(hours=1), help="duration from now or ISO date-time")
    s.add_argument("--start", type=when, help="duration from now or ISO date-time")
    s.add_argument("--policy-id", help="a stored access policy of the queue")
    s.add_argument("--ip", help="an IP address or range a.b.c.d-e.f.g.h")
    s.add_argument("--protocol", choices=["https", "https,http"], metavar="PROTOCOL", help="https or https,http")
    _cli_payloads.add_command(command, queue_help)
    _cli_redrive.add_command(command, duration, count)
    s = command(
        "worker",
        "run an async handler over a queue until SIGTERM (module:function)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.description = _runner.__doc__
    _runner.add_arguments(s, duration)
    s = command("emulator", _cli_emulator.SUMMARY)
    _cli_emulator.add_arguments(s)
    return p


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line, with the common options a subcommand lacks at their defaults."""
    words = list(sys.argv[1:] if argv is None else argv)
    options = words[: words.index("--")] if "--" in words else words  # after '--', a message may say anything
    args = build_parser(json_errors="--json" in options).parse_args(argv)
    for name, default in _COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
    return args


def _run(args: argparse.Namespace, argv: Sequence[str] | None, out: TextIO) -> int:
    if args.command == "emulator":
        return _cli_emulator.run_emulator(args, out)
    if args.command == "worker":
        return _runner.run_worker(args, connection_string(args), list(sys.argv[1:] if argv is None else argv))
    asyncio.run(Cli(args, out).run())
    return EXIT_OK


def _failure(args: argparse.Namespace, exc: BaseException) -> Failure:
    """How one of the REPORTED errors is said: its exit code and text, a hint for the connection used."""
    hints: dict[type[BaseException], str] = {}
    if args.emulator:
        hints[TransportError] = _cli_emulator.start_hint(args.port)
    elif args.account_url and not (args.sas or args.account_key or "?" in args.account_url):
        hints[AuthenticationFailed] = (
            " (no credential was given: pass --sas or --account-key, or an --account-url carrying a SAS)"
        )
    return failure(exc, hints=hints, flags=_runner.in_flags if args.command == "worker" else in_flags)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The ``aioqueue`` command: its exit code (argparse's own errors exit 2 through SystemExit)."""
    out = out or sys.stdout
    args = _arguments(argv)
    try:
        return _run(args, argv, out)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except REPORTED as exc:
        if args.debug:
            import traceback

            traceback.print_exception(exc)
        report = _failure(args, exc)
        report.write(sys.stderr, as_json=args.json)
        return report.code


if __name__ == "__main__":
    sys.exit(main())
