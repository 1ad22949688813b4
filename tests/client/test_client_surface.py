"""The client's surface: event hooks, User-Agent, per-call headers, resumable listing, receive_message,
token audience and the client's properties. Against the queue fixtures' service (Azurite, or the fake under
the switch; through the recording proxy where a test looks at the wire); a local aiohttp.web stub only for a
listing that neither can be made to loop."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
import pytest_asyncio
from aiohttp import web

from aioqueue import (
    AuthenticationFailed,
    ConfigurationError,
    MalformedResponse,
    QueueClient,
    QueueMessage,
    QueueNotFound,
    QueuePage,
    QueueServiceClient,
    RequestEvent,
    ResponseEvent,
    RetryPolicy,
    SasCredential,
    SharedKeyCredential,
    __version__,
    generate_queue_sas,
)
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY
from tests.faults import token_refused
from tests.helpers import STORAGE_SCOPE, mint_token

NO_WAIT = RetryPolicy(max_attempts=3, initial_delay=0, max_delay=0, jitter=None)  # retries without sleeping
CLIENT_ID = {"x-ms-client-request-id": "abc-123"}


class Recorder:
    """Event hooks of both kinds, each once sync and once async; every event each one saw."""

    def __init__(self) -> None:
        self.requests: list[RequestEvent] = []
        self.responses: list[ResponseEvent] = []
        self.async_requests: list[RequestEvent] = []
        self.async_responses: list[ResponseEvent] = []

    def on_request(self, event: RequestEvent) -> None:
        self.requests.append(event)

    async def on_request_async(self, event: RequestEvent) -> None:
        self.async_requests.append(event)

    def on_response(self, event: ResponseEvent) -> None:
        self.responses.append(event)

    async def on_response_async(self, event: ResponseEvent) -> None:
        self.async_responses.append(event)

    @property
    def hooks(self) -> dict[str, list[Callable[[Any], Awaitable[None] | None]]]:
        return {
            "request": [self.on_request, self.on_request_async],
            "response": [self.on_response_async, self.on_response],
        }


class ScopeCredential:
    """A token credential that records the scopes it is asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.scopes.append(scopes)
        return mint_token()


def _sig(sas: str) -> str:
    """A SAS token's signature, as it appears in the token (URL-encoded)."""
    return dict(part.split("=", 1) for part in sas.split("&"))["sig"]


def via_proxy(proxy, name: str, **options: Any) -> QueueClient:
    options.setdefault("credential", DEV_KEY)
    options.setdefault("retry", None)
    return QueueClient(proxy.url(), name, **options)


# ---- event hooks -------------------------------------------------------------------------------


async def test_hooks_sync_and_async_see_the_attempt_and_its_answer(proxy, queue_client):
    rec = Recorder()
    async with via_proxy(proxy, queue_client.queue_name, event_hooks=rec.hooks) as q:
        await q.send_message("x")
    assert rec.requests == rec.async_requests and rec.responses == rec.async_responses
    [req], [resp] = rec.requests, rec.responses
    assert (req.method, req.attempt, req.location) == ("POST", 1, "primary")
    assert req.url == f"{proxy.url()}/{queue_client.queue_name}/messages"
    [seen] = proxy.seen
    assert req.headers["x-ms-date"] == seen.headers["x-ms-date"]
    assert req.headers["x-ms-version"] == seen.headers["x-ms-version"]
    assert resp.request is req and resp.status == 201 and resp.error is None
    assert resp.request_id and resp.request_id == resp.headers["x-ms-request-id"]
    assert resp.elapsed >= 0
    assert (resp.method, resp.url, resp.attempt, resp.location) == ("POST", req.url, 1, "primary")


async def test_response_event_request_id_is_the_answer_s(proxy, queue_name):
    rec = Recorder()
    async with via_proxy(proxy, queue_name, event_hooks=rec.hooks) as q:
        with pytest.raises(QueueNotFound) as info:
            await q.get_queue_properties()
    [resp] = rec.responses
    assert resp.status == 404
    assert resp.request_id is not None and resp.request_id == info.value.request_id


async def test_event_headers_and_events_are_read_only(proxy, queue_client):
    rec = Recorder()
    async with via_proxy(proxy, queue_client.queue_name, event_hooks=rec.hooks) as q:
        await q.peek_messages()
    [req], [resp] = rec.requests, rec.responses
    with pytest.raises(TypeError):
        req.headers["x-ms-version"] = "1999-01-01"  # type: ignore[index]
    with pytest.raises(TypeError):
        resp.headers["x-ms-request-id"] = "forged"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        resp.status = 500  # type: ignore[misc]


