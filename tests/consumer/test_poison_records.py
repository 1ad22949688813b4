"""Poison records: what a poisoned message becomes in its poison queue (``poison_format="record"``, the
default), when it goes there (on the failure of its last allowed delivery, on arrival over the count,
undecodable, or by its handler's ``message.poison(reason)``), and the envelope's own rules (its size,
redaction, reading it back). The envelope's unit tests need no emulator; the rest run on Azurite."""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aioqueue import (
    ConfigurationError,
    MessageSettled,
    PoisonFailure,
    PoisonRecord,
    QueueClient,
    ReceivedMessage,
)
from aioqueue._encoding import MAX_MESSAGE_BYTES
from aioqueue._poison import POISON_PREFIX, failure_of, record_text
from aioqueue.testing import DEV_KEY
from tests.faults import Fault, FaultProxy

WHEN = datetime(2026, 11, 27, 3, 46, 5, tzinfo=timezone.utc)


def _record(content: str, *failures: PoisonFailure, reason: str = "received 6 times") -> PoisonRecord:
    return PoisonRecord(
        content=content,
        source_queue="jobs",
        message_id="a8f1c2d4-0000-4000-8000-000000000001",
        inserted_on=WHEN,
        time_to_live=604800,
        dequeue_count=6,
        poisoned_on=WHEN + timedelta(minutes=15),
        kind="max_dequeue_count",
        reason=reason,
        failures=failures,
        version=1,
    )


async def _records(queue: QueueClient) -> list[PoisonRecord]:
    """The poison queue's messages, read as records (their text taken as it is stored)."""
    poison = queue._ops.sibling(f"{queue.queue_name}-poison")
    return [PoisonRecord.parse(raw.text or "") for raw in await poison.peek_messages(32, None, False)]


async def _raw_texts(queue: QueueClient) -> list[str]:
    return [raw.text or "" for raw in await queue._ops.peek_messages(32, None, False)]


# ---- the envelope ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ["plain", 'quotes " and \\ backslashes', "lines\nand\ttabs", "ünïcödé ✓ 𝄞", "<xml>&amp;</xml>", ""],
)
def test_a_record_reads_back_as_written_with_its_content_exact(content: str) -> None:
    failure = PoisonFailure("ValueError", "bad input", WHEN, "host-1", 4711)
    record = _record(content, failure)
    text = record.text()
    assert text.startswith(POISON_PREFIX + "1,")
    fields = json.loads(text)
    assert next(iter(fields)) == "aioqueue_poison" and list(fields)[-1] == "content"
    assert fields["content"] == content and fields["inserted_on"] == "2026-11-27T03:46:05.000Z"
    assert PoisonRecord.parse(text) == record
    assert PoisonRecord.parse(text).is_record


def test_any_other_text_is_a_bare_body() -> None:
    for text in ["just text", POISON_PREFIX + "1, not json", '{"aioqueue_poison":"1","content":"x"}', "{}"]:
        record = PoisonRecord.parse(text, poison_id="p1")
        assert not record.is_record and record.content == text and record.poison_id == "p1"
        assert not record.matches("x")
    # a later version is read for the fields it shares
    later = json.dumps({"aioqueue_poison": 2, "content": "c", "source_queue": "q", "new": [1]})
    assert PoisonRecord.parse(later).source_queue == "q" and PoisonRecord.parse(later).version == 2


def test_deeply_nested_json_that_looks_like_a_record_is_a_bare_body() -> None:
    """A hostile or broken message opening like a record, nested deeper than Python's recursion limit:
    read as a bare body (so a redrive goes on), never a RecursionError."""
    text = POISON_PREFIX + '1,"failures":' + "[" * 50_000 + "]" * 50_000 + ',"content":"x"}'
    record = PoisonRecord.parse(text)
    assert not record.is_record and record.content == text


