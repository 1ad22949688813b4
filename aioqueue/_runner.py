"""aioqueue worker QUEUE module:handler: a long-lived worker process, what a container runs.

SIGTERM or SIGINT stops it gracefully (nothing more is fetched, prefetched messages go back at
once, handlers under way finish or are cancelled after --shutdown-timeout) and it exits 0;
a second signal cancels the handlers at once. A signal while the handler module is still
importing exits 0 too. --processes N runs N such processes over the same queue (one per core)
and passes each signal it gets on to them once (a signal to the whole process group counts
once); if it dies, even by SIGKILL, they stop as on SIGTERM.

--metrics-port PORT serves, for Prometheus and Kubernetes probes (needs the 'prometheus' extra):
  /metrics        the worker's OpenTelemetry metrics in Prometheus' text format, with the queue's
                  length and oldest message's age measured every --lag-interval (default 15s)
  /healthz/live   200 while the worker runs or drains (its event loop answered: it turns)
  /healthz/ready  200 once the queue answered a receive, until receiving has failed for longer
                  than --ready-within; 503 otherwise (/healthz is /healthz/live)
With --processes N, process i serves on PORT + i.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import difflib
import importlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, cast

from ._autoscale import DEFAULT_INTERVAL, LagSampler, add_gauges
from ._errors import ConfigurationError
from ._options import ReceiveSettings
from ._queue_client import QueueClient
from ._telemetry import current_trace_ids
from ._worker import Handler, Worker, check_handler
from ._worker_options import WORKER_NAMES, WorkerOptions, WorkerSettings

log = logging.getLogger("aioqueue")


def load_handler(spec: str) -> Handler:
    """``package.module:function`` -> the async function (the current directory is importable). A module
    or function that is not there is an ImportError of one line, naming the handler as given."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"the handler must be given as module:function, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
            raise  # the handler's module is there, and imports one that is not: its own error
        raise ImportError(
            f"cannot load the handler {spec!r}: no module named {module_name!r} (importable from {os.getcwd()})"
        ) from None
    handler: Any = module
    path = module_name
    for part in attr.split("."):
        if not hasattr(handler, part):
            near = difflib.get_close_matches(part, [n for n in dir(handler) if not n.startswith("_")], n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ImportError(f"cannot load the handler {spec!r}: module {path!r} has no attribute {part!r}{hint}")
        handler = getattr(handler, part)
        path += "." + part
    check_handler(handler)
    return cast(Handler, handler)


# The flags that set a worker() option, in one table: (flag, the option, its type or "a|b" for one of
# those words, the help). The defaults are the options' own (WorkerSettings, ReceiveSettings), but for
# the one the command chooses.
_OPTION_FLAGS: tuple[tuple[str, str, str, str], ...] = (
    ("--concurrency", "concurrency", "int", "handlers running at once per process"),
    ("--visibility", "visibility_timeout", "duration", "visibility timeout of a fetched message"),
    ("--auto-renew", "auto_renew", "flag", "keep held messages hidden while their handler runs"),
    ("--max-dequeue-count", "max_dequeue_count", "int", "move a message received more often to the poison queue"),
    ("--poison-queue", "poison_queue", "str", "the poison queue (default: <queue>-poison)"),
    (
        "--poison-format",
        "poison_format",
        "record|body",
        "what the poison queue gets: a poison record (JSON: the message and why), or the bare message body "
        "(what an Azure Functions app sharing the poison queue expects)",
    ),
    ("--retry-delay", "retry_delay", "duration", "a failed message stays hidden this long"),
    ("--handler-timeout", "handler_timeout", "duration", "cancel a handler running longer (counted as failed)"),
    (
        "--shutdown-timeout",
        "shutdown_timeout",
        "duration",
        "on SIGTERM, cancel handlers still running after this (default 20s: with the receive under way given "
        "at most 5s, the worker exits within Kubernetes' default 30s grace period)",
    ),
    ("--idle-timeout", "idle_timeout", "duration", "exit once the queue stayed empty this long"),
    ("--max-messages", "max_messages", "int", "exit after this many messages"),
)
_COMMAND_DEFAULTS = {"shutdown_timeout": 20.0}  # a pod's grace period, where process() waits for handlers


def _option_default(option: str) -> Any:
    if option in _COMMAND_DEFAULTS:
        return _COMMAND_DEFAULTS[option]
    settings = WorkerSettings if option in WorkerOptions.__annotations__ else ReceiveSettings
    return getattr(settings, option)


def worker_options(args: argparse.Namespace) -> dict[str, Any]:
    """The worker() options the flags gave (every one: the flags' defaults are the options')."""
    return {option: getattr(args, option) for _, option, _, _ in _OPTION_FLAGS}


_FLAG_OF = {option: flag for flag, option, _, _ in _OPTION_FLAGS}
_OPTION_NAME = re.compile(r"\b(" + "|".join(_FLAG_OF) + r")\b")


def in_flags(text: str) -> str:
    """``text`` with worker() options' names replaced by this command's flags (a flag takes no timedelta)."""
    return _OPTION_NAME.sub(lambda m: _FLAG_OF[m.group(1)], text).replace(" (or a timedelta)", "")


def check_options(args: argparse.Namespace) -> None:
    """The option flags' values, checked as worker() checks them, each error naming its flag."""
    options = worker_options(args)
    for flag, option, _, _ in _OPTION_FLAGS:  # one at a time, to name the flag of an error that does not
        try:
            _settings({option: options[option]})
        except ConfigurationError as exc:
            text = in_flags(str(exc))
            raise ConfigurationError(text if flag in text else f"{flag}: {text}") from None
    _settings(options)  # and together


def _settings(options: dict[str, Any]) -> None:
    WorkerSettings.build({k: v for k, v in options.items() if k in WORKER_NAMES})
    ReceiveSettings.build(**{k: v for k, v in options.items() if k not in WORKER_NAMES})


def add_arguments(s: argparse.ArgumentParser, duration: Callable[[str], float]) -> None:
    s.add_argument("queue", help="the queue to work on")
    s.add_argument("handler", help="the async handler, as module:function (importable from the current directory)")
    s.add_argument("--processes", type=int, default=1, help="worker processes over the same queue (default 1)")
    types: dict[str, Callable[[str], Any]] = {"int": int, "duration": duration, "str": str}
    for flag, option, kind, text in _OPTION_FLAGS:
        default = _option_default(option)
        shown = f" (default {default})" if default not in (None, False) and "default" not in text else ""
        if kind == "flag":
            s.add_argument(flag, dest=option, action="store_true", help=text)
        elif "|" in kind:  # one of these words
            s.add_argument(flag, dest=option, choices=kind.split("|"), default=default, help=text + shown)
        else:
            s.add_argument(flag, dest=option, type=types[kind], default=default, help=text + shown)
    s.add_argument(
        "--encoding",
        default="text",
        choices=["text", "base64", "binary", "json", "base64-json"],
        help="message encoding (base64-json: Azure Functions' JSON messages)",
    )
    s.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
    s.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one JSON object per line (time, level, logger, pid, message, trace and span ids)",
    )
    s.add_argument("--metrics-port", type=int, help="serve /metrics (Prometheus) and /healthz on this port")
    s.add_argument("--metrics-host", default="0.0.0.0", help="the address --metrics-port listens on (default 0.0.0.0)")
    s.add_argument(
        "--ready-within",
        type=duration,
        default=60.0,
        help="/healthz/ready fails once receiving has failed for this long (default 60s)",
    )
    s.add_argument(
        "--lag-interval",
        type=duration,
        default=DEFAULT_INTERVAL,
        help=f"with --metrics-port, measure the queue's oldest message age and length this often (default "
        f"{DEFAULT_INTERVAL:g}s; two requests each time)",
    )
    # --processes passes each child the read end of a pipe whose write end only the parent holds
    s.add_argument("--parent-pipe", type=int, help=argparse.SUPPRESS)


