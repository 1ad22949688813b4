"""OpenTelemetry traces and metrics, and the live worker, against Azurite (the queue's lag against the
fake service, whose clock can run behind the client's).

Each test gets its own SDK providers (in-memory span exporter, in-memory metric reader) passed to
its client as ``tracer_provider=`` / ``meter_provider=``: the global providers are never set, so
tests share nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aioqueue import (
    ConfigurationError,
    PoisonRecord,
    QueueClient,
    ReceivedMessage,
    RetryPolicy,
    SasCredential,
    Worker,
    generate_queue_sas,
)
from aioqueue._autoscale import LagSampler, add_gauges
from aioqueue._telemetry import OFF, SYSTEM
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY, FakeQueueService
from tests.faults import Fault

BOUND = 15.0
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)


@pytest.fixture
def otel():
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield SimpleNamespace(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        spans=exporter.get_finished_spans,
        metrics=lambda: _points(reader),
        options={"tracer_provider": tracer_provider, "meter_provider": meter_provider},
    )
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Metric name -> its data points (each with .attributes and .value, or .count/.sum)."""
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def total(points: list[Any], **attrs: Any) -> float:
    """Sum of counter values (or histogram counts) over the points whose attributes match."""
    result = 0.0
    for p in points:
        if all(p.attributes.get(k) == v for k, v in attrs.items()):
            result += p.value if hasattr(p, "value") else p.count
    return result


def named(spans, name: str):
    return [s for s in spans if s.name == name]


async def _client(conn_str: str, queue_name: str, **options: Any) -> QueueClient:
    client = QueueClient.from_connection_string(conn_str, queue_name, retry=FAST, **options)
    await client.create_queue(exist_ok=True)
    return client


# ---- spans ------------------------------------------------------------------------------------


async def test_send_process_delete_is_one_linked_tree(conn_str, queue_name, otel):
    tracer = otel.tracer_provider.get_tracer("app")
    seen: list[Any] = []

    async def handler(msg: ReceivedMessage) -> None:
        with tracer.start_as_current_span("handler work"):
            seen.append(msg.content)

    options = {**otel.options, "message_encoding": "json", "trace_context_field": "traceparent"}
    async with await _client(conn_str, queue_name, **options) as queue:
        with tracer.start_as_current_span("web request"):
            receipt = await queue.send_message({"order": 42})
        stats = await queue.process(handler, max_messages=1, idle_timeout=BOUND)
    assert stats.processed == 1

    spans = otel.spans()
    (request,) = named(spans, "web request")
    (send,) = named(spans, f"send {queue_name}")
    (process,) = named(spans, f"process {queue_name}")
    (work,) = named(spans, "handler work")
    (delete,) = named(spans, f"delete {queue_name}")
    receives = named(spans, f"receive {queue_name}")
    assert receives and all(r.kind is SpanKind.CLIENT for r in receives)
    assert receives[0].attributes["messaging.batch.message_count"] == 1

    # the producer side: a PRODUCER span under the application's span, naming the message it sent
    assert send.kind is SpanKind.PRODUCER
    assert send.parent.span_id == request.context.span_id
    assert send.attributes["messaging.system"] == SYSTEM == "azure_queue_storage"
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.destination.name"] == queue_name
    assert send.attributes["messaging.message.id"] == receipt.id
    assert send.attributes["messaging.message.body.size"] > len('{"order":42}')
    assert send.attributes["http.response.status_code"] == 201
    assert send.attributes["az.service_request_id"]
    assert send.attributes["server.address"] == "127.0.0.1"

    # the consumer side: a CONSUMER span per message, linked (not parented) to the send span, with
    # the handler's own span and the settling delete as its children
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is None
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    assert process.links[0].context.trace_id == request.context.trace_id
    assert process.attributes["messaging.message.id"] == receipt.id
    assert process.attributes["messaging.azure_queue_storage.message.dequeue_count"] == 1
    assert process.status.status_code is not StatusCode.ERROR
    assert work.parent.span_id == process.context.span_id
    assert delete.parent.span_id == process.context.span_id
    assert delete.attributes["messaging.operation.type"] == "settle"
    assert delete.attributes["messaging.message.id"] == receipt.id
    # the handler sees the field: the message format changed only because the producer opted in
    context = send.context
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert seen == [{"order": 42, "traceparent": traceparent}]


