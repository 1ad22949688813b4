"""``poison_queue.redrive()``: poison records back to their queues, the original text byte-identical
(text, base64, binary, JSON, a large payload's reference), re-sent before deleted (a lost answer leaves
a counted duplicate, never a loss), filtered, dry-run, limited and paced; a bare-body (Functions) poison
queue with ``to=``. Against Azurite (and its blob service for the reference); faults from the proxy."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from typing import Any

import pytest

from aioqueue import (
    ConfigurationError,
    PoisonRecord,
    QueueClient,
    QueueNotFound,
    ReceivedMessage,
    RedriveError,
    RedriveResult,
    TransportError,
    _redrive,
)
from aioqueue._messages import RawMessage
from aioqueue.testing import DEV_KEY
from tests.client.payloads import blobs, large_queue
from tests.faults import Fault, FaultProxy, Gate

EXPIRES = "aioqueue_expires"


async def _poison(queue: QueueClient, *contents: Any, errors: dict[Any, Exception] | None = None) -> None:
    """Send ``contents`` and have each poisoned on its first failure (``errors[content]``, else a ValueError)."""
    for content in contents:
        await queue.send_message(content)
    await _fail_all(queue, len(contents), errors)


async def _fail_all(queue: QueueClient, count: int, errors: dict[Any, Exception] | None = None) -> None:
    """Poison the queue's ``count`` messages, each on its first failure."""

    async def fail(msg: ReceivedMessage) -> None:
        content = msg.content if isinstance(msg.content, (str, bytes)) else json.dumps(msg.content)
        raise (errors or {}).get(content, ValueError(f"cannot handle message {msg.id}"))

    stats = await queue.process(fail, max_dequeue_count=1, idle_timeout=1, poll_interval=0.05)
    assert stats.poisoned == count


def _poison_queue(queue: QueueClient, **options: Any) -> QueueClient:
    return QueueClient(
        "", f"{queue.queue_name}-poison", _parent=(queue._pool, queue._encoding), **options
    )  # on the same pool and encoding


async def _texts(queue: QueueClient) -> list[str]:
    """The queue's visible messages' texts, as stored (never decoded or resolved)."""
    return sorted(raw.text or "" for raw in await queue._ops.peek_messages(32, None, False))


@pytest.mark.parametrize(
    ("encoding", "content"),
    [
        ("text", 'an "order" <b>&amp;</b>\n\tünïcödé ✓'),
        ("base64", "base64 of ünïcödé, as Azure Functions writes it"),
        ("binary", bytes(range(256)) * 4),
        ("json", {"order": 42, "items": ["a", "b"], "note": 'say "hi"\n', "price": 9.5}),
    ],
)
async def test_a_record_goes_back_byte_identical(queue_factory: Any, encoding: str, content: Any) -> None:
    queue = await queue_factory(prefix="redrive", message_encoding=encoding)
    await queue.send_message(content, time_to_live=3600)
    original = await _texts(queue)
    await _fail_all(queue, 1)
    poison = _poison_queue(queue)
    (record,) = [PoisonRecord.parse(text) for text in await _texts(poison)]
    assert [record.content] == original and record.source_queue == queue.queue_name

    result = await poison.redrive()
    assert result == RedriveResult(moved=1)
    assert await _texts(queue) == original  # the same text, byte for byte
    assert await _texts(poison) == []
    (back,) = await queue.receive_messages()
    assert back.content == content and back.dequeue_count == 1
    assert back.expires_on - back.inserted_on == timedelta(seconds=3600)  # the original's time to live