@pytest.mark.parametrize("escaped", ["\\ud800", "\\u0001", "\\uffff"])
def test_a_record_whose_content_no_message_can_carry_is_a_bare_body(escaped: str) -> None:
    """JSON can escape a lone surrogate or a control character that no queue message holds: such a
    record was never written by aioqueue, and its content cannot be re-sent (a bare body, as it is)."""
    text = POISON_PREFIX + '1,"source_queue":"jobs","content":"a' + escaped + 'b"}'
    record = PoisonRecord.parse(text)
    assert not record.is_record and record.content == text


def test_a_failure_is_redacted_and_carries_its_type_host_and_pid() -> None:
    class OrderRejected(Exception):
        pass

    failure = failure_of(OrderRejected("GET https://a.queue.core.windows.net/q?sv=1&sig=abcdef123 failed\x00"))
    assert failure.type.endswith("OrderRejected") and failure.type.count(".") >= 1
    assert "sig=REDACTED" in failure.message and "abcdef123" not in failure.message
    assert "\x00" not in failure.message  # XML could not carry it: replaced
    assert failure.host == socket.gethostname() and failure.pid == os.getpid()
    assert failure_of(ValueError("x")).type == "ValueError"
    assert failure.matches("OrderRejected") and failure.matches("failed") and not failure.matches("KeyError")


def test_a_record_too_big_cuts_the_failures_then_gives_up_for_near_64_kib_content() -> None:
    failures = [PoisonFailure("ValueError", "y" * 3000, WHEN, "h", 1) for _ in range(10)]
    content = "c" * 50_000
    text = record_text(_record(content, *failures))
    assert text is not None and len(text.encode()) <= MAX_MESSAGE_BYTES
    record = PoisonRecord.parse(text)
    assert record.content == content  # never cut
    assert 1 <= len(record.failures) < 10 and all(len(f.message) <= 500 for f in record.failures)
    # content that fits one message, but not with a record around it
    assert record_text(_record("c" * (MAX_MESSAGE_BYTES - 100))) is None
    # quotes take two characters each in JSON
    assert record_text(_record('"' * 40_000)) is None


async def test_the_queue_itself_as_its_poison_queue_is_refused_before_any_request() -> None:
    """Its poison records would come back to its own handler, and be poisoned into it again."""
    async with QueueClient("http://127.0.0.1:9/devstoreaccount1", "jobs", credential=DEV_KEY) as queue:
        with pytest.raises(ConfigurationError, match="poison_queue"):
            queue.receive(max_dequeue_count=3, poison_queue="jobs")
        with pytest.raises(ConfigurationError, match="poison_queue"):
            await queue.process(_never, max_dequeue_count=3, poison_queue="jobs")


# ---- when, and what, against Azurite -------------------------------------------------------------------


async def test_a_handler_failing_on_its_last_allowed_delivery_is_poisoned_then_with_its_failures(
    queue_factory: Any,
) -> None:
    queue = await queue_factory(prefix="records")
    receipt = await queue.send_message("order 42")
    deliveries: list[int] = []

    async def handle(msg: ReceivedMessage) -> None:
        deliveries.append(msg.dequeue_count)
        raise ValueError(f"cannot charge order 42 (try {msg.dequeue_count})")

    stats = await queue.process(handle, max_dequeue_count=3, idle_timeout=1, poll_interval=0.05)
    assert deliveries == [1, 2, 3]  # no fourth receive just to poison it
    assert (stats.failed, stats.poisoned) == (3, 1)
    (record,) = await _records(queue)
    assert record.is_record and record.content == "order 42"
    assert (record.source_queue, record.message_id, record.dequeue_count) == (queue.queue_name, receipt.id, 3)
    assert record.inserted_on == receipt.inserted_on and record.time_to_live == 7 * 86400
    assert record.kind == "max_dequeue_count" and "last allowed delivery" in (record.reason or "")
    assert [f.message for f in record.failures] == [f"cannot charge order 42 (try {n})" for n in (1, 2, 3)]
    assert {(f.type, f.host, f.pid) for f in record.failures} == {("ValueError", socket.gethostname(), os.getpid())}
    assert record.trace_id is None  # telemetry off
    poison = queue._sibling(f"{queue.queue_name}-poison")
    (peeked,) = await poison.peek_messages()
    assert peeked.expires_on.year == 9999  # never expires
    assert await _raw_texts(queue) == []