async def test_shared_key_authorization_is_redacted_in_events(proxy, queue_client):
    rec = Recorder()
    async with via_proxy(proxy, queue_client.queue_name, event_hooks=rec.hooks) as q:
        await q.peek_messages()
    assert proxy.seen[0].headers["Authorization"].startswith("SharedKey ")
    assert rec.requests[0].headers["Authorization"] == "REDACTED"


async def test_sas_signature_is_redacted_in_event_urls(proxy, queue_client):
    name = queue_client.queue_name
    sas = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="raup", expiry=timedelta(hours=1))
    sig = _sig(sas)
    rec = Recorder()
    async with via_proxy(proxy, name, credential=sas, event_hooks=rec.hooks) as q:
        await q.send_message("x")
    assert sig in proxy.seen[0].path  # the real signature went out
    [req], [resp] = rec.requests, rec.responses
    assert "sig=REDACTED" in req.url and sig not in req.url and sig not in resp.url
    assert sig not in repr(req) and sig not in repr(resp)


async def test_sas_in_the_url_is_redacted_in_event_urls(proxy, queue_client):
    name = queue_client.queue_name
    sas = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(hours=1))
    sig = _sig(sas)
    rec = Recorder()
    async with QueueClient.from_queue_url(f"{proxy.url()}/{name}?{sas}", event_hooks=rec.hooks, retry=None) as q:
        await q.peek_messages()
    assert "sig=REDACTED" in rec.requests[0].url and sig not in rec.requests[0].url


async def test_credentials_in_a_caller_s_headers_are_redacted_in_events(proxy, queue_client):
    rec = Recorder()
    secret = {"Proxy-Authorization": "Basic c2VjcmV0", "x-ms-copy-source": "https://a/b?sv=1&sig=SECRETSIG"}
    async with via_proxy(proxy, queue_client.queue_name, event_hooks=rec.hooks) as q:
        await q.peek_messages(headers=secret)
    assert proxy.seen[0].headers["Proxy-Authorization"] == "Basic c2VjcmV0"  # sent as given
    shown = rec.requests[0].headers
    assert shown["Proxy-Authorization"] == "REDACTED" and shown["x-ms-copy-source"] == "https://a/b?sv=1&sig=REDACTED"
    assert "c2VjcmV0" not in repr(rec.requests[0]) and "SECRETSIG" not in repr(rec.requests[0])


async def test_token_authorization_is_redacted_in_events(proxy, queue_name):
    rec = Recorder()
    proxy.script(token_refused())
    async with via_proxy(proxy, queue_name, credential=ScopeCredential(), event_hooks=rec.hooks) as q:
        with pytest.raises(AuthenticationFailed):
            await q.exists()
    assert proxy.seen[0].headers["Authorization"].startswith("Bearer ")
    assert rec.requests[0].headers["Authorization"] == "REDACTED"


async def test_hooks_see_a_retried_500_then_the_success(proxy, queue_client):
    rec = Recorder()
    proxy.script("500")
    async with via_proxy(proxy, queue_client.queue_name, retry=NO_WAIT, event_hooks=rec.hooks) as q:
        await q.send_message("x")
    assert [e.attempt for e in rec.requests] == [1, 2]
    assert [(e.attempt, e.status) for e in rec.responses] == [(1, 500), (2, 201)]
    assert rec.responses[0].request_id == "fault"  # the injected answer's x-ms-request-id
    assert rec.responses[1].request_id not in (None, "fault")
    assert rec.requests == rec.async_requests and rec.responses == rec.async_responses


async def test_a_dropped_connection_is_a_response_event_without_status(proxy, queue_client):
    rec = Recorder()
    proxy.script("reset_before")
    async with via_proxy(proxy, queue_client.queue_name, retry=NO_WAIT, event_hooks=rec.hooks) as q:
        await q.send_message("x")
    failed, ok = rec.responses
    assert (failed.attempt, failed.status, failed.request_id) == (1, None, None)
    assert failed.error and len(failed.headers) == 0 and failed.elapsed >= 0
    assert (ok.attempt, ok.status, ok.error) == (2, 201, None)