async def test_trace_context_is_opt_in_on_each_side(conn_str, queue_name, otel):
    """Producer opted in, consumer not: the consumer gets a JSON object with one more field and no
    link. Producer not opted in: the message is exactly what was sent. Non-object content is never
    changed."""
    async with await _client(conn_str, queue_name, message_encoding="json", **otel.options) as plain:
        producer = QueueClient.from_connection_string(
            conn_str, queue_name, message_encoding="json", trace_context_field="traceparent", **otel.options
        )
        async with producer:
            await producer.send_message({"order": 1})
            await producer.send_message([1, 2, 3])
            await plain.send_message({"order": 2})
            await producer.send_message("just text")
        got = [m.content for m in await plain.receive_messages(max_messages=4)]
        assert got[0]["order"] == 1 and got[0]["traceparent"].startswith("00-")
        assert got[1:] == [[1, 2, 3], {"order": 2}, "just text"]

        await plain.send_message({"order": 3})
        consumer = QueueClient.from_connection_string(
            conn_str, queue_name, message_encoding="json", trace_context_field="traceparent", **otel.options
        )
        handled: list[Any] = []

        async def handler(msg: ReceivedMessage) -> None:
            handled.append(msg.content)

        async with consumer:
            await consumer.process(handler, max_messages=1, idle_timeout=BOUND)
    assert handled == [{"order": 3}]
    (process,) = named(otel.spans(), f"process {queue_name}")
    assert list(process.links) == []


async def test_a_garbled_traceparent_is_no_link_and_no_failure(conn_str, queue_name, otel):
    options = {**otel.options, "message_encoding": "json", "trace_context_field": "traceparent"}
    async with await _client(conn_str, queue_name, **options) as queue:
        for bad in ("nonsense", 42, "00-" + "0" * 32 + "-" + "0" * 16 + "-01", "x" * 10_000):
            await queue._ops.put_message(f'{{"traceparent": {bad!r}}}'.replace("'", '"'), {})
        stats = await queue.process(_ok, max_messages=4, idle_timeout=BOUND)
    assert stats.processed == 4
    assert all(list(s.links) == [] for s in named(otel.spans(), f"process {queue_name}"))


async def test_tracestate_travels_beside_traceparent(conn_str, queue_name, otel):
    """A producer that is not aioqueue (a CloudEvents emitter, say) put both W3C fields in its JSON."""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    options = {**otel.options, "message_encoding": "json", "trace_context_field": "traceparent"}
    async with await _client(conn_str, queue_name, **options) as queue:
        event = {"specversion": "1.0", "traceparent": parent, "tracestate": "vendor=abc"}
        await queue._ops.put_message(json.dumps(event), {})
        stats = await queue.process(_ok, max_messages=1, idle_timeout=BOUND)
    assert stats.processed == 1
    (process,) = named(otel.spans(), f"process {queue_name}")
    (link,) = process.links
    assert f"{link.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{link.context.span_id:016x}" == "b7ad6b7169203331"
    assert link.context.trace_state.get("vendor") == "abc"


async def _ok(msg: ReceivedMessage) -> None:
    return None


async def test_a_failing_handler_is_an_error_span_and_a_callback(conn_str, queue_name, otel):
    failures: list[tuple[str, BaseException]] = []

    async def handler(msg: ReceivedMessage) -> None:
        raise ValueError("bad order")

    async def on_failure(msg: ReceivedMessage, error: BaseException) -> None:
        failures.append((msg.id, error))

    async with await _client(conn_str, queue_name, **otel.options) as queue:
        receipt = await queue.send_message("x")
        stats = await queue.process(handler, max_messages=1, idle_timeout=BOUND, on_failure=on_failure)
    assert stats.failed == 1
    assert [(i, type(e)) for i, e in failures] == [(receipt.id, ValueError)]
    spans = otel.spans()
    (process,) = named(spans, f"process {queue_name}")
    assert process.status.status_code is StatusCode.ERROR
    assert process.attributes["error.type"] == "ValueError"
    assert [e.name for e in process.events] == ["exception"]
    (release,) = named(spans, f"release {queue_name}")
    assert release.parent.span_id == process.context.span_id
    assert release.attributes["messaging.operation.type"] == "settle"
    points = otel.metrics()
    assert total(points["aioqueue.consumer.messages"], **{"aioqueue.outcome": "failed"}) == 1
    assert total(points["messaging.process.duration"], **{"error.type": "ValueError"}) == 1


