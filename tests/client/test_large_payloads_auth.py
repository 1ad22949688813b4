"""Large payloads (issue #27) under each credential: Entra ID tokens (Azurite's queue and blob services
with oauth over HTTPS) and account SAS (the permissions docs/guide/large-messages.md names, per step: the
queue fixtures' service and Azurite's blob service)."""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from aioqueue import (
    AuthenticationFailed,
    BlobPayloads,
    PayloadError,
    QueueClient,
    ReceivedMessage,
    generate_account_sas,
)
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY, Azurite
from tests.helpers import FakeCredential, mint_token, oauth_tls_args


@pytest.fixture(scope="module")
def https_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Azurite's queue and blob services with oauth over HTTPS (one trustme CA for both)."""
    tls, ca_file = oauth_tls_args(tmp_path_factory.mktemp("tls"))
    with Azurite(extra_args=tls) as queue, Azurite(service="blob", extra_args=tls) as blob:
        yield SimpleNamespace(
            queue_url=f"https://127.0.0.1:{queue.port}/{DEV_ACCOUNT}",
            blob_url=f"https://127.0.0.1:{blob.port}/{DEV_ACCOUNT}",
            ca_file=str(ca_file),
        )


@pytest.mark.emulator
async def test_a_large_message_round_trips_with_an_entra_id_token(https_pair: SimpleNamespace) -> None:
    ctx = ssl.create_default_context(cafile=https_pair.ca_file)
    container = f"payloads-{uuid.uuid4().hex[:12]}"
    payloads = BlobPayloads(container=container, endpoint=https_pair.blob_url)
    data = os.urandom(100 * 1024)
    got: list[bytes] = []

    async def handle(msg: ReceivedMessage) -> None:
        got.append(msg.content)

    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        QueueClient(
            https_pair.queue_url,
            f"large-{uuid.uuid4().hex[:16]}",
            credential=FakeCredential(),
            session=session,
            message_encoding="binary",
            large_payloads=payloads,
        ) as queue,
    ):
        await queue.create_queue()
        await queue.send_message(data)
        store = queue._pool.payloads
        assert store is not None
        [blob] = (await store.blobs.list_blobs(prefix=f"{queue.queue_name}/"))[0]
        assert blob.size == len(data)
        stats = await queue.process(handle, max_messages=1, idle_timeout=5)
        assert stats.processed == 1 and got == [data]
        assert (await store.blobs.list_blobs(prefix=f"{queue.queue_name}/"))[0] == []
        assert (await queue.get_queue_properties()).approximate_message_count == 0
        await queue.delete_queue()


@pytest.mark.emulator
async def test_the_blob_service_checks_the_token(https_pair: SimpleNamespace) -> None:
    """An expired token: the upload is refused (the blob side authenticates), so no message is sent."""

    class Expired(FakeCredential):
        async def get_token(self, *scopes: str, **kwargs: Any) -> SimpleNamespace:
            return mint_token(-30)

    ctx = ssl.create_default_context(cafile=https_pair.ca_file)
    payloads = BlobPayloads(container=f"payloads-{uuid.uuid4().hex[:12]}", endpoint=https_pair.blob_url)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        QueueClient(
            https_pair.queue_url, "never-made", credential=Expired(), session=session,
            message_encoding="binary", large_payloads=payloads,
        ) as queue,
    ):  # fmt: skip
        with pytest.raises(PayloadError) as info:
            await queue.send_message(os.urandom(100 * 1024))
    assert isinstance(info.value.__cause__, AuthenticationFailed)


# ---- account SAS: the permissions each step needs ---------------------------------------------


def _account_sas(permission: str) -> str:
    """An account SAS for the queue AND blob services (``ss=bq``), as the docs' permissions section
    says to make it (tests/auth/test_signing.py pins it against the official SDK's)."""
    return generate_account_sas(
        DEV_ACCOUNT, DEV_KEY, resource_types="sco", permission=permission, expiry=timedelta(hours=1), services="bq"
    )


def _client(service: Any, blob: Azurite, name: str, container: str, permission: str) -> QueueClient:
    """A client of the queue fixtures' service (Azurite, or the fake under the switch) with large payloads
    on Azurite's blob service, both under one account SAS."""
    payloads = BlobPayloads(container=container, endpoint=blob.url, block_size=64 * 1024)  # 100 KiB: two blocks
    sas = _account_sas(permission)
    return QueueClient(service.url, name, credential=sas, message_encoding="binary", large_payloads=payloads)