async def test_every_attempt_gets_a_response_event_even_an_unreadable_answer(proxy, queue_client):
    rec = Recorder()
    proxy.script("huge")  # 200 announcing a 1 GiB body: refused by the size cap
    async with via_proxy(proxy, queue_client.queue_name, event_hooks=rec.hooks) as q:
        with pytest.raises(MalformedResponse):
            await q.peek_messages()
    assert len(rec.requests) == 1
    assert [e.request for e in rec.responses] == rec.requests


async def test_a_request_hook_s_exception_stops_the_operation_before_sending(proxy, queue_client):
    def boom(event: RequestEvent) -> None:
        raise RuntimeError("hook says no")

    async with via_proxy(proxy, queue_client.queue_name, event_hooks={"request": [boom]}) as q:
        with pytest.raises(RuntimeError, match="hook says no"):
            await q.send_message("x")
    assert proxy.seen == []


async def test_a_response_hook_s_exception_propagates(proxy, queue_client):
    async def boom(event: ResponseEvent) -> None:
        raise RuntimeError(f"saw {event.status}")

    async with via_proxy(proxy, queue_client.queue_name, event_hooks={"response": [boom]}) as q:
        with pytest.raises(RuntimeError, match="saw 201"):
            await q.send_message("x")
    assert len(proxy.seen) == 1


async def test_hooks_apply_to_queue_clients_of_a_service_client(proxy, queue_client):
    rec = Recorder()
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY, event_hooks=rec.hooks) as service:
        await service.get_queue_client(queue_client.queue_name).peek_messages()
    assert [e.status for e in rec.responses] == [200]


def _hook(event: object) -> None:
    pass


@pytest.mark.parametrize(
    "hooks",
    [
        [_hook],
        "request",
        {"error": [_hook]},
        {"request": [_hook], "exception": [_hook]},
        {"request": [42]},
        {"response": [_hook, "not callable"]},
        {"request": _hook},
        {"request": "fn"},
        {"response": None},
    ],
    ids=[
        "a list",
        "a str",
        "key error",
        "extra key",
        "int hook",
        "str hook",
        "bare callable",
        "str of hooks",
        "None of hooks",
    ],
)
@pytest.mark.parametrize("cls", [QueueClient, QueueServiceClient])
def test_bad_event_hooks_are_refused_at_construction(cls, hooks):
    args = ("http://127.0.0.1:10001/devstoreaccount1", "q-name") if cls is QueueClient else ("http://127.0.0.1:1/a",)
    with pytest.raises(ConfigurationError, match="event_hooks"):
        cls(*args, event_hooks=hooks)


# ---- User-Agent --------------------------------------------------------------------------------


async def test_user_agent_goes_before_aioqueue_s_own(proxy, queue_client):
    async with via_proxy(proxy, queue_client.queue_name, user_agent="myapp/1.2") as q:
        await q.peek_messages()
    async with via_proxy(proxy, queue_client.queue_name) as q:
        await q.peek_messages()
    assert [s.headers["User-Agent"] for s in proxy.seen] == [
        f"myapp/1.2 aioqueue/{__version__}",
        f"aioqueue/{__version__}",
    ]


@pytest.mark.parametrize("agent", ["", "   ", "myapp\n", "my\r\napp", "caf\u00e9/1", 12, b"myapp/1.2"], ids=repr)
def test_bad_user_agent_is_refused(agent):
    with pytest.raises(ConfigurationError, match="user_agent"):
        QueueClient("http://127.0.0.1:10001/devstoreaccount1", "q-name", user_agent=agent)


# ---- per-call headers --------------------------------------------------------------------------


async def _drain(listing: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in listing]


