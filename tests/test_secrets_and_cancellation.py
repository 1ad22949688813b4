"""No secret in any log record, error or repr; cancellation never corrupts the pool or loses a message."""

import asyncio
import logging
import os
import random
from datetime import timedelta

import pytest
from faults import Fault, FaultProxy
from test_authentication import FakeCredential

from aioqueue import (
    AioQueueError,
    QueueClient,
    QueueServiceClient,
    RetryPolicy,
    generate_queue_sas,
)
from aioqueue._auth import DEV_ACCOUNT, DEV_KEY

FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=None)


async def _exercise(q: QueueClient, proxy: FaultProxy, seen: list[str]) -> None:
    """A whole flow with faults, collecting every error text and repr."""
    proxy.script("503", "reset_before", Fault("429", headers={"Retry-After": "0"}))
    for call in (
        lambda: q.create_queue(exist_ok=True),
        lambda: q.send_message("secret-free"),
        lambda: q.peek_messages(),
        lambda: q.receive_messages(),
        lambda: q.get_queue_properties(),
    ):
        try:
            await call()
        except AioQueueError as exc:
            seen += [str(exc), repr(exc), str(getattr(exc, "headers", ""))]
    proxy.script(*["503"] * 3)
    try:
        await q.peek_messages()
    except AioQueueError as exc:
        seen += [str(exc), repr(exc), str(getattr(exc, "headers", ""))]
    seen.append(repr(q))


async def test_no_secret_leaks_with_debug_logging(azurite, queue_name, caplog):
    caplog.set_level(logging.DEBUG)
    sas = generate_queue_sas(DEV_ACCOUNT, queue_name, DEV_KEY, permission="raup", expiry=timedelta(hours=1))
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    seen: list[str] = []
    async with FaultProxy(f"http://127.0.0.1:{azurite.port}") as proxy:
        async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=FAST) as service:
            await service.create_queue(queue_name)
            await _exercise(service.get_queue_client(queue_name), proxy, seen)
        async with QueueClient(proxy.url(), queue_name, credential=sas, retry=FAST) as q:
            await _exercise(q, proxy, seen)
        async with QueueClient.from_queue_url(f"{proxy.url()}/{queue_name}?{sas}", retry=FAST) as q:
            await _exercise(q, proxy, seen)
        token_cred = FakeCredential()
        async with QueueClient(proxy.url(), queue_name, credential=token_cred, retry=FAST) as q:
            try:
                await q.peek_messages()  # Azurite refuses bearer over http: a 403 to inspect
            except AioQueueError as exc:
                seen += [str(exc), repr(exc), str(getattr(exc, "headers", ""))]
        token = (await token_cred.get_token("https://storage.azure.com/.default")).token
        async with QueueServiceClient(proxy.url(), credential=DEV_KEY) as service:
            await service.delete_queue(queue_name)
    records = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    everything = "\n".join(records + seen)
    assert len(caplog.records) > 20 and "attempt=" in everything
    for secret in (DEV_KEY, signature, token.split(".")[1]):
        assert secret not in everything


async def test_cancelled_calls_never_return_another_calls_answer(azurite, queue_client):
    """Cancel many calls at random points (mid-request, mid-response); every answer that does arrive
    must belong to its own call, and the pool must not keep broken connections."""
    names = [f"{queue_client.queue_name}-{i}" for i in range(4)]
    fds_before = len(os.listdir("/proc/self/fd"))
    rng = random.Random(1234)
    async with FaultProxy(f"http://127.0.0.1:{azurite.port}") as proxy:
        proxy.rng = rng
        proxy.fault_rate = 0.3
        proxy.random_kinds = ("delay",)
        async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=None, max_connections=8) as service:
            queues = [await service.create_queue(n, metadata={"owner": n.replace("-", "_")}) for n in names]
            proxy.faults.clear()

            async def check(q: QueueClient) -> None:
                props = await q.get_queue_properties()
                assert props.metadata == {"owner": q.queue_name.replace("-", "_")}

            cancelled = completed = 0
            for _ in range(150):
                q = rng.choice(queues)
                try:
                    await asyncio.wait_for(check(q), timeout=rng.uniform(0.0005, 0.01))
                    completed += 1
                except asyncio.TimeoutError:
                    cancelled += 1
            # afterwards, every queue still answers for itself
            proxy.fault_rate = 0
            for q in queues:
                await check(q)
            for n in names:
                await service.delete_queue(n)
    assert cancelled > 10 and completed > 10
    await asyncio.sleep(0.1)
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2  # no leaked connections


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


@pytest.mark.parametrize("kind", ["delay", "delay_after"])
async def test_cancelled_during_the_exit_delete_still_deletes(azurite, queue_client, kind):
    """The clean-exit delete runs in the caller's task; a cancellation that cuts its request off
    (before the service saw it, or after it deleted but before the answer came) must still leave
    the handled message deleted, and the caller cancelled."""
    await queue_client.send_message("handled")
    async with FaultProxy(f"http://127.0.0.1:{azurite.port}") as proxy:
        proxy.script(Fault(kind, seconds=1.0, method="DELETE"))
        async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY) as q:
            handled = asyncio.Event()

            async def consume() -> None:
                async for msg in q.receive(visibility_timeout=1):
                    async with msg:
                        handled.set()

            task = asyncio.create_task(consume())
            await handled.wait()
            await asyncio.sleep(0.3)  # the DELETE is now held by the proxy
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            deletes = [s for s in proxy.seen if s.method == "DELETE"]
            assert [s.fault for s in deletes] == [kind, None]  # cut off, then finished
    await asyncio.sleep(1.5)  # past the visibility timeout: a message not deleted would be back
    assert await queue_client.peek_messages(max_messages=5) == []
    assert (await queue_client.get_queue_properties()).approximate_message_count == 0
