"""Retry behaviour through a fault-injecting proxy in front of Azurite."""

import asyncio
import logging
import sys
import time
from datetime import timedelta

import aiohttp
import pytest

from aioqueue import (
    MalformedResponse,
    MessageEncodingError,
    MessageNotFound,
    PopReceiptMismatch,
    QueueClient,
    QueueNotFound,
    RequestTimeout,
    RetryPolicy,
    ServerBusy,
    ServiceError,
    TransportError,
)
from aioqueue.testing import DEV_KEY
from tests.faults import Fault, FaultProxy, Gate

FIXED = RetryPolicy(max_attempts=4, initial_delay=0.2, max_delay=10.0, jitter=None)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    """The waits the retry loop asks for, recorded instead of waited (every other sleep is untouched)."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    def sleep(delay, result=None):
        if sys._getframe(1).f_globals.get("__name__") == "aioqueue._transport":
            recorded.append(delay)
            delay = 0
        return real_sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return recorded


def client(proxy, queue_name, retry=FIXED, **options) -> QueueClient:
    return QueueClient(proxy.url(), queue_name, credential=DEV_KEY, retry=retry, **options)


@pytest.mark.parametrize("status", ["408", "429", "500", "502", "503", "504"])
async def test_retryable_statuses_are_retried_with_exponential_delays(proxy, queue_client, status, sleeps):
    async with client(proxy, queue_client.queue_name) as q:
        proxy.script(status, status, status)
        await q.send_message("x")
        assert sleeps == [0.2, 0.4, 0.8]
    assert [s.fault for s in proxy.seen] == [status, status, status, None]
    assert len(await queue_client.peek_messages(max_messages=5)) == 1


@pytest.mark.parametrize("status", ["400", "401", "403", "404", "409", "413"])
async def test_other_client_errors_are_never_retried(proxy, queue_client, status, sleeps):
    async with client(proxy, queue_client.queue_name) as q:
        proxy.script(status)
        with pytest.raises(Exception) as info:
            await q.peek_messages()
        assert getattr(info.value, "status", None) == int(status)
        assert sleeps == []
    assert len(proxy.seen) == 1


async def test_retries_run_out_into_a_typed_error(proxy, queue_client):
    async with client(proxy, queue_client.queue_name) as q:
        proxy.script(*["503"] * 4)
        with pytest.raises(ServerBusy) as info:
            await q.peek_messages()
    assert info.value.status == 503 and info.value.error_code == "ServerBusy" and info.value.request_id == "fault"
    assert len(proxy.seen) == 4


async def test_no_retry_policy_means_one_attempt(proxy, queue_client):
    async with client(proxy, queue_client.queue_name, retry=None) as q:
        proxy.script("503")
        with pytest.raises(ServerBusy):
            await q.peek_messages()
    assert len(proxy.seen) == 1


async def test_retry_after_is_honoured(proxy, queue_client, sleeps):
    async with client(proxy, queue_client.queue_name) as q:
        proxy.script(Fault("429", headers={"Retry-After": "3"}), "429")
        await q.peek_messages()
        assert sleeps == [3.0, 0.4]


async def test_retry_after_beyond_the_cap_ends_retries(proxy, queue_client):
    async with client(proxy, queue_client.queue_name, retry=RetryPolicy(max_retry_after=5)) as q:
        proxy.script(Fault("503", headers={"Retry-After": "120"}))
        with pytest.raises(ServerBusy):
            await q.peek_messages()
    assert len(proxy.seen) == 1


async def test_connection_reset_is_retried(proxy, queue_client, sleeps):
    async with client(proxy, queue_client.queue_name) as q:
        proxy.script("reset_before", "reset_before")
        await q.send_message("survived")
        assert len(sleeps) == 2
    assert [p.content for p in await queue_client.peek_messages()] == ["survived"]


async def test_connection_errors_run_out_into_transport_error(proxy, queue_client):
    async with client(proxy, queue_client.queue_name, retry=RetryPolicy(max_attempts=2, jitter=None)) as q:
        proxy.script("reset_before", "reset_before")
        with pytest.raises(TransportError) as info:
            await q.peek_messages()
    assert isinstance(info.value, OSError)


async def test_per_attempt_timeout(proxy, queue_client):
    gates = [Gate() for _ in range(3)]  # requests held until the end: they never answer in time
    async with client(proxy, queue_client.queue_name, retry=RetryPolicy(max_attempts=2, jitter=None), timeout=1.5) as q:
        proxy.script(Fault("hold", gate=gates[0]), Fault("hold", gate=gates[1]))
        with pytest.raises(RequestTimeout) as info:
            await q.peek_messages()
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, TransportError)
    proxy.script(Fault("hold", gate=gates[2]))
    async with client(proxy, queue_client.queue_name, timeout=1.5) as q:
        assert await q.peek_messages() == []  # the second attempt is answered
    assert [s.fault for s in proxy.seen] == ["hold", "hold", "hold", None]
    for gate in gates:
        gate.release.set()
        await gate.done.wait()


async def test_delete_after_a_lost_answer_counts_as_success(proxy, queue_client):
    await queue_client.send_message("x")
    [msg] = await queue_client.receive_messages()
    async with client(proxy, queue_client.queue_name) as q:
        proxy.script(Fault("reset_after", method="DELETE"))
        await q.delete_message(msg)  # the first attempt deleted it; the retry's 4xx means done
    assert [s.fault for s in proxy.seen] == ["reset_after", None]
    assert (await queue_client.get_queue_properties()).approximate_message_count == 0


async def test_a_first_attempt_not_found_is_still_an_error(proxy, queue_client):
    async with client(proxy, f"{queue_client.queue_name}-missing") as q:
        with pytest.raises(QueueNotFound):
            await q.peek_messages()


async def test_truncated_body_is_retried(proxy, queue_client):
    await queue_client.send_message("whole")
    async with client(proxy, queue_client.queue_name) as q:
        proxy.script("truncate")
        assert [p.content for p in await q.peek_messages()] == ["whole"]
    assert len(proxy.seen) == 2


@pytest.mark.parametrize("fault", ["bomb", "garbage"])
async def test_hostile_bodies_are_typed_errors(proxy, queue_client, fault):
    async with client(proxy, queue_client.queue_name) as q:
        proxy.script(fault)
        started = time.monotonic()
        with pytest.raises(MalformedResponse):
            await q.peek_messages()
        assert time.monotonic() - started < 15  # refused at once, not after the 30 s default timeout


async def test_each_attempt_is_signed_afresh(proxy, queue_client, monkeypatch):
    # this test needs the real wait: x-ms-date counts whole seconds, so the retry must come >= 1 s later
    monkeypatch.setattr(asyncio, "sleep", asyncio.tasks.sleep)
    q = QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=FIXED)
    async with q:
        proxy.script(Fault("503", headers={"Retry-After": "1.1"}))
        await q.peek_messages()
    first, second = proxy.seen
    assert first.headers["x-ms-date"] != second.headers["x-ms-date"]
    assert first.headers["Authorization"] != second.headers["Authorization"]


def _client_holds_a_live_connection(q: QueueClient) -> bool:
    """Whether the client's pool still holds a connection it believes open (aiohttp internals: test only)."""
    session = q._pool.http._session
    assert session is not None and session.connector is not None
    connector = session.connector
    return any(proto.is_connected() for conns in connector._conns.values() for proto, _ in conns)