async def _work(args: argparse.Namespace, conn_str: str, handler: Handler, requests: _StopRequests) -> int:
    stop = asyncio.Event()
    task = asyncio.current_task()
    assert task is not None

    def on_request(count: int, signum: int) -> None:
        if count == 1:
            log.info("%s: stopping (handlers under way finish)", signal.Signals(signum).name)
            stop.set()
        else:
            log.warning("second %s: cancelling the handlers under way", signal.Signals(signum).name)
            task.cancel()

    requests.take_over(asyncio.get_running_loop(), on_request)
    meter_provider = _prometheus_meter_provider() if args.metrics_port is not None else None
    async with QueueClient.from_connection_string(
        conn_str,
        args.queue,
        message_encoding=args.encoding,
        allow_insecure_http=args.allow_insecure_http,
        meter_provider=meter_provider,
    ) as queue:
        worker = queue.worker(handler, stop=stop, **worker_options(args))
        server = None
        if args.metrics_port is not None:
            sampler = LagSampler(queue.lag, args.lag_interval)
            server = await _serve_metrics(
                worker, meter_provider, args.metrics_host, args.metrics_port, args.ready_within, sampler
            )
        log.info("worker %d on queue %s: %s, concurrency %d", os.getpid(), args.queue, args.handler, args.concurrency)
        try:
            stats = await worker.run()
        except asyncio.CancelledError:
            log.warning("worker %d cancelled: handlers under way were cancelled, their messages released", os.getpid())
            return 0
        finally:
            if server is not None:
                await server.cleanup()
    log.info(
        "worker %d done: processed=%d failed=%d poisoned=%d lease_lost=%d undecodable=%d delete_failed=%d "
        "rescheduled=%d",
        os.getpid(),
        stats.processed,
        stats.failed,
        stats.poisoned,
        stats.lease_lost,
        stats.undecodable,
        stats.delete_failed,
        stats.rescheduled,
    )
    return 0


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_worker(args: argparse.Namespace, conn_str: str, argv: Sequence[str]) -> int:
    """Run the worker (in this process, or as ``--processes`` children); the exit code."""
    handler_ = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        handler_.setFormatter(JsonFormatter())
    else:
        handler_.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"))
    logging.basicConfig(level=getattr(logging, args.log_level), handlers=[handler_], force=True)
    if args.processes < 1 or args.concurrency < 1:
        raise ValueError("--processes and --concurrency must be at least 1")
    check_options(args)  # here, before any process starts: said once, not once per process
    if args.metrics_port is not None:
        if not (1 if args.processes > 1 else 0) <= args.metrics_port <= 65535 - (args.processes - 1):
            raise ValueError("--metrics-port must be a port number (with --processes N, the first of N ports; not 0)")
        if args.lag_interval <= 0:
            raise ValueError("--lag-interval must be more than 0 seconds")
        _prometheus_modules()  # missing: say so before anything starts
    if args.processes > 1:
        return _run_children(args.processes, argv, args.metrics_port)
    return _run_one(args, conn_str)


