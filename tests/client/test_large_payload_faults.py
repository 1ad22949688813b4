"""Large payloads through the fault proxy (issue #27's proofs): the queue through ``proxy``, the
blob service through ``blob_proxy``, both in front of Azurite. In every case nothing is lost: a
message is either not sent (and the caller told), or it is handled with its payload, or it is
poisoned with its payload kept; at worst a payload blob is left behind as an orphan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from aioqueue import BlobPayloads, QueueClient, ReceivedMessage, RequestTimeout, ServiceError, TransportError
from aioqueue._payloads import Reference
from aioqueue._poison import PoisonRecord
from aioqueue.testing import connection_string
from tests.client.test_large_payloads import _blobs, _container, _names
from tests.faults import Fault, FaultProxy, Gate
from tests.helpers import eventually

DATA_SIZE = 100_000  # over 64 KiB: always a payload blob (one block)
BOUND = 30.0  # generous: a loaded 2-core machine never needs it; a client that never gets there does


@dataclass
class Pair:
    """One queue and container, seen through the proxies (``faulty``) and directly (``direct``)."""

    faulty: QueueClient
    direct: QueueClient


def _faulty_conn_str(proxy: FaultProxy, blob_proxy: FaultProxy) -> str:
    return f"{connection_string('127.0.0.1', proxy.port)};BlobEndpoint={blob_proxy.url()}"


@contextlib.asynccontextmanager
async def _pair(proxy: FaultProxy, blob_proxy: FaultProxy, both_conn_str: str, timeout: float) -> AsyncIterator[Pair]:
    name = f"faults-{uuid.uuid4().hex[:16]}"
    container = _container()

    def client(conn_str: str) -> QueueClient:
        payloads = BlobPayloads(container=container)
        return QueueClient.from_connection_string(
            conn_str, name, message_encoding="binary", large_payloads=payloads, retry=None, timeout=timeout
        )

    faulty, direct = client(_faulty_conn_str(proxy, blob_proxy)), client(both_conn_str)
    async with faulty, direct:
        await direct.create_queue()
        await _blobs(direct).create_container()
        try:
            yield Pair(faulty, direct)
        finally:
            await direct.delete_queue(missing_ok=True)
            await direct._sibling(f"{name}-poison").delete_queue(missing_ok=True)


@pytest_asyncio.fixture
async def pair(proxy: FaultProxy, blob_proxy: FaultProxy, both_conn_str: str) -> AsyncIterator[Pair]:
    """Requests time out after 3 s (a held download is a timeout soon)."""
    async with _pair(proxy, blob_proxy, both_conn_str, 3.0) as made:
        yield made


@pytest_asyncio.fixture
async def patient_pair(proxy: FaultProxy, blob_proxy: FaultProxy, both_conn_str: str) -> AsyncIterator[Pair]:
    """Requests time out after 60 s: a download is held for as long as the test needs."""
    async with _pair(proxy, blob_proxy, both_conn_str, 60.0) as made:
        yield made


async def _handle_all(queue: QueueClient, **options: object) -> list[bytes]:
    got: list[bytes] = []

    async def handle(msg: ReceivedMessage) -> None:
        got.append(msg.content)

    await queue.process(handle, **{"idle_timeout": 3, **options})  # type: ignore[arg-type]
    return got


async def _count(queue: QueueClient) -> int:
    return (await queue.get_queue_properties()).approximate_message_count


async def test_a_send_refused_after_the_upload_removes_the_blob_and_says_so(pair: Pair, proxy: FaultProxy) -> None:
    proxy.script(Fault("500", method="POST"))  # Put Message refused; the upload went through
    with pytest.raises(ServiceError) as caught:
        await pair.faulty.send_message(os.urandom(DATA_SIZE))
    assert any("was removed" in note for note in caught.value.__notes__)
    assert await _names(pair.direct) == [] and await _count(pair.direct) == 0


async def test_a_send_whose_answer_is_lost_keeps_the_blob_and_the_message_is_whole(
    pair: Pair, proxy: FaultProxy
) -> None:
    data = os.urandom(DATA_SIZE)
    proxy.script(Fault("reset_after", method="POST"))  # stored, but the client never hears it
    with pytest.raises(TransportError) as caught:
        await pair.faulty.send_message(data)
    assert any("may have been stored" in note and "kept" in note for note in caught.value.__notes__)
    store = pair.faulty._pool.payloads
    assert store is not None and store.orphans == 1
    assert len(await _names(pair.direct)) == 1
    assert await _handle_all(pair.direct, max_messages=1) == [data]  # nothing lost
    assert await _names(pair.direct) == []


async def test_a_failed_download_releases_the_message_for_later(
    pair: Pair, blob_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aioqueue._link.PAYLOAD_RETRY_SECONDS", 1)
    data = os.urandom(DATA_SIZE)
    await pair.direct.send_message(data)
    blob_proxy.script(Fault("reset_before", method="GET"), Fault("503", method="GET"))  # the blob service away
    got = await _handle_all(pair.faulty, max_messages=1, idle_timeout=30, max_dequeue_count=5)
    assert got == [data]  # released (not poisoned), then handled once the blob service answered again
    assert [s.fault for s in blob_proxy.seen if s.method == "GET"][:3] == ["reset_before", "503", None]
    assert await _names(pair.direct) == [] and await _count(pair.direct) == 0


async def test_a_cut_off_range_is_a_failed_download_not_a_corrupt_payload(
    pair: Pair, blob_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A range over 1 MiB is read into a buffer of its announced size: an answer cut off half-way is a
    failed download (released, then handled whole), never a payload padded out and poisoned."""
    monkeypatch.setattr("aioqueue._link.PAYLOAD_RETRY_SECONDS", 1)
    data = os.urandom(3 * 1024 * 1024 // 2)  # one range of 1.5 MiB (the default block_size is 4 MiB)
    await pair.direct.send_message(data)
    blob_proxy.script(Fault("truncate", method="GET"))
    got = await _handle_all(pair.faulty, max_messages=1, idle_timeout=30, max_dequeue_count=5)
    assert got == [data]
    assert [s.fault for s in blob_proxy.seen if s.method == "GET"][:2] == ["truncate", None]
    assert await _names(pair.direct) == [] and await _count(pair.direct) == 0


@pytest.mark.slow
async def test_a_download_that_times_out_releases_the_message_for_later(
    pair: Pair, blob_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("aioqueue._link.PAYLOAD_RETRY_SECONDS", 1)
    data = os.urandom(DATA_SIZE)
    await pair.direct.send_message(data)
    gate = Gate()  # the Get Blob is held past the client's 3 s timeout, and never answered in time
    blob_proxy.script(Fault("hold", method="GET", gate=gate))
    try:
        with caplog.at_level(logging.WARNING, logger="aioqueue"):
            got = await _handle_all(pair.faulty, max_messages=1, idle_timeout=30, max_dequeue_count=5)
    finally:
        gate.release.set()
    assert got == [data]
    (why,) = [r for r in caplog.records if "fetching its payload failed" in r.getMessage()]
    assert isinstance(why.args[2], RequestTimeout)  # type: ignore[index]
    assert await _names(pair.direct) == [] and await _count(pair.direct) == 0


async def test_a_corrupted_blob_is_poisoned_with_the_reason_and_kept(pair: Pair, blob_proxy: FaultProxy) -> None:
    data = os.urandom(DATA_SIZE)
    await pair.direct.send_message(data)
    flipped = Fault("rewrite", method="GET", transform=lambda body: bytes([body[0] ^ 1]) + body[1:])
    blob_proxy.script(flipped)
    reasons: list[str] = []
    handled = await _handle_all(
        pair.faulty, max_messages=1, max_dequeue_count=5, on_poison=lambda msg, why: reasons.append(why)
    )
    assert handled == [] and len(reasons) == 1 and "does not match its reference" in reasons[0]
    assert len(await _names(pair.direct)) == 1  # the payload stays with the poison copy
    poison = pair.direct._ops.sibling(f"{pair.direct.queue_name}-poison")
    (raw,) = await poison.peek_messages(1, None, False)
    ref = Reference.parse(PoisonRecord.parse(raw.text or "").content)  # its record keeps the reference
    store = pair.direct._pool.payloads
    assert ref is not None and store is not None
    assert await store.resolve(ref, pair.direct._encoding) == data  # nothing lost: it still resolves


async def test_a_blob_delete_failing_after_the_message_delete_leaves_a_counted_orphan(
    pair: Pair, blob_proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    data = os.urandom(DATA_SIZE)
    await pair.direct.send_message(data)
    blob_proxy.script(Fault("500", method="DELETE"))
    with caplog.at_level(logging.WARNING, logger="aioqueue"):
        assert await _handle_all(pair.faulty, max_messages=1) == [data]
    assert await _count(pair.direct) == 0  # the message is done
    assert len(await _names(pair.direct)) == 1  # its blob is an orphan, for the sweep
    store = pair.faulty._pool.payloads
    assert store is not None and store.orphans == 1
    assert any("left as an orphan" in r.getMessage() for r in caplog.records)


# ---- one payload at a time, as each message is handed over, its lease kept meanwhile -------------


def _downloads(blob_proxy: FaultProxy) -> int:
    return sum(1 for seen in blob_proxy.seen if seen.method == "GET")


def _renewed(proxy: FaultProxy, msg_id: str) -> bool:
    """Whether an Update Message of ``msg_id`` went to the queue with the stream's visibility (2 s)."""
    return any(
        seen.method == "PUT" and f"/messages/{msg_id}?" in seen.path and "visibilitytimeout=2" in seen.path
        for seen in proxy.seen
    )


async def test_receive_fetches_each_payload_as_its_message_is_handed_over(pair: Pair, blob_proxy: FaultProxy) -> None:
    """One Get Messages brings three large messages: message 2's payload is fetched only after
    message 1 was handed over (a batch of 32 x 100 MiB is never held at once)."""
    sent = [os.urandom(DATA_SIZE) for _ in range(3)]
    for data in sent:
        await pair.direct.send_message(data)
    handed: list[tuple[bytes, int]] = []
    async for msg in pair.faulty.receive(max_batch_size=3, max_messages=3, idle_timeout=3):
        async with msg:
            handed.append((msg.content, _downloads(blob_proxy)))
    assert sorted(content for content, _ in handed) == sorted(sent)
    assert [downloads for _, downloads in handed] == [1, 2, 3]
    assert await _count(pair.direct) == 0 and await _names(pair.direct) == []


async def test_process_hands_a_message_over_while_another_payload_downloads_its_lease_renewed(
    patient_pair: Pair, proxy: FaultProxy, blob_proxy: FaultProxy
) -> None:
    """Two large messages in one Get Messages, two handler slots: while one payload's download is
    held, the other message is handled, and the held one's lease (2 s) is renewed (no auto_renew)."""
    sent = {}
    for data in (os.urandom(DATA_SIZE), os.urandom(DATA_SIZE)):
        sent[(await patient_pair.direct.send_message(data)).id] = data
    gate = Gate()
    blob_proxy.script(Fault("hold", method="GET", gate=gate))  # the first download, whichever it is
    handled: dict[str, bytes] = {}

    async def handle(msg: ReceivedMessage) -> None:
        handled[msg.id] = msg.content

    async def one_handled() -> bool:
        return len(handled) == 1

    worker = asyncio.ensure_future(
        patient_pair.faulty.process(handle, concurrency=2, visibility_timeout=2, max_messages=2, idle_timeout=30)
    )
    try:
        await asyncio.wait_for(gate.arrived.wait(), BOUND)
        await eventually(one_handled, BOUND, "the other message handed over while this payload is held")
        (held,) = set(sent) - set(handled)

        async def renewed() -> bool:
            return _renewed(proxy, held)

        await eventually(renewed, BOUND, "a renewal of the lease of the message whose payload is held")
    finally:
        gate.release.set()
    stats = await asyncio.wait_for(worker, BOUND)
    assert stats.processed == 2 and handled == sent
    assert await _count(patient_pair.direct) == 0 and await _names(patient_pair.direct) == []


@pytest.mark.parametrize("auto_renew", [False, True])
async def test_a_stop_gives_back_a_message_whose_payload_is_still_downloading_and_never_starts_it(
    patient_pair: Pair, blob_proxy: FaultProxy, auto_renew: bool
) -> None:
    """What SIGTERM promises (docs/guide/production.md): every message fetched and not started goes back
    at once, so that another replica takes it now, not a visibility timeout later. One whose payload is
    still downloading has not started: a stop gives it back while its download is still held, and its
    handler never runs, even once the download is let through."""
    await patient_pair.direct.send_message(os.urandom(DATA_SIZE))
    gate = Gate()
    blob_proxy.script(Fault("hold", method="GET", gate=gate))
    handled: list[str] = []

    async def handle(msg: ReceivedMessage) -> None:
        handled.append(msg.id)

    worker = patient_pair.faulty.worker(handle, concurrency=1, visibility_timeout=600, auto_renew=auto_renew)
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(gate.arrived.wait(), BOUND)
        worker.stop()

        async def given_back() -> bool:
            return len(await patient_pair.direct.peek_messages()) == 1  # hidden for 600 s unless released

        await eventually(given_back, BOUND, "the message given back while its payload downloads")
    finally:
        gate.release.set()
    stats = await asyncio.wait_for(running, BOUND)
    assert handled == [] and (stats.processed, stats.failed, worker.received) == (0, 0, 0)
    assert len(await patient_pair.direct.peek_messages()) == 1 and len(await _names(patient_pair.direct)) == 1


@pytest.mark.parametrize("how", ["receive_messages", "receive_batches"])
async def test_a_lists_leases_are_renewed_while_its_payloads_download(
    patient_pair: Pair, proxy: FaultProxy, blob_proxy: FaultProxy, how: str
) -> None:
    """receive_messages and receive_batches hand over a whole list: while its second payload's
    download is held, both messages' leases (2 s) are renewed, and their newest receipts delete them."""
    queue = patient_pair.faulty
    sent = {}
    for data in (os.urandom(DATA_SIZE), os.urandom(DATA_SIZE)):
        sent[(await patient_pair.direct.send_message(data)).id] = data
    gate = Gate()
    blob_proxy.script(Fault("delay", method="GET"), Fault("hold", method="GET", gate=gate))  # hold the second

    async def take() -> dict[str, bytes]:
        if how == "receive_messages":
            messages = await queue.receive_messages(max_messages=2, visibility_timeout=2)
            for msg in messages:
                await queue.delete_message(msg)
            return {msg.id: msg.content for msg in messages}
        async with queue.receive_batches(max_batch_size=2, visibility_timeout=2, idle_timeout=3) as stream:
            async for batch in stream:
                async with batch:  # deletes both on exit
                    return {msg.id: msg.content for msg in batch}
        return {}

    async def both_renewed() -> bool:
        return all(_renewed(proxy, msg_id) for msg_id in sent)

    taking = asyncio.ensure_future(take())
    try:
        await asyncio.wait_for(gate.arrived.wait(), BOUND)
        await eventually(both_renewed, BOUND, "renewals of both messages' leases")
    finally:
        gate.release.set()
    assert await asyncio.wait_for(taking, BOUND) == sent
    assert await _count(patient_pair.direct) == 0 and await _names(patient_pair.direct) == []