# Each: (queue client, service client, a received message) -> the operation with headers=CLIENT_ID.
OPERATIONS: dict[str, Callable[[QueueClient, QueueServiceClient, QueueMessage], Awaitable[Any]]] = {
    "send_message": lambda q, s, m: q.send_message("x", headers=CLIENT_ID),
    "send_messages": lambda q, s, m: q.send_messages(["a", "b"], headers=CLIENT_ID),
    "peek_messages": lambda q, s, m: q.peek_messages(headers=CLIENT_ID),
    "receive_messages": lambda q, s, m: q.receive_messages(headers=CLIENT_ID),
    "receive_message": lambda q, s, m: q.receive_message(headers=CLIENT_ID),
    "update_message": lambda q, s, m: q.update_message(m, visibility_timeout=0, headers=CLIENT_ID),
    "delete_message": lambda q, s, m: q.delete_message(m, headers=CLIENT_ID),
    "clear_messages": lambda q, s, m: q.clear_messages(headers=CLIENT_ID),
    "get_queue_properties": lambda q, s, m: q.get_queue_properties(headers=CLIENT_ID),
    "lag": lambda q, s, m: q.lag(headers=CLIENT_ID),
    "exists": lambda q, s, m: q.exists(headers=CLIENT_ID),
    "set_queue_metadata": lambda q, s, m: q.set_queue_metadata({"a": "b"}, headers=CLIENT_ID),
    "get_queue_access_policy": lambda q, s, m: q.get_queue_access_policy(headers=CLIENT_ID),
    "list_queues": lambda q, s, m: _drain(s.list_queues(prefix=q.queue_name, headers=CLIENT_ID)),
    "get_service_properties": lambda q, s, m: s.get_service_properties(headers=CLIENT_ID),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_per_call_header_is_signed_sent_and_echoed(proxy, queue_client, operation):
    await queue_client.send_message("m")
    [message] = await queue_client.receive_messages(visibility_timeout=60)
    rec = Recorder()
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=None, event_hooks=rec.hooks) as service:
        await OPERATIONS[operation](service.get_queue_client(queue_client.queue_name), service, message)
    assert proxy.seen and all(s.headers.get("x-ms-client-request-id") == "abc-123" for s in proxy.seen)
    assert all(e.status is not None and e.status < 300 for e in rec.responses)  # signed: Shared Key accepted
    assert all(e.headers.get("x-ms-client-request-id") == "abc-123" for e in rec.responses)  # the service echoes it


async def test_a_standard_header_in_lower_case_is_signed_too(proxy, queue_client):
    """Header names are case-insensitive: If-Match is in the Shared Key string to sign by name.
    (Azurite refuses any Content-Language on a GET, with the official SDK too, so If-Match it is.)"""
    async with via_proxy(proxy, queue_client.queue_name) as q:
        await q.peek_messages(headers={"If-Match": "*"})
        await q.peek_messages(headers={"if-match": "*"})
    assert [s.headers.get("If-Match") for s in proxy.seen] == ["*", "*"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "SharedKey x:y"},
        {"authorization": "Bearer x"},
        {"X-MS-DATE": "Mon, 01 Jan 2024 00:00:00 GMT"},
        {"x-ms-version": "2019-02-02"},
        {"Content-Length": "1"},
        {"host": "elsewhere.example"},
        {"HOST": "elsewhere.example"},
        {"bad name": "v"},
        {"": "v"},
        {"x-a:": "v"},
        {"x-a": "v\r\nx-injected: 1"},
        {"x-a": "v\n"},
        {"x-a": 1},
        {"x-a": None},
        {"x-a": b"v"},
        {"x-a": "a", "X-A": "b"},
        [("x-a", "v")],
        "x-a: v",
    ],
    ids=repr,
)
async def test_bad_or_owned_headers_are_refused_before_any_request(proxy, queue_client, headers):
    async with via_proxy(proxy, queue_client.queue_name) as q:
        with pytest.raises(ConfigurationError):
            await q.send_message("x", headers=headers)
    assert proxy.seen == []


@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_every_operation_checks_its_headers_before_any_request(proxy, queue_client, operation, monkeypatch):
    await queue_client.send_message("m")
    [message] = await queue_client.receive_messages(visibility_timeout=60)
    monkeypatch.setitem(CLIENT_ID, "Authorization", "SharedKey devstoreaccount1:forged")
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=None) as service:
        with pytest.raises(ConfigurationError, match="Authorization"):
            await OPERATIONS[operation](service.get_queue_client(queue_client.queue_name), service, message)
    assert proxy.seen == []


@pytest.mark.parametrize("name", ["x-ms-meta-a", "X-MS-META-A"])
async def test_a_header_the_operation_sets_is_refused(proxy, queue_name, name):
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY) as service:
        with pytest.raises(ConfigurationError, match="set by this operation"):
            await service.create_queue(queue_name, metadata={"a": "b"}, headers={name: "c"})
    assert proxy.seen == []


async def test_a_content_type_on_an_operation_with_a_body_is_refused(proxy, queue_client):
    """Send Message sets its own XML Content-Type: the caller's would be dropped without a word."""
    async with via_proxy(proxy, queue_client.queue_name) as q:
        with pytest.raises(ConfigurationError):
            await q.send_message("x", headers={"Content-Type": "text/plain"})
    assert proxy.seen == []


