"""Cancellation never corrupts the pool or loses a message: a cancelled call never gets another call's
answer, and a message is deleted only when its handler finished."""

import asyncio
import random
import uuid

import pytest

from aioqueue import (
    QueueClient,
    QueueServiceClient,
)
from aioqueue.testing import DEV_KEY
from tests.faults import Fault, Gate

# where a call is cancelled: before the service saw the request; after the service answered but before
# the answer arrived; halfway through the answer's body
CUT_POINTS = ("hold", "hold_after", "hold_body")


async def test_cancelled_calls_never_return_another_calls_answer(proxy, queue_service_client):
    """Cancel calls mid-flight at each cut point, then let the cancelled call's answer reach the wire.
    On a pool of one connection, the next call must get its own answer, on a fresh connection:
    a connection given back to the pool mid-exchange would hand it the cancelled call's answer."""
    names = [f"cancel-{uuid.uuid4().hex[:12]}-{i}" for i in range(2)]
    for name in names:
        queue = await queue_service_client.create_queue(name)
        await queue.send_message(f"only for {name}")
    try:
        async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=None, max_connections=1) as service:
            queues = [service.get_queue_client(n) for n in names]

            async def check(q: QueueClient) -> None:
                assert [m.content for m in await q.peek_messages()] == [f"only for {q.queue_name}"]

            await check(queues[0])
            await check(queues[1])
            assert proxy.seen[0].peer == proxy.seen[1].peer  # the pool reuses its connection: not vacuous
            cancelled = 0
            for _ in range(3):
                for cut in CUT_POINTS:
                    for victim, other in (queues, queues[::-1]):
                        gate = Gate()
                        proxy.script(Fault(cut, gate=gate))
                        call = asyncio.create_task(victim.peek_messages())
                        await gate.arrived.wait()
                        call.cancel()
                        with pytest.raises(asyncio.CancelledError):
                            await call
                        cancelled += 1
                        gate.release.set()
                        await gate.done.wait()  # the cancelled call's answer is written, or its connection gone
                        await check(other)
                        held, after = proxy.seen[-2:]
                        assert held.fault == cut and after.fault is None
                        assert after.peer != held.peer, f"{cut}: the cut-off connection was used again"
            for q in queues:  # and afterwards every queue still answers for itself
                await check(q)
        assert cancelled == 3 * len(CUT_POINTS) * 2
    finally:
        for name in names:
            await queue_service_client.delete_queue(name)


async def test_cancelling_at_random_points_never_deletes_an_unfinished_message(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(40)])
    finished: list[str] = []
    rng = random.Random(99)

    async def handler(msg):
        await asyncio.sleep(rng.uniform(0, 0.05))
        finished.append(msg.content)

    for _ in range(8):
        worker = asyncio.create_task(queue_client.process(handler, concurrency=4, visibility_timeout=300))
        await asyncio.sleep(rng.uniform(0.01, 0.2))
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
    remaining = [m.content async for m in _drain(queue_client)]
    # every message is either finished (and so deleted) or back in the queue and visible at once;
    # none was deleted without its handler finishing
    assert sorted(set(finished) | set(remaining)) == sorted(f"m{i}" for i in range(40))
    assert not set(remaining) & set(finished)
    assert len(remaining) == len(set(remaining))


async def _drain(queue):
    while batch := await queue.receive_messages(max_messages=32, visibility_timeout=300):
        for m in batch:
            yield m


@pytest.mark.parametrize("cut", ["hold", "hold_after"])
async def test_cancelled_during_the_exit_delete_still_deletes(proxy, queue_client, cut):
    """The clean-exit delete runs in the caller's task; a cancellation that cuts its request off
    (before the service saw it, or after it deleted but before the answer came) must still leave
    the handled message deleted, and the caller cancelled."""
    await queue_client.send_message("handled")
    gate = Gate()
    proxy.script(Fault(cut, method="DELETE", gate=gate))
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY) as q:

        async def consume() -> None:
            async for msg in q.receive(visibility_timeout=1):
                async with msg:
                    pass

        task = asyncio.create_task(consume())
        await gate.arrived.wait()  # the exit DELETE is held by the proxy
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.release.set()
        await gate.done.wait()
        deletes = [s for s in proxy.seen if s.method == "DELETE"]
        assert [s.fault for s in deletes] == [cut, None]  # cut off, then finished
    await asyncio.sleep(1.5)  # past the visibility timeout: a message not deleted would be back
    assert await queue_client.peek_messages(max_messages=5) == []
    assert (await queue_client.get_queue_properties()).approximate_message_count == 0
