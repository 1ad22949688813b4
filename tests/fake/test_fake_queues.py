"""The fake service's queue and service operations, through the real clients (and raw requests where
the client hides the wire): create, exists, delete, metadata, access policies, listing with markers,
service properties and stats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from aioqueue import (
    AccessPolicy,
    CorsRule,
    Metrics,
    QueueAlreadyExists,
    QueueBeingDeleted,
    QueueClient,
    QueueNotFound,
    QueueServiceClient,
    RetentionPolicy,
    ServiceProperties,
)
from aioqueue.testing import FakeQueueService
from tests.fake.conftest import FAST_RETRY
from tests.fake.rawhttp import BOM, send


async def test_create_exists_and_delete_a_queue(fake: FakeQueueService, queue_name: str):
    async with QueueClient.from_connection_string(fake.connection_string, queue_name) as queue:
        assert not await queue.exists()
        assert await queue.create_queue(metadata={"Team": "a"}) is True
        assert await queue.exists()
        assert queue_name in fake.queues and fake.queues[queue_name].metadata == {"Team": "a"}
        assert await queue.delete_queue() is True
        assert not await queue.exists() and queue_name not in fake.queues
        assert await queue.delete_queue(missing_ok=True) is False
        with pytest.raises(QueueNotFound):
            await queue.delete_queue()


async def test_creating_an_existing_queue_is_204_with_the_same_metadata_and_409_with_other(
    fake: FakeQueueService, queue_name: str
):
    """Azure's answers (recordings QueueClientTests.CreateIfNotExistsAsync_Exists and
    ...CreateIfNotExistsAsync_ExistsDifferentMetadata)."""
    first = await send(fake, "PUT", f"/{queue_name}", headers={"x-ms-meta-a": "1"})
    same = await send(fake, "PUT", f"/{queue_name}", headers={"x-ms-meta-a": "1"})
    other = await send(fake, "PUT", f"/{queue_name}", headers={"x-ms-meta-a": "2"})
    assert (first.status, same.status, other.status) == (201, 204, 409)
    assert other.code == "QueueAlreadyExists" and other.headers["x-ms-error-code"] == "QueueAlreadyExists"
    async with QueueClient.from_connection_string(fake.connection_string, queue_name) as queue:
        assert await queue.create_queue(metadata={"a": "1"}, exist_ok=True) is False
        with pytest.raises(QueueAlreadyExists):
            await queue.create_queue(metadata={"a": "2"})


async def test_metadata_is_replaced_whole_and_counted_messages_are_reported(fake_queue: QueueClient):
    await fake_queue.set_queue_metadata({"Capital": "letter", "lower": "x"})
    await fake_queue.send_message("one")
    await fake_queue.send_message("two")
    properties = await fake_queue.get_queue_properties()
    assert properties.metadata == {"Capital": "letter", "lower": "x"}
    assert properties.approximate_message_count == 2
    await fake_queue.set_queue_metadata({"only": "this"})
    assert (await fake_queue.get_queue_properties()).metadata == {"only": "this"}
    await fake_queue.set_queue_metadata(None)
    assert (await fake_queue.get_queue_properties()).metadata == {}


async def test_metadata_names_must_be_identifiers(fake: FakeQueueService, queue_name: str):
    answer = await send(fake, "PUT", f"/{queue_name}", headers={"x-ms-meta-1bad": "x"})
    assert (answer.status, answer.code) == (400, "InvalidMetadata")
    big = {f"x-ms-meta-part{i}": "x" * 3000 for i in range(3)}  # 8 KiB of names and values at most
    too_big = await send(fake, "PUT", f"/{queue_name}", headers=big)
    assert (too_big.status, too_big.code) == (400, "MetadataTooLarge")


async def test_access_policies_round_trip_with_seven_digit_fractions(fake_queue: QueueClient, fake):
    start = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    policies = {
        "reader": AccessPolicy(permission="r", start=start, expiry=start + timedelta(hours=1)),
        "bare": None,
    }
    await fake_queue.set_queue_access_policy(policies)
    assert await fake_queue.get_queue_access_policy() == {
        "reader": AccessPolicy(permission="r", start=start, expiry=start + timedelta(hours=1)),
        "bare": AccessPolicy(permission=None, start=None, expiry=None),
    }
    raw = await send(fake, "GET", f"/{fake_queue.queue_name}", query={"comp": "acl"})
    assert b"<Start>2030-01-02T03:04:05.1234560Z</Start>" in raw.body  # as Azure writes it
    await fake_queue.set_queue_access_policy({})
    assert await fake_queue.get_queue_access_policy() == {}
    empty = await send(fake, "GET", f"/{fake_queue.queue_name}", query={"comp": "acl"})
    assert empty.body == BOM + b'<?xml version="1.0" encoding="utf-8"?><SignedIdentifiers />'


async def test_at_most_five_access_policies(fake_queue: QueueClient, fake):
    body = "".join(f"<SignedIdentifier><Id>p{i}</Id></SignedIdentifier>" for i in range(6))
    answer = await send(
        fake,
        "PUT",
        f"/{fake_queue.queue_name}",
        query={"comp": "acl"},
        body=f"<SignedIdentifiers>{body}</SignedIdentifiers>".encode(),
    )
    assert (answer.status, answer.code) == (400, "InvalidXmlDocument")


async def test_list_queues_pages_with_markers_and_prefix(fake: FakeQueueService):
    async with QueueServiceClient.from_connection_string(fake.connection_string, retry=FAST_RETRY) as service:
        for name in ("job-c", "job-a", "job-b", "other", "job-d", "job-e"):
            await service.create_queue(name, metadata={"name": name})
        names = [q.name async for q in service.list_queues(prefix="job-", page_size=2)]
        assert names == ["job-a", "job-b", "job-c", "job-d", "job-e"]
        with_metadata = [q async for q in service.list_queues(prefix="oth", include_metadata=True)]
        assert [(q.name, q.metadata) for q in with_metadata] == [("other", {"name": "other"})]
    page = await send(fake, "GET", "/", query={"comp": "list", "prefix": "job-", "maxresults": "2"})
    assert page.status == 200 and page.body.startswith(BOM)
    assert b"<Prefix>job-</Prefix><MaxResults>2</MaxResults>" in page.body
    assert b"<NextMarker>/devstoreaccount1/job-c</NextMarker>" in page.body  # Azure's marker: /<account>/<next>
    last = await send(fake, "GET", "/", query={"comp": "list", "prefix": "job-", "marker": "/devstoreaccount1/job-e"})
    assert b"<Queue><Name>job-e</Name></Queue></Queues><NextMarker /></EnumerationResults>" in last.body


async def test_a_marker_the_service_never_issued_is_refused(fake: FakeQueueService):
    """Azure: 400 OutOfRangeInput (recording ServiceClientTests.GetQueuesAsync_ErrorAsync)."""
    answer = await send(fake, "GET", "/", query={"comp": "list", "marker": "garbage"})
    assert (answer.status, answer.code) == (400, "OutOfRangeInput")
    assert answer.error["Message"].startswith("One of the request inputs is out of range.")


async def test_service_properties_keep_the_sections_a_set_leaves_out(fake: FakeQueueService):
    async with QueueServiceClient.from_connection_string(fake.connection_string) as service:
        before = await service.get_service_properties()
        assert before.hour_metrics is not None and not before.hour_metrics.enabled
        rule = CorsRule(
            allowed_origins=("https://a.example",),
            allowed_methods=("GET", "PUT"),
            allowed_headers=("x-ms-meta-*",),
            exposed_headers=(),
            max_age_in_seconds=500,
        )
        metrics = Metrics(version="1.0", enabled=True, include_apis=True, retention_policy=RetentionPolicy(True, 5))
        await service.set_service_properties(ServiceProperties(hour_metrics=metrics, cors=(rule,)))
        after = await service.get_service_properties()
        assert after.hour_metrics == metrics and after.cors == (rule,)
        assert after.analytics_logging == before.analytics_logging  # left out: kept
    rules = "<CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>GET</AllowedMethods></CorsRule>" * 6
    body = f"<StorageServiceProperties><Cors>{rules}</Cors></StorageServiceProperties>".encode()
    six = await send(fake, "PUT", "/", query={"restype": "service", "comp": "properties"}, body=body)
    assert (six.status, six.code) == (400, "InvalidXmlNodeValue")  # at most 5 CORS rules


async def test_service_stats_come_from_the_secondary_only(fake: FakeQueueService):
    async with QueueServiceClient.from_connection_string(fake.connection_string) as service:
        stats = await service.get_service_stats()
    assert stats.geo_replication.status == "live"
    primary = await send(fake, "GET", "/", query={"restype": "service", "comp": "stats"})
    assert (primary.status, primary.code) == (400, "InvalidQueryParameterValue")
    secondary_write = await send(fake, "PUT", "/anyqueue", account="devstoreaccount1-secondary")
    assert (secondary_write.status, secondary_write.code) == (403, "AuthorizationFailure")
    secondary_list = await send(fake, "GET", "/", query={"comp": "list"}, account="devstoreaccount1-secondary")
    assert secondary_list.status == 200


async def test_queue_names_are_checked(fake: FakeQueueService):
    assert (await send(fake, "PUT", "/Bad_Name")).code == "InvalidResourceName"
    assert (await send(fake, "PUT", "/a--b")).code == "InvalidResourceName"
    assert (await send(fake, "PUT", "/ab")).code == "OutOfRangeInput"
    assert (await send(fake, "PUT", "/" + "a" * 64)).code == "OutOfRangeInput"
    assert (await send(fake, "PUT", "/" + "a" * 63)).status == 201


async def test_a_missing_queue_is_404_queue_not_found_for_each_operation(fake: FakeQueueService):
    for method, path, query in [
        ("GET", "/nosuch", {"comp": "metadata"}),
        ("PUT", "/nosuch", {"comp": "metadata"}),
        ("GET", "/nosuch", {"comp": "acl"}),
        ("DELETE", "/nosuch", {}),
        ("GET", "/nosuch/messages", {}),
        ("GET", "/nosuch/messages", {"peekonly": "true"}),
        ("DELETE", "/nosuch/messages", {}),
        ("DELETE", "/nosuch/messages/abc", {"popreceipt": "x"}),
    ]:
        answer = await send(fake, method, path, query=query)
        assert (answer.status, answer.code) == (404, "QueueNotFound"), (method, path, query)
    answer = await send(fake, "HEAD", "/nosuch", query={"comp": "metadata"})
    assert (answer.status, answer.headers["x-ms-error-code"], answer.body) == (404, "QueueNotFound", b"")


async def test_a_deleted_queues_name_stays_taken_for_the_deletion_delay(queue_name: str):
    async with (
        FakeQueueService(clock="frozen", deletion_delay=timedelta(seconds=40)) as fake,
        QueueClient.from_connection_string(fake.connection_string, queue_name, retry=None) as queue,
    ):
        await queue.create_queue()
        await queue.delete_queue()
        assert not await queue.exists()
        with pytest.raises(QueueBeingDeleted):
            await queue.create_queue()
        fake.advance(timedelta(seconds=39))
        with pytest.raises(QueueBeingDeleted):
            await queue.create_queue(exist_ok=True)
        fake.advance(timedelta(seconds=1))
        assert await queue.create_queue() is True


async def test_access_policy_bodies_are_checked(fake_queue: QueueClient, fake: FakeQueueService):
    path = f"/{fake_queue.queue_name}"

    async def put(body: bytes):
        return await send(fake, "PUT", path, query={"comp": "acl"}, body=body)

    offset = b"<SignedIdentifiers><SignedIdentifier><Id>p</Id><AccessPolicy><Start>2030-01-01T01:00:00+01:00</Start>"
    assert (
        await put(offset + b"<Permission>ar</Permission></AccessPolicy></SignedIdentifier></SignedIdentifiers>")
    ).status == 204
    assert (await fake_queue.get_queue_access_policy())["p"].start == datetime(2030, 1, 1, tzinfo=timezone.utc)
    for bad in (
        b"<SignedIdentifiers><SignedIdentifier><Id>" + b"x" * 65 + b"</Id></SignedIdentifier></SignedIdentifiers>",
        b"<SignedIdentifiers><SignedIdentifier><Id>p</Id><AccessPolicy><Start>soon</Start></AccessPolicy>"
        b"</SignedIdentifier></SignedIdentifiers>",
        b"<SignedIdentifiers><SignedIdentifier><Id>p</Id><AccessPolicy><Permission>rwd</Permission></AccessPolicy>"
        b"</SignedIdentifier></SignedIdentifiers>",
    ):
        answer = await put(bad)
        assert (answer.status, answer.code) == (400, "InvalidXmlNodeValue"), bad
    assert (await put(b"")).status == 204  # no body: no policies
    assert await fake_queue.get_queue_access_policy() == {}


async def test_what_a_test_sees_of_a_queue(fake_queue: QueueClient, fake: FakeQueueService):
    await fake_queue.send_message("a")
    await fake_queue.send_message("b", visibility_timeout=60)
    view = fake.queues[fake_queue.queue_name]
    assert view.approximate_message_count == 2 and [m.visible for m in view.messages] == [True, False]
    assert fake.secondary_url == fake.url + "-secondary"
    page = await send(fake, "GET", "/", query={"comp": "list", "include": "metadata"})
    assert f"<Name>{fake_queue.queue_name}</Name><Metadata /></Queue>".encode() in page.body
    unknown = b"<DefaultServiceVersion>2025-11-05</DefaultServiceVersion>"  # a section the fake keeps no record of
    odd = b"<StorageServiceProperties>" + unknown + b"</StorageServiceProperties>"
    assert (await send(fake, "PUT", "/", query={"restype": "service", "comp": "properties"}, body=odd)).status == 202


async def test_the_service_starts_and_closes_once(queue_name: str):
    fake = FakeQueueService()
    assert await fake.start() is fake and await fake.start() is fake
    port = fake.port
    await fake.close()
    await fake.close()
    assert port > 0
    with pytest.raises(ValueError, match="deletion_delay"):
        FakeQueueService(deletion_delay=timedelta(seconds=-1))
    async with FakeQueueService() as taken:
        with pytest.raises(OSError):
            await FakeQueueService(port=taken.port).start()