# ---- resumable listing -------------------------------------------------------------------------


@pytest_asyncio.fixture
async def five_queues(queue_service_client) -> AsyncIterator[tuple[str, list[str]]]:
    prefix = f"ls{uuid.uuid4().hex[:12]}"
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        await queue_service_client.create_queue(name)
    try:
        yield prefix, names
    finally:
        for name in names:
            await queue_service_client.delete_queue(name, missing_ok=True)


async def test_list_queues_follows_every_page(queue_service_client, five_queues):
    prefix, names = five_queues
    assert [q.name async for q in queue_service_client.list_queues(prefix=prefix, page_size=2)] == names


async def test_pages_carry_continuation_tokens_until_the_last(queue_service_client, five_queues):
    prefix, names = five_queues
    pages = [p async for p in queue_service_client.list_queues(prefix=prefix, page_size=2).pages()]
    assert all(isinstance(p, QueuePage) for p in pages)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [p.continuation_token is not None for p in pages] == [True, True, False]
    assert [q.name for p in pages for q in p] == names
    assert (pages[0][0].name, pages[0][1].name, pages[2][-1].name) == (names[0], names[1], names[4])
    with pytest.raises(IndexError):
        pages[2][1]


async def test_continuation_token_resumes_at_the_next_page(queue_service_client, five_queues):
    prefix, names = five_queues
    pages = queue_service_client.list_queues(prefix=prefix, page_size=2).pages()
    first = await pages.__anext__()
    await pages.aclose()
    assert first.continuation_token is not None
    resumed = queue_service_client.list_queues(prefix=prefix, page_size=2, continuation_token=first.continuation_token)
    assert [q.name async for q in resumed] == names[2:]
    by_page = queue_service_client.list_queues(prefix=prefix, page_size=2).by_page(first.continuation_token)
    assert [[q.name for q in p] async for p in by_page] == [names[2:4], names[4:]]


@pytest.mark.parametrize("token", ["", 7, b"marker"], ids=repr)
async def test_bad_continuation_token_is_refused(queue_service_client, token):
    with pytest.raises(ConfigurationError, match="continuation_token"):
        queue_service_client.list_queues(continuation_token=token)
    with pytest.raises(ConfigurationError, match="continuation_token"):
        queue_service_client.list_queues().by_page(continuation_token=token)


async def test_aclose_mid_iteration_stops_the_listing(proxy, five_queues):
    prefix, names = five_queues
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY) as service:
        listing = service.list_queues(prefix=prefix, page_size=2)
        assert (await listing.__anext__()).name == names[0]
        await listing.aclose()
        with pytest.raises(StopAsyncIteration):
            await listing.__anext__()
    assert len(proxy.seen) == 1


