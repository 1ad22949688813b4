"""The suite runs against the real Azurite emulator, started once per session by aioqueue's own
pytest plugin (fixtures ``azurite``, ``queue_service_client``, ``queue_client``), and, where a test
waits on the service's clock or on Azure's strictness, against :class:`~aioqueue.testing.FakeQueueService`.

Here: ``proxy``, a fault-injecting proxy (tests/faults.py) in front of the session's emulator; ``fake``,
a fresh FakeQueueService per test, and ``fake_queue``, a queue on it through the real client (no
Azurite: the unit tier). A test may override ``azurite`` (see transport/test_soak.py), pass options to
``proxy`` by indirect parametrisation, and to ``fake``'s FakeQueueService by a marker:

    @pytest.mark.parametrize("proxy", [{"keepalive_timeout": 0.2}], indirect=True)
    @pytest.mark.fake_options(clock="frozen")  # the service's time stands still; only advance() moves it

The suite comes in two tiers: a test that uses an emulator fixture (``EMULATOR_FIXTURES``), or sits in a
module marked ``pytestmark = pytest.mark.emulator`` (one that starts Azurite by other means), gets the
``emulator`` marker here; ``pytest -m "not emulator"`` is the unit tier, which needs no Node or Azurite.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from aioqueue import QueueClient
from aioqueue.testing import Azurite, FakeQueueService
from tests.faults import FaultProxy
from tests.helpers import FAST_RETRY

EMULATOR_FIXTURES = frozenset(
    {
        "azurite",
        "azurite_emulator",
        "azurite_factory",
        "queue_client",
        "queue_service_client",
        "queue_factory",
        "aioqueue_service",
        "conn_str",
        "proxy",
        "azurite_blob",
        "blob_proxy",
        "both_conn_str",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fake_options(**options): the FakeQueueService options of the fake fixture")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark every test that needs the emulator (before ``-m`` selects): the unit tier is ``-m "not emulator"``."""
    if EMULATOR_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.emulator)


@pytest.hookimpl(trylast=True)  # after pytest-randomly has shuffled them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` first (each group keeps its shuffled order): xdist's workers, given one
    test at a time (``--maxschedchunk 1``), then run the long ones side by side from the start and finish
    together, instead of one long test starting last and running alone."""
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


@pytest.fixture(scope="session")
def azurite_blob() -> Iterator[Azurite]:
    """Azurite's blob service for this session (large payloads), on a free port, started as the queue's."""
    with Azurite(service="blob") as emulator:
        yield emulator


@pytest.fixture
def both_conn_str(azurite: Azurite, azurite_blob: Azurite) -> str:
    """A connection string naming the session's queue and blob emulators."""
    return f"{azurite.connection_string};BlobEndpoint={azurite_blob.url}"


@pytest_asyncio.fixture
async def blob_proxy(azurite_blob: Azurite) -> AsyncIterator[FaultProxy]:
    """A FaultProxy in front of the blob emulator; ``blob_proxy.url()`` is the account URL through it."""
    async with FaultProxy(f"http://127.0.0.1:{azurite_blob.port}") as p:
        yield p
