"""The examples run against the suite's emulator, as a user would run them."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xml.etree import ElementTree

import pytest

from aioqueue import QueueServiceClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# the queues the examples name; each test starts with none of them (the seed scenarios' "walkthrough" is
# shared by all of them), and leaves none behind
FIXED_QUEUES = ("walkthrough", "jobs", "jobs-poison", "events", "orders")


def _reset_queues(conn_str: str, *, create: tuple[str, ...] = ()) -> None:
    async def reset() -> None:
        async with QueueServiceClient.from_connection_string(conn_str) as service:
            for name in FIXED_QUEUES:
                await service.delete_queue(name, missing_ok=True)
            for name in create:
                await service.create_queue(name)

    with ThreadPoolExecutor(1) as thread:  # its own event loop, away from any test's
        thread.submit(asyncio.run, reset()).result()


@pytest.fixture(autouse=True)
def no_fixed_queues(azurite):
    _reset_queues(azurite.connection_string)
    yield
    _reset_queues(azurite.connection_string)


def run_example(name, conn_str, *args, timeout=60):
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": conn_str}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_quickstart(azurite):
    result = run_example("quickstart.py", azurite.connection_string)
    assert result.returncode == 0, result.stderr
    # it says what it talks to (issue #25: it silently used whatever answered on port 10001)
    assert result.stdout.startswith(f"using $AZURE_STORAGE_CONNECTION_STRING: {azurite.url}\n")
    for line in (
        "peeked: Hello, World",
        "got: Updated contents",
        "processed a batch of 16",
        "approximate length: 4",
        "deleted the queue",
    ):
        assert line in result.stdout


def test_batch_consumer(azurite):
    result = run_example("batch_consumer.py", azurite.connection_string)
    assert result.returncode == 0, result.stderr
    assert '{"stored": 100}' in result.stdout


def test_tracing(azurite, tmp_path):
    drawing = tmp_path / "trace.svg"
    result = run_example("tracing.py", azurite.connection_string, "--svg", str(drawing))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # the producer's span under the web request; the consumer's linked to it, with its children
    send = next(i for i, x in enumerate(lines) if x.startswith("  send orders [PRODUCER]"))
    assert lines[send - 1].startswith("POST /orders [INTERNAL]")
    process = next(x for x in lines if x.startswith("process orders [CONSUMER]"))
    assert process.endswith("(linked to: send orders)")
    after = lines[lines.index(process) + 1 :]
    assert after[0].startswith("  charge card [INTERNAL]") and after[1].startswith("  delete orders [CLIENT]")
    svg = ElementTree.parse(drawing).getroot()
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert {"POST /orders", "send orders", "process orders", "charge card", "delete orders"} <= set(texts)
    assert len(list(svg.iter("{http://www.w3.org/2000/svg}path"))) == 1  # the link


@pytest.mark.slow
def test_worker_until_idle(azurite):
    result = run_example("worker.py", azurite.connection_string)
    assert result.returncode == 0, result.stderr
    assert "processed=49 failed=3 poisoned=1" in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_worker_shuts_down_gracefully_on_sigterm(azurite):
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "worker.py"), "--forever"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "worker started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.startswith("processed=")


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("create_queue.py", "walkthrough"),
        ("insert_message.py", "inserted"),
        ("peek_message.py", "peeked: Hello, World"),
        ("get_and_delete.py", "deleted it"),
        ("update_message.py", "updated: "),
        ("receive_sixteen.py", "handled 16 messages in one batch"),
        ("queue_length.py", "approximate length: "),
        ("delete_queue.py", "deleted walkthrough"),
    ],
)
def test_seed_scenarios(azurite, example, expected):
    if example == "delete_queue.py":
        _reset_queues(azurite.connection_string, create=("walkthrough",))
    result = run_example(example, azurite.connection_string)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def test_entra_id_example_against_the_https_emulator(azurite):
    result = run_example("entra_id.py", azurite.connection_string)
    assert result.returncode == 0, result.stderr
    assert "got: authenticated with a bearer token" in result.stdout


async def test_aiohttp_app(azurite):
    import importlib.util

    import aiohttp
    from aiohttp import web

    spec = importlib.util.spec_from_file_location("aiohttp_app", EXAMPLES / "aiohttp_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    queue_name = f"web-jobs-{uuid.uuid4().hex[:12]}"
    app = module.make_app(azurite.connection_string, queue_name)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            for i in range(3):
                async with http.post("/jobs", json={"job": i}) as resp:
                    assert resp.status == 202 and "id" in await resp.json()
            async with http.post("/jobs", data="not json") as resp:
                assert resp.status == 400
            async with http.post("/jobs", json={"blob": "x" * 70000}) as resp:
                assert resp.status == 413
            async with http.get("/jobs") as resp:
                assert (await resp.json())["approximate_length"] == 3
    finally:
        await runner.cleanup()
        async with QueueServiceClient.from_connection_string(azurite.connection_string) as service:
            await service.delete_queue(queue_name, missing_ok=True)
