"""send_messages when a send or the caller's source fails part-way: it stops, and says exactly which
messages were stored."""

import asyncio

import pytest

from aioqueue import AuthenticationFailed, QueueClient, SendMessagesError
from aioqueue.testing import DEV_KEY
from tests.faults import Fault


async def test_a_failed_send_stops_the_rest_and_the_receipts_say_what_was_stored(proxy, queue_client):
    texts = [f"m{i}" for i in range(20)]
    proxy.script(Fault("403", method="POST"))  # the first send is refused
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        with pytest.raises(SendMessagesError) as info:
            await q.send_messages(texts, concurrency=2)
    assert isinstance(info.value.error, AuthenticationFailed)
    receipts = info.value.receipts
    assert len(receipts) == len(texts) and None in receipts
    sent = {r.id: texts[i] for i, r in enumerate(receipts) if r is not None}
    assert f"{len(sent)} of {len(texts)} messages were sent" in str(info.value)
    stored = {p.id: p.content for p in await queue_client.peek_messages(max_messages=32)}
    assert stored == sent


async def test_a_failing_async_source_stops_every_sender(queue_client):
    async def source():
        yield "first"
        await asyncio.sleep(0)  # the other senders queue up for the next item meanwhile
        raise ValueError("the source broke")

    with pytest.raises(SendMessagesError) as info:
        await queue_client.send_messages(source(), concurrency=3)
    assert isinstance(info.value.error, ValueError)
    [receipt] = info.value.receipts
    assert [(p.id, p.content) for p in await queue_client.peek_messages(max_messages=32)] == [(receipt.id, "first")]


class _Abort(BaseException):
    """Not an Exception: like a cancellation or KeyboardInterrupt, it must not be wrapped."""


async def test_a_base_exception_from_the_source_passes_through_untouched(queue_client):
    async def source():
        yield "first"
        raise _Abort

    with pytest.raises(_Abort):
        await queue_client.send_messages(source(), concurrency=1)
