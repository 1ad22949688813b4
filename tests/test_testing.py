"""aioqueue.testing's own helpers, as a user of the module calls them: finding, starting and failing
to start Azurite, and the connection string for local work."""

import stat
import sys
from pathlib import Path

import pytest

from aioqueue import AioQueueError, QueueClient
from aioqueue.testing import Azurite, azurite, find_azurite, local_connection_string


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


async def test_azurite_yields_a_working_connection_string(queue_name):
    async with azurite() as conn_str, QueueClient.from_connection_string(conn_str, queue_name) as q:
        await q.create_queue()
        await q.send_message("on a fresh emulator")
        assert [m.content for m in await q.peek_messages()] == ["on a fresh emulator"]


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for azurite-queue")
def test_an_emulator_that_exits_at_once_is_a_clear_error(tmp_path):
    broken = _script(tmp_path / "azurite-queue", 'echo "Error: listen EADDRINUSE 127.0.0.1"; exit 1')
    emulator = Azurite(executable=str(broken), startup_timeout=30)
    with pytest.raises(AioQueueError, match="Azurite did not start: Error: listen EADDRINUSE"):
        emulator.start()
    assert emulator.wait() == 0  # nothing left running
    emulator.stop()  # stopping again is harmless


@pytest.mark.skipif(sys.platform == "win32", reason="executable bits")
def test_find_azurite_takes_the_given_path_then_the_environment(tmp_path, monkeypatch):
    given = _script(tmp_path / "given", "exit 0")
    from_env = _script(tmp_path / "from-env", "exit 0")
    not_executable = tmp_path / "plain-file"
    not_executable.write_text("")
    monkeypatch.setenv("AIOQUEUE_AZURITE", str(from_env))
    assert find_azurite(str(given)) == str(given)
    assert find_azurite() == str(from_env)
    assert find_azurite(str(not_executable)) == str(from_env)  # a file it cannot run is passed over


async def test_local_connection_string_prefers_the_environment(monkeypatch):
    monkeypatch.setenv("MY_QUEUE_CONNECTION", "UseDevelopmentStorage=true;from-env")
    async with local_connection_string("MY_QUEUE_CONNECTION") as conn_str:
        assert conn_str == "UseDevelopmentStorage=true;from-env"
