"""Types users rely on: checked by mypy (``./dev test`` type-checks tests/) and run against Azurite."""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator

import pytest

import aioqueue
from aioqueue import (
    BatchStream,
    MessageBatch,
    MessageStream,
    ProcessStats,
    QueueClient,
    QueueServiceClient,
    ReceivedMessage,
    SendMessagesError,
    SendReceipt,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type


async def test_context_managers_and_streams_are_typed_for_users(conn_str, queue_name):
    async with QueueServiceClient.from_connection_string(conn_str) as service:
        assert_type(service, QueueServiceClient)
        async with await service.create_queue(queue_name) as queue:
            assert_type(queue, QueueClient)
            receipt = await queue.send_message("typed")
            assert_type(receipt, SendReceipt)
            stream = queue.receive(max_messages=1, idle_timeout=5)
            assert_type(stream, MessageStream)
            iterator = stream.__aiter__()
            assert_type(iterator, AsyncGenerator[ReceivedMessage, None])
            message = await iterator.__anext__()
            async with message:
                assert message.content == "typed"
            await iterator.aclose()  # an async generator: aclose() type-checks
            await stream.aclose()
            batches = queue.receive_batches(idle_timeout=0)
            assert_type(batches, BatchStream)
            async for batch in batches:
                assert_type(batch, MessageBatch)
            stats = await queue.process(_handler, idle_timeout=0)
            assert_type(stats, ProcessStats)
            await queue.delete_queue()


async def _handler(message: ReceivedMessage) -> None:
    return None


def test_options_are_checked_keywords():
    queue = QueueClient("https://acct.queue.core.windows.net", "jobs")
    with pytest.raises(TypeError, match="max_batchsize"):
        queue.receive(max_batchsize=3)  # type: ignore[call-arg]
    with pytest.raises(aioqueue.ConfigurationError, match="max_batch_size"):
        queue.receive(max_batch_size=33)


def test_names_used_in_public_signatures_are_exported():
    for name in (
        "RetryDelay",
        "Credential",
        "Duration",
        "ReceiveOptions",
        "Handler",
        "SendMessagesError",
        "MalformedResponse",
        "MessageSettled",
        "AsyncTokenCredential",
        "PoisonFormat",
        "PoisonRecord",
        "PoisonFailure",
        "RedriveResult",
        "RedriveError",
    ):
        assert name in aioqueue.__all__ and hasattr(aioqueue, name), name
    assert issubclass(SendMessagesError, aioqueue.AioQueueError)


def test_one_version_everywhere():
    from importlib.metadata import version

    from aioqueue._transport import USER_AGENT

    assert aioqueue.__version__ == version("aioqueue-azure")
    assert f"aioqueue/{aioqueue.__version__}" == USER_AGENT
