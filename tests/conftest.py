"""The suite runs against the real Azurite emulator, started once per session by aioqueue's own
pytest plugin (fixtures ``azurite``, ``queue_service_client``, ``queue_client``)."""

import uuid

import pytest


@pytest.fixture
def conn_str(azurite):
    return azurite.connection_string


@pytest.fixture
def queue_name():
    return f"t-{uuid.uuid4().hex[:16]}"