@pytest.mark.parametrize("proxy", [{"keepalive_timeout": 0.2}], indirect=True)
async def test_server_closing_idle_connections_is_handled(proxy, queue_client):
    """A pooled connection the server closed while idle is never reused. (Waiting for the proxy's side
    alone was a race: under load the next send could start before the client had read the close,
    and a POST on it failed with retry=None: 1 run in 10 with both cores busy.)"""
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        for i in range(3):
            await q.send_message(f"m{i}")
            deadline = time.monotonic() + 15
            # the server closes the idle pooled connection after 0.2 s; wait until both ends know
            while proxy.open_connections() or _client_holds_a_live_connection(q):
                assert time.monotonic() < deadline, "the idle connection was never closed"
                await asyncio.sleep(0.05)
    assert len(await queue_client.peek_messages(max_messages=5)) == 3


async def test_errors_and_logs_hold_no_secrets(proxy, queue_client, caplog):
    from aioqueue import generate_queue_sas

    sas = generate_queue_sas(
        "devstoreaccount1", queue_client.queue_name, DEV_KEY, permission="r", expiry=timedelta(hours=1)
    )
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    caplog.set_level("DEBUG", logger="aioqueue")
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=sas, retry=FIXED) as q:
        proxy.script("503", "503", "503", "503")
        with pytest.raises(ServiceError) as info:
            await q.peek_messages()
        with pytest.raises(MessageEncodingError):
            await q.send_message("\x00")
    text = caplog.text + str(info.value) + repr(info.value) + str(info.value.headers)
    assert "attempt=4" in caplog.text and "sig=REDACTED" in caplog.text
    assert signature not in text and DEV_KEY not in text


