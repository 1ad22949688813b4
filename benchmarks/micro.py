"""Client-side CPU of parsing and signing, per call, without a server (issue #16).

    python benchmarks/micro.py                 # instructions (valgrind's callgrind) and timeit, every item
    python benchmarks/micro.py --no-callgrind  # timeit only
    python benchmarks/micro.py peek32 sign_put # some items only

Each item runs the functions the client runs for one operation, on answers shaped like the ones
Azurite and Azure send (Azurite's declaration, or Azure's byte-order mark and declaration; GUID ids,
256-byte texts, three distinct times per answer, as when the messages were sent in one burst). Every
call gets an answer it has not seen before, so the date cache is as warm as in steady state and no
warmer.

Instructions: each item runs in its own ``valgrind --tool=callgrind --instr-atstart=no`` child that
switches counting on for N calls and again for 3N calls; (count(3N) - count(N)) / 2N is the cost of
one call with the fixed cost of switching cancelled out (the count does not move with the machine's
load). The timeit figure is informational (best of 5, on this machine, as it is loaded).
"""

from __future__ import annotations

import argparse
import base64
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import timeit
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aioqueue import SharedKeyCredential  # noqa: E402
from aioqueue._dates import format_rfc1123  # noqa: E402
from aioqueue._encoding import TextEncoding, encode_message, get_encoding  # noqa: E402
from aioqueue._message_list import message_body, parse_messages, parse_put_answer  # noqa: E402
from aioqueue._messages import (  # noqa: E402
    decoded_messages,
    peeked_messages,
    send_receipt,
    text_of,
)
from aioqueue._models import QueueMessage  # noqa: E402
from aioqueue._operations import QueueOperations  # noqa: E402
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY  # noqa: E402

DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'  # what Azurite sends
AZURE_DECLARATION = b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>'  # what Azure sends: a BOM first
BASE = 1_795_000_000  # seconds since the epoch: a time in 2026
SIZE = 256  # bytes of message content, as in benchmarks/run.py
API_VERSION = "2025-11-05"
USER_AGENT = "aioqueue/0.0.0"


def _receipt(i: int) -> str:
    return base64.b64encode(f"27Nov2026{i:019d}".encode()).decode()


def messages_body(
    serial: int, count: int, *, received: bool, encoding: str = "text", declaration: bytes = DECLARATION
) -> bytes:
    """A Get Messages (``received``) or Peek Messages answer of ``count`` messages; ``serial`` picks its times."""
    now = BASE + serial
    inserted = format_rfc1123(now - 5).encode()
    expires = format_rfc1123(now - 5 + 7 * 86400).encode()
    visible = format_rfc1123(now + 30).encode()
    enc = get_encoding(encoding)
    parts = [declaration, b"<QueueMessagesList>"]
    for i in range(count):
        text = message_body(encode_message(enc, f"{serial * 32 + i:08d}".ljust(SIZE, "x")))[27:-29]
        parts += [
            b"<QueueMessage><MessageId>",
            str(uuid.UUID(int=serial * 32 + i + 1)).encode(),
            b"</MessageId><InsertionTime>",
            inserted,
            b"</InsertionTime><ExpirationTime>",
            expires,
            b"</ExpirationTime>",
        ]
        if received:
            parts += [
                b"<PopReceipt>",
                _receipt(serial * 32 + i).encode(),
                b"</PopReceipt><TimeNextVisible>",
                visible,
                b"</TimeNextVisible><DequeueCount>1</DequeueCount>",
            ]
        else:
            parts.append(b"<DequeueCount>0</DequeueCount>")
        parts += [b"<MessageText>", text, b"</MessageText></QueueMessage>"]
    parts.append(b"</QueueMessagesList>")
    return b"".join(parts)


