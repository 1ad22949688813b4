"""Hostile and broken answers: each is a typed AioQueueError, fast, with bounded memory."""

import re
import resource
import time
from collections.abc import Awaitable, Callable

import pytest

from aioqueue import AioQueueError, MalformedResponse, QueueClient, QueueServiceClient, RetryPolicy
from aioqueue.testing import DEV_KEY
from tests.faults import Fault

NO_WAIT = RetryPolicy(max_attempts=2, initial_delay=0, jitter=None)


@pytest.mark.parametrize("fault", ["bomb", "garbage", "html", "huge", "endless"])
@pytest.mark.parametrize("operation", ["peek", "receive", "properties", "list"])
async def test_hostile_bodies(proxy, queue_client, fault, operation):
    await queue_client.send_message("real")
    proxy.script(fault, fault)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=NO_WAIT) as service:
        q = service.get_queue_client(queue_client.queue_name)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "peek": q.peek_messages,
            "receive": q.receive_messages,
            "properties": service.get_service_properties,
            "list": lambda: service.list_queues().__anext__(),
        }
        call = calls[operation]
        with pytest.raises(AioQueueError) as info:
            await call()
    assert time.monotonic() - started < 15  # refused at once, not after the 30 s default timeout
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 100  # the 64 MiB stream and the announced 1 GiB body were never buffered
    assert isinstance(info.value, (MalformedResponse, OSError))


async def test_missing_headers_are_typed(proxy, queue_client):
    await queue_client.send_message("x")
    [msg] = await queue_client.receive_messages()
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script("strip_headers")
        with pytest.raises(MalformedResponse, match="x-ms-popreceipt"):
            await q.update_message(msg, visibility_timeout=0)
        proxy.script("strip_headers")
        with pytest.raises(MalformedResponse, match="approximate-messages-count"):
            await q.get_queue_properties()


async def test_a_send_answered_without_the_message_is_malformed(proxy, queue_client):
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script(Fault("rewrite", transform=lambda body: b"<?xml version='1.0'?><QueueMessagesList />"))
        with pytest.raises(MalformedResponse, match="without the message"):
            await q.send_message("stored, but the answer says nothing of it")


async def test_connection_close_answers_are_fine(proxy, queue_client):
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script(*["close"] * 5)
        for i in range(8):
            await q.send_message(f"m{i}")
    assert len(await queue_client.peek_messages(max_messages=32)) == 8


def _field(element: str, value: str | None):
    """A body rewrite: the element removed (``value`` None) or given ``value``."""
    pattern = re.compile(rf"<{element}>[^<]*</{element}>".encode())
    replacement = b"" if value is None else f"<{element}>{value}</{element}>".encode()
    return lambda body: pattern.sub(replacement, body)


@pytest.mark.parametrize(
    ("operation", "element", "value", "words"),
    [
        ("peek", "DequeueCount", None, "Peek Messages answered a message without a valid DequeueCount"),
        ("peek", "ExpirationTime", None, "Peek Messages answered a message without a valid ExpirationTime"),
        ("peek", "DequeueCount", "many", "Peek Messages answered a message without a valid DequeueCount"),
        ("receive", "PopReceipt", None, "Get Messages answered a message without a valid PopReceipt"),
        ("receive", "TimeNextVisible", None, "Get Messages answered a message without a valid TimeNextVisible"),
        ("receive", "DequeueCount", "1.5", "Get Messages answered a message without a valid DequeueCount"),
        ("send", "InsertionTime", None, "Put Message answered a message without a valid InsertionTime"),
        ("send", "PopReceipt", None, "Put Message answered a message without a valid PopReceipt"),
    ],
)
async def test_a_message_answer_missing_a_field_is_malformed(proxy, queue_client, operation, element, value, words):
    """Each field a message answer must carry, missing or not a number, is a MalformedResponse naming it."""
    await queue_client.send_message("real")
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        call: dict[str, Callable[[], Awaitable[object]]] = {
            "peek": q.peek_messages,
            "receive": q.receive_messages,
            "send": lambda: q.send_message("x"),
        }
        proxy.script(Fault("rewrite", transform=_field(element, value)))
        with pytest.raises(MalformedResponse) as info:
            await call[operation]()
    assert str(info.value) == words
    assert [s.fault for s in proxy.seen] == ["rewrite"]
