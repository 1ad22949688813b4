"""What the large-payload tests share: a client with large payloads on a fresh queue and container."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aioqueue import BlobPayloads, QueueClient
from aioqueue._blob_operations import BlobOperations


def container_name() -> str:
    return f"payloads-{uuid.uuid4().hex[:12]}"


def blobs(queue: QueueClient) -> BlobOperations:
    """The Blob operations of a client with large payloads on."""
    store = queue._pool.payloads
    assert store is not None
    return store.blobs


@contextlib.asynccontextmanager
async def large_queue(conn_str: str, prefix: str, **payload_options: Any) -> AsyncIterator[QueueClient]:
    """A binary-encoded client with large payloads on a fresh queue (and container, unless the options
    name one); the queue and its poison queue are deleted afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:16]}"
    payloads = BlobPayloads(**{"container": container_name(), **payload_options})
    async with QueueClient.from_connection_string(
        conn_str, name, message_encoding="binary", large_payloads=payloads
    ) as queue:
        await queue.create_queue()
        await blobs(queue).create_container()
        try:
            yield queue
        finally:
            await queue.delete_queue(missing_ok=True)
            await queue._sibling(f"{name}-poison").delete_queue(missing_ok=True)