async def test_a_large_payloads_reference_goes_back_as_a_reference_and_resolves(both_conn_str: str) -> None:
    data = os.urandom(70_000)
    async with large_queue(both_conn_str, "redrive") as queue:
        await queue.send_message(data)
        (reference,) = await _texts(queue)
        (blob,) = [b.name for b in (await blobs(queue).list_blobs(prefix=f"{queue.queue_name}/"))[0]]
        await _fail_all(queue, 1)
        (item,) = (await blobs(queue).list_blobs(prefix=blob))[0]
        assert item.metadata[EXPIRES] == "never"  # kept while poisoned, whatever the original's expiry

        result = await _poison_queue(queue).redrive()
        assert result.moved == 1
        assert await _texts(queue) == [reference]  # the reference itself, not the payload
        (item,) = (await blobs(queue).list_blobs(prefix=blob))[0]
        assert item.metadata[EXPIRES] == "never"  # (documented) until its message is handled
        got: list[bytes] = []

        async def handle(msg: ReceivedMessage) -> None:
            got.append(msg.content)

        await queue.process(handle, max_messages=1, idle_timeout=3)
        assert got == [data]
        assert (await blobs(queue).list_blobs(prefix=blob))[0] == []  # handled: its payload deleted


async def test_filters_dry_run_and_limit(queue_factory: Any) -> None:
    queue = await queue_factory(prefix="redrive")
    errors = {
        "a": ValueError("order 1 is malformed"),
        "b": KeyError("customer 7"),
        "c": RuntimeError("timeout talking to the bank"),
        "d": RuntimeError("timeout talking to the bank"),
    }
    await _poison(queue, *errors, errors=errors)
    poison = _poison_queue(queue)
    by_content = {PoisonRecord.parse(t).content: PoisonRecord.parse(t) for t in await _texts(poison)}

    dry = await poison.redrive(dry_run=True, error="ValueError")
    assert (dry.moved, dry.skipped, dry.dry_run) == (0, 3, True)
    assert [r.content for r in dry.would_move] == ["a"] and dry.would_move[0].poison_id is not None
    assert len(await _texts(poison)) == 4  # nothing moved, and every one visible again at once
    assert len((await poison.redrive(dry_run=True, limit=2)).would_move) == 2

    limited = await poison.redrive(error="BANK", limit=1)  # text of the failure, any case
    assert limited.moved == 1 and len(await _texts(poison)) == 3
    assert (await poison.redrive(ids=[by_content["b"].message_id or ""])).moved == 1
    assert "b" in await _texts(queue)
    assert (await poison.redrive(older_than=3600)).moved == 0  # poisoned just now
    rest = await poison.redrive(newer_than=timedelta(hours=1), error="KeyError")
    assert (rest.moved, rest.skipped) == (0, 2)  # b is gone already
    assert (await poison.redrive(newer_than=3600)).moved == 2
    assert await _texts(queue) == ["a", "b", "c", "d"] and await _texts(poison) == []


async def test_a_bare_body_poison_queue_needs_to(queue_factory: Any) -> None:
    """A poison queue written by an Azure Functions app (or poison_format="body"): bare bodies, base64."""
    queue = await queue_factory(prefix="redrive", message_encoding="base64")
    poison = _poison_queue(queue)
    await poison.create_queue()
    await poison.send_messages(["order 1", "order 2"])
    bodies = await _texts(poison)

    left = await poison.redrive()
    assert (left.moved, left.no_target) == (0, 2)
    assert await _texts(poison) == bodies  # left, and visible again

    moved = await poison.redrive(to=queue.queue_name)
    assert moved.moved == 2 and await _texts(queue) == bodies
    assert sorted(m.content for m in await queue.receive_messages(max_messages=2)) == ["order 1", "order 2"]


async def test_a_lost_delete_answer_leaves_a_counted_duplicate_never_a_loss(
    queue_factory: Any, proxy: FaultProxy
) -> None:
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "only once")
    name = f"{queue.queue_name}-poison"
    async with QueueClient(proxy.url(), name, credential=DEV_KEY, retry=None) as poison:
        proxy.script(Fault("reset_before", method="DELETE"))  # re-sent; its delete never gets an answer
        with pytest.raises(RedriveError) as caught:
            await poison.redrive()
    assert isinstance(caught.value.error, TransportError) and caught.value.__cause__ is caught.value.error
    assert (caught.value.result.moved, caught.value.result.duplicates) == (1, 1)
    assert await _texts(queue) == ["only once"]  # it is in its queue...
    (left,) = [PoisonRecord.parse(t) for t in await _texts(_poison_queue(queue))]
    assert left.content == "only once"  # ...and still in the poison queue, visible again: never lost

    again = await _poison_queue(queue).redrive()  # the duplicate counted above
    assert again.moved == 1 and await _texts(queue) == ["only once", "only once"]