async def test_an_account_sas_with_the_documented_permissions_per_step(
    aioqueue_service: Any, azurite_blob: Azurite, queue_client: QueueClient
) -> None:
    """send: aw (a: Put Message; w: Create Container, Put Block, Put Block List); receive: rpd (r: Get
    Blob; p: Get Messages and Delete Message; d: Delete Blob); sweep: ld (List Blobs, Delete Blob)."""
    name, container = queue_client.queue_name, f"payloads-{uuid.uuid4().hex[:12]}"
    data = os.urandom(100 * 1024)
    async with _client(aioqueue_service, azurite_blob, name, container, "aw") as sender:
        await sender.send_message(data)
    got: list[bytes] = []

    async def handle(msg: ReceivedMessage) -> None:
        got.append(msg.content)

    async with _client(aioqueue_service, azurite_blob, name, container, "rpd") as receiver:
        stats = await receiver.process(handle, max_messages=1, idle_timeout=5)
        assert stats.processed == 1 and got == [data]
        assert receiver._pool.payloads is not None and receiver._pool.payloads.orphans == 0
    async with _client(aioqueue_service, azurite_blob, name, container, "ld") as sweeper:
        assert await sweeper.sweep_payloads() == 0
        assert (await sweeper._pool.payloads.blobs.list_blobs(prefix=f"{name}/"))[0] == []  # type: ignore[union-attr]


async def test_a_sas_without_write_fails_the_send_and_sends_nothing(
    aioqueue_service: Any, azurite_blob: Azurite, queue_client: QueueClient
) -> None:
    container = f"payloads-{uuid.uuid4().hex[:12]}"
    async with _client(aioqueue_service, azurite_blob, queue_client.queue_name, container, "ac") as sender:
        with pytest.raises(PayloadError) as info:
            await sender.send_message(os.urandom(100 * 1024))  # Put Block needs w
    assert isinstance(info.value.__cause__, AuthenticationFailed)
    assert "AuthorizationPermissionMismatch" in str(info.value)
    assert await queue_client.peek_messages() == []


async def test_a_sas_without_delete_handles_the_message_and_leaves_a_counted_orphan(
    aioqueue_service: Any, azurite_blob: Azurite, queue_client: QueueClient, caplog: pytest.LogCaptureFixture
) -> None:
    name, container = queue_client.queue_name, f"payloads-{uuid.uuid4().hex[:12]}"
    async with _client(aioqueue_service, azurite_blob, name, container, "aw") as sender:
        await sender.send_message(os.urandom(100 * 1024))
    got: list[bytes] = []

    async def handle(msg: ReceivedMessage) -> None:
        got.append(msg.content)

    async with _client(aioqueue_service, azurite_blob, name, container, "rp") as receiver:
        stats = await receiver.process(handle, max_messages=1, idle_timeout=5)
        assert stats.processed == 1 and len(got) == 1
        store = receiver._pool.payloads
        assert store is not None and store.orphans == 1
    assert "left as an orphan" in caplog.text and "AuthorizationPermissionMismatch" in caplog.text
    assert await queue_client.peek_messages() == []


async def test_a_sas_without_list_fails_the_sweep(
    aioqueue_service: Any, azurite_blob: Azurite, queue_client: QueueClient
) -> None:
    container = f"payloads-{uuid.uuid4().hex[:12]}"
    async with _client(aioqueue_service, azurite_blob, queue_client.queue_name, container, "rwd") as sweeper:
        with pytest.raises(AuthenticationFailed, match="AuthorizationPermissionMismatch"):
            await sweeper.sweep_payloads()


@pytest.mark.parametrize("how", ["process", "receive", "receive_batches", "receive_messages"])
async def test_a_sas_without_read_stops_the_consumer_and_keeps_the_message(
    aioqueue_service: Any,
    azurite_blob: Azurite,
    queue_client: QueueClient,
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without ``r`` the payload's Get Blob is refused (403): no retry fixes that, so it is raised, as
    a 403 on the queue is (the worker or stream ends), and the message is visible again at once."""
    name, container = queue_client.queue_name, f"payloads-{uuid.uuid4().hex[:12]}"
    data = os.urandom(100 * 1024)
    async with _client(aioqueue_service, azurite_blob, name, container, "aw") as sender:
        await sender.send_message(data)

    async def handle(msg: ReceivedMessage) -> None:
        raise AssertionError("a message whose payload was never fetched reached the handler")

    async with _client(aioqueue_service, azurite_blob, name, container, "pud") as receiver:  # no r
        with pytest.raises(AuthenticationFailed, match="AuthorizationPermissionMismatch") as caught:
            if how == "process":
                await receiver.process(handle, idle_timeout=5)
            elif how == "receive":
                async for msg in receiver.receive(idle_timeout=5):
                    await handle(msg)
            elif how == "receive_batches":
                async for batch in receiver.receive_batches(idle_timeout=5):
                    await handle(batch[0])
            else:
                await receiver.receive_messages()
    assert any(f"{container}/{name}/" in note for note in getattr(caught.value, "__notes__", [f"{container}/{name}/"]))
    if how != "receive_messages":  # (which raises it straight to its caller)
        assert "trying again will not help" in caplog.text
    (left,) = await queue_client.peek_messages()  # visible again at once: not lost, not poisoned
    assert left.dequeue_count == 1
    async with _client(aioqueue_service, azurite_blob, name, container, "rpud") as reader:
        (whole,) = await reader.receive_messages()
        assert whole.content == data
        await reader.delete_message(whole)
