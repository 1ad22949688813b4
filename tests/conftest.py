"""The suite runs against the real Azurite emulator, started once per session by aioqueue's own
pytest plugin (fixtures ``azurite``, ``queue_service_client``, ``queue_client``), and, where a test
waits on the service's clock or on Azure's strictness, against :class:`~aioqueue.testing.FakeQueueService`.

Here: ``proxy``, a fault-injecting proxy (tests/faults.py) in front of the queue fixtures' service;
``fake``, a fresh FakeQueueService per test, and ``fake_queue``, a queue on it through the real client
(no Azurite: the unit tier); ``azurite_queue``, a queue on the session's Azurite whatever the switch says,
and Azurite's blob service (``azurite_blob``, ``blob_proxy``, ``both_conn_str``) for large payloads. A test
may pass options to ``proxy`` by indirect parametrisation, and to ``fake``'s FakeQueueService by a marker:

    @pytest.mark.parametrize("proxy", [{"keepalive_timeout": 0.2}], indirect=True)
    @pytest.mark.fake_options(clock="frozen")  # the service's time stands still; only advance() moves it

One service per test. The queue fixtures (``SWITCHED_FIXTURES``) run on Azurite, or with
``--aioqueue-service=fake`` on the test's FakeQueueService; ``azurite`` always means Azurite. A test
that takes both would talk to two services under the switch (a queue made on one, looked for on the
other), so it is refused before it runs (``mixes_queue_services``): a test that needs *a* Queue service
takes the queue fixtures (``aioqueue_service``, ``conn_str``); one about Azurite itself takes only
Azurite's (``azurite``, ``azurite_queue``).

Two tiers: ``emulator`` marks the tests that need Azurite (and so Node.js) in this run
(``needs_azurite``): those that take an Azurite fixture (``AZURITE_FIXTURES``), and by default those
that take a queue fixture; with the fake chosen, the queue fixtures need no Azurite. A module that starts
Azurite by other means says so itself (``pytestmark = pytest.mark.emulator``). ``pytest -m "not
emulator"`` is the unit tier, which needs no Node or Azurite (with ``--aioqueue-service=fake``: all but
the tests that need Azurite itself).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from aioqueue import QueueClient
from aioqueue.testing import Azurite, FakeQueueService, chosen_service
from tests.faults import FaultProxy
from tests.helpers import FAST_RETRY

QUEUE_FIXTURES = ("aioqueue_service", "queue_service_client", "queue_client", "queue_factory", "conn_str", "proxy")
"""On the queue fixtures' service (each stands on the plugin's ``aioqueue_service``): Azurite by default,
the test's FakeQueueService with ``--aioqueue-service=fake``."""
AZURITE_QUEUE_FIXTURES = ("azurite_emulator", "azurite", "azurite_queue")
"""On the session's Azurite queue service whatever the switch says (each stands on ``azurite_emulator``)."""
AZURITE_FIXTURES = frozenset({"azurite_emulator", "azurite_factory", "azurite_blob"})
"""What starts Azurite whatever the switch says: its queue service, more emulators, its blob service
(``azurite``, ``azurite_queue``, ``blob_proxy`` and ``both_conn_str`` stand on them)."""


def needs_azurite(fixturenames: Iterable[str], service: str) -> bool:
    """Does a test with these fixtures (its whole closure) need Azurite when the queue fixtures run on
    ``service``? (The plugin's ``aioqueue_service`` asks for Azurite at run time: ``azurite_emulator`` is
    not in its closure.)"""
    names = set(fixturenames)
    return bool(names & AZURITE_FIXTURES) or (service == "azurite" and QUEUE_FIXTURES[0] in names)


def mixes_queue_services(fixturenames: Iterable[str]) -> list[str]:
    """The fixtures by which a test would reach two Queue services under the switch (a queue fixture
    and the session's Azurite beside it); empty when it reaches one."""
    names = set(fixturenames)
    if QUEUE_FIXTURES[0] not in names or AZURITE_QUEUE_FIXTURES[0] not in names:
        return []
    return [name for name in (*QUEUE_FIXTURES, *AZURITE_QUEUE_FIXTURES) if name in names]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--emulator-tier-under",
        action="append",
        default=[],
        metavar="PATH",
        help="run the tests that need Azurite only under PATH (repeatable); the unit tier runs everywhere: "
        "one pytest run gives both tiers of a chosen part (noxfile.py: the other Pythons' share)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fake_options(**options): the FakeQueueService options of the fake fixture")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each test that needs Azurite in this run (before ``-m`` selects): the unit tier is ``-m "not emulator"``."""
    if needs_azurite(getattr(item, "fixturenames", ()), chosen_service(item.config)):
        item.add_marker(pytest.mark.emulator)


@pytest.hookimpl(tryfirst=True)  # before any fixture is set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Refuse a test that takes a queue fixture and the session's Azurite beside it (see the module's docstring)."""
    mixed = mixes_queue_services(getattr(item, "fixturenames", ()))
    if mixed:
        pytest.fail(
            f"{item.nodeid} takes {', '.join(mixed)}: with --aioqueue-service=fake these are two Queue services. "
            "Take aioqueue_service or conn_str for a Queue service, or only Azurite's fixtures "
            "(azurite, azurite_queue) for a test about Azurite itself.",
            pytrace=False,
        )


