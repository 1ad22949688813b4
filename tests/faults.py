"""A fault-injecting reverse proxy in front of Azurite, driven per test (the ``proxy`` fixture).

    proxy.script("503", "503")          # the next two requests get 503 ServerBusy; then real answers
    proxy.script(Fault("reset_after"))  # forward, let the server do the work, then drop the answer
    gate = Gate(); proxy.script(Fault("hold", gate=gate))
    await gate.arrived.wait(); ...; gate.release.set(); await gate.done.wait()

Faults: a status code ("503", "429", ...), "reset_before" (drop the connection without forwarding),
"reset_after" (forward, then drop the connection: the server did the work, the client never heard),
"delay" (wait ``seconds``, then forward), "delay_after" (forward, then wait ``seconds`` before
answering: the work is done while the client still waits), "truncate" (forward, then send half the body and drop),
"bomb" / "garbage" / "html" (answer 200 with a hostile, malformed or foreign body), "huge" /
"endless" (a body over any sane size), "close" (the real answer with Connection: close),
"strip_headers" (the real answer without its x-ms-* headers), "rewrite" (the real answer with its
body passed through ``transform``), "canned" (answer ``status``, ``headers`` and ``body`` without
asking the server; a callable body is sent chunked, as it yields). Held by a ``Gate`` until the test
says so: "hold" (before forwarding), "hold_after" (forwarded, the whole answer held), "hold_body"
(forwarded, the status line, headers and half the body sent, the rest held).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<QueueMessagesList><QueueMessage><MessageId>&lol4;</MessageId></QueueMessage></QueueMessagesList>"""

ERROR_CODES = {503: "ServerBusy", 500: "InternalError", 408: "RequestTimeout", 429: "TooManyRequests"}


@dataclass
class Gate:
    """Holds one request at a chosen point: ``arrived`` is set when it is held, the test sets
    ``release`` to let it go on, ``done`` is set when the proxy has finished with it."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Fault:
    kind: str
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None  # only requests with this method consume the fault
    gate: Gate | None = None  # for the "hold" kinds
    transform: Callable[[bytes], bytes] | None = None  # for "rewrite"
    status: int = 200  # for "canned"
    body: bytes | Callable[[], Iterable[bytes]] = b""  # for "canned": bytes, or a chunk source (sent chunked)


def token_refused() -> Fault:
    """403 ``AuthenticationFailed`` without asking the server: what Azurite answers any bearer token over
    plain http. Tests of what a token credential sends script it, so that the answer is the same whatever
    service the proxy stands in front of (the fake takes a well-formed token over http)."""
    return Fault("canned", status=403, headers={"x-ms-error-code": "AuthenticationFailed"})


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    fault: str | None
    peer: Any = None  # the client's (host, port): the same for requests on one pooled connection


Upstream = tuple[int, dict[str, str], bytes]
Handler = Callable[["FaultProxy", web.Request, bytes, Fault], Awaitable[web.StreamResponse]]


class FaultProxy:
    def __init__(self, upstream: str, *, keepalive_timeout: float = 75.0, port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")  # http://127.0.0.1:port
        self.keepalive_timeout = keepalive_timeout
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.fault_rate = 0.0  # with a rng: a random fault on this share of requests
        self.random_kinds: tuple[str, ...] = ()
        self.rng = None
        self.random_delay = 0.0  # seconds a random "delay" fault holds the request before forwarding
        self.port = port  # 0: any free port
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def script(self, *faults: str | Fault) -> None:
        self.faults.extend(f if isinstance(f, Fault) else Fault(f) for f in faults)

    async def __aenter__(self) -> FaultProxy:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=self.keepalive_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop serving and close every connection (again: harmless)."""
        session, self._session = self._session, None
        runner, self._runner = self._runner, None
        if session is not None:
            await session.close()
        if runner is not None:
            await runner.cleanup()

    def url(self, account: str = "devstoreaccount1") -> str:
        return f"http://127.0.0.1:{self.port}/{account}"

    def open_connections(self) -> int:
        """How many client connections the proxy holds open now."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    def _next_fault(self, method: str) -> Fault | None:
        for i, f in enumerate(self.faults):
            if f.method is None or f.method == method:
                return self.faults.pop(i)
        if self.rng is not None and self.random_kinds and self.rng.random() < self.fault_rate:
            return Fault(self.rng.choice(self.random_kinds), seconds=self.random_delay)
        return None

    async def _forward(self, request: web.Request, body: bytes) -> Upstream:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
        ) as resp:
            data = await resp.read()
            hop_by_hop = ("content-length", "transfer-encoding", "connection", "keep-alive")
            out = {k: v for k, v in resp.headers.items() if k.lower() not in hop_by_hop}
            return resp.status, out, data

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._next_fault(request.method)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append(
            Seen(request.method, request.path_qs, dict(request.headers), fault.kind if fault else None, peer)
        )
        if fault is None:
            return _answer(await self._forward(request, body))
        handler = HANDLERS.get(fault.kind) or (_status if fault.kind.isdigit() else None)
        if handler is None:
            raise ValueError(f"unknown fault {fault.kind}")
        return await handler(self, request, body, fault)


# ---- the faults: one coroutine each, looked up by kind --------------------------------------------


async def _drop(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)  # never reaches the client: the connection is gone


def _answer(upstream: Upstream, **extra_headers: str) -> web.Response:
    status, headers, data = upstream
    return web.Response(status=status, headers={**headers, **extra_headers}, body=data)


async def _status(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    code = int(fault.kind)
    error = ERROR_CODES.get(code, "Fault")
    xml = (
        f"<?xml version='1.0' encoding='utf-8'?><Error><Code>{error}</Code><Message>injected {code}</Message></Error>"
    ).encode()
    headers = {"x-ms-error-code": error, "x-ms-request-id": "fault", **fault.headers}
    return web.Response(status=code, headers=headers, body=xml, content_type="application/xml")


async def _reset_before(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    return await _drop(request)


async def _reset_after(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    await proxy._forward(request, body)
    return await _drop(request)


async def _delay(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    await asyncio.sleep(fault.seconds)
    return _answer(await proxy._forward(request, body))


async def _delay_after(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    upstream = await proxy._forward(request, body)
    await asyncio.sleep(fault.seconds)
    return _answer(upstream)


async def _truncate(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    status, headers, data = await proxy._forward(request, body)
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = len(data) + 100
    await resp.prepare(request)
    await resp.write(data[: len(data) // 2])
    return await _drop(request)


async def _close(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    """The real answer, but the server closes the connection after it."""
    return _answer(await proxy._forward(request, body), Connection="close")


async def _strip_headers(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    """The real answer without its x-ms-* headers."""
    status, headers, data = await proxy._forward(request, body)
    kept = {k: v for k, v in headers.items() if not k.lower().startswith("x-ms-")}
    return web.Response(status=status, headers=kept, body=data)


async def _html(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    return web.Response(status=200, text="<html><body>Gateway says hi</body></html>", content_type="text/html")


async def _huge(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    """Announces 1 GiB."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/xml"})
    resp.content_length = 1 << 30
    await resp.prepare(request)
    await resp.write(b"<QueueMessagesList>")
    return await _drop(request)