def receipt_body(serial: int, declaration: bytes = DECLARATION) -> bytes:
    """A Put Message answer."""
    now = BASE + serial
    return (
        declaration
        + b"<QueueMessagesList><QueueMessage><MessageId>"
        + str(uuid.UUID(int=serial + 1)).encode()
        + b"</MessageId><InsertionTime>"
        + format_rfc1123(now).encode()
        + b"</InsertionTime><ExpirationTime>"
        + format_rfc1123(now + 7 * 86400).encode()
        + b"</ExpirationTime><PopReceipt>"
        + _receipt(serial).encode()
        + b"</PopReceipt><TimeNextVisible>"
        + format_rfc1123(now).encode()
        + b"</TimeNextVisible></QueueMessage></QueueMessagesList>"
    )


def _decoder(encoding: str) -> Callable[[Any], Any]:
    """QueueOperations.decode's choice, as the client calls it (the text encoding's plain function)."""
    chosen = get_encoding(encoding)
    if type(chosen) is TextEncoding:
        return text_of
    owner = types.SimpleNamespace(encoding=chosen)
    return lambda raw: QueueOperations._decode(owner, raw)  # type: ignore[arg-type]


def _peek(encoding: str, declaration: bytes = DECLARATION) -> Callable[[int], Callable[[], object]]:
    decode = _decoder(encoding)

    def make(serial: int) -> Callable[[], object]:
        body = messages_body(serial, 32, received=False, encoding=encoding, declaration=declaration)
        return lambda: peeked_messages(parse_messages(body), decode)

    return make


def _receive(encoding: str, declaration: bytes = DECLARATION) -> Callable[[int], Callable[[], object]]:
    decode = _decoder(encoding)

    def make(serial: int) -> Callable[[], object]:
        body = messages_body(serial, 32, received=True, encoding=encoding, declaration=declaration)
        return lambda: decoded_messages(parse_messages(body), decode, QueueMessage)  # as receive_messages

    return make


def _empty(serial: int) -> Callable[[], object]:
    body = DECLARATION + b"<QueueMessagesList/>"
    return lambda: parse_messages(body)


def _empty_azure(serial: int) -> Callable[[], object]:
    body = AZURE_DECLARATION + b"<QueueMessagesList />"  # Azure's empty root has a space
    return lambda: parse_messages(body)


def _send_receipt(serial: int) -> Callable[[], object]:
    body = receipt_body(serial)
    return lambda: send_receipt(parse_put_answer(body)[0])


def _send_receipt_azure(serial: int) -> Callable[[], object]:
    body = receipt_body(serial, AZURE_DECLARATION)
    return lambda: send_receipt(parse_put_answer(body)[0])


def _send_body(serial: int) -> Callable[[], object]:
    """What send_message does with the content before the request: encode, check, build the body."""
    content = f"{serial:08d}".ljust(SIZE, "x")
    encoding = get_encoding("text")
    return lambda: message_body(encode_message(encoding, content))


CREDENTIAL = SharedKeyCredential(DEV_ACCOUNT, DEV_KEY)
PATH = f"/{DEV_ACCOUNT}/bench-0123456789ab/messages"


def _headers(serial: int, body: bool) -> dict[str, str]:
    """The headers _transport._attempt signs (in its order)."""
    headers = {"x-ms-version": API_VERSION, "User-Agent": USER_AGENT, "x-ms-date": format_rfc1123(BASE + serial)}
    if body:
        headers["Content-Type"] = "application/xml; charset=utf-8"
    return headers


def _sign_put(serial: int) -> Callable[[], object]:
    headers = _headers(serial, body=True)
    length = len(message_body("x" * SIZE))
    return lambda: CREDENTIAL.authorization("POST", PATH, {}, headers, length)


def _sign_delete(serial: int) -> Callable[[], object]:
    headers = _headers(serial, body=False)
    query = {"popreceipt": _receipt(serial)}
    path = f"{PATH}/{uuid.UUID(int=serial + 1)}"
    return lambda: CREDENTIAL.authorization("DELETE", path, query, headers, 0)


def _sign_get(serial: int) -> Callable[[], object]:
    headers = _headers(serial, body=False)
    query = {"numofmessages": "32"}
    return lambda: CREDENTIAL.authorization("GET", PATH, query, headers, 0)


