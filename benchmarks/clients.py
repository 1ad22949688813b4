"""The clients the benchmark compares, each doing the same work in its most natural way.

- aioqueue: the public API (Shared Key from the connection string, as users run it).
- aioqueue-sas: the same with the floor's SAS, so that only client code differs from the floor.
- aioqueue-otel: aioqueue with OpenTelemetry configured (SDK providers, spans batched to an exporter
  that drops them, metrics aggregated in memory): what the instrumentation costs. Not in the default run.
- official: azure-storage-queue's aio client (Shared Key from the same connection string).
- floor: bare aiohttp sending the same HTTP requests with a pre-generated SAS: no signing, no XML
  library, minimal string parsing (a regex pulls out the ids and receipts it deletes with, or the ids
  and texts it peeked). The least any aiohttp-based client can spend.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

import aiohttp

API_VERSION = "2025-11-05"


def account_sas(conn_str: str) -> tuple[str, str]:
    """(account URL, a two-hour account SAS for everything) from a Shared Key connection string."""
    from aioqueue import generate_account_sas
    from aioqueue._endpoint import parse_connection_string

    settings = parse_connection_string(conn_str)
    cred: Any = settings.credential
    sas = generate_account_sas(
        cred.account_name, cred.account_key, resource_types="sco", permission="rwdlacup", expiry=timedelta(hours=2)
    )
    return settings.account_url, sas


async def bounded(concurrency: int, jobs: Iterable[Callable[[], Awaitable[Any]]]) -> None:
    """Run the jobs with at most ``concurrency`` in flight (the same driver for every client)."""
    it = iter(jobs)

    async def worker() -> None:
        for job in it:
            await job()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class AioqueueClient:
    name = "aioqueue"

    def __init__(self, conn_str: str, queue_name: str) -> None:
        from aioqueue import QueueClient

        self.queue = QueueClient.from_connection_string(conn_str, queue_name, max_connections=64)

    async def create(self) -> None:
        await self.queue.create_queue(exist_ok=True)

    async def send(self, texts: list[str], concurrency: int) -> None:
        await self.queue.send_messages(texts, concurrency=concurrency)

    async def receive_delete(self) -> int:
        done = 0
        while True:
            batch = await self.queue.receive_messages(max_messages=32, visibility_timeout=30)
            if not batch:
                return done
            await asyncio.gather(*(self.queue.delete_message(m) for m in batch))
            done += len(batch)

    async def peek(self, times: int) -> None:
        for _ in range(times):
            await self.queue.peek_messages(max_messages=32)

    async def consume(self) -> int:
        done = 0
        async for msg in self.queue.receive(idle_timeout=0, visibility_timeout=30):
            async with msg:
                done += 1
        return done

    async def close(self) -> None:
        await self.queue.delete_queue()
        await self.queue.close()


class AioqueueSasClient(AioqueueClient):
    """aioqueue with the same pre-generated account SAS as the floor: no signing on either side, so
    the ratio to the floor is client code alone."""

    name = "aioqueue-sas"

    def __init__(self, conn_str: str, queue_name: str) -> None:
        from aioqueue import QueueClient

        account_url, sas = account_sas(conn_str)
        self.queue = QueueClient(account_url, queue_name, credential=sas, max_connections=64)


class AioqueueOtelClient(AioqueueClient):
    """aioqueue with OpenTelemetry's SDK configured through the client options: every span goes
    through a BatchSpanProcessor (its export thread is part of the process, so it is counted) to an
    exporter that drops it, and the metrics aggregate in an InMemoryMetricReader (flat memory: no
    attribute grows without bound). The SDK's own cost is the user's too, so it is measured."""

    name = "aioqueue-otel"

    def __init__(self, conn_str: str, queue_name: str) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        from aioqueue import QueueClient

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        self.queue = QueueClient.from_connection_string(
            conn_str,
            queue_name,
            max_connections=64,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
        )

    async def close(self) -> None:
        await super().close()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class OfficialClient:
    name = "official"

    def __init__(self, conn_str: str, queue_name: str) -> None:
        from azure.storage.queue.aio import QueueClient

        self.queue = QueueClient.from_connection_string(conn_str, queue_name, api_version=API_VERSION)

    async def create(self) -> None:
        await self.queue.create_queue()

    async def send(self, texts: list[str], concurrency: int) -> None:
        await bounded(concurrency, (lambda t=t: self.queue.send_message(t) for t in texts))

    async def receive_delete(self) -> int:
        done = 0
        while True:
            pages = self.queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30)
            batch = [m async for m in pages]
            if not batch:
                return done
            await asyncio.gather(*(self.queue.delete_message(m) for m in batch))
            done += len(batch)

    async def peek(self, times: int) -> None:
        for _ in range(times):
            await self.queue.peek_messages(max_messages=32)

    async def consume(self) -> int:
        # the natural loop: page through receive_messages, deleting each message after handling it
        done = 0
        async for msg in self.queue.receive_messages(messages_per_page=32, visibility_timeout=30):
            await self.queue.delete_message(msg)
            done += 1
        return done

    async def close(self) -> None:
        await self.queue.delete_queue()
        await self.queue.close()


_ID = re.compile(rb"<MessageId>([^<]*)</MessageId>")
_RECEIPT = re.compile(rb"<PopReceipt>([^<]*)</PopReceipt>")
_TEXT = re.compile(rb"<MessageText>([^<]*)</MessageText>")


class FloorClient:
    name = "floor"

    def __init__(self, conn_str: str, queue_name: str) -> None:
        from urllib.parse import quote

        account_url, sas = account_sas(conn_str)
        self.quote = quote
        self.queue_url = f"{account_url}/{queue_name}"
        self.sas = sas
        self.headers = {"x-ms-version": API_VERSION}
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

    async def create(self) -> None:
        async with self.session.put(f"{self.queue_url}?{self.sas}", headers=self.headers) as r:
            await r.read()

    async def _send_one(self, text: str) -> None:
        body = f"<QueueMessage><MessageText>{text}</MessageText></QueueMessage>".encode()
        async with self.session.post(f"{self.queue_url}/messages?{self.sas}", data=body, headers=self.headers) as r:
            await r.read()
            if r.status != 201:
                raise RuntimeError(r.status)

    async def send(self, texts: list[str], concurrency: int) -> None:
        await bounded(concurrency, (lambda t=t: self._send_one(t) for t in texts))

    async def _delete(self, msg_id: bytes, receipt: bytes) -> None:
        receipt_q = self.quote(receipt.decode(), safe="")
        url = f"{self.queue_url}/messages/{msg_id.decode()}?popreceipt={receipt_q}&{self.sas}"
        async with self.session.delete(url, headers=self.headers) as r:
            await r.read()

    async def _get(self) -> list[tuple[bytes, bytes]]:
        url = f"{self.queue_url}/messages?numofmessages=32&visibilitytimeout=30&{self.sas}"
        async with self.session.get(url, headers=self.headers) as r:
            body = await r.read()
        return list(zip(_ID.findall(body), _RECEIPT.findall(body), strict=True))

    async def receive_delete(self) -> int:
        done = 0
        while True:
            batch = await self._get()
            if not batch:
                return done
            await asyncio.gather(*(self._delete(i, r) for i, r in batch))
            done += len(batch)

    async def peek(self, times: int) -> None:
        # minimal parsing, as for receive: each message's id and text, by regex, still escaped
        url = f"{self.queue_url}/messages?peekonly=true&numofmessages=32&{self.sas}"
        for _ in range(times):
            async with self.session.get(url, headers=self.headers) as r:
                body = await r.read()
            list(zip(_ID.findall(body), _TEXT.findall(body), strict=True))

    async def consume(self) -> int:
        done = 0
        while True:
            batch = await self._get()
            if not batch:
                return done
            for msg_id, receipt in batch:
                await self._delete(msg_id, receipt)
                done += 1

    async def close(self) -> None:
        async with self.session.delete(f"{self.queue_url}?{self.sas}", headers=self.headers) as r:
            await r.read()
        await self.session.close()


CLIENTS = {c.name: c for c in (AioqueueClient, AioqueueSasClient, AioqueueOtelClient, OfficialClient, FloorClient)}