async def test_a_delete_retried_after_a_lost_answer_is_done(queue_factory: Any, proxy: FaultProxy) -> None:
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "m")
    async with QueueClient(proxy.url(), f"{queue.queue_name}-poison", credential=DEV_KEY) as poison:
        proxy.script(Fault("reset_after", method="DELETE"))  # deleted; the answer lost; the retry finds it gone
        result = await poison.redrive()
    assert (result.moved, result.duplicates) == (1, 0)
    assert await _texts(queue) == ["m"] and await _texts(_poison_queue(queue)) == []


async def test_a_record_taken_by_someone_else_meanwhile_is_a_duplicate(queue_factory: Any, proxy: FaultProxy) -> None:
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "m1", "m2")
    gone = {"x-ms-error-code": "MessageNotFound"}
    async with QueueClient(proxy.url(), f"{queue.queue_name}-poison", credential=DEV_KEY) as poison:
        proxy.script(Fault("canned", method="DELETE", status=404, headers=gone))
        result = await poison.redrive()
    assert (result.moved, result.duplicates) == (2, 1)  # it goes on after that one
    assert await _texts(queue) == ["m1", "m2"]


async def test_a_missing_target_stops_it_and_keeps_the_records(queue_factory: Any) -> None:
    """The run stops at the first record; it and the rest of its batch (fetched, not looked at) are
    visible again at once, not hidden for the run's visibility timeout."""
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "m1", "m2", "m3")
    poison = _poison_queue(queue)
    for dry_run in (False, True):
        with pytest.raises(RedriveError) as caught:
            await poison.redrive(to=f"{queue.queue_name}-gone", dry_run=dry_run)
        assert isinstance(caught.value.error, QueueNotFound) and caught.value.result == RedriveResult(dry_run=dry_run)
        assert len(await _texts(poison)) == 3


async def test_a_cancelled_run_leaves_every_record_it_has_not_moved_visible(queue_factory: Any) -> None:
    """Cancelled while it waits to re-send the next record (``rate``), the run makes that record and the
    rest of its batch visible again at once; the moved one is gone from the poison queue."""
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "m1", "m2", "m3")
    poison = _poison_queue(queue)
    moved = asyncio.Event()

    def on_progress(result: RedriveResult) -> None:
        if result.moved:
            moved.set()

    run = asyncio.create_task(poison.redrive(rate=0.5, on_progress=on_progress))
    await moved.wait()  # the next re-send waits 2 s
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert (len(await _texts(poison)), len(await _texts(queue))) == (2, 1)


async def test_a_dry_run_that_cannot_look_at_a_target_lists_its_records(queue_factory: Any, proxy: FaultProxy) -> None:
    """A credential that may move messages but not read a queue's metadata (an account SAS without the
    container resource type): the dry run lists the records a real run would try, looking once a queue."""
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "m1", "m2")
    refused = {"x-ms-error-code": "AuthorizationResourceTypeMismatch"}
    async with QueueClient(proxy.url(), f"{queue.queue_name}-poison", credential=DEV_KEY) as poison:
        proxy.script(Fault("delay", method="GET"), Fault("canned", method="GET", status=403, headers=refused))
        result = await poison.redrive(dry_run=True)
    assert sorted(r.content for r in result.would_move) == ["m1", "m2"]
    assert sum("comp=metadata" in seen.path for seen in proxy.seen) == 1


