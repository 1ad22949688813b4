"""Hostile and broken answers: each is a typed AioQueueError, fast, with bounded memory."""

import asyncio
import re
import resource
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest

from aioqueue import AioQueueError, MalformedResponse, QueueClient, QueueServiceClient, RetryPolicy, ServiceError
from aioqueue._message_list import parse_messages
from aioqueue._messages import answered
from aioqueue.testing import DEV_KEY
from tests.faults import Fault

NO_WAIT = RetryPolicy(max_attempts=2, initial_delay=0, jitter=None)


@pytest.mark.parametrize("fault", ["bomb", "garbage", "html", "huge", "endless"])
@pytest.mark.parametrize("operation", ["peek", "receive", "properties", "list"])
async def test_hostile_bodies(proxy, queue_client, fault, operation):
    await queue_client.send_message("real")
    proxy.script(fault, fault)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=NO_WAIT) as service:
        q = service.get_queue_client(queue_client.queue_name)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "peek": q.peek_messages,
            "receive": q.receive_messages,
            "properties": service.get_service_properties,
            "list": lambda: service.list_queues().__anext__(),
        }
        call = calls[operation]
        with pytest.raises(AioQueueError) as info:
            await call()
    assert time.monotonic() - started < 15  # refused at once, not after the 30 s default timeout
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 100  # the 64 MiB stream and the announced 1 GiB body were never buffered
    assert isinstance(info.value, (MalformedResponse, OSError))


async def test_missing_headers_are_typed(proxy, queue_client):
    await queue_client.send_message("x")
    [msg] = await queue_client.receive_messages()
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script("strip_headers")
        with pytest.raises(MalformedResponse, match="x-ms-popreceipt"):
            await q.update_message(msg, visibility_timeout=0)
        proxy.script("strip_headers")
        with pytest.raises(MalformedResponse, match="approximate-messages-count"):
            await q.get_queue_properties()


async def test_a_send_answered_without_the_message_is_malformed(proxy, queue_client):
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script(Fault("rewrite", transform=lambda body: b"<?xml version='1.0'?><QueueMessagesList />"))
        with pytest.raises(MalformedResponse, match="without the message"):
            await q.send_message("stored, but the answer says nothing of it")


async def test_connection_close_answers_are_fine(proxy, queue_client):
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script(*["close"] * 5)
        for i in range(8):
            await q.send_message(f"m{i}")
    assert len(await queue_client.peek_messages(max_messages=32)) == 8


def _field(element: str, value: str | None):
    """A body rewrite: the element removed (``value`` None) or given ``value``."""
    pattern = re.compile(rf"<{element}>[^<]*</{element}>".encode())
    replacement = b"" if value is None else f"<{element}>{value}</{element}>".encode()
    return lambda body: pattern.sub(replacement, body)


@pytest.mark.parametrize(
    ("operation", "element", "value", "words"),
    [
        ("peek", "DequeueCount", None, "Peek Messages answered a message without a valid DequeueCount"),
        ("peek", "ExpirationTime", None, "Peek Messages answered a message without a valid ExpirationTime"),
        ("peek", "DequeueCount", "many", "Peek Messages answered a message without a valid DequeueCount"),
        ("receive", "PopReceipt", None, "Get Messages answered a message without a valid PopReceipt"),
        ("receive", "TimeNextVisible", None, "Get Messages answered a message without a valid TimeNextVisible"),
        ("receive", "DequeueCount", "1.5", "Get Messages answered a message without a valid DequeueCount"),
        ("send", "InsertionTime", None, "Put Message answered a message without a valid InsertionTime"),
        ("send", "PopReceipt", None, "Put Message answered a message without a valid PopReceipt"),
        # settling it would send DELETE .../messages/.. (Delete Queue to a path-normalising hop)
        ("receive", "MessageId", "..", "a message in the response has an id or pop receipt the service never issues"),
        ("receive", "PopReceipt", "a b", "a message in the response has an id or pop receipt the service never issues"),
        ("peek", "MessageId", "a/b", "a message in the response has an id or pop receipt the service never issues"),
    ],
)
async def test_a_message_answer_missing_a_field_is_malformed(proxy, queue_client, operation, element, value, words):
    """Each field a message answer must carry, missing or not a number, is a MalformedResponse naming it."""
    await queue_client.send_message("real")
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        call: dict[str, Callable[[], Awaitable[object]]] = {
            "peek": q.peek_messages,
            "receive": q.receive_messages,
            "send": lambda: q.send_message("x"),
        }
        proxy.script(Fault("rewrite", transform=_field(element, value)))
        with pytest.raises(MalformedResponse) as info:
            await call[operation]()
    assert str(info.value) == words
    assert [s.fault for s in proxy.seen] == ["rewrite"]


