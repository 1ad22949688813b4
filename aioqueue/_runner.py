"""aioqueue worker QUEUE module:handler: a long-lived worker process, what a container runs.

SIGTERM or SIGINT stops it gracefully (nothing more is fetched, prefetched messages go back at
once, handlers under way finish or are cancelled after --shutdown-timeout) and it exits 0;
a second signal cancels the handlers at once. --processes N runs N such processes over the
same queue (one per core) and forwards signals to them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence

from ._client import QueueClient
from ._worker import Handler, check_handler

log = logging.getLogger("aioqueue")


def load_handler(spec: str) -> Handler:
    """``package.module:function`` -> the async function (the current directory is importable)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"the handler must be given as module:function, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    handler = module
    for part in attr.split("."):
        handler = getattr(handler, part)
    check_handler(handler)
    return handler  # type: ignore[return-value]


def add_arguments(s: argparse.ArgumentParser, duration: Callable[[str], float]) -> None:
    s.add_argument("queue", help="the queue to work on")
    s.add_argument("handler", help="the async handler, as module:function (importable from the current directory)")
    s.add_argument("--concurrency", type=int, default=16, help="handlers running at once per process (default 16)")
    s.add_argument("--processes", type=int, default=1, help="worker processes over the same queue (default 1)")
    s.add_argument("--visibility", type=duration, default=30.0, help="visibility timeout of a fetched message")
    s.add_argument("--auto-renew", action="store_true", help="keep held messages hidden while their handler runs")
    s.add_argument("--max-dequeue-count", type=int, help="move a message received more often to the poison queue")
    s.add_argument("--poison-queue", help="default: <queue>-poison")
    s.add_argument("--retry-delay", type=duration, default=0.0, help="a failed message stays hidden this long")
    s.add_argument("--handler-timeout", type=duration, help="cancel a handler running longer (counted as failed)")
    s.add_argument("--shutdown-timeout", type=duration, help="on SIGTERM, cancel handlers still running after this")
    s.add_argument("--idle-timeout", type=duration, help="exit once the queue stayed empty this long")
    s.add_argument("--max-messages", type=int, help="exit after this many messages")
    s.add_argument(
        "--encoding",
        default="text",
        choices=["text", "base64", "binary", "json", "base64-json"],
        help="message encoding (base64-json: Azure Functions' JSON messages)",
    )
    s.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")


async def _work(args: argparse.Namespace, conn_str: str, handler: Handler) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: cancelling the handlers under way", signal.Signals(signum).name)
            task.cancel()
            return
        log.info("%s: stopping (handlers under way finish)", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    async with QueueClient.from_connection_string(
        conn_str, args.queue, message_encoding=args.encoding, allow_insecure_http=args.allow_insecure_http
    ) as queue:
        log.info("worker %d on queue %s: %s, concurrency %d", os.getpid(), args.queue, args.handler, args.concurrency)
        try:
            stats = await queue.process(
                handler,
                concurrency=args.concurrency,
                stop=stop,
                handler_timeout=args.handler_timeout,
                shutdown_timeout=args.shutdown_timeout,
                visibility_timeout=args.visibility,
                auto_renew=args.auto_renew,
                max_dequeue_count=args.max_dequeue_count,
                poison_queue=args.poison_queue,
                retry_delay=args.retry_delay,
                idle_timeout=args.idle_timeout,
                max_messages=args.max_messages,
            )
        except asyncio.CancelledError:
            log.warning("worker %d cancelled: handlers under way were cancelled, their messages released", os.getpid())
            return 0
    log.info(
        "worker %d done: processed=%d failed=%d poisoned=%d lease_lost=%d undecodable=%d",
        os.getpid(),
        stats.processed,
        stats.failed,
        stats.poisoned,
        stats.lease_lost,
        stats.undecodable,
    )
    return 0


def run_worker(args: argparse.Namespace, conn_str: str, argv: Sequence[str]) -> int:
    """Run the worker (in this process, or as ``--processes`` children); the exit code."""
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
    )
    if args.processes < 1 or args.concurrency < 1:
        raise ValueError("--processes and --concurrency must be at least 1")
    if args.processes > 1:
        return _run_children(args.processes, argv)
    handler = load_handler(args.handler)
    return asyncio.run(_work(args, conn_str, handler))


def _run_children(count: int, argv: Sequence[str]) -> int:
    """N copies of this command with ``--processes 1``; signals are passed on; the worst exit code."""
    child_argv: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            child_argv.append(arg)
    child_argv += ["--processes", "1"]
    env = dict(os.environ)
    children = [
        subprocess.Popen([sys.executable, "-m", "aioqueue.cli", *child_argv], env=env, stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max(codes, key=abs)
