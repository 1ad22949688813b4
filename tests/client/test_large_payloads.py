"""Large payloads (issue #27): content over the threshold through a block blob, against Azurite's
queue and blob services together; cleanup after the message's delete, never before."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from aioqueue import (
    BlobPayloads,
    ConfigurationError,
    MessageEncodingError,
    MessageTooLarge,
    PayloadError,
    PayloadUnavailable,
    QueueClient,
    QueueMessage,
    ReceivedMessage,
    SendMessagesError,
    ServiceError,
)
from aioqueue._payloads import Reference
from aioqueue._poison import PoisonRecord
from aioqueue.testing import Azurite, FakeQueueService
from tests.client.payloads import blobs, container_name, large_queue
from tests.faults import Fault, FaultProxy

_container = container_name
_blobs = blobs


@pytest_asyncio.fixture
async def large(both_conn_str: str) -> AsyncIterator[QueueClient]:
    """A binary-encoded client with large payloads on a fresh queue (and container)."""
    async with large_queue(both_conn_str, "large", block_size=256 * 1024) as queue:
        yield queue


async def _names(queue: QueueClient) -> list[str]:
    page, _ = await _blobs(queue).list_blobs(prefix=f"{queue.queue_name}/")
    return [b.name for b in page]


@pytest.mark.parametrize("size", [64 * 1024 + 1, 1024 * 1024])
async def test_round_trip_through_process_deletes_the_blob_after_the_message(large: QueueClient, size: int) -> None:
    data = os.urandom(size)
    await large.send_message(data)
    assert len(await _names(large)) == 1
    got: list[bytes] = []

    async def handle(msg: ReceivedMessage) -> None:
        got.append(msg.content)

    stats = await large.process(handle, max_messages=1, idle_timeout=5)
    assert stats.processed == 1 and got == [data]
    assert await _names(large) == []
    assert (await large.get_queue_properties()).approximate_message_count == 0


MIB = 1024 * 1024


@pytest.mark.slow
async def test_a_100_mib_round_trip_in_bounded_memory(
    both_conn_str: str, queue_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """send_message -> process() of 100 MiB: the bytes equal, the blob gone, and the client's peak
    memory (tracemalloc: what Python allocates after the payload exists) bounded: sending holds no
    copy of the payload, receiving one (the handler's content) plus a few blocks."""
    block = 4 * MIB  # the default block_size
    payloads = BlobPayloads(container=_container())
    async with QueueClient.from_connection_string(
        both_conn_str, queue_name, message_encoding="binary", large_payloads=payloads
    ) as queue:
        await queue.create_queue()
        data = os.urandom(100 * MIB)
        got: list[bytes] = []

        async def handle(msg: ReceivedMessage) -> None:
            got.append(msg.content)

        tracemalloc.start()
        try:
            await queue.send_message(data)
            send_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            stats = await queue.process(handle, max_messages=1, idle_timeout=5)
            receive_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert stats.processed == 1 and len(got) == 1 and got[0] == data
        assert await _names(queue) == []
        await queue.delete_queue()
    with capsys.disabled():
        print(f"\n100 MiB round trip: send peak {send_peak / MIB:.1f} MiB, receive peak {receive_peak / MIB:.1f} MiB")
    assert send_peak < 3 * block  # no copy of the payload: a block or two at a time
    # the goal: the handler's copy of the payload, and less than two blocks beside it
    assert receive_peak < len(data) + 2 * block, f"{receive_peak / MIB:.2f} MiB"
    assert receive_peak < 3 * len(data)  # the generous bound: never three copies


async def test_the_queue_holds_a_small_documented_reference(large: QueueClient) -> None:
    data = os.urandom(100_000)
    await large.send_message(data)
    (peeked,) = await large.peek_messages(resolve=False)
    ref = json.loads(peeked.content)
    assert ref["aioqueue_payload"] == 1 and ref["size"] == 100_000
    assert ref["content_encoding"] == "binary" and ref["message_encoding"] == "binary"
    assert ref["container"] == _blobs(large).container and ref["blob"].startswith(f"{large.queue_name}/")
    assert len(ref["sha256"]) == 64
    (resolved,) = await large.peek_messages()
    assert resolved.content == data


async def test_small_content_stays_in_the_queue(large: QueueClient) -> None:
    await large.send_message(b"small")
    assert await _names(large) == []
    (msg,) = await large.receive_messages()
    assert msg.content == b"small"


async def test_text_over_the_threshold_and_receive_messages(both_conn_str: str, queue_name: str) -> None:
    payloads = BlobPayloads(container=_container(), threshold=2048)
    async with QueueClient.from_connection_string(both_conn_str, queue_name, large_payloads=payloads) as queue:
        await queue.create_queue()
        text = "é" * 5000
        await queue.send_message(text)
        (msg,) = await queue.receive_messages()
        assert msg.content == text
        await queue.delete_message(msg)
        assert await _names(queue) == []
        await queue.delete_queue()


async def test_a_poisoned_message_keeps_its_blob(large: QueueClient) -> None:
    data = os.urandom(70_000)
    await large.send_message(data)

    async def fail(msg: ReceivedMessage) -> None:
        raise RuntimeError("no")

    stats = await large.process(fail, max_messages=3, idle_timeout=5, max_dequeue_count=1, retry_delay=0)
    assert stats.poisoned == 1
    assert len(await _names(large)) == 1
    (record,) = await _poison_records(large)
    assert json.loads(record.content)["blob"] == (await _names(large))[0]  # the reference, in the record


async def test_a_missing_payload_is_the_messages_failure_then_poisoned(large: QueueClient) -> None:
    await large.send_message(os.urandom(70_000))
    (name,) = await _names(large)
    await _blobs(large).delete_blob(name)
    handled: list[object] = []

    async def handle(msg: ReceivedMessage) -> None:
        handled.append(msg.content)

    stats = await large.process(handle, max_messages=1, idle_timeout=3, max_dequeue_count=5)
    assert handled == [] and stats.poisoned == 1
    (record,) = await _poison_records(large)
    assert "missing" in (record.reason or "") and record.failures[0].type == "aioqueue.PayloadUnavailable"
    assert json.loads(record.content)["blob"] == name  # the reference, exactly


async def test_a_corrupted_payload_raises_from_a_stream(large: QueueClient) -> None:
    await large.send_message(os.urandom(70_000))
    (name,) = await _names(large)
    await _blobs(large).put_blob(name, b"tampered")
    with pytest.raises(PayloadUnavailable, match="does not match"):
        async for _ in large.receive(idle_timeout=3):
            pass


async def test_a_blob_longer_than_its_reference_is_refused_while_reading(large: QueueClient) -> None:
    data = os.urandom(70_000)
    await large.send_message(data)
    (name,) = await _names(large)
    await _blobs(large).put_blob(name, data + os.urandom(300_000))  # read in 256 KiB ranges
    with pytest.raises(PayloadUnavailable, match="larger than its reference"):
        await large.peek_messages()


async def test_a_reference_claiming_more_than_its_blob_is_refused_before_any_buffer(large: QueueClient) -> None:
    await large.send_message(os.urandom(70_000))
    (peeked,) = await large.peek_messages(resolve=False)
    fields = json.loads(peeked.content)
    fields["size"] = 64 * 1024 * 1024  # a lie: the buffer was sized from it before the blob's size was known
    await large.clear_messages()
    await large._ops.put_message('{"aioqueue_payload":1,' + json.dumps(fields)[1:], {})
    tracemalloc.start()
    try:
        with pytest.raises(PayloadUnavailable) as caught:
            await large.peek_messages()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, peak  # a generous bound: the blob is 70 kB, read in 256 KiB ranges
    assert "does not match its reference: 70000 bytes, smaller than its reference's 67108864" in str(caught.value)


async def _poison_records(queue: QueueClient) -> list[PoisonRecord]:
    """The poison queue's records, read from their text as stored (whatever the client's encoding)."""
    raws = await queue._ops.sibling(f"{queue.queue_name}-poison").peek_messages(32, None, False)
    return [PoisonRecord.parse(raw.text or "") for raw in raws]


async def _poison_reasons(queue: QueueClient, handled: list[object]) -> tuple[int, list[str]]:
    """process() with poisoning on: (how many were poisoned, their reasons); handled contents appended."""
    reasons: list[str] = []

    async def handle(msg: ReceivedMessage) -> None:
        handled.append(msg.content)

    stats = await queue.process(
        handle, max_messages=3, idle_timeout=3, max_dequeue_count=5, on_poison=lambda msg, why: reasons.append(why)
    )
    return stats.poisoned, reasons


class _BrokenDecoder:
    """A custom message encoding whose decode has a bug (a KeyError) with long texts."""

    name = "broken"

    def encode(self, content: Any) -> str:
        return str(content)

    def decode(self, text: str) -> Any:
        if len(text) > 1000:
            raise KeyError("a bug in a custom decoder")
        return text.encode()


@pytest.mark.parametrize("sender_encoding", ["json", "custom"])
async def test_a_payload_that_does_not_decode_is_poisoned_with_the_reason(
    large: QueueClient, both_conn_str: str, sender_encoding: str
) -> None:
    payloads = BlobPayloads(container=_blobs(large).container)
    if sender_encoding == "json":  # a json sender, this binary receiver: the text is not base64
        receiver = large
        sender = QueueClient.from_connection_string(
            both_conn_str, large.queue_name, message_encoding="json", large_payloads=payloads
        )
        content: object = {"k": "v" * 100_000}
    else:  # a custom encoding's decode raising KeyError
        sender = receiver = QueueClient.from_connection_string(
            both_conn_str, large.queue_name, message_encoding=_BrokenDecoder(), large_payloads=payloads
        )
        content = "v" * 100_000
    async with sender:  # the receiver is large, open, or the sender itself
        await sender.send_message(content)
        innocent = large if sender_encoding == "json" else sender  # one the receiver decodes
        await innocent.send_message(b"an innocent small message" if innocent is large else "innocent")
        handled: list[object] = []
        poisoned, reasons = await _poison_reasons(receiver, handled)
    assert poisoned == 1 and len(reasons) == 1 and "does not decode" in reasons[0], reasons
    assert len(handled) == 1  # process() went on to the next message


async def test_a_crafted_reference_with_a_field_of_the_wrong_type_is_poisoned(large: QueueClient) -> None:
    await large.send_message(b"t" * 100_000)  # UTF-8 bytes, so only content_encoding can trip it
    (peeked,) = await large.peek_messages(resolve=False)
    fields = json.loads(peeked.content)
    fields["content_encoding"] = 5
    await large._ops.put_message('{"aioqueue_payload":1,' + json.dumps(fields)[1:], {})
    await large.send_message(b"an innocent small message")
    handled: list[object] = []
    poisoned, reasons = await _poison_reasons(large, handled)
    assert poisoned == 1 and len(reasons) == 1, reasons
    assert sorted(len(c) for c in handled) == [25, 100_000]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field, value",
    [("container", 1), ("blob", None), ("size", -1), ("size", True), ("size", "70000"), ("sha256", "ab"),
     ("sha256", "g" * 64), ("content_encoding", 5), ("message_encoding", ["binary"])],
)  # fmt: skip
def test_a_reference_with_a_field_of_the_wrong_type_is_no_reference(field: str, value: object) -> None:
    fields = {"container": "c", "blob": "q/x", "size": 70000, "sha256": "a" * 64,
              "content_encoding": "binary", "message_encoding": "binary"}  # fmt: skip
    assert Reference.parse(Reference(**fields).text()) is not None  # type: ignore[arg-type]
    fields[field] = value
    assert Reference.parse('{"aioqueue_payload":1,' + json.dumps(fields)[1:]) is None


