"""process() with handlers that settle their own message: the worker settles nothing a second time."""

from datetime import timedelta

from aioqueue import ReceivedMessage


async def _hidden_and_stored(queue) -> tuple[int, int]:
    """(messages still stored, of those visible now)."""
    stored = (await queue.get_queue_properties()).approximate_message_count
    return stored, len(await queue.peek_messages(max_messages=32))


async def test_a_handler_that_releases_its_message_and_returns_is_processed_and_not_deleted(queue_client):
    await queue_client.send_message("later")

    async def postpone(msg: ReceivedMessage) -> None:
        await msg.release(delay=300)  # not now: it comes back in 5 minutes

    stats = await queue_client.process(postpone, max_messages=1, idle_timeout=timedelta(seconds=5))
    assert (stats.processed, stats.failed, stats.lease_lost) == (1, 0, 0)
    assert await _hidden_and_stored(queue_client) == (1, 0)  # kept, hidden as the handler asked


async def test_a_handler_that_releases_its_message_then_fails_keeps_its_delay(queue_client):
    await queue_client.send_message("later")

    async def postpone_then_fail(msg: ReceivedMessage) -> None:
        await msg.release(delay=300)
        raise RuntimeError("failed after settling")

    # retry_delay 0 would make a failed message visible at once; the handler's own release stands
    stats = await queue_client.process(postpone_then_fail, max_messages=1, retry_delay=0)
    assert (stats.processed, stats.failed) == (0, 1)
    assert await _hidden_and_stored(queue_client) == (1, 0)