async def test_a_poisoned_message_is_an_error_span_and_a_callback(conn_str, queue_name, otel):
    poisoned: list[tuple[str, str]] = []

    def on_poison(msg: ReceivedMessage, why: str) -> None:  # a plain function works too
        poisoned.append((msg.id, why))

    async with await _client(conn_str, queue_name, **otel.options) as queue:
        receipt = await queue.send_message("x")
        (first,) = await queue.receive_messages()
        await queue.update_message(first, visibility_timeout=0)  # back, with dequeue count 1
        stats = await queue.process(_ok, max_dequeue_count=1, idle_timeout=1, poll_interval=0.05, on_poison=on_poison)
    assert stats.poisoned == 1 and stats.processed == 0
    assert poisoned == [(receipt.id, "was received 2 times")]
    spans = otel.spans()
    (poison,) = named(spans, f"poison {queue_name}")
    assert poison.status.status_code is StatusCode.ERROR
    assert poison.attributes["error.type"] == "max_dequeue_count"
    assert poison.attributes["aioqueue.poison_queue"] == f"{queue_name}-poison"
    assert poison.attributes["messaging.azure_queue_storage.message.dequeue_count"] == 2
    children = {s.name for s in spans if s.parent is not None and s.parent.span_id == poison.context.span_id}
    # the poison queue is made on first use, the message copied there, then deleted here
    assert children == {f"create_queue {queue_name}-poison", f"send {queue_name}-poison", f"delete {queue_name}"}
    assert total(otel.metrics()["aioqueue.consumer.messages"], **{"aioqueue.outcome": "poisoned"}) == 1
    async with QueueClient.from_connection_string(conn_str, f"{queue_name}-poison") as poison_queue:
        (copy,) = await poison_queue.peek_messages()
        await poison_queue.delete_queue()
    record = PoisonRecord.parse(copy.content)  # its poison record names the poison span's trace
    assert record.trace_id == f"{poison.context.trace_id:032x}"
    assert record.reason == "received 2 times (max_dequeue_count=1)" and record.failures == ()


async def test_a_lost_lease_is_an_error_span_and_a_callback(conn_str, queue_name, otel):
    lost: list[BaseException] = []

    async with await _client(conn_str, queue_name, **otel.options) as queue:

        async def handler(msg: ReceivedMessage) -> None:
            # another consumer's update: the worker's pop receipt is dead, its delete fails
            await queue.update_message(msg.id, msg.pop_receipt, visibility_timeout=0)

        await queue.send_message("x")
        stats = await queue.process(
            handler, max_messages=1, idle_timeout=BOUND, on_lease_lost=lambda m, e: lost.append(e)
        )
    assert stats.lease_lost == 1 and stats.processed == 0
    assert len(lost) == 1
    (process,) = named(otel.spans(), f"process {queue_name}")
    assert process.attributes["error.type"] == "lease_lost"
    assert total(otel.metrics()["aioqueue.consumer.messages"], **{"aioqueue.outcome": "lease_lost"}) == 1


