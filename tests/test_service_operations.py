"""Service-level operations against Azurite."""

import uuid

import pytest

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


async def test_child_clients_share_the_pool(conn_str, queue_name):
    async with QueueServiceClient.from_connection_string(conn_str) as service:
        child = service.get_queue_client(queue_name)
        async with child:
            await child.create_queue()
        # the child closed itself, not the pool
        assert child.closed
        await service.delete_queue(queue_name)
        assert service._pool is child._pool
