"""The local emulator as a newcomer meets it: `aioqueue emulator` (--port, --location, Azurite not
installed), `--emulator --port`, and local_connection_string saying what it uses (the quickstart's first
line)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from aioqueue import AioQueueError, QueueClient, testing
from aioqueue.cli import main
from aioqueue.testing import Azurite, local_connection_string
from tests.cli import SCRIPT

NOT_INSTALLED = (
    "Azurite is not installed: run 'npm install azurite@3.35.0' in your project "
    "(or set AIOQUEUE_AZURITE to the path of azurite-queue)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_emulator_command_without_azurite_is_a_usage_error(monkeypatch, capsys) -> None:
    """Exit 2, as for every other thing to install or configure first (it was 1, a service error)."""

    def not_installed(executable: str | None = None) -> str:
        raise AioQueueError(NOT_INSTALLED)  # what find_azurite says when it finds nothing

    monkeypatch.setattr(testing, "find_azurite", not_installed)
    assert main(["emulator"], out=io.StringIO()) == 2
    assert capsys.readouterr().err == f"aioqueue: {NOT_INSTALLED}\n"
    assert main(["emulator", "--json"], out=io.StringIO()) == 2
    assert json.loads(capsys.readouterr().err) == {"error": NOT_INSTALLED, "exit": 2, "type": "ConfigurationError"}


def test_emulator_with_port_talks_to_the_emulator_on_that_port(azurite: Azurite, queue_name: str, capsys) -> None:
    port = str(azurite.port)
    assert main(["--emulator", "--port", port, "create", queue_name], out=io.StringIO()) == 0
    out = io.StringIO()
    assert main(["props", queue_name, "--emulator", "--port", port, "--json"], out=out) == 0
    assert json.loads(out.getvalue())["name"] == queue_name


def test_emulator_with_port_says_how_to_start_one_there(capsys) -> None:
    port = free_port()
    assert main(["--emulator", "--port", str(port), "queues"], out=io.StringIO()) == 1
    assert f"start one with 'aioqueue emulator --port {port}'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--port", "10002", "--connection-string", "UseDevelopmentStorage=true", "queues"], "--port"),
        (["--emulator", "--port", "0", "queues"], "--port"),
    ],
)
def test_port_goes_with_emulator(argv: list[str], words: str, capsys) -> None:
    assert main(argv, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("aioqueue: ") and words in err and "--emulator" in err


def run_emulator_command(*argv: str) -> tuple[subprocess.Popen[str], str]:
    """``aioqueue emulator ARGV`` in the background; the process and its connection string."""
    proc = subprocess.Popen(
        [str(SCRIPT), "emulator", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    second = proc.stdout.readline()
    if not second.startswith("connection string: "):
        proc.kill()
        raise AssertionError(f"{first}{second}{proc.communicate()}")
    return proc, first + second.split(": ", 1)[1].strip()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0


@pytest.mark.emulator
@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="SIGTERM")
def test_the_emulator_command_keeps_data_on_disk_with_location(tmp_path: Path, queue_name: str) -> None:
    """Queues and messages outlive the emulator with --location (as after the real service's restart);
    without it, the emulator says it keeps them in memory."""
    data = tmp_path / "azurite-data"
    proc, started = run_emulator_command("--port", "0", "--location", str(data))
    try:
        banner, conn_str = started.splitlines()
        assert f"(data in {data}" in banner
        assert main(["--connection-string", conn_str, "create", queue_name], out=io.StringIO()) == 0
        assert main(["--connection-string", conn_str, "send", queue_name, "kept"], out=io.StringIO()) == 0
    finally:
        stop(proc)
    proc, started = run_emulator_command("--port", "0", "--location", str(data))
    try:
        conn_str = started.splitlines()[1]
        out = io.StringIO()
        assert main(["--connection-string", conn_str, "--json", "peek", queue_name], out=out) == 0
        assert [m["content"] for m in json.loads(out.getvalue())] == ["kept"]
    finally:
        stop(proc)
    proc, started = run_emulator_command("--port", "0")
    stop(proc)
    assert "(in memory" in started.splitlines()[0]


# ---- local_connection_string (the quickstart's): it says what it talks to --------------------


async def test_local_connection_string_says_it_uses_the_environment(azurite: Azurite, monkeypatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    said: list[str] = []
    async with local_connection_string(report=said.append) as conn_str:
        assert conn_str == azurite.connection_string
    assert said == [f"using $AZURE_STORAGE_CONNECTION_STRING: {azurite.url}"]


async def test_local_connection_string_says_it_found_a_running_emulator(
    azurite: Azurite, queue_name: str, monkeypatch
) -> None:
    """Whatever answers on the port is used, as before, but no longer silently."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    said: list[str] = []
    async with local_connection_string(port=azurite.port, report=said.append) as conn_str:
        queue = QueueClient.from_connection_string(conn_str, queue_name)
        async with queue:
            await queue.create_queue()
            await queue.delete_queue()
    assert said == [
        f"using the emulator already listening on 127.0.0.1:{azurite.port} "
        "(not started here: its queues and messages are its own, and it keeps running)"
    ]


@pytest.mark.emulator
async def test_local_connection_string_says_it_started_one(queue_name: str, monkeypatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    port = free_port()
    said: list[str] = []
    async with local_connection_string(port=port, report=said.append) as conn_str:
        queue = QueueClient.from_connection_string(conn_str, queue_name)
        async with queue:
            await queue.create_queue()
    assert said == [f"started Azurite on 127.0.0.1:{port} (in memory; stopped again at the end)"]
    assert not await asyncio.to_thread(testing._port_open, "127.0.0.1", port)  # and stopped it