async def test_a_message_arriving_over_the_count_has_the_reason_and_no_failures(queue_factory: Any) -> None:
    queue = await queue_factory(prefix="records")
    await queue.send_message("crashed twice")
    for _ in range(2):  # received, and its consumer died: back with the dequeue count up
        (msg,) = await queue.receive_messages()
        await queue.update_message(msg, visibility_timeout=0)
    handled: list[object] = []

    async def handle(msg: ReceivedMessage) -> None:
        handled.append(msg.content)

    stats = await queue.process(handle, max_dequeue_count=2, idle_timeout=1, poll_interval=0.05)
    assert handled == [] and stats.poisoned == 1
    (record,) = await _records(queue)
    assert record.content == "crashed twice" and record.dequeue_count == 3
    assert record.reason == "received 3 times (max_dequeue_count=2)" and record.failures == ()


async def test_a_stream_poisons_on_the_last_allowed_delivery_too(queue_factory: Any) -> None:
    queue = await queue_factory(prefix="records")
    await queue.send_message("bad")
    for _ in range(2):
        with pytest.raises(KeyError):
            async for msg in queue.receive(max_dequeue_count=2, idle_timeout=1, poll_interval=0.05):
                async with msg:
                    raise KeyError("no such customer")
    (record,) = await _records(queue)
    # each stream remembers the failures it saw: the second one, its own
    assert record.dequeue_count == 2 and [f.type for f in record.failures] == ["KeyError"]
    assert await _raw_texts(queue) == []


async def test_a_poison_queue_deleted_while_its_client_runs_is_made_again(queue_factory: Any, conn_str: str) -> None:
    """A client makes a poison queue once and then remembers it; one deleted since (by hand, by a clean-up)
    is made again by the next poisoning, not failed by every poisoning until the process restarts."""
    queue = await queue_factory(prefix="records")
    for content in ("first", "second"):
        await queue.send_message(content)
        async for msg in queue.receive(idle_timeout=0.5, poll_interval=0.05):
            async with msg:
                await msg.poison(f"{content} reason")
        assert [record.content for record in await _records(queue)] == [content]
        async with QueueClient.from_connection_string(conn_str, f"{queue.queue_name}-poison") as poison:
            await poison.delete_queue()
    assert await _raw_texts(queue) == []


async def test_a_failed_delete_after_the_poison_copy_keeps_the_handlers_error(
    queue_factory: Any, proxy: FaultProxy
) -> None:
    """The copy reached the poison queue, the delete from the queue failed: ``async with msg:`` still
    raises the handler's error (not MessageSettled), and the message stays, to be poisoned again."""
    queue = await queue_factory(prefix="records")
    await queue.send_message("m")
    async with QueueClient(proxy.url(), queue.queue_name, credential=DEV_KEY, retry=None) as through:
        proxy.script(Fault("500", method="DELETE"))
        with pytest.raises(KeyError):
            async for msg in through.receive(max_dequeue_count=1, idle_timeout=1, poll_interval=0.05):
                async with msg:
                    raise KeyError("no such customer")
    (record,) = await _records(queue)
    assert record.content == "m"
    assert (await queue.get_queue_properties()).approximate_message_count == 1  # still there: never lost


async def test_a_batch_poisons_its_messages_on_their_last_allowed_delivery(queue_factory: Any) -> None:
    queue = await queue_factory(prefix="records")
    await queue.send_messages(["a", "b"])
    with pytest.raises(RuntimeError):
        async for batch in queue.receive_batches(max_dequeue_count=1, idle_timeout=1):
            async with batch:
                raise RuntimeError("the whole batch failed")
    records = await _records(queue)
    assert sorted(r.content for r in records) == ["a", "b"]
    assert all(r.failures[0].message == "the whole batch failed" for r in records)