@pytest_asyncio.fixture
async def marker_echo() -> AsyncIterator[tuple[str, list[str | None]]]:
    """A stub List Queues service that answers every page with NextMarker = the marker it was given
    ("m1" when none): a broken service that would make a naive client loop forever."""
    markers: list[str | None] = []

    async def list_queues(request: web.Request) -> web.Response:
        marker = request.query.get("marker")
        markers.append(marker)
        if request.query.get("prefix") == "cycle":  # m1 -> m2 -> m1 -> ...
            marker = {"m1": "m2", "m2": "m1"}.get(marker or "")
        body = (
            '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://x/">'
            f"<MaxResults>1</MaxResults><Queues><Queue><Name>q-{len(markers)}</Name></Queue></Queues>"
            f"<NextMarker>{marker or 'm1'}</NextMarker></EnumerationResults>"
        )
        return web.Response(body=body.encode(), content_type="application/xml", headers={"x-ms-request-id": "stub"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", list_queues)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/{DEV_ACCOUNT}", markers
    finally:
        await runner.cleanup()


async def test_a_next_marker_equal_to_the_marker_sent_is_malformed_not_a_loop(marker_echo):
    url, markers = marker_echo
    seen: list[str] = []
    async with QueueServiceClient(url, retry=None) as service:
        with pytest.raises(MalformedResponse, match="m1"):
            async for q in service.list_queues():
                seen.append(q.name)
        assert (seen, markers) == (["q-1"], [None, "m1"])
        with pytest.raises(MalformedResponse):
            await _drain(service.list_queues(continuation_token="m1").pages())
    assert markers[2:] == ["m1"]


async def test_a_marker_coming_back_later_is_malformed_not_a_loop(marker_echo):
    url, markers = marker_echo
    async with QueueServiceClient(url, retry=None) as service:
        with pytest.raises(MalformedResponse, match="m1"):
            await _drain(service.list_queues(prefix="cycle").pages())
    assert markers == [None, "m1", "m2"]


# ---- receive_message ---------------------------------------------------------------------------


async def test_receive_message_on_an_empty_queue_is_none(queue_client):
    assert await queue_client.receive_message() is None


async def test_receive_message_takes_one_and_leaves_the_other(queue_client):
    await queue_client.send_message("first")
    await queue_client.send_message("second")
    message = await queue_client.receive_message()
    assert isinstance(message, QueueMessage)
    assert (message.content, message.dequeue_count) == ("first", 1)
    assert [p.content for p in await queue_client.peek_messages(max_messages=32)] == ["second"]


async def test_receive_message_passes_visibility_timeout(queue_client):
    await queue_client.send_message("first")
    await queue_client.send_message("second")
    first = await queue_client.receive_message(visibility_timeout=3600)
    second = await queue_client.receive_message(visibility_timeout=3600)
    assert first is not None and second is not None
    assert (first.content, second.content) == ("first", "second")
    assert await queue_client.receive_message() is None
    hidden_for = first.next_visible_on - first.inserted_on  # about an hour, not the service's default 30 s
    assert timedelta(minutes=59) < hidden_for < timedelta(minutes=61)


# ---- token audience ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audience", "scope"),
    [
        (None, STORAGE_SCOPE),
        ("https://storage.azure.com", STORAGE_SCOPE),
        ("https://myaccount.queue.core.windows.net", "https://myaccount.queue.core.windows.net/.default"),
        ("https://myaccount.queue.core.windows.net/", "https://myaccount.queue.core.windows.net/.default"),
        ("https://myaccount.queue.core.windows.net/.default", "https://myaccount.queue.core.windows.net/.default"),
    ],
)
async def test_token_is_asked_for_the_audience_s_scope(proxy, queue_name, audience, scope):
    credential = ScopeCredential()
    proxy.script(token_refused())
    async with via_proxy(proxy, queue_name, credential=credential, audience=audience) as q:
        with pytest.raises(AuthenticationFailed):
            await q.exists()
    assert credential.scopes == [(scope,)]
    assert proxy.seen[0].headers["Authorization"].startswith("Bearer ")


@pytest.mark.parametrize(
    "credential",
    [DEV_KEY, SharedKeyCredential(DEV_ACCOUNT, DEV_KEY), SasCredential("sv=2025-11-05&sig=abc"), "sv=1&sig=abc", None],
    ids=["key str", "SharedKeyCredential", "SasCredential", "SAS str", "anonymous"],
)
def test_audience_without_a_token_credential_is_refused(credential):
    with pytest.raises(ConfigurationError, match="audience"):
        QueueClient(
            "http://127.0.0.1:10001/devstoreaccount1",
            "q-name",
            credential=credential,
            audience="https://myaccount.queue.core.windows.net",
        )


@pytest.mark.parametrize(
    "audience", ["http://x", "", "https://", "https:///", "myaccount.queue.core.windows.net", 42], ids=repr
)
def test_bad_audience_is_refused(audience):
    with pytest.raises(ConfigurationError, match="audience"):
        QueueClient(
            "http://127.0.0.1:10001/devstoreaccount1", "q-name", credential=ScopeCredential(), audience=audience
        )


# ---- properties --------------------------------------------------------------------------------


async def test_api_version_default_and_custom(proxy, queue_client):
    async with via_proxy(proxy, queue_client.queue_name) as q:
        assert q.api_version == "2025-11-05"
        await q.peek_messages()
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY, api_version="2024-08-04") as service:
        q = service.get_queue_client(queue_client.queue_name)
        assert service.api_version == q.api_version == "2024-08-04"
        await q.peek_messages()
    assert [s.headers["x-ms-version"] for s in proxy.seen] == ["2025-11-05", "2024-08-04"]


def test_credential_is_the_token_credential_itself():
    credential = ScopeCredential()
    service = QueueServiceClient("http://127.0.0.1:10001/devstoreaccount1", credential=credential)
    assert service.credential is credential
    assert service.get_queue_client("q-name").credential is credential


