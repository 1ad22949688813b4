"""A fault-injecting reverse proxy in front of Azurite, driven per test.

    proxy.script("503", "503")          # the next two requests get 503 ServerBusy; then real answers
    proxy.script(Fault("reset_after"))  # forward, let the server do the work, then drop the answer

Faults: a status code ("503", "429", ...), "reset_before" (drop the connection without forwarding),
"reset_after" (forward, then drop the connection: the server did the work, the client never heard),
"delay" (wait ``seconds``, then forward), "delay_after" (forward, then wait ``seconds`` before
answering: the work is done while the client still waits), "truncate" (forward, then send half the body and drop),
"bomb" / "garbage" / "html" (answer 200 with a hostile, malformed or foreign body), "huge" /
"endless" (a body over any sane size), "close" (the real answer with Connection: close),
"strip_headers" (the real answer without its x-ms-* headers).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<QueueMessagesList><QueueMessage><MessageId>&lol4;</MessageId></QueueMessage></QueueMessagesList>"""


@dataclass
class Fault:
    kind: str
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None  # only requests with this method consume the fault


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    fault: str | None


class FaultProxy:
    def __init__(self, upstream: str, *, keepalive_timeout: float = 75.0) -> None:
        self.upstream = upstream.rstrip("/")  # http://127.0.0.1:port
        self.keepalive_timeout = keepalive_timeout
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.fault_rate = 0.0  # with a rng: a random fault on this share of requests
        self.random_kinds: tuple[str, ...] = ()
        self.rng = None
        self.random_delay = 0.0  # seconds a random "delay" fault holds the request before forwarding
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def script(self, *faults: str | Fault) -> None:
        self.faults.extend(f if isinstance(f, Fault) else Fault(f) for f in faults)

    async def __aenter__(self) -> FaultProxy:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=self.keepalive_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, account: str = "devstoreaccount1") -> str:
        return f"http://127.0.0.1:{self.port}/{account}"

    def _next_fault(self, method: str) -> Fault | None:
        for i, f in enumerate(self.faults):
            if f.method is None or f.method == method:
                return self.faults.pop(i)
        if self.rng is not None and self.random_kinds and self.rng.random() < self.fault_rate:
            return Fault(self.rng.choice(self.random_kinds), seconds=self.random_delay)
        return None

    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body or None,
            skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
        ) as resp:
            data = await resp.read()
            out = {k: v for k, v in resp.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding", "connection", "keep-alive")}
            return resp.status, out, data

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._next_fault(request.method)
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers), fault.kind if fault else None))
        kind = fault.kind if fault else None
        if kind is None:
            status, headers, data = await self._forward(request, body)
            return web.Response(status=status, headers=headers, body=data)
        assert fault is not None
        if kind.isdigit():
            code = int(kind)
            error = {503: "ServerBusy", 500: "InternalError", 408: "RequestTimeout", 429: "TooManyRequests"}
            xml = (f"<?xml version='1.0' encoding='utf-8'?><Error><Code>{error.get(code, 'Fault')}</Code>"
                   f"<Message>injected {code}</Message></Error>").encode()
            headers = {"x-ms-error-code": error.get(code, "Fault"), "x-ms-request-id": "fault", **fault.headers}
            return web.Response(status=code, headers=headers, body=xml, content_type="application/xml")
        if kind == "reset_before":
            return await self._drop(request)
        if kind == "reset_after":
            await self._forward(request, body)
            return await self._drop(request)
        if kind == "delay":
            await asyncio.sleep(fault.seconds)
            status, headers, data = await self._forward(request, body)
            return web.Response(status=status, headers=headers, body=data)
        if kind == "delay_after":
            status, headers, data = await self._forward(request, body)
            await asyncio.sleep(fault.seconds)
            return web.Response(status=status, headers=headers, body=data)
        if kind == "truncate":
            status, headers, data = await self._forward(request, body)
            resp = web.StreamResponse(status=status, headers=headers)
            resp.content_length = len(data) + 100
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            return await self._drop(request)
        if kind == "close":  # the real answer, but the server closes the connection after it
            status, headers, data = await self._forward(request, body)
            return web.Response(status=status, headers={**headers, "Connection": "close"}, body=data)
        if kind == "strip_headers":  # the real answer without its x-ms-* headers
            status, headers, data = await self._forward(request, body)
            kept = {k: v for k, v in headers.items() if not k.lower().startswith("x-ms-")}
            return web.Response(status=status, headers=kept, body=data)
        if kind == "html":
            return web.Response(status=200, text="<html><body>Gateway says hi</body></html>", content_type="text/html")
        if kind == "huge":  # announces 1 GiB
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/xml"})
            resp.content_length = 1 << 30
            await resp.prepare(request)
            await resp.write(b"<QueueMessagesList>")
            return await self._drop(request)
        if kind == "endless":  # chunked, no length, more than any cap
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
        if kind == "bomb":
            return web.Response(status=200, body=BILLION_LAUGHS, content_type="application/xml")
        if kind == "garbage":
            return web.Response(status=200, body=b"<QueueMessagesList><QueueMess", content_type="application/xml")
        raise ValueError(f"unknown fault {kind}")

    @staticmethod
    async def _drop(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)  # never reaches the client: the connection is gone
