"""aioqueue.testing's own helpers, as a user of the module calls them: finding, starting and failing
to start Azurite, and the connection string for local work."""

import socket
import stat
import sys
from pathlib import Path

import pytest

from aioqueue import AioQueueError, QueueClient
from aioqueue.testing import Azurite, azurite, find_azurite, local_connection_string
from tests import fake_emulator
from tests.plugin import run_pytest


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.emulator
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


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for azurite-queue")
def test_find_azurite_looks_on_path_last_and_says_how_to_install_it(tmp_path, monkeypatch):
    import aioqueue.testing

    # the package installed in a site-packages with no node_modules above it, run from a folder
    # without one either, and no $AIOQUEUE_AZURITE
    monkeypatch.setattr(aioqueue.testing, "__file__", str(tmp_path / "site-packages" / "aioqueue" / "testing.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOQUEUE_AZURITE", raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(AioQueueError, match=r"npm install azurite@[\d.]+.*AIOQUEUE_AZURITE"):
        find_azurite()
    on_path = _script(bin_dir / "azurite-queue", "exit 0")
    assert find_azurite() == str(on_path)


@pytest.mark.skipif(sys.platform == "win32", reason="signals")
def test_kill_ends_the_emulator_at_once_and_start_runs_it_again(tmp_path):
    script = fake_emulator.listening(tmp_path / "azurite-queue", ignore_sigterm=True)
    emulator = Azurite(executable=str(script), startup_timeout=30)
    emulator.kill()  # nothing started yet: nothing to do
    emulator.start()
    first = fake_emulator.pid_of(script)
    assert fake_emulator.is_running(first)
    emulator.kill()  # SIGKILL: no chance to ignore it, as after a crash
    assert not fake_emulator.is_running(first)
    emulator.kill()  # again: harmless
    assert emulator.wait() == 0  # nothing left to wait for
    emulator.start()
    try:
        second = fake_emulator.pid_of(script)
        assert second != first and fake_emulator.is_running(second)
    finally:
        emulator.kill()
    assert not fake_emulator.is_running(second)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="signals")
def test_stop_kills_an_emulator_that_ignores_sigterm(tmp_path):
    """stop() asks politely, waits 10 s, then kills: it never returns with the emulator still up."""
    script = fake_emulator.listening(tmp_path / "azurite-queue", ignore_sigterm=True)
    with Azurite(executable=str(script), startup_timeout=30):
        pid = fake_emulator.pid_of(script)
        assert fake_emulator.is_running(pid)
    assert not fake_emulator.is_running(pid)


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for azurite-queue")
def test_an_emulator_that_never_answers_is_an_error_and_is_stopped(tmp_path):
    script = fake_emulator.announcing_a_closed_port(tmp_path / "azurite-queue")
    emulator = Azurite(executable=str(script), startup_timeout=3)
    try:
        with pytest.raises(AioQueueError, match=r"Azurite did not answer on 127\.0\.0\.1:\d+"):
            emulator.start()
        assert not fake_emulator.is_running(fake_emulator.pid_of(script))
    finally:
        emulator.kill()  # the cleanup the caller should not need


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for azurite-queue")
def test_the_start_error_quotes_the_last_lines_of_a_talkative_emulator(tmp_path):
    chatty = _script(
        tmp_path / "azurite-queue",
        'for i in $(seq 1 300); do echo "loading extension $i"; done; echo "Error: listen EACCES"; exit 1',
    )
    with pytest.raises(AioQueueError, match="Error: listen EACCES"):
        Azurite(executable=str(chatty), startup_timeout=30).start()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.emulator
async def test_local_connection_string_starts_the_emulator_only_when_none_runs(monkeypatch, queue_name):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    if _listening(10001):
        pytest.skip("something already listens on 127.0.0.1:10001")
    async with local_connection_string() as conn_str:
        assert conn_str == "UseDevelopmentStorage=true"
        assert _listening(10001)  # started here
        async with local_connection_string() as again:  # one runs now: used, not started a second time
            assert again == conn_str
        async with QueueClient.from_connection_string(conn_str, queue_name) as q:  # still up
            await q.create_queue()
            await q.send_message("local")
            assert [m.content for m in await q.peek_messages()] == ["local"]
    assert not _listening(10001)  # stopped on exit, by the block that started it


# ---- the pytest plugin, as a user's project runs it (a pytest of its own in a subprocess) --------


@pytest.mark.emulator
def test_without_pytest_asyncio_the_fixtures_say_what_to_install(tmp_path):
    """It was "fixture 'queue_client' not found", and no hint."""
    result = run_pytest(
        tmp_path,
        {"test_user.py": "async def test_uses_a_queue(queue_client):\n    await queue_client.send_message('x')\n"},
        "-p",
        "no:asyncio",
        block="pytest_asyncio",
    )
    assert result.returncode != 0
    assert "pip install 'aioqueue-azure[testing]'" in result.stdout, result.stdout[-2000:]
    assert "not found" not in result.stdout


@pytest.mark.emulator
def test_the_plugin_as_documented_runs_without_a_deprecation_warning(tmp_path):
    """pytest-asyncio warned on every run that asyncio_default_fixture_loop_scope is unset (issue #25,
    item 6): the plugin sets it, when the project leaves it unset, to what unset means."""
    result = run_pytest(
        tmp_path,
        {
            "pyproject.toml": '[tool.pytest.ini_options]\nasyncio_mode = "auto"\n',  # as docs/guide/testing.md
            "test_worker.py": """
                async def handler(msg):
                    pass

                async def test_my_handler_deletes_what_it_handles(queue_client):
                    await queue_client.send_messages(["a", "b"])
                    stats = await queue_client.process(handler, idle_timeout=0.5)
                    assert stats.processed == 2
            """,
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "1 passed" in result.stdout
    assert "PytestDeprecationWarning" not in output and "is unset" not in output, output[-3000:]
    assert "asyncio_default_fixture_loop_scope=fixture-scope" in result.stdout  # pytest-asyncio's header


def test_the_loop_scope_the_plugin_sets_changes_nothing(tmp_path):
    """A session-scoped async fixture keeps its session-scoped loop, as with the option unset ("function"
    would be a ScopeMismatch here, in a project that merely has aioqueue installed)."""
    result = run_pytest(
        tmp_path,
        {
            "pytest.ini": "[pytest]\nasyncio_mode = auto\n",
            "test_session.py": """
                import asyncio

                import pytest_asyncio

                @pytest_asyncio.fixture(scope="session")
                async def session_loop():
                    yield asyncio.get_running_loop()

                async def test_one(session_loop):
                    assert not session_loop.is_closed()

                async def test_two(session_loop):
                    assert not session_loop.is_closed()
            """,
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "2 passed" in result.stdout, output[-3000:]
    assert "PytestDeprecationWarning" not in output, output[-3000:]


def test_a_loop_scope_the_project_sets_is_kept(tmp_path):
    result = run_pytest(
        tmp_path,
        {
            "pytest.ini": "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = module\n",
            "test_nothing.py": "async def test_nothing():\n    pass\n",
        },
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "asyncio_default_fixture_loop_scope=module" in result.stdout


@pytest.mark.emulator
def test_queue_factory_makes_queues_with_options_and_deletes_them_and_their_poison_queues(tmp_path):
    result = run_pytest(
        tmp_path,
        {
            "pytest.ini": "[pytest]\nasyncio_mode = auto\n",
            "test_user.py": """
                import json
                from pathlib import Path

                from aioqueue import QueueServiceClient

                async def test_makes(queue_factory):
                    orders = await queue_factory(prefix="orders", message_encoding="json", retry=None)
                    plain = await queue_factory()
                    assert orders.queue_name.startswith("orders-") and plain.queue_name.startswith("test-")
                    await orders.send_message({"n": 1})
                    [msg] = await orders.peek_messages()
                    assert msg.content == {"n": 1}
                    await orders._sibling(orders.queue_name + "-poison").create_queue()
                    Path("made.json").write_text(json.dumps([orders.queue_name, plain.queue_name]))

                async def test_they_are_gone(azurite):
                    made = json.loads(Path("made.json").read_text())
                    async with QueueServiceClient.from_connection_string(azurite.connection_string) as service:
                        names = [q.name async for q in service.list_queues()]
                    assert not [n for n in names if any(n.startswith(m) for m in made)], names
            """,
        },
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


@pytest.mark.slow
@pytest.mark.emulator
def test_extra_azurite_arguments_come_from_an_ini_option(tmp_path):
    """--skipApiVersionCheck lets a version newer than Azurite knows through (it answers 400 otherwise)."""
    test = """
        from aioqueue import QueueClient

        async def test_newer_version(azurite):
            q = QueueClient.from_connection_string(azurite.connection_string, "vvv", api_version="2099-01-01")
            async with q:
                await q.create_queue()
    """
    ok = run_pytest(
        tmp_path,
        {
            "pytest.ini": "[pytest]\nasyncio_mode = auto\naioqueue_azurite_args = --skipApiVersionCheck\n",
            "test_v.py": test,
        },
    )
    assert ok.returncode == 0, ok.stdout[-3000:]
    refused = run_pytest(tmp_path, {"pytest.ini": "[pytest]\nasyncio_mode = auto\n", "test_v.py": test})
    assert refused.returncode != 0 and "InvalidHeaderValue" in refused.stdout


@pytest.mark.slow
@pytest.mark.emulator
def test_pytest_xdist_gives_each_worker_its_own_emulator(tmp_path):
    """Documented in docs/guide/testing.md: with -n N each worker process starts one emulator on a free port."""
    tests = "".join(
        f"""
async def test_{i}(queue_client, azurite):
    await queue_client.send_message("x")
    with open("ports.txt", "a") as f:
        f.write(f"{{os.getpid()}} {{azurite.port}}\\n")
"""
        for i in range(4)
    )
    result = run_pytest(
        tmp_path, {"pytest.ini": "[pytest]\nasyncio_mode = auto\n", "test_x.py": "import os\n" + tests}, "-n", "2"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    pairs = {tuple(line.split()) for line in (tmp_path / "ports.txt").read_text().splitlines()}
    workers = {pid for pid, _ in pairs}
    ports = {port for _, port in pairs}
    assert len(workers) == 2 and len(ports) == 2, pairs  # one emulator per worker, each on its own port


def test_azurite_factory_starts_more_emulators_with_options(azurite_factory, tmp_path):
    first = azurite_factory()
    second = azurite_factory(location=tmp_path)  # on disk, another port
    assert first.port != second.port
    for emulator in (first, second):
        with socket.create_connection((emulator.host, emulator.port), timeout=5):
            pass