async def test_without_the_option_over_size_content_names_it(conn_str: str) -> None:
    async with QueueClient.from_connection_string(conn_str, "never-created", message_encoding="binary") as queue:
        with pytest.raises(MessageTooLarge, match="large_payloads=BlobPayloads"):
            await queue.send_message(os.urandom(70_000))


async def test_an_upload_failure_sends_no_message(both_conn_str: str, blob_proxy: FaultProxy, queue_name: str) -> None:
    payloads = BlobPayloads(container=_container(), endpoint=blob_proxy.url())
    async with QueueClient.from_connection_string(
        both_conn_str, queue_name, message_encoding="binary", large_payloads=payloads, retry=None
    ) as queue:
        await queue.create_queue()
        blob_proxy.script("500", "500", "500")
        with pytest.raises(PayloadError, match="no message was sent"):
            await queue.send_message(os.urandom(70_000))
        assert (await queue.get_queue_properties()).approximate_message_count == 0
        await queue.delete_queue()


async def test_a_send_refused_after_the_upload_removes_the_blob(both_conn_str: str, queue_name: str) -> None:
    payloads = BlobPayloads(container=_container())
    async with QueueClient.from_connection_string(
        both_conn_str, queue_name, message_encoding="binary", large_payloads=payloads
    ) as queue:  # the queue does not exist: Put Message is refused with 404 after the upload
        with pytest.raises(Exception, match="specified queue does not exist") as caught:
            await queue.send_message(os.urandom(70_000))
        assert "was removed" in " ".join(getattr(caught.value, "__notes__", ["was removed"]))
        assert await _names(queue) == []