# ---- issue 13: what an answer may cost --------------------------------------------------------

MESSAGE = (
    b"<QueueMessage><MessageId>0a1b2c3d-0000-0000-0000-000000000000</MessageId>"
    b"<InsertionTime>Fri, 27 Nov 2026 00:00:00 GMT</InsertionTime>"
    b"<ExpirationTime>Fri, 04 Dec 2026 00:00:00 GMT</ExpirationTime><DequeueCount>0</DequeueCount>"
    b"<MessageText>%s</MessageText></QueueMessage>"
)


def _messages(*entries: bytes, declaration: bytes = b'<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    return declaration + b"<QueueMessagesList>" + b"".join(entries) + b"</QueueMessagesList>"


def _peek_client(proxy, name, **options):
    return QueueClient(proxy.url(), name, credential=DEV_KEY, **{"retry": None, **options})


@pytest.mark.parametrize(
    ("case", "body", "max_messages", "words"),
    [
        # one message's legal most is 64 KiB of text, escaped (6 bytes for '"'): 600 KiB is not one
        ("one message over its legal size", _messages(MESSAGE % (b"a" * 600_000)), 1, "byte limit"),
        ("too many elements", _messages(b"<a/>" * 100_000), 32, "elements"),
        ("too deep", _messages(b"<a>" * 100 + b"x" * 70_000 + b"</a>" * 100), 32, "deeper than 32"),
        # 12 MB of end tags: refused by their count (it was a 1.5 s scan for depth on the event loop)
        ("a flood of end tags", _messages(b"</a>" * 3_000_000), 32, "elements"),
        ("an unknown codec", _messages(declaration=b'<?xml version="1.0" encoding="x-nope"?>'), 1, "x-nope"),
        ("a non-text codec", _messages(declaration=b'<?xml version="1.0" encoding="zlib"?>'), 1, "zlib"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "",
)
async def test_answers_over_what_the_operation_can_get_are_refused_fast(
    proxy, queue_name, case, body, max_messages, words
):
    proxy.script(Fault("canned", body=body, headers={"Content-Type": "application/xml"}))
    started = time.monotonic()
    async with _peek_client(proxy, queue_name) as q:
        with pytest.raises(MalformedResponse, match=words):
            await q.peek_messages(max_messages=max_messages)
    assert time.monotonic() - started < 10, case


def _endless(head: bytes = b"") -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(1024):  # 64 MiB if nobody stopped reading
            yield b"<a>" + b"x" * 65536 + b"</a>"

    return chunks


async def test_a_chunked_answer_is_cut_at_the_operation_s_limit(proxy, queue_name):
    proxy.script(Fault("canned", body=_endless(), headers={"Content-Type": "application/xml"}))
    tracemalloc.start()
    try:
        async with _peek_client(proxy, queue_name) as q:
            with pytest.raises(MalformedResponse, match="limit"):
                await q.peek_messages()  # 1 message: about 385 KiB at most
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"  # the 32 MiB cap of old read 32


async def test_an_error_answer_is_read_only_as_far_as_its_code_and_message(proxy, queue_name):
    """A 500 with an endless body: a ServiceError from its first 32 KiB, retried as a 500 is (it was a
    MalformedResponse after 32 MiB, never retried)."""
    error = b"<?xml version='1.0' encoding='utf-8'?><Error><Code>InternalError</Code><Message>boom</Message>"
    headers = {"Content-Type": "application/xml", "x-ms-error-code": "InternalError"}
    huge = Fault("canned", status=500, body=_endless(error), headers=headers)
    proxy.script(huge, huge)
    retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=None)
    async with _peek_client(proxy, queue_name, retry=retry) as q:
        with pytest.raises(ServiceError) as info:
            await q.peek_messages()
    assert info.value.status == 500 and info.value.error_code == "InternalError"
    assert len(proxy.seen) == 2


async def test_an_error_body_with_an_unknown_codec_is_still_a_retried_service_error(proxy, queue_name):
    """It was a bare LookupError that skipped retry and ServiceError."""
    body = b'<?xml version="1.0" encoding="rot13"?><Error><Code>InternalError</Code></Error>'
    bad = Fault("canned", status=500, body=body, headers={"Content-Type": "application/xml"})
    proxy.script(bad, bad)
    retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=None)
    async with _peek_client(proxy, queue_name, retry=retry) as q:
        with pytest.raises(ServiceError) as info:
            await q.peek_messages()
    assert info.value.status == 500 and len(proxy.seen) == 2


def _gzip_bomb(inflated: int) -> bytes:
    """``inflated`` bytes of zeros, gzip-compressed (about 1,000 to 1), made without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(inflated >> 20)) + packer.flush()


async def test_a_compressed_answer_is_never_inflated_even_with_a_caller_s_session(proxy, queue_name):
    """With session= (aiohttp inflates by default) a 2 MiB gzip answer grew to 2 GiB: aioqueue asks for
    no compression and reads bodies as sent, whichever session carries them."""
    bomb = _gzip_bomb(256 << 20)  # 256 MiB inflated, about 256 KiB sent
    assert len(bomb) < 385_000  # under peek's limit: only inflating could make it big
    proxy.script(Fault("canned", body=bomb, headers={"Content-Type": "application/xml", "Content-Encoding": "gzip"}))
    tracemalloc.start()
    try:
        async with aiohttp.ClientSession() as session, _peek_client(proxy, queue_name, session=session) as q:
            with pytest.raises(MalformedResponse):
                await q.peek_messages()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"
    assert "gzip" not in proxy.seen[0].headers.get("Accept-Encoding", "")


async def test_a_hundred_concurrent_hostile_answers_stay_within_a_stated_bound(proxy, queue_name):
    """docs/guide/reliability.md's bound: N concurrent peeks of one message hold at most N x 385 KiB of answer (plus
    aiohttp's buffers). Each hostile answer here is an endless chunked stream."""

    proxy.script(*[Fault("canned", body=_endless(), headers={"Content-Type": "application/xml"}) for _ in range(100)])
    tracemalloc.start()
    try:
        async with _peek_client(proxy, queue_name, max_connections=100) as q:
            results = await asyncio.gather(*(q.peek_messages() for _ in range(100)), return_exceptions=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert all(isinstance(r, MalformedResponse) for r in results), {type(r).__name__ for r in results}
    bound = 100 * 385 * 1024 + 64 * 1024 * 1024
    assert peak < bound, f"{peak / 2**20:.0f} MiB over the {bound / 2**20:.0f} MiB bound"


# ---- issue 22: answers that say other than what was asked ----------------------------------------

RECEIVED = (
    b"<QueueMessage><MessageId>%s</MessageId>"
    b"<InsertionTime>Fri, 27 Nov 2026 00:00:00 GMT</InsertionTime>"
    b"<ExpirationTime>Fri, 04 Dec 2026 00:00:00 GMT</ExpirationTime>"
    b"<PopReceipt>AgAAAAMAAAAAAAAAq4Dj0Gsy2wE=</PopReceipt>"
    b"<TimeNextVisible>Fri, 27 Nov 2026 00:00:30 GMT</TimeNextVisible><DequeueCount>%s</DequeueCount>"
    b"<MessageText>x</MessageText></QueueMessage>"
)
PEEKED = (
    (MESSAGE % b"x")
    .replace(b"<DequeueCount>0<", b"<DequeueCount>%s<")
    .replace(b"0a1b2c3d-0000-0000-0000-000000000000", b"%s")
)


def _entries(operation: str, n: int, *, count: str = "1", twice: bool = False) -> bytes:
    """``n`` entries of a Get (``receive``) or Peek Messages answer; ``twice``: the last with the first's id."""
    entry = RECEIVED if operation == "receive" else PEEKED
    ids = [f"0a1b2c3d-0000-0000-0000-{i:012d}" for i in range(n)]
    if twice:
        ids[-1] = ids[0]
    return _messages(*(entry % (i.encode(), count.encode()) for i in ids))


@pytest.mark.parametrize("operation", ["receive", "peek"])
@pytest.mark.parametrize(
    ("case", "max_messages", "options", "words"),
    [
        ("5 messages for 1", 1, {"n": 5}, "5 messages where at most 1"),
        ("33 for 32", 32, {"n": 33}, "33 messages where at most 32"),
        ("an id twice", 32, {"n": 3, "twice": True}, "one message twice"),
        ("a negative count", 32, {"n": 1, "count": "-5"}, "without a valid DequeueCount"),
        ("Arabic-Indic digits", 32, {"n": 1, "count": "\u0669\u0669"}, "without a valid DequeueCount"),
        ("spaces and an underscore", 32, {"n": 1, "count": " 1_0 "}, "without a valid DequeueCount"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_an_answer_the_service_never_gives_to_the_request_is_malformed(
    proxy, queue_name, operation, case, max_messages, options, words
):
    """Counts int() takes but the service never writes (a negative one would slip past max_dequeue_count),
    more messages than asked for, one message twice: each a MalformedResponse, not messages."""
    body = _entries(operation, **options)
    proxy.script(Fault("canned", body=body, headers={"Content-Type": "application/xml"}))
    async with _peek_client(proxy, queue_name) as q:
        call = q.receive_messages if operation == "receive" else q.peek_messages
        with pytest.raises(MalformedResponse, match=words):
            await call(max_messages=max_messages)
    assert len(proxy.seen) == 1, case


def test_a_legal_answer_at_its_most_passes_the_answer_checks():
    """What the service can answer: 32 messages of distinct ids, with big counts, for 32."""
    for operation in ("receive", "peek"):
        raws = parse_messages(_entries(operation, 32, count="4294967295"))
        assert answered(raws, 32, "Peek Messages") is raws


# ---- issue 22: a big answer never holds the event loop --------------------------------------------


class RecordingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting the jobs it is given, where they ran and the CPU time they
    took (CPU time, not wall time: what a loaded machine does to the clock does not move it)."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.threads: list[int] = []
        self.cpu = 0.0

    def submit(self, fn, /, *args, **kwargs):
        def run():
            self.threads.append(threading.get_ident())
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu += time.thread_time() - started

        return super().submit(run)


@pytest.fixture
def executor() -> Iterator[RecordingExecutor]:
    recording = RecordingExecutor()
    yield recording
    recording.shutdown(wait=True)


async def _loop_cpu(work: Awaitable[object]) -> tuple[object, float]:
    """What ``work`` returns and the CPU time the event loop's own thread spent while it ran."""
    started = time.thread_time()
    result = await work
    return result, time.thread_time() - started


CR_HEAVY = _messages(
    *(MESSAGE.replace(b"0000-000000000000", b"0000-%012d" % i) % (b"&#xD;" * 65536) for i in range(32))
)


async def test_a_big_answer_is_parsed_off_the_event_loop_and_a_small_one_on_it(proxy, queue_name, executor):
    """Azurite writes each carriage return as &#xD;: 32 messages of 64 KiB of them are a legal 10.5 MB
    answer, which held the loop for about a second (a Python call a reference). Now it is parsed in the
    loop's default executor, and the loop keeps running meanwhile; a small answer costs no thread hop."""
    asyncio.get_running_loop().set_default_executor(executor)
    small = _messages(MESSAGE % b"small")
    headers = {"Content-Type": "application/xml"}
    proxy.script(Fault("canned", body=small, headers=headers), Fault("canned", body=CR_HEAVY, headers=headers))
    async with _peek_client(proxy, queue_name) as q:
        [message] = await q.peek_messages(max_messages=32)
        assert message.content == "small" and executor.threads == []
        messages, loop_cpu = await _loop_cpu(q.peek_messages(max_messages=32))
    assert len(CR_HEAVY) > 10_000_000
    assert [m.content for m in messages] == ["\r" * 65536] * 32  # type: ignore[attr-defined]
    assert len(executor.threads) == 1 and executor.threads[0] != threading.get_ident()
    # the parse's CPU is the executor's; the loop's own share is reading the answer and building models
    assert loop_cpu < executor.cpu / 2, f"the loop's thread: {loop_cpu:.2f} s of CPU, the parse {executor.cpu:.2f} s"


async def test_a_big_list_queues_page_is_parsed_off_the_event_loop(proxy, executor):
    """A page of 100 queues with 3,100 metadata names each (3.4 MB, legal when metadata is asked for)."""
    asyncio.get_running_loop().set_default_executor(executor)
    names = [f"k{i}" for i in range(3100)]
    queue = "<Queue><Name>q{}</Name><Metadata>" + "".join(f"<{n}>v</{n}>" for n in names) + "</Metadata></Queue>"
    page = (
        '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://x/"><Queues>'
        + "".join(queue.format(i) for i in range(100))
        + "</Queues><NextMarker /></EnumerationResults>"
    ).encode()
    assert len(page) > 3_000_000
    proxy.script(Fault("canned", body=page, headers={"Content-Type": "application/xml"}))
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=None) as service:
        queues, loop_cpu = await _loop_cpu(_all(service.list_queues(include_metadata=True)))
    assert [q.name for q in queues] == [f"q{i}" for i in range(100)]  # type: ignore[attr-defined]
    assert list(queues[0].metadata) == names  # type: ignore[index]
    assert len(executor.threads) == 1 and executor.threads[0] != threading.get_ident()
    assert loop_cpu < executor.cpu / 2, f"the loop's thread: {loop_cpu:.2f} s of CPU, the parse {executor.cpu:.2f} s"


async def _all(listing: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in listing]
