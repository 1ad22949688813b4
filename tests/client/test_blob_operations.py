"""The Blob operations large payloads use (aioqueue/_blob_operations.py), against Azurite's blob
service, through the queue client's transport, signing and retries; and the Blob endpoint a
connection string gives."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from aioqueue import QueueClient, ServiceError
from aioqueue._blob_operations import BlobOperations, check_container
from aioqueue._endpoint import derive_blob_url, parse_account_url, parse_connection_string
from aioqueue.testing import Azurite
from tests.faults import Fault, FaultProxy


def _blobs(queue: QueueClient, url: str, container: str | None = None) -> BlobOperations:
    http = queue._pool.http
    return BlobOperations(http.sibling(parse_account_url(url), http.credential), container or _name())


def _name() -> str:
    return f"c-{uuid.uuid4().hex[:16]}"


async def test_put_get_list_delete_round_trip(conn_str: str, azurite_blob: Azurite) -> None:
    async with QueueClient.from_connection_string(conn_str, "unused") as queue:
        blobs = _blobs(queue, azurite_blob.url)
        assert await blobs.create_container() is True
        assert await blobs.create_container() is False  # exist ok
        data = bytes(range(256)) * 40
        await blobs.put_blob("q/one", data, {"aioqueue_expires": "123"})
        got = bytearray()
        item = await blobs.download("q/one", got.extend, chunk_size=4096)
        assert bytes(got) == data and item.size == len(data)
        assert item.metadata == {"aioqueue_expires": "123"}
        props = await blobs.get_properties("q/one")
        assert props.size == len(data) and props.metadata["aioqueue_expires"] == "123"
        page, marker = await blobs.list_blobs(prefix="q/")
        assert [(b.name, b.size, b.metadata) for b in page] == [("q/one", len(data), {"aioqueue_expires": "123"})]
        assert marker is None
        assert await blobs.delete_blob("q/one") is True
        assert await blobs.delete_blob("q/one", missing_ok=True) is False
        with pytest.raises(ServiceError) as caught:
            await blobs.delete_blob("q/one")
        assert caught.value.status == 404


async def test_blocks_above_the_single_shot_size(conn_str: str, azurite_blob: Azurite) -> None:
    async with QueueClient.from_connection_string(conn_str, "unused") as queue:
        blobs = _blobs(queue, azurite_blob.url)
        await blobs.create_container()
        data = hashlib.sha256(b"x").digest() * 5000  # 160,000 bytes: 3 blocks of 64 KiB
        await blobs.upload("big", memoryview(data), block_size=65536, single_shot=65536, metadata={"k": "v"})
        chunks: list[bytes] = []
        item = await blobs.download("big", chunks.append, chunk_size=50_000)
        assert b"".join(chunks) == data and [len(c) for c in chunks] == [50_000, 50_000, 50_000, 10_000]
        assert item.metadata == {"k": "v"}


async def test_list_follows_markers(conn_str: str, azurite_blob: Azurite) -> None:
    async with QueueClient.from_connection_string(conn_str, "unused") as queue:
        blobs = _blobs(queue, azurite_blob.url)
        await blobs.create_container()
        for i in range(3):
            await blobs.put_blob(f"p/{i}", b"x")
        await blobs.put_blob("other", b"x")
        names, marker = [], None
        while True:
            page, marker = await blobs.list_blobs(prefix="p/", marker=marker, page_size=2)
            names += [b.name for b in page]
            if marker is None:
                break
        assert names == ["p/0", "p/1", "p/2"]


async def test_a_delete_whose_answer_was_lost_is_done(conn_str: str, blob_proxy: FaultProxy) -> None:
    """The first Delete Blob lands but its answer is lost; the retry's 404 is the call's success."""
    async with QueueClient.from_connection_string(conn_str, "unused") as queue:
        blobs = _blobs(queue, blob_proxy.url())
        await blobs.create_container()
        await blobs.put_blob("gone", b"x")
        blob_proxy.script(Fault("reset_after", method="DELETE"))
        assert await blobs.delete_blob("gone") is True
        assert [s.fault for s in blob_proxy.seen if s.method == "DELETE"] == ["reset_after", None]
        with pytest.raises(ServiceError):
            await blobs.get_properties("gone")


async def test_the_blob_sibling_refuses_once_the_client_is_closed(conn_str: str, azurite_blob: Azurite) -> None:
    queue = QueueClient.from_connection_string(conn_str, "unused")
    blobs = _blobs(queue, azurite_blob.url)
    await blobs.create_container()
    await queue.close()
    with pytest.raises(Exception, match="closed"):
        await blobs.put_blob("late", b"x")


def test_container_names_are_checked() -> None:
    assert check_container("payloads") == "payloads"
    for bad in ("Payloads", "a", "a--b", "-ab", 5):
        with pytest.raises(ValueError, match="container name"):
            check_container(bad)


def test_the_blob_endpoint_of_a_connection_string() -> None:
    assert parse_connection_string("UseDevelopmentStorage=true").blob_url == "http://127.0.0.1:10000/devstoreaccount1"
    key = "AccountKey=" + "a" * 88
    derived = parse_connection_string(f"AccountName=acct;{key};EndpointSuffix=core.chinacloudapi.cn")
    assert derived.blob_url == "https://acct.blob.core.chinacloudapi.cn"
    given = parse_connection_string(
        f"AccountName=acct;{key};QueueEndpoint=http://q.example/acct;BlobEndpoint=http://b.example/acct"
    )
    assert given.blob_url == "http://b.example/acct"
    assert parse_connection_string(f"AccountName=acct;{key};QueueEndpoint=http://q.example").blob_url is None


def test_the_blob_endpoint_beside_a_queue_url() -> None:
    assert derive_blob_url(parse_account_url("https://acct.queue.core.windows.net")) == (
        "https://acct.blob.core.windows.net"
    )
    assert derive_blob_url(parse_account_url("https://acct.z07.queue.storage.azure.net")) == (
        "https://acct.z07.blob.storage.azure.net"
    )
    assert derive_blob_url(parse_account_url("http://127.0.0.1:10001/devstoreaccount1")) == (
        "http://127.0.0.1:10000/devstoreaccount1"
    )
    assert derive_blob_url(parse_account_url("http://127.0.0.1:41234/devstoreaccount1")) is None
    assert derive_blob_url(parse_account_url("https://queues.example.com")) is None


def test_the_emulator_helper_runs_the_queue_or_the_blob_service() -> None:
    assert Azurite(service="blob").connection_string.endswith("BlobEndpoint=http://127.0.0.1:0/devstoreaccount1")
    with pytest.raises(ValueError, match="service"):
        Azurite(service="table")


async def test_a_default_sized_block_is_sent_without_aiohttps_large_body_warning(
    conn_str: str, azurite_blob: Azurite
) -> None:
    """A 4 MiB block (the default block_size) as raw bytes makes aiohttp warn (ResourceWarning, an
    error in this suite); the transport hands such a body over as a stream, as aiohttp asks."""
    async with QueueClient.from_connection_string(conn_str, "unused") as queue:
        blobs = _blobs(queue, azurite_blob.url)
        await blobs.create_container()
        data = hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32)
        await blobs.put_blob("q/big", data)
        got = bytearray()
        await blobs.download("q/big", got.extend, chunk_size=4 * 1024 * 1024)
        assert bytes(got) == data