async def test_send_messages_offloads_large_items(large: QueueClient) -> None:
    items = [b"small", os.urandom(70_000), os.urandom(300_000)]
    receipts = await large.send_messages(items, concurrency=2)
    assert len(receipts) == 3 and len(await _names(large)) == 2
    got = [m.content for m in await large.receive_messages(max_messages=32)]
    assert sorted(got) == sorted(items)


async def test_send_messages_checks_every_item_before_any_request(large: QueueClient) -> None:
    store = large._pool.payloads
    assert store is not None
    too_big = os.urandom(store.options.max_size + 1)
    with pytest.raises(MessageEncodingError, match="max_size"):
        await large.send_messages([os.urandom(70_000), too_big])
    assert await _names(large) == []
    assert (await large.get_queue_properties()).approximate_message_count == 0


async def test_send_messages_reports_an_upload_failure_per_item(
    both_conn_str: str, blob_proxy: FaultProxy, queue_name: str
) -> None:
    payloads = BlobPayloads(container=_container(), endpoint=blob_proxy.url())
    async with QueueClient.from_connection_string(
        both_conn_str, queue_name, message_encoding="binary", large_payloads=payloads, retry=None
    ) as queue:
        await queue.create_queue()
        await _blobs(queue).create_container()
        blob_proxy.script(Fault("500", method="PUT"))
        items = [b"first", os.urandom(70_000), b"third"]
        with pytest.raises(SendMessagesError) as caught:
            await queue.send_messages(items, concurrency=1)
        assert isinstance(caught.value.error, PayloadError)
        assert caught.value.receipts[0] is not None and caught.value.receipts[1:] == [None, None]
        assert await _names(queue) == []
        (msg,) = await queue.receive_messages(max_messages=32)
        assert msg.content == b"first"
        await queue.delete_queue()