async def test_a_delete_that_fails_in_an_outage_is_counted_apart_from_a_lost_lease(proxy, queue_client, otel):
    """Its span and the outcome counter say delete_failed, not lease_lost (issue #25, item 5)."""
    lost: list[BaseException] = []
    await queue_client.send_message("x")
    proxy.script(Fault("reset_before", method="DELETE"))  # the connection drops: no answer, nothing done
    async with QueueClient(
        proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None, **otel.options
    ) as queue:
        stats = await queue.process(_ok, max_messages=1, idle_timeout=BOUND, on_lease_lost=lambda m, e: lost.append(e))
    assert (stats.delete_failed, stats.lease_lost, stats.processed) == (1, 0, 0) and lost == []
    (process,) = named(otel.spans(), f"process {queue_client.queue_name}")
    assert process.status.status_code is StatusCode.ERROR
    assert process.attributes["error.type"] == "delete_failed"
    outcomes = otel.metrics()["aioqueue.consumer.messages"]
    assert total(outcomes, **{"aioqueue.outcome": "delete_failed"}) == 1
    assert total(outcomes, **{"aioqueue.outcome": "lease_lost"}) == 0


async def test_a_raising_callback_is_logged_and_the_worker_goes_on(conn_str, queue_name, otel, caplog):
    async def handler(msg: ReceivedMessage) -> None:
        raise RuntimeError("nope")

    def on_failure(msg: ReceivedMessage, error: BaseException) -> None:
        raise KeyError("the alerting system is down")

    async with await _client(conn_str, queue_name) as queue:
        await queue.send_messages(["a", "b"])
        stats = await queue.process(handler, max_messages=2, idle_timeout=BOUND, on_failure=on_failure)
    assert stats.failed == 2
    assert sum("on_failure callback raised" in r.getMessage() for r in caplog.records) == 2


# ---- metrics ----------------------------------------------------------------------------------


async def test_counters_match_process_stats(queue_name, otel):
    async def handler(msg: ReceivedMessage) -> None:
        if msg.content.startswith("fail"):
            raise RuntimeError(msg.content)

    texts = [f"ok {i}" for i in range(7)] + [f"fail {i}" for i in range(3)]
    # the service's clock runs 2 s behind the client's: to the client, every message has waited that long
    behind = FakeQueueService(start=datetime.now(timezone.utc) - timedelta(seconds=2))
    async with behind, await _client(behind.connection_string, queue_name, **otel.options) as queue:
        await queue.send_messages(texts)
        worker = queue.worker(handler, max_messages=10, idle_timeout=BOUND, retry_delay=3600)
        stats = await worker.run()
    points = otel.metrics()
    outcomes = points["aioqueue.consumer.messages"]
    assert total(outcomes, **{"aioqueue.outcome": "processed"}) == stats.processed == 7
    assert total(outcomes, **{"aioqueue.outcome": "failed"}) == stats.failed == 3
    assert total(points["messaging.client.sent.messages"], **{"messaging.destination.name": queue_name}) == 10
    assert total(points["messaging.client.consumed.messages"]) == worker.received == 10
    assert total(points["messaging.process.duration"]) == 10
    (lag,) = [p for p in points["aioqueue.queue.lag"] if p.attributes["messaging.destination.name"] == queue_name]
    assert lag.count == 10
    assert lag.min >= 1.0  # the service's insertion times are whole seconds, rounded down: never less than 1
    durations = points["messaging.client.operation.duration"]
    assert total(durations, **{"messaging.operation.name": "delete"}) == 7
    assert total(durations, **{"messaging.operation.name": "release"}) == 3
    requests = points["http.client.request.duration"]
    assert total(requests, **{"http.response.status_code": 201, "http.request.method": "POST"}) == 10


