"""The plugin's fake: ``fake_queue_service`` (a fresh FakeQueueService per test), and the switch that runs
the queue fixtures on it (``--aioqueue-service=fake``, the ini option ``aioqueue_service``) with no Azurite
started; a test asking for ``azurite`` still gets Azurite. Each run is a user's project in a pytest of its
own (tests/plugin's ``run_pytest``); a stand-in azurite-queue that leaves a file behind shows whether
Azurite was started."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugin import ROOT, azurite_tripwire, run_pytest

# the queue fixtures, as a user's suite uses them: on the fake when it is chosen
ON_THE_CHOSEN_SERVICE = """
    from aioqueue.testing import Azurite, FakeQueueService

    WANTED = {"fake": FakeQueueService, "azurite": Azurite}["CHOSEN"]

    async def test_the_queue_fixtures(aioqueue_service, queue_service_client, queue_client, queue_factory):
        assert isinstance(aioqueue_service, WANTED)
        for client in (queue_service_client, queue_client, await queue_factory(prefix="orders")):
            assert client.url.startswith(aioqueue_service.url), (client.url, aioqueue_service.url)
        await queue_client.send_message("on the chosen service")
        [msg] = await queue_client.peek_messages()
        assert msg.content == "on the chosen service"
"""

ONLY_ON_THE_FAKE = """
    from aioqueue.testing import FakeQueueService

    async def test_the_fake_is_the_tests_own(aioqueue_service, fake_queue_service, queue_client):
        assert aioqueue_service is fake_queue_service
        assert list(fake_queue_service.queues) == [queue_client.queue_name]  # nothing left by another test
        await queue_client.send_message("seen by the fake")
        view = fake_queue_service.queues[queue_client.queue_name]
        assert [m.content for m in view.messages] == ["seen by the fake"]

    async def test_another_test_has_another_fake(aioqueue_service, queue_service_client):
        assert isinstance(aioqueue_service, FakeQueueService)
        assert [q async for q in queue_service_client.list_queues()] == []