async def _received(queue: QueueClient) -> QueueMessage:
    (msg,) = await queue.receive_messages()
    return msg


async def test_update_with_large_content_replaces_the_blob_after_success(large: QueueClient) -> None:
    await large.send_message(os.urandom(70_000))
    (old,) = await _names(large)
    msg = await _received(large)
    new = os.urandom(90_000)
    await large.update_message(msg, content=new, visibility_timeout=0)
    (current,) = await _names(large)
    assert current != old
    again = await _received(large)
    assert again.content == new
    await large.delete_message(again)
    assert await _names(large) == []


async def test_update_with_small_content_deletes_the_old_blob(large: QueueClient) -> None:
    await large.send_message(os.urandom(70_000))
    msg = await _received(large)
    await large.update_message(msg, content=b"small now", visibility_timeout=0)
    assert await _names(large) == []
    assert (await _received(large)).content == b"small now"


async def test_a_failed_update_keeps_the_old_blob_and_removes_the_new(large: QueueClient) -> None:
    data = os.urandom(70_000)
    await large.send_message(data)
    (old,) = await _names(large)
    msg = await _received(large)
    with pytest.raises(ServiceError):  # a pop receipt the service never gave this message
        await large.update_message(msg.id, "AgAAAAMAAAAAAAAAAAAAAAAAAAAAAAAA", content=os.urandom(80_000))
    assert await _names(large) == [old]
    await large.update_message(msg, visibility_timeout=0)
    assert (await _received(large)).content == data


