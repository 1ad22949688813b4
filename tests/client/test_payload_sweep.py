"""Large payloads' sweep (issue #27 stage 3): ``queue.sweep_payloads()`` removes the payload blobs whose
recorded expiry (``aioqueue_expires``) has passed, and no other; against Azurite's queue and blob
services together. An expiry is made to pass by writing it on the blob, or by moving the sweep's clock."""

from __future__ import annotations

import json
import os
import time
import types
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from aioqueue import BlobPayloads, ConfigurationError, QueueClient, ReceivedMessage
from aioqueue._poison import PoisonRecord
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY
from tests.client.payloads import blobs, container_name, large_queue

EXPIRES = "aioqueue_expires"


_container = container_name
_blobs = blobs


@pytest_asyncio.fixture
async def large(both_conn_str: str) -> AsyncIterator[QueueClient]:
    """A binary-encoded client with large payloads on a fresh queue (and container)."""
    async with large_queue(both_conn_str, "sweep") as queue:
        yield queue


async def _expiries(queue: QueueClient, prefix: str | None = None) -> dict[str, str]:
    """Blob name -> its recorded expiry, for the queue's payload blobs (or another prefix's)."""
    page, _ = await _blobs(queue).list_blobs(prefix=prefix or f"{queue.queue_name}/")
    return {b.name: b.metadata.get(EXPIRES, "") for b in page}


def _clock_at(monkeypatch: pytest.MonkeyPatch, when: float) -> None:
    """The sweep's clock (aioqueue._payloads' time.time) at ``when``; nothing else's."""
    monkeypatch.setattr("aioqueue._payloads.time", types.SimpleNamespace(time=lambda: when))


async def test_sweep_removes_only_blobs_whose_expiry_passed(large: QueueClient) -> None:
    blobs = _blobs(large)
    name = large.queue_name
    past = str(int(time.time()) - 60)
    await blobs.put_blob(f"{name}/orphan", b"x" * 100, {EXPIRES: past})  # its message is long gone
    await blobs.put_blob(f"{name}-other/orphan", b"x", {EXPIRES: past})  # another queue's: not this sweep's
    await blobs.put_blob(f"{name}/unmarked", b"x")  # no recorded expiry: never swept
    pending, forever = os.urandom(70_000), os.urandom(70_000)
    await large.send_message(pending)  # the default 7-day time to live, plus a day's grace
    await large.send_message(forever, time_to_live=-1)
    before = await _expiries(large)
    assert len(before) == 4 and before[f"{name}/orphan"] == past and before[f"{name}/unmarked"] == ""
    (coming,) = [v for v in before.values() if v.isdigit() and v != past]
    assert int(coming) > time.time() + 7 * 86400 and "never" in before.values()

    assert await large.sweep_payloads(dry_run=True) == 1
    assert await _expiries(large) == before  # a dry run removes nothing

    assert await large.sweep_payloads() == 1
    after = await _expiries(large)
    assert set(after) == set(before) - {f"{name}/orphan"}
    assert await _expiries(large, f"{name}-other/") == {f"{name}-other/orphan": past}
    assert await large.sweep_payloads() == 0  # nothing more has expired
    # both messages can still be delivered, and both still have their payloads
    assert sorted(m.content for m in await large.peek_messages(max_messages=2)) == sorted([pending, forever])


async def test_a_payload_is_swept_only_once_its_expiry_passed(large: QueueClient, monkeypatch) -> None:
    sent = time.time()
    await large.send_message(os.urandom(70_000), time_to_live=3600)  # expires at sent + 3600 + 86400 grace
    await large.send_message(os.urandom(70_000), time_to_live=-1)
    (expiry,) = [int(v) for v in (await _expiries(large)).values() if v != "never"]
    assert sent + 3600 + 86400 - 5 <= expiry <= time.time() + 3600 + 86400

    _clock_at(monkeypatch, expiry - 1)  # a second before: kept
    assert await large.sweep_payloads() == 0
    _clock_at(monkeypatch, expiry + 1)
    assert await large.sweep_payloads(dry_run=True) == 1
    assert len(await _expiries(large)) == 2
    assert await large.sweep_payloads() == 1
    assert list((await _expiries(large)).values()) == ["never"]
    _clock_at(monkeypatch, expiry + 100 * 365 * 86400)
    assert await large.sweep_payloads() == 0  # never is never


async def test_a_poisoned_messages_payload_is_never_swept(large: QueueClient, monkeypatch) -> None:
    """The poison copy never expires, so its payload must outlive the original message's expiry."""
    data = os.urandom(70_000)
    await large.send_message(data, time_to_live=3600)

    async def fail(msg: ReceivedMessage) -> None:
        raise RuntimeError("no")

    stats = await large.process(fail, max_messages=3, idle_timeout=5, max_dequeue_count=1, retry_delay=0)
    assert stats.poisoned == 1
    _clock_at(monkeypatch, time.time() + 30 * 86400)  # long past the original message's expiry
    assert await large.sweep_payloads() == 0
    assert list((await _expiries(large)).values()) == ["never"]
    (raw,) = await large._ops.sibling(f"{large.queue_name}-poison").peek_messages(1, None, False)
    record = PoisonRecord.parse(raw.text or "")  # its poison record keeps the reference
    assert json.loads(record.content)["blob"] in await _expiries(large)


async def test_a_missing_container_sweeps_nothing(both_conn_str: str, queue_name: str) -> None:
    payloads = BlobPayloads(container=_container())
    async with QueueClient.from_connection_string(both_conn_str, queue_name, large_payloads=payloads) as queue:
        assert await queue.sweep_payloads() == 0


async def test_sweep_without_large_payloads_is_refused_before_any_request() -> None:
    # nothing listens on port 9: a request would be a TransportError
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"QueueEndpoint=http://127.0.0.1:9/{DEV_ACCOUNT};BlobEndpoint=http://127.0.0.1:9/{DEV_ACCOUNT}"
    )
    async with QueueClient.from_connection_string(conn, "jobs") as queue:
        with pytest.raises(ConfigurationError, match="large_payloads"):
            await queue.sweep_payloads()
    async with QueueClient.from_connection_string(
        conn, "jobs", large_payloads=BlobPayloads(container="payloads")
    ) as queue:
        with pytest.raises(ConfigurationError, match="dry_run"):
            await queue.sweep_payloads(dry_run="yes")  # type: ignore[arg-type]
