"""The fake service's HTTP face, on aiohttp.web: path-style URLs (``/<account>/<queue>/messages/<id>``),
the checks every request passes (account, version, credentials), the faults, and the answers' headers.

Order, for each request: route (the operation, from the method, path and ``comp``/``restype``), the
account (``<account>`` or its read-only ``<account>-secondary``), ``x-ms-version``, credentials, then the
injected faults and the throttle, then the operation itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from aiohttp import web

from ._auth import VERSIONS, Authenticator, Incoming
from ._errors import Refusal, bad_query
from ._faults import Fault, Faults, Throttle
from ._operations import Answer, Call, Operations
from ._state import Service
from ._wire import error_body, rfc1123

__all__ = ["App", "Served", "route"]

MAX_SERVED = 100_000  # requests remembered for FakeQueueService.requests (the latest)
MAX_BODY = 8 * 1024 * 1024  # what aiohttp reads of a body at most (a message is at most 64 KiB of text)
# the longest header line aiohttp parses (its default, 8190 bytes, would refuse 8 KiB of metadata in one
# x-ms-meta- header with a bare 400 before the service could answer MetadataTooLarge)
MAX_HEADER_FIELD = 64 * 1024
SERVER = "Windows-Azure-Queue/1.0 Microsoft-HTTPAPI/2.0"  # as Azure's answers say (recordings)
_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]")
# operations the read-only secondary (<account>-secondary) serves; Get Service Stats only it serves
_READS = frozenset(
    {
        "list_queues",
        "get_service_properties",
        "get_service_stats",
        "get_queue_metadata",
        "get_queue_acl",
        "peek_messages",
    }
)
_MESSAGE_OPERATIONS = frozenset(
    {"put_message", "get_messages", "peek_messages", "delete_message", "update_message", "clear_messages"}
)


@dataclass(frozen=True)
class Served:
    """One request the fake answered (or dropped): for a test's assertions."""

    method: str
    path: str  # without the query
    operation: str | None  # None when it named no operation
    status: int | None  # None when the answer was dropped (lose_answer)
    error_code: str | None


def _queue_name(name: str) -> str:
    """3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric."""
    if not 3 <= len(name) <= 63:
        raise Refusal("OutOfRangeInput")
    if not _QUEUE_NAME.fullmatch(name):
        raise Refusal("InvalidResourceName")
    return name


def _verb(table: Mapping[str, str], method: str) -> str:
    operation = table.get(method)
    if operation is None:
        raise Refusal("UnsupportedHttpVerb", headers={"Allow": ", ".join(sorted(table))})
    return operation


def _service_route(method: str, query: Mapping[str, str]) -> str:
    comp, restype = query.get("comp"), query.get("restype")
    if comp == "list":
        return _verb({"GET": "list_queues"}, method)
    if restype == "service" and comp == "properties":
        return _verb({"GET": "get_service_properties", "PUT": "set_service_properties"}, method)
    if restype == "service" and comp == "stats":
        return _verb({"GET": "get_service_stats"}, method)
    if restype == "service" and comp == "userdelegationkey":
        raise Refusal("NotImplemented", "The fake queue service does not implement Get User Delegation Key.")
    raise bad_query("comp", comp or "")


def _queue_route(method: str, query: Mapping[str, str]) -> str:
    comp = query.get("comp")
    if comp is None:
        return _verb({"PUT": "create_queue", "DELETE": "delete_queue"}, method)
    if comp == "metadata":
        return _verb({"GET": "get_queue_metadata", "HEAD": "get_queue_metadata", "PUT": "set_queue_metadata"}, method)
    if comp == "acl":
        return _verb({"GET": "get_queue_acl", "HEAD": "get_queue_acl", "PUT": "set_queue_acl"}, method)
    raise bad_query("comp", comp)


def _messages_route(method: str, query: Mapping[str, str]) -> str:
    peek = query.get("peekonly", "false").lower()
    if peek not in ("true", "false"):
        raise bad_query("peekonly", query["peekonly"])
    get = "peek_messages" if peek == "true" else "get_messages"
    return _verb({"POST": "put_message", "GET": get, "DELETE": "clear_messages"}, method)


