"""The suite's tiers and its one-service rule (tests/conftest.py), in both modes of the switch: ``emulator``
marks exactly the tests that need Azurite in the run, and a test that takes a queue fixture beside the
session's Azurite is refused before any fixture starts. Each run is a small suite using tests/conftest.py,
in a pytest of its own; a stand-in azurite-queue shows that nothing started Azurite."""

from __future__ import annotations

import pytest

from tests.plugin import azurite_tripwire, run_pytest

SUITE = {
    "pytest.ini": "[pytest]\nasyncio_mode = auto\nmarkers =\n    emulator: needs Azurite\n",
    "conftest.py": 'pytest_plugins = ["tests.conftest"]\n',
    "test_tiers.py": """
        import pytest

        async def test_queue_client(queue_client): pass
        async def test_queue_factory(queue_factory): pass
        async def test_conn_str(conn_str): pass
        async def test_proxy(proxy): pass
        async def test_payloads(both_conn_str): pass
        def test_azurite(azurite): pass
        async def test_azurite_queue(azurite_queue): pass
        async def test_blob_proxy(blob_proxy): pass
        async def test_fake_queue(fake_queue): pass
        def test_nothing(): pass
    """,
    "test_own_proxy.py": """
        import pytest

        @pytest.fixture
        def proxy():  # a module's own proxy, in front of no service of the switch (as the soak's)
            return "its own"

        def test_with_its_own_proxy(proxy): pass
    """,
}
ALWAYS = ["test_payloads", "test_azurite", "test_azurite_queue", "test_blob_proxy"]
SWITCHED = ["test_queue_client", "test_queue_factory", "test_conn_str", "test_proxy"]


def _selected(tmp_path, *args: str) -> list[str]:
    result = run_pytest(tmp_path, SUITE, "--collect-only", "-q", "-m", "emulator", *args)
    assert result.returncode in (0, 5), result.stdout + result.stderr  # 5: none selected
    return sorted(line.rpartition("::")[2] for line in result.stdout.splitlines() if "::" in line)


@pytest.mark.parametrize(
    ("args", "expected"), [((), sorted(ALWAYS + SWITCHED)), (("--aioqueue-service=fake",), sorted(ALWAYS))]
)
def test_emulator_marks_the_tests_that_need_azurite_in_the_run(tmp_path, args, expected):
    assert _selected(tmp_path, *args) == expected


def test_a_queue_fixture_beside_the_sessions_azurite_is_refused_before_any_fixture(tmp_path):
    tripwire, started = azurite_tripwire(tmp_path)
    files = {
        **SUITE,
        "test_tiers.py": """
            async def test_two_services(queue_client, azurite): pass
            async def test_payloads_beside_azurite(both_conn_str, azurite_queue): pass
            async def test_one_service(fake_queue): pass
        """,
    }
    result = run_pytest(tmp_path, files, "--aioqueue-service=fake", env={"AIOQUEUE_AZURITE": str(tripwire)})
    output = result.stdout + result.stderr
    assert "2 passed, 2 errors" in result.stdout, output[-3000:]
    # each refusal as the ERRORS section prints it (the short summary repeats it in full where CI is set,
    # since pytest truncates its summary lines only outside CI)
    refused = [
        line
        for line in result.stdout.splitlines()
        if "these are two Queue services" in line and not line.startswith("ERROR ")
    ]
    assert len(refused) == 2, output[-3000:]
    assert (
        "test_two_services takes aioqueue_service, queue_service_client, queue_client, azurite_emulator, azurite:"
        in refused[0]
    )
    assert (
        "test_payloads_beside_azurite takes aioqueue_service, conn_str, azurite_emulator, azurite, azurite_queue:"
        in refused[1]
    )
    assert not started.exists()


def test_emulator_tier_under_leaves_out_the_tests_needing_azurite_elsewhere(tmp_path):
    """One run of both tiers of a chosen part (noxfile.py): the unit tier everywhere, the emulator tier
    only under the paths given (a folder, a module)."""
    (tmp_path / "chosen").mkdir()
    files = {**SUITE, "chosen/test_chosen.py": "def test_chosen_azurite(azurite): pass\ndef test_chosen_unit(): pass\n"}
    args = ("--collect-only", "-q", "--emulator-tier-under=chosen/", "--emulator-tier-under=test_own_proxy.py")
    result = run_pytest(tmp_path, files, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    kept = sorted(line.rpartition("::")[2] for line in result.stdout.splitlines() if "::" in line)
    unit = ["test_chosen_unit", "test_fake_queue", "test_nothing", "test_with_its_own_proxy"]
    assert kept == sorted(["test_chosen_azurite", *unit])
    assert f"{len(ALWAYS + SWITCHED)} deselected" in result.stdout