async def test_rate_paces_the_resends(queue_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "1", "2", "3")
    now, waits = [1000.0], []

    async def sleep(seconds: float) -> None:  # the pace's clock: moved by its own waits only
        waits.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(_redrive, "_clock", lambda: now[0])
    monkeypatch.setattr(_redrive, "_sleep", sleep)
    progress: list[int] = []
    result = await _poison_queue(queue).redrive(rate=4, on_progress=lambda r: progress.append(r.moved))
    assert result.moved == 3 and waits == [0.25, 0.25]
    assert progress == [1, 2, 3]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"to": "Bad_Name"}, "queue name"),
        ({"to": "jobs-poison"}, "poison queue itself"),
        ({"limit": 0}, "limit"),
        ({"rate": 0}, "rate"),
        ({"rate": float("nan")}, "rate"),
        ({"error": ""}, "error"),
        ({"ids": "abc"}, "ids"),
        ({"ids": ["ok", ""]}, "ids"),
        ({"older_than": -1}, "older_than"),
        ({"newer_than": "1h"}, "newer_than"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"ids": [["a list"]]}, "ids"),
        ({"on_progress": 5}, "on_progress"),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    proxy: FaultProxy, arguments: dict[str, Any], says: str
) -> None:
    async with QueueClient(proxy.url(), "jobs-poison", credential=DEV_KEY) as poison:
        with pytest.raises(ConfigurationError, match=says):
            await poison.redrive(**arguments)
    assert proxy.seen == []


async def test_a_resend_retried_after_a_lost_answer_is_a_counted_duplicate(
    queue_factory: Any, proxy: FaultProxy
) -> None:
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "m")
    async with QueueClient(proxy.url(), f"{queue.queue_name}-poison", credential=DEV_KEY) as poison:
        proxy.script(Fault("reset_after", method="POST"))  # stored; the answer lost; the retry stores it again
        result = await poison.redrive()
    assert await _texts(queue) == ["m", "m"]
    assert (result.moved, result.duplicates) == (1, 1)  # what reached the target twice is counted
    assert await _texts(_poison_queue(queue)) == []


async def test_two_records_of_one_message_count_a_duplicate(queue_factory: Any) -> None:
    """A message poisoned twice (its copy landed, the delete from its queue failed, so it came back and
    was poisoned again) has two records: both go back, and the second is counted as a duplicate."""
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "twice")
    poison = _poison_queue(queue)
    (text,) = await _texts(poison)
    await poison.send_message(text)  # its second record: the same message id
    result = await poison.redrive()
    assert (result.moved, result.duplicates) == (2, 1)
    assert await _texts(queue) == ["twice", "twice"]


async def test_a_record_poisoned_again_during_the_run_is_left_for_the_next_run(
    queue_factory: Any, proxy: FaultProxy
) -> None:
    """A redriven message that fails at once is poisoned again while the redrive still runs: the run
    leaves that new record (skipped), rather than chasing its own messages for as long as they fail."""
    queue = await queue_factory(prefix="redrive")
    await _poison(queue, "fails again")
    gate = Gate()
    async with QueueClient(proxy.url(), f"{queue.queue_name}-poison", credential=DEV_KEY) as poison:
        proxy.script(Fault("hold_after", method="DELETE", gate=gate))
        run = asyncio.create_task(poison.redrive())
        await gate.arrived.wait()  # re-sent, and its record deleted (the answer held)
        await _fail_all(queue, 1)  # handled, failed, poisoned again: a new record
        gate.release.set()
        result = await run
    assert (result.moved, result.skipped, result.duplicates) == (1, 1, 0)
    (left,) = [PoisonRecord.parse(t) for t in await _texts(_poison_queue(queue))]
    assert left.content == "fails again" and left.is_record  # visible again, for the next run


async def test_a_bare_body_poisoned_again_during_the_run_is_left_for_the_next_run(
    queue_factory: Any, proxy: FaultProxy
) -> None:
    queue = await queue_factory(prefix="redrive")
    poison = _poison_queue(queue)
    await poison.create_queue()
    await poison.send_message("from a Functions app")
    gate = Gate()

    async def fail(msg: ReceivedMessage) -> None:
        raise ValueError("still broken")

    async with QueueClient(proxy.url(), poison.queue_name, credential=DEV_KEY) as through:
        proxy.script(Fault("hold_after", method="DELETE", gate=gate))
        run = asyncio.create_task(through.redrive(to=queue.queue_name))
        await gate.arrived.wait()
        stats = await queue.process(fail, max_dequeue_count=1, poison_format="body", idle_timeout=1, poll_interval=0.05)
        assert stats.poisoned == 1
        gate.release.set()
        result = await run
    assert (result.moved, result.skipped) == (1, 1)
    assert await _texts(poison) == ["from a Functions app"]