def route(method: str, rest: list[str], query: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """(operation, queue, message id) of a request whose path after the account is ``rest``."""
    if method == "OPTIONS":
        raise Refusal("NotImplemented", "The fake queue service does not implement CORS preflight requests.")
    if not rest:
        return _service_route(method, query), None, None
    queue = _queue_name(rest[0])
    if len(rest) == 1:
        return _queue_route(method, query), queue, None
    if rest[1] != "messages" or len(rest) > 3:
        raise Refusal("InvalidUri")
    if len(rest) == 2:
        return _messages_route(method, query), queue, None
    return _verb({"DELETE": "delete_message", "PUT": "update_message"}, method), queue, rest[2]


def _query(raw: str) -> list[tuple[str, str]]:
    """A query string's names and values, decoded ('+' is a space, as Azure reads it)."""
    pairs = []
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def _messages_in(operation: str, query: Mapping[str, str]) -> int:
    """How many messages an operation counts for the throttle."""
    if operation in ("get_messages", "peek_messages"):
        text = query.get("numofmessages", "1")
        return int(text) if text.isdigit() and 1 <= int(text) <= 32 else 1
    return 1


class App:
    """The request handler of one fake account."""

    def __init__(
        self,
        service: Service,
        auth: Authenticator,
        operations: Operations,
        faults: Faults,
        throttle: Throttle,
    ) -> None:
        self.service = service
        self.auth = auth
        self.operations = operations
        self.faults = faults
        self.throttle = throttle
        self.served: deque[Served] = deque(maxlen=MAX_SERVED)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, handler_args={"max_field_size": MAX_HEADER_FIELD})
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # ---- one request -------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        version = request.headers.get("x-ms-version")
        version = version if version in VERSIONS else None
        path, _, raw_query = request.raw_path.partition("?")
        call: Call | None = None
        fault: Fault | None = None
        answer: Answer | None
        try:
            body = await self._body(request)
            call = self._call(request, path, _query(raw_query), body)
            fault = self.faults.take(call.operation)
            answer = await self._serve(call, fault)
        except Refusal as refusal:
            answer = self._refused(refusal, request_id)
        operation = None if call is None else call.operation
        if answer is None:  # lost or dropped on purpose: the connection closes without an answer
            self.served.append(Served(request.method, path, operation, None, None))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        self.served.append(
            Served(request.method, path, operation, answer.status, answer.headers.get("x-ms-error-code"))
        )
        response = self._response(request, answer, request_id, version)
        if fault is not None and fault.kind == "truncate":
            return await _truncated(request, response)
        if fault is None or fault.gate is None:
            return response
        try:  # a held request: its answer is on the wire before the gate says done
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            fault.gate.done.set()

    @staticmethod
    async def _body(request: web.Request) -> bytes:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise Refusal("RequestBodyTooLarge", details={"MaxLimit": str(MAX_BODY)}) from None

    def _call(self, request: web.Request, path: str, pairs: list[tuple[str, str]], body: bytes) -> Call:
        """Route, then check the account, the version and the credentials."""
        segments = [unquote(s) for s in path.split("/")[1:]]
        account, rest = segments[0], segments[1:]
        if rest and rest[-1] == "":
            rest.pop()
        query: dict[str, str] = {}
        for name, value in pairs:
            query.setdefault(name.lower(), value)
        operation, queue, message_id = route(request.method, rest, query)
        timeout = query.get("timeout")
        if timeout is not None and not (timeout.isdigit() and timeout.isascii()):
            raise bad_query("timeout", timeout)  # seconds; the service caps it at 30 (more is allowed)
        self._check_account(account, operation)
        self._check_version(request.headers)
        self.auth.check(
            Incoming(request.method, path, pairs, request.headers, len(body), request.remote or "", queue, operation)
        )
        return Call(operation, queue, message_id, query, request.headers, body)

    def _check_account(self, account: str, operation: str) -> None:
        if account == self.auth.account:
            if operation == "get_service_stats":  # only the secondary answers it
                raise bad_query("comp", "stats", "Get Queue Service Stats is served by the secondary endpoint only.")
            return
        if account != f"{self.auth.account}-secondary":
            raise Refusal("ResourceNotFound")
        if operation not in _READS:
            raise Refusal("AuthorizationFailure")  # the secondary is read-only

    @staticmethod
    def _check_version(headers: Mapping[str, str]) -> None:
        """x-ms-version: a released version when given; required with an Authorization header (a SAS
        request may leave it out); 2017-11-09 or later with a bearer token."""
        version = headers.get("x-ms-version")
        authorization = headers.get("Authorization", "")
        if version is None:
            if authorization:
                raise Refusal("MissingRequiredHeader", details={"HeaderName": "x-ms-version"})
            return
        if version not in VERSIONS or (authorization.startswith("Bearer ") and version < "2017-11-09"):
            raise Refusal("InvalidHeaderValue", details={"HeaderName": "x-ms-version", "HeaderValue": version})

    async def _serve(self, call: Call, fault: Fault | None) -> Answer | None:
        """The operation, after the fault it meets (if any); None when its answer is to be lost."""
        if fault is not None and fault.kind == "fail":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            raise Refusal(fault.code, fault.message, status=fault.status, headers=headers)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.kind == "drop":
            return None  # the connection drops before the work: nothing was done
        if fault is not None and fault.kind == "hold" and not fault.after:
            await _held(fault)
        self._throttle(call)
        try:
            answer = self.operations.table[call.operation](call)
        except Refusal:
            if fault is not None and fault.kind == "lose":
                return None
            raise
        if fault is not None and fault.kind == "hold" and fault.after:
            await _held(fault)
        return None if fault is not None and fault.kind == "lose" else answer

    def _throttle(self, call: Call) -> None:
        if call.operation in _MESSAGE_OPERATIONS and call.queue is not None:
            now = self.service.clock.now()
            if not self.throttle.admit(call.queue, _messages_in(call.operation, call.query), now):
                raise Refusal("ServerBusy")  # "The server is currently unable to receive requests..."

    # ---- answers ---------------------------------------------------------------------------------

    def _refused(self, refusal: Refusal, request_id: str) -> Answer:
        body = error_body(refusal.code, refusal.message, request_id, self.service.clock.now(), refusal.details)
        headers = {**refusal.headers, "x-ms-error-code": refusal.code}
        return Answer(refusal.status, headers, body, xml=True)

    def _response(self, request: web.Request, answer: Answer, request_id: str, version: str | None) -> web.Response:
        headers = dict(answer.headers)
        headers["x-ms-request-id"] = request_id
        if version is not None:
            headers["x-ms-version"] = version
        client_request_id = request.headers.get("x-ms-client-request-id")
        if client_request_id is not None:
            headers["x-ms-client-request-id"] = client_request_id
        headers["Date"] = rfc1123(self.service.clock.now())
        headers["Server"] = SERVER
        if answer.xml:
            headers["Content-Type"] = "application/xml"
        return web.Response(status=answer.status, headers=headers, body=answer.body or None)


async def _held(fault: Fault) -> None:
    assert fault.gate is not None
    fault.gate.arrived.set()
    await fault.gate.release.wait()


async def _truncated(request: web.Request, response: web.Response) -> web.StreamResponse:
    """The answer's status, headers and the first half of its body (its Content-Length the whole),
    then the connection closes: the work was done, the client gets no whole answer."""
    body = bytes(response.body or b"")  # type: ignore[arg-type]
    cut = web.StreamResponse(status=response.status, headers=response.headers)
    cut.content_length = len(body)
    if body:  # an answer without a body is cut before its headers
        with contextlib.suppress(ConnectionError):
            await cut.prepare(request)
            await cut.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.abort()
    return cut