async def _endless(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    """Chunked, no length, more than any cap."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/xml"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    chunk = b"<a>" + b"x" * 65536 + b"</a>"
    for _ in range(1024):  # 64 MiB at most, then stop by itself
        try:
            await resp.write(chunk)
        except (ConnectionError, RuntimeError):
            break
    return resp


async def _canned(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    """An answer of the test's making: ``status``, ``headers``, and ``body`` (chunks from a callable)."""
    if not callable(fault.body):
        return web.Response(status=fault.status, headers=fault.headers, body=fault.body)
    resp = web.StreamResponse(status=fault.status, headers=fault.headers)
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for chunk in fault.body():
        try:
            await resp.write(chunk)
        except (ConnectionError, RuntimeError):  # the client stopped reading: done
            return resp
    with contextlib.suppress(ConnectionError, RuntimeError):
        await resp.write_eof()
    return resp


async def _bomb(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    return web.Response(status=200, body=BILLION_LAUGHS, content_type="application/xml")


async def _rewrite(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    """The real answer with its body rewritten by the fault's ``transform``."""
    assert fault.transform is not None, "the rewrite fault needs a transform"
    status, headers, data = await proxy._forward(request, body)
    return web.Response(status=status, headers=headers, body=fault.transform(data))


async def _garbage(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    return web.Response(status=200, body=b"<QueueMessagesList><QueueMess", content_type="application/xml")


async def _held(gate: Gate | None) -> Gate:
    assert gate is not None, "the hold faults need a Gate"
    gate.arrived.set()
    await gate.release.wait()
    return gate


async def _hold(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    """Hold the request before the server sees it; then forward it and answer."""
    gate = await _held(fault.gate)
    try:
        with contextlib.suppress(ConnectionError):
            return await _send(request, await proxy._forward(request, body))
        return web.Response(status=500)
    finally:
        gate.done.set()


async def _hold_after(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    """Forward the request (the server does the work), then hold the whole answer."""
    upstream = await proxy._forward(request, body)
    gate = await _held(fault.gate)
    try:
        with contextlib.suppress(ConnectionError):
            return await _send(request, upstream)
        return web.Response(status=500)
    finally:
        gate.done.set()


async def _hold_body(proxy: FaultProxy, request: web.Request, body: bytes, fault: Fault) -> web.StreamResponse:
    """Forward the request, send the status line, the headers and half the body; hold the rest."""
    status, headers, data = await proxy._forward(request, body)
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = len(data)
    await resp.prepare(request)
    await resp.write(data[: len(data) // 2])
    gate = await _held(fault.gate)
    try:
        with contextlib.suppress(ConnectionError):
            await resp.write(data[len(data) // 2 :])
            await resp.write_eof()
        return resp
    finally:
        gate.done.set()


async def _send(request: web.Request, upstream: Upstream) -> web.StreamResponse:
    """Write an answer now (so a test knows when it is on the wire, or that the client is gone)."""
    status, headers, data = upstream
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = len(data)
    await resp.prepare(request)
    await resp.write(data)
    await resp.write_eof()
    return resp


HANDLERS: dict[str, Handler] = {
    "reset_before": _reset_before,
    "reset_after": _reset_after,
    "delay": _delay,
    "delay_after": _delay_after,
    "truncate": _truncate,
    "close": _close,
    "strip_headers": _strip_headers,
    "html": _html,
    "huge": _huge,
    "endless": _endless,
    "bomb": _bomb,
    "garbage": _garbage,
    "hold": _hold,
    "hold_after": _hold_after,
    "hold_body": _hold_body,
    "rewrite": _rewrite,
    "canned": _canned,
}