def outside_emulator_tier(items: list[pytest.Item], under: list[str]) -> list[pytest.Item]:
    """The tests ``--emulator-tier-under`` leaves out: those that need Azurite (marked ``emulator``) whose
    path is under none of ``under`` (paths as the command line gives them, relative to the root)."""
    if not under:
        return []
    inside = tuple(path.rstrip("/") + end for path in under for end in ("/", "::"))
    return [item for item in items if item.get_closest_marker("emulator") and not item.nodeid.startswith(inside)]


@pytest.hookimpl(trylast=True)  # after pytest-randomly has shuffled them
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out what ``--emulator-tier-under`` says; then the tests marked ``slow`` first (each group keeps
    its shuffled order): xdist's workers, given one test at a time (``--maxschedchunk 1``), then run the
    long ones side by side from the start and finish together, instead of one long test starting last
    and running alone."""
    left_out = outside_emulator_tier(items, config.getoption("emulator_tier_under"))
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        dropped = set(map(id, left_out))
        items[:] = [item for item in items if id(item) not in dropped]
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def conn_str(aioqueue_service: Any) -> str:
    """The connection string of what the queue fixtures run on (Azurite, or with ``--aioqueue-service=fake``
    the test's FakeQueueService), so a second client reaches the queue ``queue_client`` made."""
    return str(aioqueue_service.connection_string)


@pytest.fixture
def queue_name() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest_asyncio.fixture
async def proxy(aioqueue_service: Any, request: pytest.FixtureRequest) -> AsyncIterator[FaultProxy]:
    """A FaultProxy in front of what the queue fixtures run on; ``proxy.url()`` is the account URL through it."""
    options = getattr(request, "param", {})
    async with FaultProxy(f"http://127.0.0.1:{aioqueue_service.port}", **options) as p:
        yield p


@pytest_asyncio.fixture
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeQueueService]:
    """A fresh FakeQueueService (its options from the test's ``fake_options`` marker, if any)."""
    marker = request.node.get_closest_marker("fake_options")
    async with FakeQueueService(**(marker.kwargs if marker else {})) as service:
        yield service


@pytest_asyncio.fixture
async def fake_queue(fake: FakeQueueService, queue_name: str) -> AsyncIterator[QueueClient]:
    """A QueueClient (retries that wait milliseconds) on a new queue of ``fake``."""
    async with QueueClient.from_connection_string(fake.connection_string, queue_name, retry=FAST_RETRY) as queue:
        await queue.create_queue()
        yield queue


@pytest_asyncio.fixture
async def azurite_queue(azurite: Azurite, queue_name: str) -> AsyncIterator[QueueClient]:
    """A QueueClient on a new queue of the session's Azurite, whatever ``--aioqueue-service`` says: for a
    test about Azurite itself (never beside the queue fixtures: one service per test). Deleted afterwards."""
    async with QueueClient.from_connection_string(azurite.connection_string, queue_name) as queue:
        await queue.create_queue()
        try:
            yield queue
        finally:
            await queue.delete_queue(missing_ok=True)


@pytest.fixture(scope="session")
def azurite_blob() -> Iterator[Azurite]:
    """Azurite's blob service for this session (large payloads), on a free port, started as the queue's."""
    with Azurite(service="blob") as emulator:
        yield emulator


@pytest.fixture
def both_conn_str(conn_str: str, azurite_blob: Azurite) -> str:
    """A connection string naming the queue fixtures' service (Azurite, or the test's FakeQueueService
    under the switch) and Azurite's blob service."""
    return f"{conn_str};BlobEndpoint={azurite_blob.url}"


@pytest_asyncio.fixture
async def blob_proxy(azurite_blob: Azurite) -> AsyncIterator[FaultProxy]:
    """A FaultProxy in front of the blob emulator; ``blob_proxy.url()`` is the account URL through it."""
    async with FaultProxy(f"http://127.0.0.1:{azurite_blob.port}") as p:
        yield p