class _StoppedEarly(BaseException):
    """SIGTERM or SIGINT before the worker's event loop took the signals over (a BaseException, so that
    a handler module's ``except Exception`` around its slow set-up does not swallow it)."""


class _StopRequests:
    """Requests to stop: this process's own SIGTERM and SIGINT and, in a ``--processes`` child, the ones its
    parent passes on through the pipe, and the parent's death.

    One signal can reach a child twice: sent to the child itself (a signal to the process group, systemd
    signalling every process of its cgroup, Ctrl-C in a terminal) and passed on by the parent, in either
    order, or only once (``kill PARENT``, Kubernetes and Docker signalling PID 1). So the requests are
    counted per source and the n-th request is the one that makes either count n: a group-wide signal is
    one graceful stop, a second signal from either source still cancels the handlers. (Children in sessions
    of their own would escape a group-wide signal but not systemd's, nor a terminal's job control.)"""

    def __init__(self) -> None:
        self.counts = {"signal": 0, "parent": 0}
        self.started = False  # a request came in
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_request: Callable[[int, int], None] | None = None
        self._finished = False

    def stop_early(self, signum: int, frame: object) -> None:
        """The signal handler until the event loop runs: the first signal ends the start-up."""
        if not self.started:  # (a second one finds nothing started, nothing to cancel)
            self.started = True
            raise _StoppedEarly(signum)

    def take_over(self, loop: asyncio.AbstractEventLoop, on_request: Callable[[int, int], None]) -> None:
        """From now on the n-th request calls ``on_request(n, signum)`` on ``loop``."""
        with self._lock:
            self._loop, self._on_request = loop, on_request
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self.add, "signal", sig)

    def finish(self) -> None:
        """No more requests: the worker is done (or never started)."""
        self.started = True  # stop_early raises no more, even for a signal the watching thread sent already
        with self._lock:
            self._finished = True

    def add(self, source: str, signum: int) -> None:
        """On the loop: one more request from ``source`` (``signal`` or ``parent``)."""
        before = max(self.counts.values())
        self.counts[source] += 1
        self.started = True
        if max(self.counts.values()) == before:
            log.debug("%s from the %s: already counted", signal.Signals(signum).name, source)
        elif self._on_request is not None:
            self._on_request(before + 1, signum)

    def parent_gone(self) -> None:
        if max(self.counts.values()) == 0:
            log.warning("the parent process is gone: stopping as on SIGTERM")
            self.add("parent", signal.SIGTERM)

    def from_parent(self, signum: int | None) -> None:
        """In the thread watching the pipe: the parent passed ``signum`` on (None: the parent is gone)."""
        with self._lock:
            if self._finished:
                return
            loop = self._loop
            if loop is None:  # still starting: end the start-up as a signal does
                if not self.started:
                    if signum is None:
                        log.warning("the parent process is gone: stopping")
                    main = threading.main_thread().ident
                    assert main is not None
                    signal.pthread_kill(main, signum or signal.SIGTERM)
                return
            with contextlib.suppress(RuntimeError):  # the loop has just closed: the worker is done
                if signum is None:
                    loop.call_soon_threadsafe(self.parent_gone)
                else:
                    loop.call_soon_threadsafe(self.add, "parent", signum)


