"""Batches from receive_batches(): settling them on cancellation and when a delete fails."""

import asyncio

import pytest

from aioqueue import AioQueueError, MessageBatch, ReceivedMessage


async def _visible(queue):
    return sorted(p.content for p in await queue.peek_messages(max_messages=32))


async def test_cancelling_inside_a_batch_releases_it_at_once(queue_client):
    await queue_client.send_messages(["x", "y", "z"])
    handling = asyncio.Event()

    async def consume():
        async for batch in queue_client.receive_batches(visibility_timeout=300):
            async with batch:
                handling.set()
                await asyncio.sleep(60)

    task = asyncio.create_task(consume())
    await handling.wait()
    assert await _visible(queue_client) == []  # hidden for 300 s
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _visible(queue_client) == ["x", "y", "z"]  # back at once, no waiting


async def test_a_batch_delete_deletes_what_it_can_then_raises_the_failure(queue_client):
    await queue_client.send_messages(["keep", "drop"])
    async with queue_client.receive_batches(max_messages=2, visibility_timeout=300) as stream:
        async for batch in stream:
            assert isinstance(batch, MessageBatch) and repr(batch) == "MessageBatch(2 messages)"
            [stale] = [m for m in batch if m.content == "keep"]
            # updated by id elsewhere: the pop receipt the batch holds for it is now stale
            await queue_client.update_message(stale.id, stale.pop_receipt, visibility_timeout=300)
            with pytest.raises(AioQueueError):
                await batch.delete()
            break
    props = await queue_client.get_queue_properties()
    assert props.approximate_message_count == 1  # "drop" was deleted although "keep" failed
    assert await _visible(queue_client) == []  # "keep" is still hidden by the update


async def test_a_received_message_repr_shows_its_id_and_state_not_its_content(queue_client):
    await queue_client.send_message("secret payload")
    async for msg in queue_client.receive(max_messages=1):
        assert isinstance(msg, ReceivedMessage)
        assert repr(msg) == f"ReceivedMessage(id={msg.id!r}, dequeue_count=1)"
        await msg.delete()
        assert repr(msg) == f"ReceivedMessage(id={msg.id!r}, dequeue_count=1, deleted)"
        assert "secret" not in repr(msg)