# name -> (what it is, a maker of one call for a serial number)
ITEMS: dict[str, tuple[str, Callable[[int], Callable[[], object]]]] = {
    "peek32": ("Peek Messages answer, 32 messages, text encoding -> PeekedMessage list", _peek("text")),
    "receive32": ("Get Messages answer, 32 messages, text encoding -> QueueMessage list", _receive("text")),
    "peek32_b64": ("the same peek, base64 encoding", _peek("base64")),
    "receive32_b64": ("the same receive, base64 encoding", _receive("base64")),
    "peek32_azure": ("peek32 as Azure answers (a BOM, its declaration)", _peek("text", AZURE_DECLARATION)),
    "receive32_azure": ("receive32 as Azure answers", _receive("text", AZURE_DECLARATION)),
    "empty": ("an empty QueueMessagesList", _empty),
    "empty_azure": ("the same as Azure answers (a BOM, its declaration, '<QueueMessagesList />')", _empty_azure),
    "receipt": ("Put Message answer -> SendReceipt", _send_receipt),
    "receipt_azure": ("the same as Azure answers", _send_receipt_azure),
    "send_body": ("encode + check + Put Message body, 256 B text", _send_body),
    "sign_put": ("Shared Key Authorization, Put Message", _sign_put),
    "sign_get": ("Shared Key Authorization, Get Messages", _sign_get),
    "sign_delete": ("Shared Key Authorization, Delete Message", _sign_delete),
}


def _calls(name: str, first: int, count: int) -> list[Callable[[], object]]:
    make = ITEMS[name][1]
    return [make(first + i) for i in range(count)]


def _callgrind(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


def child(name: str, n: int) -> None:
    """Under callgrind: count N calls, then 3N calls, each segment dumped to its own file."""
    for call in _calls(name, 10_000_000, 8):  # warm up: imports, regex compiles, first-call caches
        call()
    serial = 0
    for count in (n, 3 * n):
        calls = _calls(name, serial, count)
        serial += count
        _callgrind("-i", "on")
        for call in calls:
            call()
        _callgrind("-i", "off")
        _callgrind("-d", f"{name}-{count}")


def _totals(path: Path) -> int:
    return int(next(line for line in path.read_text().splitlines() if line.startswith("totals:")).split()[1])


def instructions(name: str, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                name,
                str(n),
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        once, thrice = _totals(Path(f"{out}.1")), _totals(Path(f"{out}.2"))
    return (thrice - once) / (2 * n)


def _run_all(calls: list[Callable[[], object]]) -> None:
    for call in calls:
        call()


def wall(name: str, n: int) -> float:
    """Seconds per call, best of 5 rounds of n fresh calls."""
    best = float("inf")
    serial = 20_000_000
    for _ in range(5):
        calls = _calls(name, serial, n)
        serial += n
        best = min(best, timeit.timeit(functools.partial(_run_all, calls), number=1) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help=f"items to measure (default: all): {', '.join(ITEMS)}")
    parser.add_argument("--no-callgrind", action="store_true", help="timeit only")
    parser.add_argument("--child", nargs=2, metavar=("ITEM", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    names = args.items or list(ITEMS)
    unknown = [n for n in names if n not in ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {', '.join(unknown)}; choose from {', '.join(ITEMS)}")
    use_callgrind = not args.no_callgrind
    if use_callgrind and (shutil.which("valgrind") is None or shutil.which("callgrind_control") is None):
        sys.exit("valgrind and callgrind_control are needed for instruction counts (or pass --no-callgrind)")
    print(f"Python {sys.version.split()[0]}; per call")
    print(f"{'item':<14} {'instructions':>13} {'timeit':>10}  what")
    for name in names:
        heavy = name.startswith(("peek", "receive"))
        count = instructions(name, 20 if heavy else 200) if use_callgrind else None
        seconds = wall(name, 200 if heavy else 5000)
        shown = f"{count:13,.0f}" if count is not None else f"{'-':>13}"
        print(f"{name:<14} {shown} {seconds * 1e6:8.1f}us  {ITEMS[name][0]}", flush=True)


if __name__ == "__main__":
    main()