def _run_one(args: argparse.Namespace, conn_str: str) -> int:
    """The worker in this process. A signal before the event loop takes the signals over (while the
    handler's module imports, which may be slow) ends it at once, cleanly: exit 0."""
    requests = _StopRequests()
    previous = {sig: signal.signal(sig, requests.stop_early) for sig in _SIGNALS}
    try:
        # A --processes child starts with these blocked (see _start_child): one that came while this
        # interpreter started is taken here, by stop_early.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        if args.parent_pipe is not None:
            _watch_parent(args.parent_pipe, requests)
        handler = load_handler(args.handler)
        return asyncio.run(_work(args, conn_str, handler, requests))
    except _StoppedEarly as exc:
        log.info("%s: stopped before the worker started", signal.Signals(exc.args[0]).name)
        return 0
    finally:
        requests.finish()
        for sig, handler_ in previous.items():
            signal.signal(sig, handler_)


def _watch_parent(fd: int, requests: _StopRequests) -> None:
    """In a ``--processes`` child: a thread reads the pipe from the parent, one byte per signal it passes
    on. Once the parent is gone, however it died (SIGKILL included), the pipe ends, and the child stops as
    on SIGTERM: a graceful drain, bounded by --shutdown-timeout, unless a signal already started one. A
    pipe, unlike Linux's PR_SET_PDEATHSIG, is portable, and has no race with a parent that died before the
    child started watching: the end of the pipe stays."""

    def watch() -> None:
        while True:
            try:
                data = os.read(fd, 64)
            except OSError:
                data = b""
            for signum in data:
                requests.from_parent(signum)
            if not data:
                requests.from_parent(None)
                return

    threading.Thread(target=watch, name="aioqueue-parent-watch", daemon=True).start()


def _child_argv(argv: Sequence[str]) -> list[str]:
    """The command's arguments for a child: without --processes, --metrics-port and --parent-pipe."""
    child_argv: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--processes", "--metrics-port", "--parent-pipe"):
            skip = True
        elif not arg.startswith(("--processes=", "--metrics-port=", "--parent-pipe=")):
            child_argv.append(arg)
    return [*child_argv, "--processes", "1"]


def _run_children(count: int, argv: Sequence[str], metrics_port: int | None = None) -> int:
    """N copies of this command with ``--processes 1`` (child i serving metrics on ``metrics_port + i``);
    each SIGTERM or SIGINT is passed on, as a byte through a pipe whose write end only this process holds
    (so that a child tells it from one sent to itself, see _StopRequests, and sees this process die);
    the worst exit code."""
    child_argv = _child_argv(argv)
    children: list[subprocess.Popen[bytes]] = []
    received: list[int] = []
    pipes: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        for fd in pipes:  # a child still starting reads it once it watches the pipe
            with contextlib.suppress(OSError):  # that child has exited
                os.write(fd, bytes([signum]))

    previous = {sig: signal.signal(sig, forward) for sig in _SIGNALS}
    try:
        for i in range(count):
            if received:  # asked to stop while starting them: start no more
                break
            children.append(_start_child(child_argv, None if metrics_port is None else metrics_port + i, pipes))
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for fd in pipes:
            os.close(fd)
    return max(codes, key=abs, default=0)


