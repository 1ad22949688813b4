"""Soak: producers and process() consumers move many messages through a proxy injecting faults.

CI runs the short version; the long one is `AIOQUEUE_SOAK_MESSAGES=20000 ./dev test tests/transport/test_soak.py`.
"""

import asyncio
import collections
import gc
import os
import random
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from aioqueue import QueueServiceClient, ResponseEvent, RetryPolicy
from aioqueue.testing import DEV_KEY, FakeQueueService
from tests.faults import FaultProxy
from tests.helpers import eventually

# 5,000 by default (about 15 s on the fake, idle or loaded); the long one is 20,000
MESSAGES = int(os.environ.get("AIOQUEUE_SOAK_MESSAGES", "5000"))
PRODUCERS, CONSUMERS = 4, 4
FAULTS = ("503", "500", "429", "408", "reset_before", "reset_after", "truncate", "close", "delay")


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    """The fault proxy in front of a FakeQueueService of the soak's own. On Azurite, whose sweep of deleted
    messages (once a minute) stalls it for minutes on a loaded machine, a soak slowed past a minute timed
    out; the fake (conformance-checked against Azurite: tests/fake/test_conformance.py) has no sweep."""
    async with FakeQueueService() as service, FaultProxy(f"http://127.0.0.1:{service.port}") as p:
        yield p


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_soak_loses_nothing_under_faults(proxy, queue_name):
    rng = random.Random(2024)
    fds_before = len(os.listdir("/proc/self/fd"))
    tasks_before = asyncio.all_tasks()
    seen: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    proxy.rng, proxy.fault_rate, proxy.random_kinds = rng, 0.12, FAULTS
    proxy.random_delay = 2.5  # longer than the 2 s per-attempt timeout: the client gives up and retries
    # attempts without a practical limit: the soak is about losing nothing, and the test's timeout is the bound
    retry = RetryPolicy(max_attempts=1000, initial_delay=0.02, max_delay=0.5)
    unanswered: collections.Counter[str] = collections.Counter()  # attempts whose whole answer never came

    def record(event: ResponseEvent) -> None:
        if event.error is not None:
            unanswered[event.method] += 1

    hooks = {"response": [record]}
    async with QueueServiceClient(
        proxy.url(), credential=DEV_KEY, retry=retry, timeout=2.0, event_hooks=hooks
    ) as service:
        await service.create_queue(queue_name, exist_ok=True)
        queue = service.get_queue_client(queue_name)

        async def produce(p: int) -> None:
            await queue.send_messages((f"{p}-{i}" for i in range(p, MESSAGES, PRODUCERS)), concurrency=8)

        async def handle(msg) -> None:
            seen[msg.content] += 1

        async def consume() -> object:
            # a Get Messages answer lost on the way hides its batch for the visibility timeout: the
            # consumers run until every message was handled and the queue is empty (not until an idle
            # spell, which a loaded machine or an emulator busy sweeping can stretch past any bound)
            return await queue.process(
                handle, concurrency=16, visibility_timeout=3, stop=finished, poll_interval=(0.05, 0.5)
            )

        async def all_handled_and_gone() -> bool:
            return set(seen) == expected and (await queue.get_queue_properties()).approximate_message_count == 0

        async def finish() -> None:
            try:
                await eventually(all_handled_and_gone, within=1000, what="every message handled and deleted")
            except AssertionError as exc:  # say where it stuck: never handled, or handled but left
                missing = sorted(expected - set(seen))
                left = await queue.peek_messages(max_messages=32)
                count = (await queue.get_queue_properties()).approximate_message_count
                raise AssertionError(
                    f"{exc}: {len(missing)} never handled (first {missing[:5]}), {count} in the queue, "
                    f"visible now {[(m.content, m.dequeue_count) for m in left]}"
                ) from None
            finished.set()

        finished = asyncio.Event()
        expected = {f"{i % PRODUCERS}-{i}" for i in range(MESSAGES)}
        results = await asyncio.gather(
            *(produce(p) for p in range(PRODUCERS)), *(consume() for _ in range(CONSUMERS)), finish()
        )
        stats = results[PRODUCERS : PRODUCERS + CONSUMERS]
        proxy.fault_rate = 0
        leftover = await queue.get_queue_properties()
        await queue.delete_queue()
    injected = collections.Counter((s.method, s.fault) for s in proxy.seen if s.fault)
    await proxy.close()  # its connections (to us and upstream) are not what the leak check below counts
    elapsed = time.monotonic() - started

    assert set(seen) == expected, f"lost: {len(expected - set(seen))}"
    assert leftover.approximate_message_count == 0
    duplicates = sum(n - 1 for n in seen.values())
    # a duplicate needs a lost answer: a Put retried after the server stored it, a Delete whose
    # answer was lost after a handler succeeded, or a message whose lost Get hid it past a retry.
    # Lost answers are the attempts the client saw no whole answer to (the injected resets after
    # forwarding, truncations and delays, and the emulator's own stalls past the attempt timeout on a
    # loaded machine), less those the proxy reset before forwarding (the service never saw them)
    lost_answers = sum(unanswered[m] for m in ("POST", "DELETE", "GET")) - sum(
        n for (method, fault), n in injected.items() if fault == "reset_before" and method in ("POST", "DELETE", "GET")
    )
    assert duplicates <= lost_answers, f"{duplicates} duplicates, {lost_answers} lost answers"
    total_faults = sum(injected.values())
    assert total_faults >= 0.10 * len(proxy.seen)
    # every handler call succeeded: its message was deleted (processed) or its delete failed, refused
    # (lease_lost) or unanswered (delete_failed)
    assert sum(s.processed + s.lease_lost + s.delete_failed for s in stats) == sum(seen.values())  # type: ignore[attr-defined]

    gc.collect()
    await asyncio.sleep(0.1)
    assert asyncio.all_tasks() == tasks_before
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2
    print(
        f"\nsoak: {MESSAGES} messages in {elapsed:.1f}s through {len(proxy.seen)} requests, "
        f"{lost_answers} lost answers, {total_faults} injected faults {dict(injected)}, {duplicates} duplicates"
    )
