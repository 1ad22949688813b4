"""The fake service's message operations through the real client: send, receive, peek, update, delete,
clear; pop receipts, dequeue counts, order, and the 32-message and 64 KiB limits."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from aioqueue import MessageNotFound, QueueClient
from aioqueue.testing import FakeQueueService
from tests.fake.rawhttp import BOM, send


async def test_a_message_goes_round_with_its_text_intact(fake_queue: QueueClient, fake: FakeQueueService):
    text = "tab\t cr\r lf\n & < > \" ' é 🦆"
    receipt = await fake_queue.send_message(text)
    [message] = await fake_queue.receive_messages()
    assert (message.id, message.content, message.dequeue_count) == (receipt.id, text, 1)
    assert fake.queues[fake_queue.queue_name].messages[0].content == text
    await fake_queue.delete_message(message)
    assert await fake_queue.peek_messages() == []
    assert fake.queues[fake_queue.queue_name].messages == ()


async def test_messages_come_out_in_the_order_they_went_in(fake_queue: QueueClient):
    for i in range(10):
        await fake_queue.send_message(f"m{i}")
    peeked = await fake_queue.peek_messages(max_messages=32)
    received = await fake_queue.receive_messages(max_messages=4)
    assert [p.content for p in peeked] == [f"m{i}" for i in range(10)]
    assert [m.content for m in received] == ["m0", "m1", "m2", "m3"]
    assert [p.content for p in await fake_queue.peek_messages(max_messages=32)] == [f"m{i}" for i in range(4, 10)]


async def test_each_get_issues_a_new_receipt_and_the_old_one_is_dead(fake_queue: QueueClient, fake):
    sent = await fake_queue.send_message("x")
    [first] = await fake_queue.receive_messages(visibility_timeout=1)
    fake.advance(timedelta(seconds=2))
    [second] = await fake_queue.receive_messages(visibility_timeout=1)
    assert len({sent.pop_receipt, first.pop_receipt, second.pop_receipt}) == 3
    assert second.dequeue_count == 2
    # the message exists under another receipt: 404 MessageNotFound, as Azure answers (Azurite: 400
    # PopReceiptMismatch); once gone: 404 MessageNotFound too
    with pytest.raises(MessageNotFound):
        await fake_queue.delete_message(first.id, first.pop_receipt)
    await fake_queue.delete_message(second)
    with pytest.raises(MessageNotFound):
        await fake_queue.delete_message(second.id, second.pop_receipt)
    with pytest.raises(MessageNotFound):
        await fake_queue.update_message(second.id, second.pop_receipt, visibility_timeout=0)


async def test_the_put_receipt_can_delete_a_message_never_received(fake_queue: QueueClient):
    sent = await fake_queue.send_message("x")
    await fake_queue.delete_message(sent.id, sent.pop_receipt)  # as Azure (recording ...DeleteMessageAsync)
    assert await fake_queue.peek_messages() == []


async def test_update_changes_the_receipt_text_and_visibility_but_not_the_count(fake_queue: QueueClient, fake):
    await fake_queue.send_message("old")
    [message] = await fake_queue.receive_messages(visibility_timeout=30)
    old_receipt = message.pop_receipt
    update = await fake_queue.update_message(message, content="new", visibility_timeout=60)
    assert update.pop_receipt != old_receipt and message.pop_receipt == update.pop_receipt
    assert update.next_visible_on - fake.now > timedelta(seconds=58)
    with pytest.raises(MessageNotFound):
        await fake_queue.update_message(message.id, old_receipt, visibility_timeout=0)
    await fake_queue.update_message(message, visibility_timeout=0)  # no content: the text stays
    [peeked] = await fake_queue.peek_messages()
    assert (peeked.content, peeked.dequeue_count) == ("new", 1)


async def test_receipts_with_plus_and_slash_survive_the_query(fake_queue: QueueClient, monkeypatch):
    """A receipt holding '+' and '/' (base64) must reach the service as sent: the query is URL-decoded,
    '+' as a space (as Azure reads it), so a client that left '+' raw would find its receipt refused."""
    monkeypatch.setattr(
        "aioqueue._fake._state.secrets.token_bytes", lambda n: b"\xfb\xef\xff" * (n // 3) + b"\xfb" * (n % 3)
    )
    await fake_queue.send_message("x")
    [message] = await fake_queue.receive_messages()
    assert "+" in message.pop_receipt and "/" in message.pop_receipt
    await fake_queue.update_message(message, visibility_timeout=0)
    [message] = await fake_queue.receive_messages()
    await fake_queue.delete_message(message)


async def test_peek_neither_hides_nor_counts(fake_queue: QueueClient):
    await fake_queue.send_message("x")
    for _ in range(3):
        [peeked] = await fake_queue.peek_messages()
        assert peeked.dequeue_count == 0
    [message] = await fake_queue.receive_messages()
    assert message.dequeue_count == 1
    assert await fake_queue.peek_messages() == []  # hidden now


async def test_peek_answers_carry_no_receipt(fake_queue: QueueClient, fake):
    await fake_queue.send_message("x")
    answer = await send(fake, "GET", f"/{fake_queue.queue_name}/messages", query={"peekonly": "true"})
    assert answer.body.startswith(BOM) and b"<DequeueCount>0</DequeueCount><MessageText>x</MessageText>" in answer.body
    assert b"PopReceipt" not in answer.body and b"TimeNextVisible" not in answer.body


async def test_an_empty_queue_answers_an_empty_list_as_azure_writes_it(fake_queue: QueueClient, fake):
    answer = await send(fake, "GET", f"/{fake_queue.queue_name}/messages")
    assert answer.body == BOM + b'<?xml version="1.0" encoding="utf-8"?><QueueMessagesList />'
    assert await fake_queue.receive_messages(max_messages=32) == []


async def test_at_most_32_messages_an_answer(fake_queue: QueueClient, fake):
    for i in range(40):
        await fake_queue.send_message(str(i))
    assert len(await fake_queue.receive_messages(max_messages=32)) == 32
    assert len(await fake_queue.peek_messages(max_messages=32)) == 8
    answer = await send(fake, "GET", f"/{fake_queue.queue_name}/messages", query={"numofmessages": "33"})
    assert (answer.status, answer.code) == (400, "OutOfRangeQueryParameterValue")
    assert answer.error["MaximumAllowed"] == "32"


async def test_clear_removes_every_message(fake_queue: QueueClient, fake):
    for i in range(5):
        await fake_queue.send_message(str(i), visibility_timeout=i * 10)
    await fake_queue.clear_messages()
    assert (await fake_queue.get_queue_properties()).approximate_message_count == 0
    assert fake.queues[fake_queue.queue_name].messages == ()


@pytest.mark.parametrize("character", ["a", "é"])
async def test_64_kib_of_text_is_the_most_a_message_holds(fake_queue: QueueClient, fake, character):
    """The limit is on the text's UTF-8 size (as encoded by the client), and Azure answers 413
    RequestBodyTooLarge with MaxLimit 65536 (github.com/microsoft/onefuzz/issues/1900)."""
    width = len(character.encode())
    largest = character * (65536 // width)
    await fake_queue.send_message(largest)
    [peeked] = await fake_queue.peek_messages()
    assert peeked.content == largest
    body = f"<QueueMessage><MessageText>{largest}x</MessageText></QueueMessage>".encode()
    answer = await send(fake, "POST", f"/{fake_queue.queue_name}/messages", body=body)
    assert (answer.status, answer.code, answer.error["MaxLimit"]) == (413, "RequestBodyTooLarge", "65536")
    update = await send(
        fake,
        "PUT",
        f"/{fake_queue.queue_name}/messages/{peeked.id}",
        query={"popreceipt": "x", "visibilitytimeout": "0"},
        body=body,
    )
    assert update.status == 413


async def test_base64_messages_round_trip(fake: FakeQueueService, queue_name: str):
    async with QueueClient.from_connection_string(
        fake.connection_string, queue_name, message_encoding="binary"
    ) as queue:
        await queue.create_queue()
        await queue.send_message(b"\x00\x01\xff")
        [message] = await queue.receive_messages()
        assert message.content == b"\x00\x01\xff"
        stored = fake.queues[queue_name].messages[0].content
        assert base64.b64decode(stored) == b"\x00\x01\xff"