def test_credential_from_a_key_str_is_a_shared_key_credential():
    client = QueueClient("http://127.0.0.1:10001/devstoreaccount1", "q-name", credential=DEV_KEY)
    assert isinstance(client.credential, SharedKeyCredential)
    assert client.credential.account_name == DEV_ACCOUNT


def test_location_mode_defaults_to_primary():
    assert QueueClient("https://acct.queue.core.windows.net", "q-name").location_mode == "primary"
    secondary = QueueClient("https://acct.queue.core.windows.net", "q-name", location_mode="secondary")
    assert secondary.location_mode == "secondary"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"location_mode": "tertiary"}, "location_mode"),
        ({"location_mode": None}, "location_mode"),
        ({"retry_to_secondary": "yes"}, "retry_to_secondary"),
        ({"retry_to_secondary": 1}, "retry_to_secondary"),
    ],
    ids=repr,
)
def test_bad_location_options_are_refused(options, match):
    with pytest.raises(ConfigurationError, match=match):
        QueueClient("https://acct.queue.core.windows.net", "q-name", **options)


@pytest.mark.parametrize("options", [{"location_mode": "secondary"}, {"retry_to_secondary": True}], ids=repr)
def test_secondary_on_a_custom_domain_needs_secondary_hostname(options):
    with pytest.raises(ConfigurationError, match="secondary_hostname"):
        QueueClient("https://queues.example.com", "q-name", **options)
    with_host = QueueClient("https://queues.example.com", "q-name", secondary_hostname="queues2.example.com", **options)
    assert with_host.secondary_hostname == "queues2.example.com"


def test_reprs_never_show_the_key_or_the_sas_signature(azurite):
    sas = generate_queue_sas(DEV_ACCOUNT, "q-name", DEV_KEY, permission="r", expiry=timedelta(hours=1))
    clients: list[QueueClient | QueueServiceClient] = [
        QueueClient(azurite.url, "q-name", credential=DEV_KEY),
        QueueClient(azurite.url, "q-name", credential=SharedKeyCredential(DEV_ACCOUNT, DEV_KEY)),
        QueueClient(azurite.url, "q-name", credential=sas),
        QueueClient(azurite.url, "q-name", credential=SasCredential(sas)),
        QueueClient.from_queue_url(f"{azurite.url}/q-name?{sas}"),
        QueueClient.from_connection_string(azurite.connection_string, "q-name"),
        QueueServiceClient(azurite.url, credential=DEV_KEY),
        QueueServiceClient(f"{azurite.url}?{sas}"),
    ]
    for client in clients:
        for text in (repr(client), str(client), repr(client.credential), str(client.credential)):
            assert DEV_KEY not in text and _sig(sas) not in text and unquote(_sig(sas)) not in text, text


# ---- what every request carries (issue #16: no header the service does not need) ----------------


async def test_a_sas_request_carries_no_date_and_a_shared_key_one_does(proxy, queue_client):
    name = queue_client.queue_name
    sas = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="raup", expiry=timedelta(hours=1))
    async with via_proxy(proxy, name, credential=sas) as q:
        await q.send_message("by sas")
    async with via_proxy(proxy, name) as q:  # Shared Key signs x-ms-date
        [peeked] = await q.peek_messages()
    assert peeked.content == "by sas"  # the SAS request was accepted without a date
    by_sas, by_key = proxy.seen
    assert "x-ms-date" not in by_sas.headers and "Authorization" not in by_sas.headers
    assert "x-ms-date" in by_key.headers and by_key.headers["Authorization"].startswith("SharedKey ")
    for seen in proxy.seen:  # nothing compressed may come: we never inflate a body
        assert seen.headers["Accept-Encoding"] == "identity"


async def test_a_bodiless_put_carries_no_content_type_and_a_message_an_xml_one(proxy, queue_client):
    async with via_proxy(proxy, queue_client.queue_name) as q:
        await q.set_queue_metadata({"a": "1"})  # PUT without a body, signed with Shared Key
        receipt = await q.send_message("x")
        updated = await q.update_message(receipt.id, receipt.pop_receipt, visibility_timeout=0)  # PUT, no body
        await q.update_message(receipt.id, updated.pop_receipt, content="y", visibility_timeout=0)
    metadata, send, update, update_content = proxy.seen
    assert "Content-Type" not in metadata.headers and "Content-Type" not in update.headers
    assert send.headers["Content-Type"] == update_content.headers["Content-Type"] == "application/xml; charset=utf-8"