async def test_retries_show_on_the_span_and_in_the_metrics(proxy, queue_client, otel):
    async with QueueClient(
        proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=FAST, **otel.options
    ) as queue:
        proxy.script("500", Fault("503", method="POST"))
        receipt = await queue.send_message("x")
        proxy.script(Fault("reset_before"))
        await queue.peek_messages()
    spans = otel.spans()
    (send,) = named(spans, f"send {queue.queue_name}")
    assert send.attributes["http.request.resend_count"] == 2
    assert send.attributes["http.response.status_code"] == 201
    assert send.attributes["messaging.message.id"] == receipt.id
    assert [(e.name, e.attributes["error.type"], e.attributes["aioqueue.attempt"]) for e in send.events] == [
        ("retry", "InternalError", 1),
        ("retry", "ServerBusy", 2),
    ]
    (peek,) = named(spans, f"peek {queue.queue_name}")
    assert [e.attributes["error.type"] for e in peek.events] == ["TransportError"]
    points = otel.metrics()
    retries = points["aioqueue.client.retries"]
    assert total(retries, **{"messaging.operation.name": "send"}) == 2
    assert total(retries, **{"messaging.operation.name": "peek", "error.type": "TransportError"}) == 1
    requests = points["http.client.request.duration"]
    assert total(requests, **{"messaging.operation.name": "send"}) == 3
    assert total(requests, **{"messaging.operation.name": "send", "http.response.status_code": 500}) == 1


async def test_a_failed_operation_is_an_error_span_with_the_service_code(conn_str, queue_name, otel):
    async with QueueClient.from_connection_string(conn_str, queue_name, retry=FAST, **otel.options) as queue:
        with pytest.raises(Exception, match="QueueNotFound"):
            await queue.get_queue_properties()
    (span,) = named(otel.spans(), f"get_queue_properties {queue_name}")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "QueueNotFound"
    assert span.attributes["http.response.status_code"] == 404
    durations = otel.metrics()["messaging.client.operation.duration"]
    assert total(durations, **{"error.type": "QueueNotFound"}) == 1


async def test_no_secret_reaches_any_span_or_metric(proxy, queue_client, otel):
    """A SAS signature, the account key and the Authorization header never appear in a span's name,
    attributes, events or status, nor in a metric's attributes, even when errors echo the URL."""
    name = queue_client.queue_name
    sas = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="raup", expiry=timedelta(hours=1))
    signature = next(p.split("=", 1)[1] for p in sas.split("&") if p.startswith("sig="))
    clients = [
        QueueClient(proxy.url(), name, credential=SasCredential(sas), retry=FAST, **otel.options),
        QueueClient(proxy.url(), name, credential=DEV_KEY, retry=FAST, **otel.options),
    ]
    escaped = sas.replace("&", "&amp;")
    echo = f"<Error><Code>InternalError</Code><Message>{proxy.url()}?{escaped}</Message></Error>".encode()
    for queue in clients:
        async with queue:
            proxy.script(Fault("canned", status=500, body=echo))
            await queue.send_message("x")
            with pytest.raises(Exception, match=r"MessageNotFound|PopReceiptMismatch"):
                await queue.delete_message("0" * 36, "AgAAAAMAAAAAAAAA")
    with pytest.raises(Exception, match="403"):
        async with QueueClient(proxy.url(), name, credential=SasCredential(sas), retry=FAST, **otel.options) as q:
            await q.clear_messages()  # the SAS has no delete permission
    texts: list[str] = []
    for span in otel.spans():
        texts += [span.name, str(span.status.description), repr(dict(span.attributes))]
        texts += [repr(dict(e.attributes)) for e in span.events] + [e.name for e in span.events]
    for points in otel.metrics().values():
        texts += [repr(dict(p.attributes)) for p in points]
    blob = "\n".join(texts)
    assert "InternalError" in blob and "403" in blob  # the failures were recorded
    for secret in (signature, DEV_KEY, "sig=", "SharedKey ", "Bearer "):
        assert secret not in blob


# ---- off unless configured ----------------------------------------------------------------------


async def test_nothing_is_recorded_without_a_configured_provider(conn_str, queue_name):
    """opentelemetry installed, no provider set or passed: every operation gets the no-op recorder."""
    async with QueueClient.from_connection_string(conn_str, queue_name) as queue:
        assert queue._ops.operation("send") is OFF
        await queue.create_queue()
        await queue.send_message("x")
        assert [m.content for m in await queue.receive_messages()] == ["x"]


