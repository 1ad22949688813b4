"""Answers lost on the way back (the operation took effect; the retry must say so), sessions aioqueue does not own
(aiohttp's own resends, a caller's raise_for_status), and the event loop a client belongs to."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from aioqueue import (
    ConfigurationError,
    QueueAlreadyExists,
    QueueClient,
    QueueNotFound,
    RetryPolicy,
    TransportError,
)
from aioqueue.testing import DEV_KEY
from tests.faults import Fault

QUICK = RetryPolicy(max_attempts=4, initial_delay=0, max_delay=0, jitter=None)


def _client(proxy, name: str, **options) -> QueueClient:
    return QueueClient(proxy.url(), name, credential=DEV_KEY, **{"retry": QUICK, **options})


# ---- lost answers -------------------------------------------------------------------------------


async def test_create_queue_whose_answer_was_lost_is_created(proxy, queue_name):
    """The proxy forwards, the queue is made, the answer is lost: the retry's 'already exists' (204 for
    identical metadata, 409 for other) is this call's success, as Delete Message's 'not found' is."""
    async with _client(proxy, queue_name) as q:
        proxy.script(Fault("reset_after", method="PUT"))
        assert await q.create_queue() is True
        assert await q.exists()
        await q.delete_queue()
        proxy.script(Fault("reset_after", method="PUT"))
        assert await q.create_queue(metadata={"owner": "me"}) is True
        assert (await q.get_queue_properties()).metadata == {"owner": "me"}
    assert [s.fault for s in proxy.seen if s.method == "PUT"] == ["reset_after", None, "reset_after", None]


async def test_delete_queue_whose_answer_was_lost_is_deleted(proxy, queue_client):
    async with _client(proxy, queue_client.queue_name) as q:
        proxy.script(Fault("reset_after", method="DELETE"))
        assert await q.delete_queue() is True
        assert not await q.exists()
    assert [s.fault for s in proxy.seen if s.method == "DELETE"] == ["reset_after", None]


async def test_already_exists_after_a_503_is_still_an_error(proxy, queue_client):
    """A 503 (or 429) says the work was not done: the retry's 'already exists'/'not found' is the truth."""
    async with _client(proxy, queue_client.queue_name) as q, _client(proxy, "never-made") as missing:
        proxy.script("503")
        with pytest.raises(QueueAlreadyExists):
            await q.create_queue()
        proxy.script("503")
        assert await q.create_queue(exist_ok=True) is False
        proxy.script("429")
        with pytest.raises(QueueNotFound):
            await missing.delete_queue()
    assert [s.fault for s in proxy.seen] == ["503", None, "503", None, "429", None]


# ---- sessions aioqueue does not own -------------------------------------------------------------


async def _marked_session(marks: list[str]) -> aiohttp.ClientSession:
    async def mark(request, handler):
        marks.append(request.method)
        return await handler(request)

    # everything a caller's session might bring: raise_for_status, inflating bodies, its own middleware
    return aiohttp.ClientSession(raise_for_status=True, middlewares=(mark,))


async def test_aiohttp_resends_behind_a_plain_session_s_back(proxy, queue_client):
    """The control: without aioqueue, aiohttp resends a DELETE once when the connection drops after
    the request went out. If this ever fails, aiohttp changed and the next test proves nothing."""
    await queue_client.send_message("x")
    [msg] = await queue_client.receive_messages()
    url = f"{proxy.url()}/{queue_client.queue_name}/messages/{msg.id}"
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url() + "?comp=list&sig=x") as warm:  # one pooled connection
            await warm.read()
        proxy.script(Fault("reset_before", method="DELETE"))
        async with session.delete(url + "?popreceipt=x") as resent:  # dropped once, resent unseen
            await resent.read()
    assert [s.fault for s in proxy.seen if s.method == "DELETE"] == ["reset_before", None]


@pytest.mark.parametrize("own_session", [False, True], ids=["aioqueue's session", "a caller's session"])
async def test_aiohttp_never_resends_a_request_behind_aioqueue_s_back(proxy, queue_client, own_session):
    """Every attempt is aioqueue's: counted, re-signed, judged. A Delete Message whose answer was lost
    reaches the server once per attempt (aiohttp's own silent resend would make it twice)."""
    await queue_client.send_message("x")
    [msg] = await queue_client.receive_messages()
    marks: list[str] = []
    session = await _marked_session(marks) if own_session else None
    try:
        async with QueueClient(
            proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None, session=session
        ) as q:
            await q.peek_messages()  # a pooled connection to drop
            proxy.script(Fault("reset_after", method="DELETE"))
            with pytest.raises(TransportError):
                await q.delete_message(msg)
    finally:
        if session is not None:
            await session.close()
    assert [s.fault for s in proxy.seen if s.method == "DELETE"] == ["reset_after"]
    assert marks == []  # a caller's middlewares do not run on aioqueue's requests (documented)


async def test_a_caller_session_with_raise_for_status_still_gets_typed_errors(proxy, queue_name):
    """It turned a 404 into a TransportError after 4 attempts."""
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        QueueClient(proxy.url(), queue_name, credential=DEV_KEY, session=session, retry=QUICK) as q,
    ):
        with pytest.raises(QueueNotFound):
            await q.get_queue_properties()
    assert len(proxy.seen) == 1


def test_a_client_belongs_to_the_event_loop_it_first_ran_in(azurite):
    """A second asyncio.run used to end in a bare 'RuntimeError: Event loop is closed'."""
    holder: dict[str, QueueClient] = {}

    async def first() -> None:
        async with aiohttp.ClientSession() as session:  # closed with its loop: nothing leaks
            q = QueueClient(azurite.url, "loop-test", credential=DEV_KEY, session=session)
            await q.exists()
            holder["q"] = q

    async def second() -> None:
        with pytest.raises(ConfigurationError, match="one client per event loop"):
            await holder["q"].exists()

    asyncio.run(first())
    asyncio.run(second())