def test_the_option_is_checked_before_any_request() -> None:
    for bad in (
        {"container": "Bad"},
        {"container": "ok-name", "threshold": 70_000},
        {"container": "ok-name", "block_size": 0},
        {"container": "ok-name", "max_size": 10**12, "block_size": 1024},
    ):
        with pytest.raises(ConfigurationError):
            BlobPayloads(**bad)
    with pytest.raises(ConfigurationError, match="Blob endpoint"):
        QueueClient("http://127.0.0.1:41234/devstoreaccount1", "q-name", large_payloads=BlobPayloads(container="abc"))


def test_the_blob_endpoint_carries_the_queue_urls_sas() -> None:
    queue = QueueClient.from_queue_url(
        "https://acct.queue.core.windows.net/jobs?sv=2025-11-05&ss=bq&sig=abc",
        large_payloads=BlobPayloads(container="abc"),
    )
    store = queue._pool.payloads
    assert store is not None
    endpoint = store.blobs.http.endpoint
    assert endpoint.origin == "https://acct.blob.core.windows.net" and endpoint.sas is not None
    asyncio.run(queue.close())


@pytest.mark.parametrize("content", [os.urandom(70_000), bytearray(70_000), memoryview(bytes(70_000))])
async def test_bytes_over_the_limit_with_base64_are_a_clear_encoding_error(content: object) -> None:
    """base64 takes str: bytes over 64 KiB are a MessageEncodingError naming 'binary' (not an
    AttributeError from sizing them), before any request (nothing listens on the endpoints)."""
    payloads = BlobPayloads(container="abc", endpoint="http://127.0.0.1:9/devstoreaccount1")
    async with QueueClient(
        "http://127.0.0.1:9/devstoreaccount1", "q-name", message_encoding="base64", large_payloads=payloads, retry=None
    ) as queue:
        for send in (queue.send_message, lambda c: queue.send_messages([c])):
            with pytest.raises((MessageEncodingError, SendMessagesError)) as info:
                await send(content)
            error = info.value.__cause__ if isinstance(info.value, SendMessagesError) else info.value
            assert isinstance(error, MessageEncodingError) and "use 'binary'" in str(error)