async def test_works_without_opentelemetry_installed(conn_str, queue_name):
    """With opentelemetry not importable, aioqueue imports and works, and records nothing."""
    script = f"""
import asyncio, sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError("hidden by the test")
sys.meta_path.insert(0, Hide())
import aioqueue, aioqueue._telemetry as t
assert t.otel_trace is None
async def main():
    async with aioqueue.QueueClient.from_connection_string({conn_str!r}, {queue_name!r}) as q:
        assert q._ops.operation("send") is t.OFF
        await q.create_queue()
        await q.send_message("x")
        stats = await q.process(handler, max_messages=1, idle_timeout=10)
        assert stats.processed == 1, stats
async def handler(msg):
    pass
asyncio.run(main())
print("ok")
"""
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


async def test_global_providers_set_after_the_client_was_made_are_used(conn_str, queue_name):
    """The usual set-up: the SDK configured globally (here after the client exists), no option passed."""
    script = f"""
import asyncio
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import aioqueue, aioqueue._telemetry as t

async def main():
    async with aioqueue.QueueClient.from_connection_string({conn_str!r}, {queue_name!r}) as q:
        assert q._ops.operation("send") is t.OFF
        await q.create_queue()
        exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        await q.send_message("x")
        print(sorted(s.name for s in exporter.get_finished_spans()))
        names = [m.name for r in reader.get_metrics_data().resource_metrics for s in r.scope_metrics for m in s.metrics]
        print("messaging.client.sent.messages" in names)
asyncio.run(main())
"""
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [f"['send {queue_name}']", "True"]


def test_options_are_checked_before_any_request():
    url = "https://acct.queue.core.windows.net"
    with pytest.raises(ConfigurationError, match="tracer_provider"):
        QueueClient(url, "jobs", tracer_provider=object())
    with pytest.raises(ConfigurationError, match="meter_provider"):
        QueueClient(url, "jobs", meter_provider="yes")
    bad_fields: list[Any] = ["", "has space", 3, "a" * 100, "{x}"]
    for bad in bad_fields:
        with pytest.raises(ConfigurationError, match="trace_context_field"):
            QueueClient(url, "jobs", trace_context_field=bad)


# ---- the live worker -------------------------------------------------------------------------------


async def test_worker_stats_can_be_read_while_it_runs(queue_client):
    started = asyncio.Event()
    go_on = asyncio.Event()
    entered = 0

    async def handler(msg: ReceivedMessage) -> None:
        nonlocal entered
        entered += 1
        if entered == 3:
            started.set()
        await go_on.wait()
        if msg.content == "bad":
            raise ValueError("bad")

    await queue_client.send_messages(["a", "b", "bad"])
    worker = queue_client.worker(handler, concurrency=4, poll_interval=0.05)
    assert worker.state == "new" and worker.stats.processed == 0 and worker.last_answer is None
    task = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(started.wait(), BOUND)
    assert worker.state == "running"
    assert worker.in_flight == 3 and worker.received == 3
    assert worker.stats.processed == 0
    assert worker.last_answer is not None and worker.failing_since is None
    go_on.set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while worker.stats.processed + worker.stats.failed < 3:
        assert loop.time() < deadline
        await asyncio.sleep(0.02)
    assert (worker.stats.processed, worker.stats.failed, worker.in_flight) == (2, 1, 0)
    worker.stop()
    final = await asyncio.wait_for(task, BOUND)
    assert worker.state == "stopped"
    assert final == worker.stats
    with pytest.raises(RuntimeError, match="runs once"):
        await worker.run()


@pytest.mark.fake_options(clock="frozen")
async def test_prefetched_counts_a_fetched_batch_until_its_handlers_start(fake, fake_queue):
    """While a batch waits on one of its messages being moved to the poison queue, all three are fetched
    (hidden from other consumers) and none has started: prefetched counts them, in_flight does not."""
    await fake_queue.send_messages(["one", "two", "three"], concurrency=1)
    [once] = await fake_queue.receive_messages(visibility_timeout=1)  # the worker's receive is its second
    await fake_queue.update_message(once, visibility_timeout=0)
    gate = fake.hold("create_queue")  # the poison queue, made on demand: the move waits there
    handled: list[str] = []
    seen: list[int] = []

    async def handler(msg: ReceivedMessage) -> None:
        handled.append(msg.content)
        seen.append(worker.prefetched)  # handed on: not counted any more (before the next receive answers)

    worker = fake_queue.worker(handler, concurrency=4, max_dequeue_count=1)
    assert worker.prefetched == 0
    task = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(gate.arrived.wait(), BOUND)
    assert (worker.prefetched, worker.in_flight, handled) == (3, 0, [])
    gate.release.set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while worker.stats.processed < 2:
        assert loop.time() < deadline, worker.stats
        await asyncio.sleep(0.02)
    assert seen == [0, 0] and sorted(handled) == sorted({"one", "two", "three"} - {once.content})
    worker.stop()
    stats = await asyncio.wait_for(task, BOUND)
    assert (stats.poisoned, stats.processed) == (1, 2)