async def test_a_handler_poisons_a_message_by_hand_with_a_reason(queue_factory: Any) -> None:
    queue = await queue_factory(prefix="records")
    await queue.send_messages(["fine", "no such product"])
    why: list[str] = []

    async def handle(msg: ReceivedMessage) -> None:
        if msg.content == "no such product":
            await msg.poison("product 7 was discontinued")
            with pytest.raises(MessageSettled):
                await msg.delete()

    # poisoning by hand needs no max_dequeue_count: the poison queue is <queue>-poison
    stats = await queue.process(handle, idle_timeout=1, poll_interval=0.05, on_poison=lambda m, w: why.append(w))
    assert (stats.processed, stats.poisoned, stats.failed) == (1, 1, 0)
    (record,) = await _records(queue)
    assert record.content == "no such product" and record.kind == "explicit"
    assert record.reason == "product 7 was discontinued" and record.dequeue_count == 1
    assert why == ["was poisoned by its handler: product 7 was discontinued"]
    await queue.send_message("x")
    async for msg in queue.receive(idle_timeout=0.5):
        async with msg:
            with pytest.raises(ConfigurationError, match="reason"):
                await msg.poison("")
    assert await _raw_texts(queue) == []


async def test_a_handlers_poison_reason_is_redacted_in_the_log_too(queue_factory: Any, caplog: Any) -> None:
    """The record's copy of a reason was redacted; the WARNING line and on_poison's text were not."""
    caplog.set_level(logging.WARNING, logger="aioqueue")
    queue = await queue_factory(prefix="records")
    await queue.send_message("job")
    why: list[str] = []

    async def handle(msg: ReceivedMessage) -> None:
        await msg.poison("fetching https://a.blob.core.windows.net/c/b?sv=1&sig=SECRETSIG failed")

    await queue.process(handle, idle_timeout=1, poll_interval=0.05, on_poison=lambda m, w: why.append(w))
    (record,) = await _records(queue)
    assert record.reason is not None and "SECRETSIG" not in record.reason
    assert why and "SECRETSIG" not in why[0]
    logged = [r.getMessage() for r in caplog.records if "poison" in r.getMessage()]
    assert logged and not any("SECRETSIG" in line for line in logged), logged


async def test_undecodable_content_becomes_a_record_of_its_exact_text(queue_factory: Any) -> None:
    queue = await queue_factory(prefix="records", message_encoding="json")
    await queue._ops.put_message("{not json", {})
    stats = await queue.process(_never, max_dequeue_count=5, idle_timeout=1, poll_interval=0.05)
    assert stats.poisoned == 1
    (record,) = await _records(queue)
    assert record.content == "{not json" and record.kind == "undecodable" and record.dequeue_count == 1


async def test_poison_format_body_keeps_the_bare_text_for_a_functions_app(queue_factory: Any) -> None:
    queue = await queue_factory(prefix="records", message_encoding="base64")
    await queue.send_message("für Functions")
    (original,) = await _raw_texts(queue)

    async def fail(msg: ReceivedMessage) -> None:
        raise ValueError("no")

    stats = await queue.process(fail, max_dequeue_count=1, poison_format="body", idle_timeout=1, poll_interval=0.05)
    assert stats.poisoned == 1
    (record,) = await _records(queue)
    assert not record.is_record and record.content == original  # base64 text, as Functions writes it
    with pytest.raises(ConfigurationError, match="poison_format"):
        queue.receive(poison_format="json")


async def test_content_too_big_for_a_record_is_kept_bare_and_the_record_logged(
    queue_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aioqueue")
    queue = await queue_factory(prefix="records")
    big = "x" * (MAX_MESSAGE_BYTES - 10)
    await queue.send_message(big)

    async def fail(msg: ReceivedMessage) -> None:
        raise ValueError("too big to handle")

    stats = await queue.process(fail, max_dequeue_count=1, idle_timeout=1, poll_interval=0.05)
    assert stats.poisoned == 1
    (record,) = await _records(queue)
    assert not record.is_record and record.content == big  # never lost
    (line,) = [r.getMessage() for r in caplog.records if "too big for a poison record" in r.getMessage()]
    assert '"reason":"failed on its last allowed delivery' in line and "too big to handle" in line


async def _never(msg: ReceivedMessage) -> None:
    raise AssertionError("an undecodable message reached the handler")