async def test_a_resent_delete_refused_for_its_receipt_keeps_the_blob_of_the_living_message(
    large: QueueClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A resent delete (ReceivedMessage's after a cut-off one) answered PopReceiptMismatch: the message
    may be another consumer's under a newer receipt, so its blob stays (an orphan to this client)."""
    data = os.urandom(70_000)
    await large.send_message(data)
    (name,) = await _names(large)
    msg = await _received(large)
    # the message's receipt changes, as another consumer's receive after a lapsed lease changes it
    newer = await large.update_message(msg.id, msg.pop_receipt, visibility_timeout=60)
    with caplog.at_level(logging.WARNING, logger="aioqueue"):
        await large._ops.delete(msg, resent=True)  # "gone" to the resend: the message is still there
    assert await _names(large) == [name]
    store = large._pool.payloads
    assert store is not None and store.orphans == 1
    assert any("left as an orphan" in r.getMessage() for r in caplog.records)
    await large.update_message(msg.id, newer.pop_receipt, visibility_timeout=0)
    again = await _received(large)
    assert again.content == data  # the living message still has its payload
    await large.delete_message(again)
    assert await _names(large) == []


async def test_a_resent_delete_answered_404_for_a_stale_receipt_keeps_the_blob(
    fake: FakeQueueService, azurite_blob: Azurite
) -> None:
    """On Azure a stale pop receipt is 404 MessageNotFound (the fake's answer too), so a resent
    delete's 404 may be a message living on under a newer receipt: its blob stays, an orphan."""
    async with large_queue(f"{fake.connection_string};BlobEndpoint={azurite_blob.url}", "stale") as queue:
        data = os.urandom(70_000)
        await queue.send_message(data)
        (name,) = await _names(queue)
        msg = await _received(queue)
        newer = await queue.update_message(msg.id, msg.pop_receipt, visibility_timeout=60)
        await queue._ops.delete(msg, resent=True)  # 404 to the stale receipt: the message is still there
        assert await _names(queue) == [name]
        await queue.update_message(msg.id, newer.pop_receipt, visibility_timeout=0)
        assert (await _received(queue)).content == data


async def test_an_update_by_id_keeps_its_new_blob_forever(large: QueueClient) -> None:
    """Given only an id, the message's remaining time to live is unknown (it may never expire): its
    new blob is marked ``never`` (an orphan at worst), never given an expiry a sweep could reach."""
    await large.send_message(b"small", time_to_live=-1)
    msg = await _received(large)
    data = os.urandom(80_000)
    await large.update_message(msg.id, msg.pop_receipt, content=data, visibility_timeout=0)
    page, _ = await _blobs(large).list_blobs(prefix=f"{large.queue_name}/")
    assert [item.metadata.get("aioqueue_expires") for item in page] == ["never"]
    assert await large.sweep_payloads(dry_run=True) == 0
    assert (await _received(large)).content == data


async def test_a_reference_copied_from_another_queue_never_deletes_its_blob(
    large: QueueClient, both_conn_str: str
) -> None:
    """A message in one queue carrying another queue's reference (copied from a peek, a log, a poison
    copy) is handled, but only the other queue's own consumer deletes that blob."""
    container = _blobs(large).container
    async with large_queue(both_conn_str, "other", container=container) as other:
        data = os.urandom(70_000)
        await other.send_message(data)
        (name,) = await _names(other)
        (peeked,) = await other.peek_messages(resolve=False)
        await large._ops.put_message(peeked.content, {})
        copy = await _received(large)
        assert copy.content == data
        await large.delete_message(copy)
        assert await _names(other) == [name]  # still there: other's message still points at it
        mine = await _received(other)
        assert mine.content == data
        await other.delete_message(mine)
        assert await _names(other) == []


@pytest.mark.parametrize(
    "blob", ["notes.txt", "large/0123456789abcdef0123456789abcdef/x", "x/../y", "LARGE/" + "0" * 32]
)
async def test_a_reference_naming_a_blob_aioqueue_never_writes_is_the_messages_failure(
    large: QueueClient, blob: str
) -> None:
    """Only ``<queue>/<32 hex digits>`` (the name a send writes) is read: a reference naming any other
    blob of the container is the message's failure, poisoned with the reason, the blob neither read
    nor deleted."""
    data = b"someone else's blob"
    await _blobs(large).put_blob(blob, data)
    ref = {
        "aioqueue_payload": 1, "container": _blobs(large).container, "blob": blob, "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "content_encoding": "binary", "message_encoding": "binary",
    }  # fmt: skip
    await large._ops.put_message(json.dumps(ref, separators=(",", ":")), {})
    handled: list[object] = []

    async def handle(msg: ReceivedMessage) -> None:
        handled.append(msg.content)

    stats = await large.process(handle, max_messages=1, idle_timeout=3, max_dequeue_count=5)
    assert handled == [] and stats.poisoned == 1
    page, _ = await _blobs(large).list_blobs(prefix=blob)
    assert [item.name for item in page] == [blob]
    (record,) = await _poison_records(large)
    assert "not a payload blob name" in (record.reason or "") and json.loads(record.content)["blob"] == blob


async def test_a_poison_queue_consumer_reads_its_payloads_but_never_deletes_them(
    large: QueueClient, both_conn_str: str
) -> None:
    data = os.urandom(70_000)
    await large.send_message(data)
    (name,) = await _names(large)

    async def fail(msg: ReceivedMessage) -> None:
        raise RuntimeError("no")

    stats = await large.process(
        fail, max_messages=3, idle_timeout=3, max_dequeue_count=1, retry_delay=0, poison_format="body"
    )  # the bare reference, which a consumer of the poison queue reads as any message
    assert stats.poisoned == 1
    payloads = BlobPayloads(container=_blobs(large).container)
    async with QueueClient.from_connection_string(
        both_conn_str, f"{large.queue_name}-poison", message_encoding="binary", large_payloads=payloads
    ) as poison:
        copy = await _received(poison)
        assert copy.content == data
        await poison.delete_message(copy)
    assert await _names(large) == [name]  # marked never: an orphan, documented