"""


def _on(chosen: str) -> str:
    return ON_THE_CHOSEN_SERVICE.replace("CHOSEN", chosen)


@pytest.mark.parametrize(
    ("config", "args"),
    [
        ({"pytest.ini": "[pytest]\nasyncio_mode = auto\naioqueue_service = fake\n"}, ()),
        ({"pyproject.toml": '[tool.pytest.ini_options]\nasyncio_mode = "auto"\naioqueue_service = "fake"\n'}, ()),
        # the command line over the ini option
        ({"pytest.ini": "[pytest]\nasyncio_mode = auto\naioqueue_service = azurite\n"}, ("--aioqueue-service=fake",)),
    ],
    ids=["ini", "pyproject", "command-line"],
)
def test_with_the_fake_chosen_the_queue_fixtures_run_on_it_and_azurite_never_starts(tmp_path, config, args):
    tripwire, started = azurite_tripwire(tmp_path)
    files = {
        **config,
        "test_chosen.py": _on("fake"),
        "test_fake.py": ONLY_ON_THE_FAKE,
    }
    result = run_pytest(tmp_path, files, *args, env={"AIOQUEUE_AZURITE": str(tripwire)})
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "3 passed" in result.stdout, output[-3000:]
    assert "aioqueue: queue fixtures on fake" in result.stdout  # the run's header says so
    assert not started.exists()


@pytest.mark.emulator
def test_by_default_the_queue_fixtures_run_on_azurite(tmp_path):
    files = {
        "pytest.ini": "[pytest]\nasyncio_mode = auto\n",
        "test_chosen.py": _on("azurite"),
    }
    result = run_pytest(tmp_path, files)
    assert result.returncode == 0 and "1 passed" in result.stdout, (result.stdout + result.stderr)[-3000:]
    assert "aioqueue: queue fixtures on azurite" in result.stdout


@pytest.mark.emulator
def test_a_test_asking_for_azurite_gets_it_with_the_fake_chosen(tmp_path):
    """The switch is for the queue fixtures; ``azurite`` always means the real emulator."""
    files = {
        "pytest.ini": "[pytest]\nasyncio_mode = auto\naioqueue_service = fake\n",
        "test_both.py": """
            from aioqueue.testing import Azurite, FakeQueueService

            async def test_both(azurite, queue_client, aioqueue_service):
                assert isinstance(azurite, Azurite) and isinstance(aioqueue_service, FakeQueueService)
                assert queue_client.url.startswith(aioqueue_service.url)
                assert azurite.port != aioqueue_service.port
        """,
    }
    result = run_pytest(tmp_path, files)
    assert result.returncode == 0 and "1 passed" in result.stdout, (result.stdout + result.stderr)[-3000:]


def test_a_test_asking_for_azurite_without_azurite_installed_says_how_to_install_it(tmp_path):
    """With the fake chosen and no Node.js, a test that needs Azurite errors saying what it needs; the
    others pass."""
    files = {
        "pytest.ini": "[pytest]\nasyncio_mode = auto\naioqueue_service = fake\n",
        # the package as installed in a site-packages with no node_modules above it (this checkout may have one)
        "conftest.py": "import aioqueue.testing\naioqueue.testing.__file__ = '/site-packages/aioqueue/testing.py'\n",
        "test_mixed.py": """
            async def test_on_the_fake(queue_client):
                await queue_client.send_message("x")

            def test_needs_azurite(azurite):
                pass
        """,
    }
    result = run_pytest(tmp_path, files, env={"AIOQUEUE_AZURITE": str(tmp_path / "nonexistent"), "PATH": ""})
    output = result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout, output[-3000:]
    assert "Azurite is not installed: run 'npm install azurite@3.35.0'" in result.stdout, output[-3000:]


def test_a_service_that_is_not_one_of_the_two_stops_the_run(tmp_path):
    files = {
        "pytest.ini": "[pytest]\nasyncio_mode = auto\naioqueue_service = moto\n",
        "test_nothing.py": "def test_nothing():\n    pass\n",
    }
    ini = run_pytest(tmp_path, files)
    assert ini.returncode == 4, ini.stdout + ini.stderr  # pytest's usage error
    assert "aioqueue_service must be one of azurite, fake; got 'moto'" in ini.stderr
    command_line = run_pytest(tmp_path, {"pytest.ini": "[pytest]\n"}, "--aioqueue-service=moto")
    assert command_line.returncode == 4, command_line.stdout + command_line.stderr
    assert "--aioqueue-service: invalid choice: 'moto'" in command_line.stderr


def test_without_pytest_asyncio_the_fake_fixture_says_what_to_install(tmp_path):
    files = {
        "test_user.py": """
            async def test_on_the_fake(fake_queue_service):
                pass

            async def test_on_the_switch(queue_client):
                pass
        """,
    }
    result = run_pytest(tmp_path, files, "-p", "no:asyncio", "--aioqueue-service=fake", block="pytest_asyncio")
    assert "2 error" in result.stdout, result.stdout[-3000:]
    assert result.stdout.count("pip install 'aioqueue-azure[testing]'") >= 2, result.stdout[-3000:]


# ---- the testing guide's example: a user's tests of a worker on the fake ----------------------------

GUIDE_EXAMPLE = ROOT / "examples" / "test_order_worker.py"


def test_the_guides_worker_tests_pass_on_the_fake_without_node_in_well_under_a_second(tmp_path):
    """docs/guide/testing.md shows examples/test_order_worker.py: a poison message (three failures, each
    followed by a minute's retry delay) and a message that expires after an hour. On the fake's clock each
    takes a fraction of a second (0.15 s and 0.01 s on an idle 2-core machine); in real time the first
    would take over three minutes. The bound below is generous, and still far below that."""
    tripwire, started = azurite_tripwire(tmp_path)
    files = {"pytest.ini": "[pytest]\nasyncio_mode = auto\n", GUIDE_EXAMPLE.name: GUIDE_EXAMPLE.read_text()}
    result = run_pytest(
        tmp_path,
        files,
        "--durations=0",
        "--durations-min=0",
        env={"AIOQUEUE_AZURITE": str(tripwire), "PATH": str(Path(tripwire).parent)},  # no node, no npm
    )
    assert result.returncode == 0 and "2 passed" in result.stdout, (result.stdout + result.stderr)[-3000:]
    calls = {
        line.split()[2].split("::")[1]: float(line.split()[0].rstrip("s"))
        for line in result.stdout.splitlines()
        if line[:1].isdigit() and line.split()[1:2] == ["call"]
    }
    assert set(calls) == {
        "test_a_malformed_order_ends_in_the_poison_queue",
        "test_an_order_nobody_takes_within_its_hour_expires",
    }, result.stdout
    assert all(seconds < 10 for seconds in calls.values()), calls
    assert not started.exists()