@pytest.mark.parametrize("own_session", [False, True], ids=["our-pool", "callers-session"])
async def test_waiting_for_a_pooled_connection_is_not_part_of_the_timeout(proxy, queue_client, own_session):
    """20 sends through 2 connections, each answered 0.3 s after it arrives: the last ones wait about
    3 s for a connection, longer than the 2 s timeout, yet each attempt, once sent, is answered well
    within it. Queueing is no attempt: no send is retried, none is stored twice."""
    sends = 20
    proxy.script(*[Fault("delay", seconds=0.3, method="POST")] * sends)
    attempts: list[int] = []
    hooks = {"request": [lambda event: attempts.append(event.attempt)]}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) if own_session else None
    pool = {"session": session} if session is not None else {"max_connections": 2}
    try:
        async with client(proxy, queue_client.queue_name, timeout=2.0, event_hooks=hooks, **pool) as q:
            await asyncio.gather(*(q.send_message(f"m{i}") for i in range(sends)))
    finally:
        if session is not None:
            await session.close()
    assert attempts == [1] * sends  # no attempt timed out
    assert [s.method for s in proxy.seen] == ["POST"] * sends  # the server saw each send once
    stored = sorted(m.content for m in await queue_client.peek_messages(max_messages=32))
    assert stored == sorted(f"m{i}" for i in range(sends))


async def test_a_refused_connection_is_no_lost_answer(proxy, queue_client):
    """An attempt that could not connect sent nothing: a retry of a delete that then finds the message
    gone is an error, not the success of an earlier attempt (the message was gone before)."""
    await queue_client.send_message("x")
    [msg] = await queue_client.receive_messages()
    await queue_client.delete_message(msg)
    port = proxy.port
    await proxy.close()  # nothing listens there now: the first attempt cannot connect
    reopened: list[FaultProxy] = []

    async def reopen_before_the_retry(event):
        if event.attempt == 2:
            reopened.append(await FaultProxy(proxy.upstream, port=port).__aenter__())

    try:
        async with client(proxy, queue_client.queue_name, event_hooks={"request": [reopen_before_the_retry]}) as q:
            with pytest.raises((MessageNotFound, PopReceiptMismatch)):
                await q.delete_message(msg)
    finally:
        for p in reopened:
            await p.close()
    assert len(reopened) == 1 and [s.method for s in reopened[0].seen] == ["DELETE"]


async def test_an_update_whose_answer_was_lost_says_it_may_have_been_applied(proxy, queue_client):
    """The lost attempt did the update; the retry finds its receipt spent. The error says so, and the
    server holds the new content."""
    await queue_client.send_message("old")
    [msg] = await queue_client.receive_messages(visibility_timeout=60)
    stale = msg.pop_receipt
    async with client(proxy, queue_client.queue_name) as q:
        proxy.script(Fault("reset_after", method="PUT"))
        with pytest.raises((PopReceiptMismatch, MessageNotFound)) as info:
            await q.update_message(msg, content="new", visibility_timeout=0)
        assert info.value.maybe_applied is True
        assert "may have been applied" in str(info.value)
        assert [s.fault for s in proxy.seen] == ["reset_after", None]
        assert [p.content for p in await queue_client.peek_messages()] == ["new"]  # visible again, updated
        with pytest.raises((PopReceiptMismatch, MessageNotFound)) as first:  # a stale receipt at the first try
            await q.update_message(msg.id, stale, content="newer")
        assert first.value.maybe_applied is False and "may have been applied" not in str(first.value)


async def test_a_release_whose_answer_was_lost_is_logged_as_maybe_visible(proxy, queue_client, caplog):
    caplog.set_level(logging.WARNING, logger="aioqueue")
    await queue_client.send_message("fails")

    async def handler(message):
        raise RuntimeError("handler failed")

    async with client(proxy, queue_client.queue_name) as q:
        proxy.script(Fault("reset_after", method="PUT"))  # the release lands; its answer is lost
        stats = await asyncio.wait_for(q.process(handler, max_messages=1, poll_interval=(0.01, 0.05)), 60)
    assert stats.failed == 1
    [line] = [r.getMessage() for r in caplog.records if "release" in r.getMessage()]
    assert "may already be visible again" in line and "after its visibility timeout" not in line
    assert [p.content for p in await queue_client.peek_messages()] == ["fails"]  # released: visible at once