async def test_a_missing_source_queue_leaves_its_records_and_the_rest_move(queue_factory: Any) -> None:
    queue = await queue_factory(prefix="redrive")
    gone = await queue_factory(prefix="redrive")
    await _poison(queue, "a")
    await gone.send_message("b")

    async def fail(msg: ReceivedMessage) -> None:
        raise ValueError("no")

    # one poison queue for both
    await gone.process(fail, max_dequeue_count=1, poison_queue=f"{queue.queue_name}-poison", idle_timeout=1)
    await gone.delete_queue()
    poison = _poison_queue(queue)
    # a dry run tells what a real run would do: the record of the missing queue left, not planned
    dry = await poison.redrive(dry_run=True)
    assert ([r.content for r in dry.would_move], dry.no_target) == (["a"], 1)
    with pytest.raises(RedriveError) as caught:  # a missing to= stops a dry run too
        await poison.redrive(to=f"{gone.queue_name}-typo", dry_run=True)
    assert isinstance(caught.value.error, QueueNotFound)
    result = await poison.redrive()
    assert (result.moved, result.no_target) == (1, 1)
    assert await _texts(queue) == ["a"]
    (left,) = [PoisonRecord.parse(t) for t in await _texts(poison)]
    assert left.content == "b" and left.source_queue == gone.queue_name  # left, visible again
    with pytest.raises(RedriveError) as caught:  # a missing to= stops it (a typo)
        await poison.redrive(to=f"{gone.queue_name}-typo")
    assert isinstance(caught.value.error, QueueNotFound)


async def test_a_record_naming_the_poison_queue_itself_as_its_source_is_left(queue_factory: Any) -> None:
    """Re-sent into the poison queue itself, its record would become a bare body: its reason and
    failures gone. It is left (no_target), as it is."""
    queue = await queue_factory(prefix="redrive")
    poison = _poison_queue(queue)
    await poison.create_queue()
    record = PoisonRecord(content="m", source_queue=poison.queue_name, message_id="m1", reason="why", version=1)
    await poison._ops.put_message(record.text(), {})
    result = await poison.redrive()
    assert (result.moved, result.no_target) == (0, 1)
    assert await _texts(poison) == [record.text()]


async def test_a_record_whose_content_no_message_can_carry_is_left_and_the_run_goes_on(queue_factory: Any) -> None:
    """A record (not aioqueue's) whose JSON content escapes a lone surrogate: re-sending it could only fail
    (it has no UTF-8), so it is a bare body, left for want of to=; the run goes on."""
    queue = await queue_factory(prefix="redrive")
    poison = _poison_queue(queue)
    await poison.create_queue()
    bad = '{"aioqueue_poison":1,"source_queue":"' + queue.queue_name + '","content":"\\ud800"}'
    await poison._ops.put_message(bad, {})
    result = await poison.redrive()
    assert (result.moved, result.no_target) == (0, 1)
    assert await _texts(poison) == [bad]


async def test_messages_left_are_held_by_their_receipt_alone() -> None:
    """What a run leaves (filtered out, a dry run's, beyond its limit) is held until the end by id and
    receipt only: not its text (a filter over a million 64 KiB records must not hold them all)."""
    async with QueueClient("http://127.0.0.1:9/devstoreaccount1", "jobs-poison", credential=DEV_KEY) as poison:
        where = _redrive.redrive_filter("KeyError", None, None, None)
        run = _redrive.Redriver(poison._ops, None, dry_run=False, limit=None, rate=None, where=where)
        await run._consider(RawMessage("m1", None, None, "receipt-1", None, "1", "x" * 60_000))
        assert run.result.skipped == 1
        assert run._held["m1"].text is None and run._held["m1"].pop_receipt == "receipt-1"
