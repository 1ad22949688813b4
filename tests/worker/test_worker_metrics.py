"""``aioqueue worker --metrics-port``: a Prometheus scrape whose counters move, Kubernetes probes
that answer (and say not-ready while the queue does not answer), and ``--log-format json``.

The workers reach the queue fixtures' service (``conn_str``, ``proxy``): Azurite, or under the switch the
test's FakeQueueService, which answers from the test's event loop; so a test waits for a worker's exit in a
thread (``stop``), never by blocking the loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

from aioqueue import _schedule
from aioqueue._runner import JsonFormatter
from aioqueue.testing import connection_string

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")

SCRIPT = Path(sys.executable).parent / "aioqueue"
BOUND = 60.0
HANDLER = """
async def handle(msg):
    if msg.content.startswith("bad"):
        raise ValueError(msg.content)
"""


def free_port(count: int = 1) -> int:
    """A port P, with P to P + count - 1 free, below the range the kernel hands out for port 0 and for
    outgoing connections: no client socket or emulator (the other xdist worker's included) can take one
    between this check and the worker's bind, as one did to a port 0 answer's neighbour under load."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low // 2), low - count)
        with contextlib.ExitStack() as held:
            try:
                for p in range(port, port + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", p))
            except OSError:
                continue
        return port
    raise AssertionError("no free ports")


def start(conn_str: str, tmp_path: Path, queue: str, *options: str, handler: str = HANDLER) -> subprocess.Popen[str]:
    (tmp_path / "metrics_handler.py").write_text(handler)
    return subprocess.Popen(
        [str(SCRIPT), "worker", queue, "metrics_handler:handle", "--metrics-host", "127.0.0.1", *options],
        cwd=tmp_path,
        env={**os.environ, "AZURE_STORAGE_CONNECTION_STRING": conn_str},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as resp:
        return resp.status, await resp.text()


async def until(port: int, path: str, status: int, proc: subprocess.Popen[str]) -> str:
    """Poll ``path`` until it answers ``status``; its body."""
    deadline = time.monotonic() + BOUND
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            got, body = await get(port, path)
            if got == status:
                return body
        except aiohttp.ClientConnectionError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"{path} never answered {status}"
        await asyncio.sleep(0.1)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls)


async def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.to_thread(proc.communicate, timeout=BOUND)
    assert proc.returncode == 0, err
    return err


async def test_a_scrape_shows_the_counters_moving_and_the_probes_answer(conn_str, queue_client, tmp_path):
    port = free_port()
    proc = start(
        conn_str,
        tmp_path,
        queue_client.queue_name,
        "--metrics-port",
        str(port),
        "--log-format",
        "json",
    )
    try:
        health = json.loads(await until(port, "/healthz/ready", 200, proc))
        assert health["state"] == "running" and health["ready"] is True
        live = json.loads(await until(port, "/healthz", 200, proc))
        assert live["processed"] == 0

        await queue_client.send_messages(["ok 1", "ok 2", "ok 3", "bad 1"])
        deadline = time.monotonic() + BOUND
        while True:
            # the failed count moves before the failed message's release and its process span end,
            # so the scrape is awaited too: its duration is recorded when that operation ends
            health = json.loads((await get(port, "/healthz/live"))[1])
            status, text = await get(port, "/metrics")
            assert status == 200
            found = samples(text)
            if (
                health["processed"] == 3
                and health["failed"] >= 1
                and value(found, "messaging_process_duration_seconds_count") >= 4
            ):
                break
            assert time.monotonic() < deadline, (health, text)
            await asyncio.sleep(0.1)
        queue = queue_client.queue_name
        assert (
            value(
                found,
                "aioqueue_consumer_messages_total",
                aioqueue_outcome="processed",
                messaging_destination_name=queue,
            )
            == 3
        )
        assert value(found, "aioqueue_consumer_messages_total", aioqueue_outcome="failed") >= 1
        assert value(found, "messaging_client_consumed_messages_total", messaging_destination_name=queue) >= 4
        assert value(found, "messaging_process_duration_seconds_count") >= 4
        assert value(found, "aioqueue_queue_lag_seconds_count") >= 4
        assert value(found, "http_client_request_duration_seconds_count", http_request_method="DELETE") == 3
        assert value(found, "aioqueue_worker_ready") == 1

        await queue_client.send_messages(["ok 4", "ok 5"])
        deadline = time.monotonic() + BOUND
        while (
            value(
                samples((await get(port, "/metrics"))[1]),
                "aioqueue_consumer_messages_total",
                aioqueue_outcome="processed",
            )
            < 5
        ):
            assert time.monotonic() < deadline, "the processed counter did not move"
            await asyncio.sleep(0.1)
    finally:
        err = await stop(proc)
    records = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    assert {"time", "level", "logger", "pid", "message"} <= set(records[0])
    failures = [r for r in records if r["level"] == "ERROR" and "handler failed" in r["message"]]
    assert failures and "ValueError: bad 1" in failures[0]["exception"]
    assert any("done: processed=" in r["message"] for r in records)


# "block" holds the one handler slot until the test creates the file "go"
BLOCKING = """
import asyncio, os

async def handle(msg):
    if msg.content == "block":
        open("started", "w").close()
        while not os.path.exists("go"):
            await asyncio.sleep(0.05)
"""
AGE, COUNT = "aioqueue_queue_oldest_message_age_seconds", "aioqueue_queue_messages"


async def scrape_until(port: int, proc: subprocess.Popen[str], what: str, condition: Any) -> dict[Any, float]:
    """The first scrape whose samples satisfy ``condition``."""
    deadline = time.monotonic() + BOUND
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        found = samples((await get(port, "/metrics"))[1])
        if condition(found):
            return found
        gauges = {n: v for (n, _), v in found.items() if n in (AGE, COUNT) or n.startswith("aioqueue_worker")}
        assert time.monotonic() < deadline, f"{what}: {gauges}"
        await asyncio.sleep(0.1)


def names(found: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
    return {name for name, _ in found}


@contextlib.asynccontextmanager
async def blocked_worker(fake: Any, queue: Any, tmp_path: Path) -> AsyncIterator[tuple[subprocess.Popen[str], int]]:
    """A worker on the fake service measuring every 0.2 s, its one handler slot held by the message "block"
    (for 2 h by the service's clock) until the file "go" exists; (the process, its metrics port)."""
    port = free_port()
    proc = start(
        fake.connection_string,
        tmp_path,
        queue.queue_name,
        "--metrics-port", str(port), "--lag-interval", "0.2", "--concurrency", "1", "--visibility", "2h",
        handler=BLOCKING,
    )  # fmt: skip
    try:
        await until(port, "/healthz/ready", 200, proc)
        await queue.send_message("block")
        deadline = time.monotonic() + BOUND
        while not (tmp_path / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the handler did not start"
            await asyncio.sleep(0.05)
        yield proc, port
    finally:
        (tmp_path / "go").touch()
        await stop(proc)  # the fake answers the worker's last requests meanwhile


@pytest.mark.fake_options(clock="frozen")
async def test_the_oldest_message_age_rises_while_the_queue_waits_and_falls_to_0_once_drained(
    fake, fake_queue, tmp_path
):
    """On the fake service, whose clock the test moves: a message waiting behind a busy handler ages ten
    minutes in a moment, and once the queue is drained the gauges say 0 (measured, not missing)."""
    async with blocked_worker(fake, fake_queue, tmp_path) as (proc, port):
        await fake_queue.send_message("waiting")  # no free handler slot: it waits in the queue
        queue = {"messaging_destination_name": fake_queue.queue_name}
        found = await scrape_until(port, proc, "both counted", lambda f: value(f, COUNT, **queue) == 2)
        assert value(found, AGE, **queue) < 60  # the service's clock has not moved
        assert value(found, "aioqueue_worker_in_flight") == 1 and value(found, "aioqueue_worker_prefetched") == 0
        fake.advance(timedelta(minutes=10))
        found = await scrape_until(port, proc, "the age rising", lambda f: value(f, AGE, **queue) >= 599)
        assert value(found, AGE) <= 601 and value(found, COUNT) == 2
        (tmp_path / "go").touch()
        found = await scrape_until(port, proc, "drained", lambda f: value(f, COUNT) == 0 and value(f, AGE) == 0)
        assert {AGE, COUNT} <= names(found)  # measured as 0, not left out
        health = json.loads((await get(port, "/healthz"))[1])
        assert health["processed"] == 2 and health["prefetched"] == 0


async def measured_again(fake: Any, proc: subprocess.Popen[str]) -> None:
    """Until a whole measurement of the queue's lag began and ended after this call: the third Get Queue
    Metadata from now (the first may belong to a measurement under way, the third began after the second
    ended, and so after the sampler had kept what the second measured)."""

    def counted() -> int:
        return sum(1 for r in fake.requests if r.operation == "get_queue_metadata")

    target = counted() + 3
    deadline = time.monotonic() + BOUND
    while counted() < target:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the worker did not measure the queue again"
        await asyncio.sleep(0.05)


@pytest.mark.fake_options(clock="frozen")
async def test_a_message_sent_with_a_delay_does_not_show_its_hidden_time_as_its_age(
    fake, fake_queue, tmp_path, monkeypatch
):
    """A message sent with delay=1h is hidden for the hour, then visible with an insertion time an hour old
    (Peek Messages tells nothing else). The age gauge must not jump to that hour the moment it appears: a
    Prometheus scaler on the age would add replicas for every scheduled message. The measurement before
    found nothing waiting, so it has waited at most the time since."""
    monkeypatch.setattr(_schedule, "_now", lambda: fake.now)  # the sender's clock: the service's
    async with blocked_worker(fake, fake_queue, tmp_path) as (proc, port):  # the reminder waits in the queue
        await fake_queue.send_message("reminder", delay=timedelta(hours=1))
        fake.advance(timedelta(minutes=59))
        await measured_again(fake, proc)  # nothing waiting, a minute before it is due
        fake.advance(timedelta(minutes=2))  # due a minute ago, inserted 61 minutes ago
        found = await scrape_until(port, proc, "the reminder waiting", lambda f: value(f, AGE) > 0)
        assert value(found, AGE) <= 120, "its age counted from its insertion, an hour before it was visible"
        assert value(found, COUNT) == 2


async def test_ready_fails_while_the_queue_does_not_answer_and_live_does_not(proxy, queue_client, tmp_path):
    port = free_port()
    proc = start(
        connection_string("127.0.0.1", proxy.port),
        tmp_path,
        queue_client.queue_name,
        "--metrics-port",
        str(port),
        "--ready-within",
        "1s",
    )
    try:
        await until(port, "/healthz/ready", 200, proc)
        proxy.script(*["503"] * 100_000)  # every request from now on: ServerBusy
        body = json.loads(await until(port, "/healthz/ready", 503, proc))
        assert body["ready"] is False and "receiving has failed" in body["reason"]
        assert body["failing_for_seconds"] >= 1
        status, live = await get(port, "/healthz/live")
        assert status == 200 and json.loads(live)["state"] == "running"
        assert value(samples((await get(port, "/metrics"))[1]), "aioqueue_worker_ready") == 0
        proxy.faults.clear()
        await until(port, "/healthz/ready", 200, proc)
    finally:
        await stop(proc)


async def test_each_of_several_processes_serves_on_its_own_port(conn_str, queue_client, tmp_path):
    port = free_port(2)
    proc = start(conn_str, tmp_path, queue_client.queue_name, "--metrics-port", str(port), "--processes", "2")
    try:
        states = [json.loads(await until(p, "/healthz/ready", 200, proc))["state"] for p in (port, port + 1)]
        assert states == ["running", "running"]
    finally:
        await stop(proc)


async def test_without_the_prometheus_extra_the_command_says_what_to_install(conn_str, tmp_path):
    (tmp_path / "metrics_handler.py").write_text(HANDLER)
    script = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("prometheus_client", "opentelemetry"):
            raise ImportError("hidden by the test")
sys.meta_path.insert(0, Hide())
from aioqueue.cli import main
sys.exit(main(["worker", "jobs", "metrics_handler:handle", "--metrics-port", "9464"]))
"""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "AZURE_STORAGE_CONNECTION_STRING": conn_str},
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'aioqueue-azure[prometheus]'" in done.stderr


def test_json_log_lines_carry_the_current_span_ids():
    tracer = TracerProvider().get_tracer("test")
    formatter = JsonFormatter()
    record = logging.LogRecord("aioqueue", logging.WARNING, __file__, 1, "message %s", ("x",), None)
    outside = json.loads(formatter.format(record))
    assert outside["message"] == "message x" and "trace_id" not in outside
    with tracer.start_as_current_span("process jobs") as span:
        inside = json.loads(formatter.format(record))
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"


async def test_port_0_is_refused_with_several_processes(conn_str, tmp_path):
    """Child i serves on PORT + i: from 0 that would be ports 1, 2, ... (found in review)."""
    (tmp_path / "metrics_handler.py").write_text(HANDLER)
    done = await asyncio.to_thread(
        subprocess.run,
        [str(SCRIPT), "worker", "jobs", "metrics_handler:handle", "--metrics-port", "0", "--processes", "2"],
        cwd=tmp_path,
        env={**os.environ, "AZURE_STORAGE_CONNECTION_STRING": conn_str},
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    assert done.returncode == 2 and "--metrics-port" in done.stderr, done.stderr


def test_json_log_lines_keep_a_stack():
    record = logging.LogRecord(
        "aioqueue", logging.WARNING, __file__, 1, "look", (), None, sinfo="Stack (most recent call last):\n  here"
    )
    assert json.loads(JsonFormatter().format(record))["stack"].endswith("here")
