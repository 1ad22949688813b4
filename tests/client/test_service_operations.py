"""Service-level operations against Azurite."""

import socket
import uuid

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver

from aioqueue import (
    CorsRule,
    Metrics,
    QueueAlreadyExists,
    QueueClient,
    QueueItem,
    QueueNotFound,
    QueueServiceClient,
    RetentionPolicy,
    ServiceProperties,
    ServiceStats,
)
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY


async def test_create_list_delete_queues(queue_service_client):
    prefix = f"ls{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i:02d}" for i in range(7)]
    for name in names:
        q = await queue_service_client.create_queue(name, metadata={"n": name[-2:]})
        assert isinstance(q, QueueClient) and q.queue_name == name
    listed = [item async for item in queue_service_client.list_queues(prefix=prefix, page_size=3)]
    assert [i.name for i in listed] == names  # three pages, followed transparently
    assert all(isinstance(i, QueueItem) and i.metadata == {} for i in listed)
    with_meta = [i async for i in queue_service_client.list_queues(prefix=prefix, include_metadata=True)]
    assert [i.metadata for i in with_meta] == [{"n": n[-2:]} for n in names]
    with pytest.raises(QueueAlreadyExists):
        await queue_service_client.create_queue(names[0], metadata={"n": "other"})
    for name in names:
        await queue_service_client.delete_queue(name)
    assert [i async for i in queue_service_client.list_queues(prefix=prefix)] == []
    with pytest.raises(QueueNotFound):
        await queue_service_client.delete_queue(names[0])
    await queue_service_client.delete_queue(names[0], missing_ok=True)


async def test_service_properties_round_trip(queue_service_client):
    original = await queue_service_client.get_service_properties()
    wanted = ServiceProperties(
        hour_metrics=Metrics(enabled=True, include_apis=True, retention_policy=RetentionPolicy(True, 3)),
        cors=(CorsRule(("https://app.example",), ("GET", "POST"), ("x-ms-meta-*",), ("x-ms-request-id",), 300),),
    )
    try:
        await queue_service_client.set_service_properties(wanted)
        got = await queue_service_client.get_service_properties()
        assert got.hour_metrics == wanted.hour_metrics
        assert got.cors == wanted.cors
    finally:
        await queue_service_client.set_service_properties(original)


async def test_setting_one_part_of_the_service_properties_leaves_the_others_alone(queue_service_client):
    original = await queue_service_client.get_service_properties()
    minute = Metrics(enabled=True, include_apis=False, retention_policy=RetentionPolicy(True, 2))
    try:
        await queue_service_client.set_service_properties(ServiceProperties(minute_metrics=minute))
        got = await queue_service_client.get_service_properties()
        assert got.minute_metrics == minute
        assert (got.analytics_logging, got.hour_metrics, got.cors) == (
            original.analytics_logging,
            original.hour_metrics,
            original.cors,
        )
    finally:
        await queue_service_client.set_service_properties(original)


async def test_service_properties_validation(queue_service_client):
    rule = CorsRule(("*",), ("GET",))
    with pytest.raises(ValueError, match="at most 5"):
        await queue_service_client.set_service_properties(ServiceProperties(cors=(rule,) * 6))
    with pytest.raises(ValueError, match="365"):
        await queue_service_client.set_service_properties(
            ServiceProperties(hour_metrics=Metrics(enabled=True, retention_policy=RetentionPolicy(True, 0)))
        )


async def test_service_stats_come_from_the_secondary(proxy):
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=None) as service:
        stats = await service.get_service_stats()
    assert isinstance(stats, ServiceStats)
    assert stats.geo_replication.status in {"live", "bootstrap", "unavailable"}
    # path-style URL: the secondary is the account name with -secondary
    [request] = proxy.seen
    path, _, query = request.path.partition("?")
    assert path == f"/{DEV_ACCOUNT}-secondary/"
    assert sorted(query.split("&")) == ["comp=stats", "restype=service"]


class _ToLoopback(AbstractResolver):
    """Resolves every host name to 127.0.0.1 (Azurite answers host-style account URLs too), and
    notes the names asked for."""

    def __init__(self):
        self.hosts = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.hosts.append(host)
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self):
        pass


async def test_service_stats_come_from_the_secondary_host_of_a_host_style_url(azurite):
    resolver = _ToLoopback()
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver)) as session,
        QueueServiceClient(
            f"http://{DEV_ACCOUNT}.queue.example.test:{azurite.port}", credential=DEV_KEY, session=session
        ) as service,
    ):
        stats = await service.get_service_stats()  # Azurite answers stats only on the secondary
    assert stats.geo_replication.status == "live"
    assert resolver.hosts == [f"{DEV_ACCOUNT}-secondary.queue.example.test"]


async def test_child_clients_share_the_pool(conn_str, queue_name):
    async with QueueServiceClient.from_connection_string(conn_str) as service:
        child = service.get_queue_client(queue_name)
        async with child:
            await child.create_queue()
        # the child closed itself, not the pool
        assert child.closed
        await service.delete_queue(queue_name)
        assert service._pool is child._pool
