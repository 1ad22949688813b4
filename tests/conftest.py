"""The suite runs against the real Azurite emulator, started once per session by aioqueue's own
pytest plugin (fixtures ``azurite``, ``queue_service_client``, ``queue_client``).

Here: ``proxy``, a fault-injecting proxy (tests/faults.py) in front of the session's emulator. A test
may override ``azurite`` (see test_soak.py) or pass options by indirect parametrisation:

    @pytest.mark.parametrize("proxy", [{"keepalive_timeout": 0.2}], indirect=True)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from aioqueue.testing import Azurite
from tests.faults import FaultProxy


@pytest.fixture
def conn_str(azurite: Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def queue_name() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest_asyncio.fixture
async def proxy(azurite: Azurite, request: pytest.FixtureRequest) -> AsyncIterator[FaultProxy]:
    """A FaultProxy in front of the emulator; ``proxy.url()`` is the account URL through it."""
    options = getattr(request, "param", {})
    async with FaultProxy(f"http://127.0.0.1:{azurite.port}", **options) as p:
        yield p