def _start_child(child_argv: list[str], metrics_port: int | None, pipes: list[int]) -> subprocess.Popen[bytes]:
    """One child, given the read end of a new pipe (the write end goes to ``pipes`` first). The child
    starts with SIGTERM and SIGINT blocked until its own handling is in place (_run_one): one sent to it
    while its interpreter starts waits for that, rather than killing it (-15)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # a signal handler writes to it
    pipes.append(write_end)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aioqueue.cli",
                *child_argv,
                *(["--metrics-port", str(metrics_port)] if metrics_port is not None else []),
                "--parent-pipe",
                str(read_end),
            ],
            stdin=subprocess.DEVNULL,
            pass_fds=(read_end,),
        )
    finally:
        os.close(read_end)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


# ---- --log-format json --------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, pid, message, the exception's
    traceback when there is one, and the trace and span ids of the current OpenTelemetry span (a
    handler's log lines carry its process span's ids), so logs and traces join up."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        ids = current_trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# ---- --metrics-port -------------------------------------------------------------------------------


def _prometheus_modules() -> tuple[Any, Any, Any]:
    try:
        import prometheus_client
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError as exc:
        raise ImportError(
            f"--metrics-port needs the prometheus extra: pip install 'aioqueue-azure[prometheus]' ({exc})"
        ) from None
    return prometheus_client, PrometheusMetricReader, MeterProvider


def _prometheus_meter_provider() -> Any:
    """A meter provider whose metrics a Prometheus scrape reads (prometheus_client's default registry)."""
    _, reader_class, provider_class = _prometheus_modules()
    return provider_class(metric_readers=[reader_class()])


async def _serve_metrics(
    worker: Worker, meter_provider: Any, host: str, port: int, ready_within: float, sampler: LagSampler
) -> Any:
    """/metrics, /healthz, /healthz/live and /healthz/ready on ``host:port``, and ``sampler`` measuring
    the queue's lag meanwhile; the runner to clean up (which stops the sampler too)."""
    from aiohttp import web

    prometheus_client = _prometheus_modules()[0]
    meter = meter_provider.get_meter("aioqueue.worker")
    attrs = {"messaging.destination.name": worker._link.queue_name}
    meter.create_observable_gauge(
        "aioqueue.worker.in_flight",
        callbacks=[lambda options: [_observation(worker.in_flight, attrs)]],
        unit="{message}",
        description="Handlers running now",
    )
    meter.create_observable_gauge(
        "aioqueue.worker.ready",
        callbacks=[lambda options: [_observation(int(_ready(worker, ready_within)[0]), attrs)]],
        description="1 while /healthz/ready answers 200",
    )
    add_gauges(meter, worker, sampler, attrs)

    async def metrics(request: web.Request) -> web.Response:
        body = prometheus_client.generate_latest(prometheus_client.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    async def live(request: web.Request) -> web.Response:
        ok = worker.state != "stopped"
        return web.json_response(_health(worker, ready_within), status=200 if ok else 503)

    async def ready(request: web.Request) -> web.Response:
        ok = _ready(worker, ready_within)[0]
        return web.json_response(_health(worker, ready_within), status=200 if ok else 503)

    app = web.Application()
    app.on_cleanup.append(lambda app: sampler.aclose())
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", live)
    app.router.add_get("/healthz/live", live)
    app.router.add_get("/healthz/ready", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sampler.start()
    log.info("metrics on http://%s:%d/metrics, probes on /healthz/live and /healthz/ready", host, port)
    return runner


def _observation(value: int, attrs: dict[str, str]) -> Any:
    from opentelemetry.metrics import Observation

    return Observation(value, attrs)


def _ready(worker: Worker, ready_within: float) -> tuple[bool, str]:
    if worker.state != "running":
        return False, f"the worker is {worker.state}"
    if worker.last_answer is None:
        return False, "the queue has not answered yet"
    failing = worker.failing_since
    if failing is not None and time.monotonic() - failing > ready_within:
        return False, f"receiving has failed for {time.monotonic() - failing:.0f}s"
    return True, "the queue answered"


def _health(worker: Worker, ready_within: float) -> dict[str, object]:
    now = time.monotonic()
    ready, why = _ready(worker, ready_within)
    return {
        "state": worker.state,
        "ready": ready,
        "reason": why,
        "last_answer_seconds_ago": None if worker.last_answer is None else round(now - worker.last_answer, 3),
        "failing_for_seconds": None if worker.failing_since is None else round(now - worker.failing_since, 3),
        "in_flight": worker.in_flight,
        "prefetched": worker.prefetched,
        "received": worker.received,
        **dataclasses.asdict(worker.stats),
    }