async def test_the_lag_gauges_are_left_out_while_measuring_fails(fake, fake_queue, otel):
    """An outage must not leave a stale age standing in for the queue's: while measuring fails the gauges
    observe nothing, and the first measurement that works again brings them back."""
    await fake_queue.send_message("waiting")
    loop = asyncio.get_running_loop()

    async def until(condition: Any, what: str) -> None:
        deadline = loop.time() + BOUND
        while not condition():
            assert loop.time() < deadline, what
            await asyncio.sleep(0.01)

    async with QueueClient.from_connection_string(fake.connection_string, fake_queue.queue_name, retry=None) as q:
        sampler = LagSampler(q.lag, 0.05)
        add_gauges(otel.meter_provider.get_meter("test"), q.worker(_ok), sampler, {"q": q.queue_name})
        sampler.start()
        try:
            await until(lambda: sampler.latest is not None, "a first measurement")
            gauges = otel.metrics()
            assert [p.value for p in gauges["aioqueue.queue.messages"]] == [1]
            assert [p.value for p in gauges["aioqueue.worker.prefetched"]] == [0]
            fake.fail("get_queue_metadata", status=500, code="InternalError", times=1_000_000)
            await until(lambda: sampler.latest is None, "measuring failing")
            gauges = otel.metrics()
            assert gauges.get("aioqueue.queue.oldest_message_age", []) == []
            assert gauges.get("aioqueue.queue.messages", []) == []
            fake.clear_faults()
            await until(lambda: sampler.latest is not None, "measuring working again")
            assert [p.value for p in otel.metrics()["aioqueue.queue.messages"]] == [1]
        finally:
            await sampler.aclose()


async def test_a_worker_shows_only_its_documented_surface():
    """Its internals (link, consumer, tasks, changed, ...) were public attributes, shown undocumented in the
    API reference (issue #25, item 7): every public member is now a documented property or method."""
    async with QueueClient("http://127.0.0.1:9/devstoreaccount1", "jobs", credential=DEV_KEY) as queue:
        worker = queue.worker(_ok)
        assert [name for name in vars(worker) if not name.startswith("_")] == []
        public = [name for name in dir(Worker) if not name.startswith("_")]
        assert {"run", "stop", "stats", "received", "in_flight", "prefetched", "state", "last_answer"} <= set(public)
        assert [name for name in public if not getattr(Worker, name).__doc__] == []


async def test_worker_arguments_are_checked_when_it_is_made(queue_client):
    with pytest.raises(TypeError, match="async function"):
        queue_client.worker(lambda m: None)
    with pytest.raises(TypeError, match="on_failure"):
        queue_client.worker(_ok, on_failure="page me")
    with pytest.raises(ConfigurationError):
        queue_client.worker(_ok, concurrency=0)
    with pytest.raises(ConfigurationError):
        queue_client.worker(_ok, poison_queue="Not A Queue", max_dequeue_count=3)


