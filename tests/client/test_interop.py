"""A worker and the official SDK (or an Azure Functions app) share a queue both ways.

Azure Functions' queue trigger reads, and its output binding writes, base64 of UTF-8 JSON: what the
official SDK produces with ``BinaryBase64EncodePolicy`` over JSON bytes.
"""

from __future__ import annotations

import json

from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient as OfficialQueueClient

from aioqueue import QueueClient, ReceivedMessage

API_VERSION = "2025-11-05"  # the newest Azurite 3.35 accepts
ORDER = {"order": 42, "items": ["tea", "cake"], "note": "für Zoë"}


def official(conn_str: str, queue: str, **policies) -> OfficialQueueClient:
    return OfficialQueueClient.from_connection_string(conn_str, queue, api_version=API_VERSION, **policies)


async def test_messages_the_official_sdk_writes_for_functions_are_read_as_json(conn_str, queue_client):
    async with official(conn_str, queue_client.queue_name, message_encode_policy=BinaryBase64EncodePolicy()) as sdk:
        await sdk.send_message(json.dumps(ORDER).encode("utf-8"))
    handled: list[object] = []

    async def handler(msg: ReceivedMessage) -> None:
        handled.append(msg.content)

    async with QueueClient.from_connection_string(
        conn_str, queue_client.queue_name, message_encoding="base64-json"
    ) as q:
        [peeked] = await q.peek_messages()
        assert peeked.content == ORDER
        stats = await q.process(handler, max_messages=1)
    assert handled == [ORDER] and stats.processed == 1


async def test_what_the_worker_sends_the_official_sdk_reads_as_functions_would(conn_str, queue_client):
    async with QueueClient.from_connection_string(
        conn_str, queue_client.queue_name, message_encoding="base64-json"
    ) as q:
        await q.send_message(ORDER)
    async with official(conn_str, queue_client.queue_name, message_decode_policy=BinaryBase64DecodePolicy()) as sdk:
        [message] = [m async for m in sdk.receive_messages(max_messages=1)]
        assert json.loads(message.content) == ORDER
        await sdk.delete_message(message)


async def test_the_official_text_base64_format_is_the_base64_encoding(conn_str, queue_client):
    async with official(conn_str, queue_client.queue_name, message_encode_policy=TextBase64EncodePolicy()) as sdk:
        await sdk.send_message("plain text, für Zoë")
    async with QueueClient.from_connection_string(conn_str, queue_client.queue_name, message_encoding="base64") as q:
        [peeked] = await q.peek_messages()
    assert peeked.content == "plain text, für Zoë"


async def test_plain_json_text_is_read_by_base64_json_too(conn_str, queue_client):
    async with QueueClient.from_connection_string(conn_str, queue_client.queue_name, message_encoding="json") as q:
        await q.send_message(ORDER)
    async with QueueClient.from_connection_string(
        conn_str, queue_client.queue_name, message_encoding="base64-json"
    ) as q:
        [peeked] = await q.peek_messages()
    assert peeked.content == ORDER