# ---- found in review (each fails on 70afaf0) ------------------------------------------------------


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.mark.parametrize("configured", [False, True])
async def test_a_handler_exception_that_cannot_be_printed_is_still_a_failure(conn_str, queue_name, otel, configured):
    """The message is released at once (retry_delay 0) and on_failure is called, traced or not."""
    failures: list[BaseException] = []

    async def handler(msg: ReceivedMessage) -> None:
        raise _Unprintable()

    options = otel.options if configured else {}
    async with await _client(conn_str, queue_name, **options) as queue:
        await queue.send_message("x")
        stats = await queue.process(
            handler, max_messages=1, idle_timeout=BOUND, on_failure=lambda m, e: failures.append(e)
        )
        assert [type(e) for e in failures] == [_Unprintable]
        assert stats.failed == 1
        assert len(await queue.peek_messages()) == 1  # released, visible again
    if configured:
        (process,) = named(otel.spans(), f"process {queue_name}")
        assert process.status.status_code is StatusCode.ERROR
        assert process.status.description == "<_Unprintable: unprintable>"
        assert process.end_time is not None


def test_an_operation_ends_its_span_and_restores_the_context_whatever_the_exception(otel):
    from opentelemetry import trace

    from aioqueue._telemetry import Telemetry

    telemetry = Telemetry(otel.tracer_provider, otel.meter_provider)
    with pytest.raises(_Unprintable), telemetry.operation("send", "jobs"):
        raise _Unprintable()
    (span,) = otel.spans()
    assert span.name == "send jobs" and span.status.status_code is StatusCode.ERROR
    assert not trace.get_current_span().get_span_context().is_valid


async def test_expected_answers_are_not_failed_operations(conn_str, queue_name, otel):
    """exists() -> False, create_queue(exist_ok=True) on an existing queue and delete_queue(missing_ok=True)
    on a missing one succeed: their spans and durations carry no error."""
    async with QueueClient.from_connection_string(conn_str, queue_name, **otel.options) as queue:
        assert await queue.exists() is False
        assert await queue.delete_queue(missing_ok=True) is False
        assert await queue.create_queue() is True
        assert await queue.create_queue(exist_ok=True) is False
        with pytest.raises(Exception, match="QueueAlreadyExists"):
            await queue.create_queue(metadata={"other": "1"})  # a real failure stays one
    spans = otel.spans()
    errors = [s.name for s in spans if s.status.status_code is StatusCode.ERROR]
    assert errors == [f"create_queue {queue_name}"]
    assert len(named(spans, f"create_queue {queue_name}")) == 3
    durations = otel.metrics()["messaging.client.operation.duration"]
    assert total(durations, **{"error.type": "QueueNotFound"}) == 0
    assert total(durations, **{"error.type": "QueueAlreadyExists"}) == 1


def test_a_forwarded_tracestate_does_not_stay_beside_a_new_traceparent(otel):
    from aioqueue._telemetry import Telemetry

    telemetry = Telemetry(otel.tracer_provider, None, trace_field="traceparent")
    event = {
        "order": 1,
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "old=1",
    }
    span = otel.tracer_provider.get_tracer("t").start_span("send")
    sent = telemetry.inject(event, span)
    span.end()
    assert sent["traceparent"] != event["traceparent"] and "tracestate" not in sent
    assert event["tracestate"] == "old=1"  # the caller's dict is untouched


async def test_an_answer_it_cannot_read_is_no_answer_for_readiness(proxy, queue_client):
    """Get Messages answers holding a message without its pop receipt fail each fetch: the worker is
    failing, and the queue has not answered usably, however often it answers (found in review: each
    such answer counted as one)."""
    unreadable = (
        b"<?xml version='1.0' encoding='utf-8'?><QueueMessagesList><QueueMessage><MessageId>m1</MessageId>"
        b"<DequeueCount>1</DequeueCount><MessageText>x</MessageText></QueueMessage></QueueMessagesList>"
    )
    proxy.script(*[Fault("canned", method="GET", status=200, body=unreadable) for _ in range(1000)])
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as queue:
        worker = queue.worker(_ok, poll_interval=(0.01, 0.05))
        task = asyncio.ensure_future(worker.run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BOUND
        while sum(1 for s in proxy.seen if s.fault == "canned") < 4:
            assert loop.time() < deadline and not task.done()
            await asyncio.sleep(0.02)
        assert worker.last_answer is None
        assert worker.failing_since is not None
        worker.stop()
        await asyncio.wait_for(task, BOUND)
