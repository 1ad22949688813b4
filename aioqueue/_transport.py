"""HTTP for the storage REST API: a pooled aiohttp session and a retry loop. Nothing queue-specific.

A request is two layers, each short:

- :meth:`RetryingSession.request` decides: it repeats attempts while the answer or the failure is
  retryable (the :class:`RetryPolicy`'s statuses, connection errors, timeouts), honouring
  ``Retry-After``, and turns a final error answer into a typed exception with the ``map_error``
  function the client gave it. Its steps: ``_decide`` judges an outcome (``_retryable`` picks the
  wait), ``_record`` reports each attempt to telemetry, ``_wait`` sleeps and picks the next location,
  ``_follow`` gets the token a 401's Bearer challenge asks for (one resend, at once).
- :meth:`RetryingSession._attempt` sends once: sign (afresh each attempt), send, read the body
  under a size cap, and map aiohttp's errors to :class:`TransportError` / :class:`RequestTimeout`.

What a status means for one operation (a Delete Message retried after a lost answer that finds the
message gone, for instance) is the caller's knowledge: it passes ``accept``, which may declare a
non-2xx answer a success.

The aiohttp session is created lazily on first use inside the running loop and shared by every
child client of the client that created it.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import io
import logging
import re
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, NamedTuple
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from ._auth import BearerChallenge, SasCredential, SharedKeyCredential, TokenCache
from ._dates import RequestDate
from ._endpoint import Endpoint
from ._errors import AioQueueError, ConfigurationError, MalformedResponse, RequestTimeout, TransportError, redact
from ._events import (
    NO_HEADERS,
    NOT_RECORDED,
    AttemptRecorder,
    Hooks,
    RequestEvent,
    call_hooks,
    response_event,
    visible_headers,
)
from ._events import Location as Location  # re-exported: the clients take both from here
from ._events import check_event_hooks as check_event_hooks
from ._retry import NO_RETRY, RetryPolicy, retry_after_seconds
from ._version import __version__

log = logging.getLogger("aioqueue")

DEFAULT_API_VERSION = "2025-11-05"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 100
_STREAMED_BODY = 1 << 20  # a larger body (a payload's block) goes to aiohttp as a stream (as it asks)
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024  # an answer without a body (the operation gives its own cap otherwise)
# an error's <Code> and <Message>, with room for the details Azure adds (a 403's string-to-sign
# echoes the request's headers, x-ms-meta-* included: up to 8 KiB of them)
ERROR_BODY_BYTES = 32 * 1024
# Azurite closes idle keep-alive connections after 5 s; close ours first so a request rarely
# meets a connection the server has just dropped (when it does, the retry below handles it).
KEEPALIVE_TIMEOUT = 4.0
USER_AGENT = f"aioqueue/{__version__}"
XML_CONTENT_TYPE = "application/xml; charset=utf-8"
# aiohttp would add Content-Type: application/octet-stream to a bodiless PUT or POST, which is signed
# too; only those requests pay for skipping it (aiohttp's skip list costs ~7k instructions a request).
_BODILESS_SKIP = ("Content-Type",)
_BODY_METHODS = frozenset({"PUT", "POST", "PATCH"})

Credentials = SharedKeyCredential | SasCredential | TokenCache | None
Where = Literal["primary", "read", "secondary"]
"""Where an operation may go: "primary" only (writes, and reads the secondary must not answer), "read"
(the secondary can answer it: the location mode and ``retry_to_secondary`` choose), or "secondary"."""


class ConnectionLost(aiohttp.ClientConnectionError):
    """The connection dropped after the request may have been sent (raised by :func:`_no_resend`)."""


async def _no_resend(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
    """Stop aiohttp's own silent resend.

    aiohttp (3.10+) resends a GET/PUT/DELETE once, unseen, when the connection drops with
    ServerDisconnectedError or ClientOSError. Storage operations are not idempotent in HTTP's sense (a
    resent Delete Message answers 404 after the first one deleted it; a resent Update kills the
    receipt), so only our retry loop may resend: counted, logged, re-signed and judged. aiohttp runs
    its middlewares inside that resend loop and resends only on those two errors, so raising another
    connection error here ends it, for our sessions and a caller's alike. (A failure to connect at
    all is let through: nothing was sent.)
    """
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc


_MIDDLEWARES = (_no_resend,)
# The flag behind that resend (aiohttp 3.10+). Our own sessions turn it off and skip the middleware
# (~5k instructions a request); a caller's session keeps its flag, so its requests get the middleware.
_RESEND_FLAG = "_retry_connection" in getattr(aiohttp.ClientSession, "ATTRS", ())


# One semaphore per connection pool (aioqueue's own or a caller's session's), shared by every client
# sending through it: see _slots_for.
_POOL_SLOTS: weakref.WeakKeyDictionary[aiohttp.BaseConnector, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _slots_for(session: aiohttp.ClientSession) -> asyncio.Semaphore | None:
    """The slots of the session's connection pool: an attempt waits for one *before* its timeout starts.

    aiohttp counts the time a request waits for a free pooled connection in its ``total`` timeout, so
    under a full pool a request could time out after it had been sent (and be stored twice by the
    retry). Holding one of as many slots as the pool has connections, an attempt always finds one
    free. None for a pool without a limit (nothing ever waits). A caller's session shared with other
    traffic can still make an attempt wait inside aiohttp for the connections that traffic holds.
    """
    connector = session.connector
    if connector is None:
        return None
    slots = _POOL_SLOTS.get(connector)
    if slots is None:
        limits = [n for n in (connector.limit, connector.limit_per_host) if n > 0]
        if not limits:
            return None
        slots = _POOL_SLOTS[connector] = asyncio.Semaphore(min(limits))
    return slots


class State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


class Response(NamedTuple):
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    # an earlier attempt of this call may have done the work: it got no answer (a lost answer, a
    # timeout) or one that does not say it was not done (408, 500, 502, 504; not 429 or 503)
    after_lost_answer: bool = False
    # time.monotonic() when the attempt that got this answer was sent (after its retries and waits): a
    # lease the answer grants (a message's visibility) runs from no earlier than this
    sent: float = 0.0


Accept = Callable[[Response], bool]
"""``accept(response)``: True declares a non-2xx answer a success (``response.after_lost_answer`` tells
whether an earlier attempt may have done the work)."""
_MAYBE_DONE = frozenset({408, 500, 502, 504})  # answers that do not say the work was not done
MapError = Callable[[Response], AioQueueError]


# The fast path of urllib.parse.quote(value, safe="") (its twin: the same text on every value);
# tests/transport/test_fast_paths.py: test_escape_query_value_equals_quote.
def escape_query_value(value: str) -> str:
    """``quote(value, safe="")``, without its cost for the values requests carry: a pop receipt (base64:
    letters, digits, '+', '/', '=') needs three replacements, where quote() costs about 30k instructions,
    more than the rest of a request."""
    if _BASE64.fullmatch(value):
        return value.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return quote(value, safe="")


_BASE64 = re.compile("[A-Za-z0-9+/=_-]*")  # of these, quote() escapes only '+', '/' and '='


class _Target(NamedTuple):
    """One request's fixed parts, the same for every attempt."""

    method: str
    url: URL
    path: str  # as sent and signed: the account's path prefix included
    query: Mapping[str, str]
    body: bytes | None
    headers: Mapping[str, str] | None
    location: Location
    max_bytes: int  # the largest body the operation's answer may legally have
    bare: str  # the URL without the SAS credential's token (an attempt adds the newest one)
    sas: str | None  # the SAS credential's token in ``url``


def _with_sas(url: str, token: str) -> str:
    return f"{url}&{token}" if "?" in url else f"{url}?{token}"


# A NamedTuple's own __new__ is a Python function; these build the same tuples in C (each runs once a
# request or attempt).
_new_target = functools.partial(tuple.__new__, _Target)
_new_response = functools.partial(tuple.__new__, Response)
_NO_QUERY: Mapping[str, str] = MappingProxyType({})


@dataclass(slots=True)
class _Call:
    """One request's state across its attempts, made by the first attempt that does not simply succeed."""

    target: _Target  # where the next attempt goes
    path: str  # as the caller gave it: the other location's target is made from it
    alternate: bool  # retries alternate between the primary and the secondary
    accept: Accept | None
    attempt: int = 1
    other: _Target | None = None  # the other location's target, made on the first switch
    maybe_done: bool = False  # an earlier attempt may have done the work
    primary_error: AioQueueError | None = None  # when alternating: the primary's last failure
    delays: Iterator[float] | None = None  # the policy's delays, made on the first retry
    challenge: BearerChallenge | None = None  # a 401's Bearer challenge, to follow before the next attempt
    challenged: bool = False  # one was followed: the resend it made is not counted against the policy


class _Failed(NamedTuple):
    """An attempt's failure: retried after ``wait`` seconds, or (``wait`` None) raised."""

    error: AioQueueError  # this attempt's error (what telemetry records)
    wait: float | None
    stands: AioQueueError | None  # raised instead of ``error`` (the primary's, when a lagging secondary ends it)


class RetryingSession:
    """A pooled aiohttp session plus the retry loop: what a root client and its children share."""

    def __init__(
        self,
        endpoint: Endpoint,
        credential: Credentials,
        *,
        api_version: str,
        retry: RetryPolicy | None,
        timeout: float,
        max_connections: int,
        session: aiohttp.ClientSession | None,
        map_error: MapError,
        location_mode: Location = "primary",
        retry_to_secondary: bool = False,
        user_agent: str | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.credential = credential
        self.api_version = api_version
        self.retry = retry if retry is not None else NO_RETRY
        # per attempt, from the moment it holds a connection slot (see _slots_for): queueing for a
        # connection is no part of it
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        self._slots: asyncio.Semaphore | None = None
        self.max_connections = max_connections
        self._map_error = map_error
        self._session = session
        self._owns_session = session is None
        # what every request needs: set once on a session of ours, passed per request to a caller's
        # (never raise on a status: we map it; never inflate a body: we ask for none compressed, so a
        # compressed one is hostile; never resend behind our back: see _no_resend and _open)
        self._session_options: dict[str, Any] = {
            "timeout": self.timeout,
            "raise_for_status": False,
            "auto_decompress": False,
            "middlewares": _MIDDLEWARES,
        }
        self._request_options: dict[str, Any] = {"allow_redirects": False}
        if session is not None:
            self._request_options.update(self._session_options)
        self._bodiless_options = {**self._request_options, "skip_auto_headers": _BODILESS_SKIP}
        self.state = State.UNOPENED
        self._loop: asyncio.AbstractEventLoop | None = None
        self.location_mode: Location = location_mode
        self.retry_to_secondary = retry_to_secondary
        self.hooks = hooks
        agent = self.user_agent = f"{user_agent} {USER_AGENT}" if user_agent else USER_AGENT
        # identity: we never inflate a body (auto_decompress is off), so none may come compressed
        self._static_headers = {"x-ms-version": api_version, "User-Agent": agent, "Accept-Encoding": "identity"}
        self._date = RequestDate()
        # Shared Key signs x-ms-date and Entra ID wants it; a SAS request (or an anonymous one) needs none
        self._dated = isinstance(credential, (SharedKeyCredential, TokenCache))
        self._parent: RetryingSession | None = None  # the session whose pool a sibling borrows

    def sibling(self, endpoint: Endpoint, credential: Credentials) -> RetryingSession:
        """A session for another service of the account (another endpoint, perhaps another credential)
        with these options, through this session's connection pool: opened with it, never closing it."""
        other = RetryingSession(
            endpoint,
            credential,
            api_version=self.api_version,
            retry=self.retry,
            timeout=self.timeout.total or DEFAULT_TIMEOUT,
            max_connections=self.max_connections,
            session=None,
            map_error=self._map_error,
            user_agent=None,
            hooks=self.hooks,
        )
        other._static_headers = dict(self._static_headers)
        other.user_agent = self.user_agent
        other._owns_session = False
        other._request_options, other._bodiless_options = self._request_options, self._bodiless_options
        other._parent = self
        return other

    def _open(self) -> aiohttp.ClientSession:
        if self.state is State.CLOSED:
            raise ConfigurationError("this client is closed; create a new one (or use it inside 'async with')")
        if self._parent is not None:
            self._session = self._parent._open()  # the parent's pool, which its owner closes
        elif self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=KEEPALIVE_TIMEOUT)
            options = {**self._session_options, "middlewares": ()} if _RESEND_FLAG else self._session_options
            session = aiohttp.ClientSession(connector=connector, trust_env=False, **options)
            if _RESEND_FLAG:
                session._retry_connection = False
            self._session = session
        self._slots = _slots_for(self._session)
        self._loop = asyncio.get_running_loop()
        self.state = State.OPENED
        return self._session

    async def close(self) -> None:
        """Close the session if this object created it (a caller's own session is left open)."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    def _target(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        location: Location,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> _Target:
        endpoint = self.endpoint
        if location == "secondary":
            if endpoint.secondary_origin is None:
                raise ConfigurationError(
                    "this account has no known secondary endpoint: pass secondary_hostname= "
                    "(or QueueSecondaryEndpoint in the connection string)"
                )
            origin, prefix = endpoint.secondary_origin, endpoint.secondary_prefix
        else:
            origin, prefix = endpoint.origin, endpoint.path_prefix
        full_path = prefix + path
        qs = (
            "&".join(
                [
                    f"{k}={v}" if v.isalnum() and v.isascii() else f"{k}={escape_query_value(v)}"
                    for k, v in query.items()
                ]
            )
            if query
            else ""
        )
        if endpoint.sas:  # a SAS in the account URL (never with a SAS credential)
            qs = f"{qs}&{endpoint.sas}" if qs else endpoint.sas
        bare = f"{origin}{full_path}?{qs}" if qs else f"{origin}{full_path}"
        credential = self.credential
        sas = credential.token if isinstance(credential, SasCredential) else None
        url = URL(_with_sas(bare, sas) if sas else bare, encoded=True)
        return _new_target((method, url, full_path, query or _NO_QUERY, body, headers, location, max_bytes, bare, sas))

    async def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        where: Where = "primary",
        accept: Accept | None = None,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        op: AttemptRecorder = NOT_RECORDED,
    ) -> Response:
        """Send one operation with retries; return a 2xx (or accepted) answer or raise a typed error.

        ``path`` is below the account (``/queue/messages``). ``where`` (see :data:`Where`): "secondary"
        sends it to the account's read-only geo-redundant secondary; "read" marks an operation the
        secondary can answer: it goes there when the location mode is "secondary", and with
        ``retry_to_secondary`` its retries alternate between the two, starting from the mode's location
        (a 404 from the secondary, which may lag, is then retried on the primary); "primary" (writes)
        always goes to the primary.

        The loop: an attempt (:meth:`_attempt`), its verdict (:meth:`_decide`: return, raise, or retry
        after a wait), its telemetry (:func:`_record`), the wait and the next location (:meth:`_wait`).
        A first attempt that succeeds skips the decision and makes no :class:`_Call`.
        """
        session = self._session if self.state is State.OPENED else None
        if session is None or (self._parent is not None and self._parent.state is not State.OPENED):
            session = self._open()
        elif asyncio.get_running_loop() is not self._loop:
            raise ConfigurationError(
                "this client was first used in another event loop (an earlier asyncio.run?) and belongs to it: "
                "make one client per event loop"
            )
        secondary = where == "secondary" or (where == "read" and self.location_mode == "secondary")
        target = self._target(method, path, query, body, headers, "secondary" if secondary else "primary", max_bytes)
        call: _Call | None = None  # made by the first attempt that does not simply succeed
        attempt = 1
        traced = op.on
        while True:
            started = time.monotonic() if traced else 0.0
            outcome: Response | TransportError
            try:
                outcome = await self._attempt(session, target, attempt)
            except TransportError as exc:
                outcome = exc
            verdict: Response | _Failed
            if call is None and type(outcome) is Response and outcome.status < 300:
                verdict = outcome  # the common case: nothing to decide
            else:
                if call is None:
                    call = _Call(target, path, where == "read" and self.retry_to_secondary, accept)
                verdict = self._decide(call, outcome)
            if traced:
                _record(op, method, attempt, started, outcome, verdict)
            if isinstance(verdict, Response):
                return verdict
            assert call is not None  # a failure is a decision's: there is a call
            if verdict.wait is None:
                raise verdict.error if verdict.stands is None else verdict.stands
            if call.challenge is not None:
                await self._follow(call, call.challenge, verdict.error)
            else:
                await self._wait(call, verdict.wait)
            attempt, target = call.attempt, call.target

    def _decide(self, call: _Call, outcome: Response | TransportError) -> Response | _Failed:
        """What an attempt's outcome means: the answer to return, or a failure to raise or to retry."""
        if isinstance(outcome, TransportError):
            call.maybe_done = call.maybe_done or not outcome.unsent
            return self._retryable(call, outcome, None, False)
        status = outcome.status
        if call.maybe_done:
            outcome = outcome._replace(after_lost_answer=True)
        if status < 300 or (call.accept is not None and call.accept(outcome)):
            return outcome
        credential = self.credential
        if status == 401 and isinstance(credential, TokenCache):
            credential.invalidate(outcome.sent)  # expired or revoked: the next request fetches a new one
            if not call.challenged:
                call.challenge = credential.challenge(
                    outcome.headers.get("WWW-Authenticate"), call.target.url.host or ""
                )
                if call.challenge is not None:  # the token the service asks for, and one resend at once
                    return _Failed(self._map_error(outcome), 0.0, None)
        call.maybe_done = call.maybe_done or status in _MAYBE_DONE
        error = self._map_error(outcome)
        lagging = call.alternate and status == 404 and call.target.location == "secondary"
        if status not in self.retry.retry_statuses and not lagging:
            return _Failed(error, None, None)
        wait = retry_after_seconds(outcome.headers.get("Retry-After"))
        if wait is not None and wait > self.retry.max_retry_after:
            return _Failed(error, None, None)
        return self._retryable(call, error, wait, lagging)

    def _retryable(self, call: _Call, error: AioQueueError, wait: float | None, lagging: bool) -> _Failed:
        """A retryable failure: retried after ``wait`` (the answer's Retry-After) or the policy's next
        delay, unless it was the last attempt."""
        if call.alternate and call.target.location == "primary":
            call.primary_error = error
        if call.attempt - call.challenged >= self.retry.max_attempts:
            # a secondary not caught up says nothing of the queue: the primary's failure stands
            return _Failed(error, None, call.primary_error if lagging else None)
        if call.delays is None:
            call.delays = self.retry.delays()  # made on the first retry: most requests need none
        delay = next(call.delays)
        return _Failed(error, wait if wait is not None else delay, None)

    async def _wait(self, call: _Call, seconds: float) -> None:
        """Wait before the next attempt; then count it and, when retries alternate, switch location."""
        await asyncio.sleep(seconds)
        call.attempt += 1
        if call.alternate:
            if call.other is None:
                target = call.target
                elsewhere: Location = "primary" if target.location == "secondary" else "secondary"
                call.other = self._target(
                    target.method, call.path, target.query, target.body, target.headers, elsewhere, target.max_bytes
                )
            call.target, call.other = call.other, call.target

    async def _follow(self, call: _Call, challenge: BearerChallenge, refused: AioQueueError) -> None:
        """Get the token a 401's Bearer challenge asks for (its tenant's, for its resource; kept for later
        requests), for one resend at once to the same location. Once a call, and not counted against the
        retry policy's attempts (as in the official SDKs, where it happens below the retries). When the
        credential gives no token, the 401 is raised, caused by the credential's error."""
        call.challenge = None
        call.challenged = True
        credential = self.credential
        assert isinstance(credential, TokenCache)
        log.debug("401: following its Bearer challenge (tenant %s, scope %s)", challenge.tenant, challenge.scope)
        try:
            await credential.follow(challenge, self.timeout.total)
        except Exception as exc:
            raise refused from exc
        call.attempt += 1

    async def _attempt(self, session: aiohttp.ClientSession, target: _Target, attempt: int) -> Response:
        """One attempt: sign, send, read. Connection failures and timeouts become TransportError.

        A bearer token is fetched first, then a connection slot is awaited (see :func:`_slots_for`):
        neither is part of the attempt, whose ``timeout`` starts once it holds the slot."""
        credential = self.credential
        bearer = "Bearer " + await credential.token(self.timeout.total) if isinstance(credential, TokenCache) else None
        slots = self._slots
        if slots is None:
            return await self._send(session, target, attempt, bearer)
        async with slots:
            return await self._send(session, target, attempt, bearer)

    def _prepare(self, target: _Target, bearer: str | None) -> tuple[URL, dict[str, str]]:
        """The URL (with the newest SAS) and the headers (signed with the newest key) of one attempt."""
        method = target.method
        body = target.body
        hdrs = dict(self._static_headers)
        date = ""
        if self._dated:
            date = hdrs["x-ms-date"] = self._date.now()
        own = target.headers
        if own:
            hdrs.update(own)
        if body is not None:
            hdrs["Content-Type"] = XML_CONTENT_TYPE
        credential = self.credential
        url = target.url
        if isinstance(credential, SharedKeyCredential):
            length = len(body) if body else 0
            if own:  # headers of the operation's or the caller's: each may be signed
                hdrs["Authorization"] = credential.authorization(method, target.path, target.query, hdrs, length)
            else:
                content_type = XML_CONTENT_TYPE if body is not None else ""
                hdrs["Authorization"] = credential.plain_authorization(
                    method, target.path, target.query, self.api_version, date, content_type, length
                )
        elif bearer is not None:
            hdrs["Authorization"] = bearer
        elif isinstance(credential, SasCredential) and credential.token is not target.sas:
            url = URL(_with_sas(target.bare, credential.token), encoded=True)  # updated since _target
        return url, hdrs

    async def _send(
        self, session: aiohttp.ClientSession, target: _Target, attempt: int, bearer: str | None
    ) -> Response:
        method = target.method
        url, hdrs = self._prepare(target, bearer)
        hooks = self.hooks
        event = None
        if hooks is not None:
            event = RequestEvent(method, redact(str(url)), visible_headers(hdrs), attempt, target.location)
            await call_hooks(hooks.request, event)
        debug = log.isEnabledFor(logging.DEBUG)
        started = time.monotonic()
        outcome: Response | TransportError
        body = target.body
        options = self._bodiless_options if body is None and method in _BODY_METHODS else self._request_options
        data = io.BytesIO(body) if body is not None and len(body) > _STREAMED_BODY else body
        try:
            async with session.request(method, url, data=data, headers=hdrs, **options) as resp:
                try:
                    content = await self._read(resp, target.max_bytes)
                except MalformedResponse as exc:  # an answer came, but its body is refused
                    if event is not None and hooks is not None:
                        await call_hooks(
                            hooks.response, response_event(event, started, resp.status, resp.headers, str(exc))
                        )
                    raise
                outcome = _new_response((resp.status, resp.headers, content, False, started))
        except asyncio.CancelledError:
            raise
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            outcome = self._failure(target, exc)
        if debug:
            log.debug(
                "%s %s -> %s request_id=%s attempt=%d elapsed=%.3fs",
                method,
                redact(str(url)),
                outcome.status if isinstance(outcome, Response) else type(outcome).__name__,
                outcome.headers.get("x-ms-request-id") if isinstance(outcome, Response) else None,
                attempt,
                time.monotonic() - started,
            )
        if event is not None and hooks is not None:
            if isinstance(outcome, Response):
                done = response_event(event, started, outcome.status, outcome.headers)
            else:
                done = response_event(event, started, None, NO_HEADERS, str(outcome))
            await call_hooks(hooks.response, done)
        if isinstance(outcome, TransportError):
            raise outcome
        return outcome

    def _failure(self, target: _Target, exc: Exception) -> TransportError:
        """The TransportError for an attempt that failed with a connection error or a timeout.

        A failure to connect (refused, no such host, no connection within the timeout) came before
        anything was sent: its error is marked ``unsent``, so the retry loop knows that attempt did
        not do the work."""
        what = f"{target.method} {redact(target.path)}"
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            error: TransportError = RequestTimeout(f"{what}: no connection within {self.timeout.total} s")
        elif isinstance(exc, asyncio.TimeoutError):
            return RequestTimeout(f"{what}: no answer within {self.timeout.total} s")
        else:
            error = TransportError(f"{what}: {type(exc).__name__}: {redact(str(exc))}")
            if not isinstance(exc, aiohttp.ClientConnectorError):
                return error
        error.unsent = True
        return error

    @staticmethod
    async def _read(resp: aiohttp.ClientResponse, limit: int) -> bytes:
        """The body, at most ``limit`` bytes as sent (never inflated). An error answer's body is cut at
        ERROR_BODY_BYTES (its code and message fit); a larger success body is a MalformedResponse."""
        error = resp.status >= 300
        if error:
            limit = ERROR_BODY_BYTES
        length = resp.content_length
        if length is not None and length <= limit:  # exactly length bytes: aiohttp enforces Content-Length
            return await resp.read() if length <= _STREAMED_BODY else await _read_sized(resp.content, length)
        if length is not None and not error:
            raise MalformedResponse(f"the response body is {length} bytes, over this operation's {limit}-byte limit")
        chunks: list[bytes] = []
        size = 0
        content = resp.content
        # what has arrived, at once (cheaper than iter_chunked's iterator), until the end of the body:
        # a small answer usually comes whole with its end, so no second read waits to find it
        while chunk := await content.readany():
            size += len(chunk)
            if size > limit:
                if error:  # keep what fits; the rest is never read (the connection is not reused)
                    chunks.append(chunk[: len(chunk) - (size - limit)])
                    break
                raise MalformedResponse(f"the response body is over this operation's {limit}-byte limit")
            chunks.append(chunk)
            if content.at_eof():
                break
        return b"".join(chunks)


async def _read_sized(content: aiohttp.StreamReader, length: int) -> bytes:
    """A large body of known length (a payload's block), each chunk written as it comes into one buffer
    of that size, handed over without a copy: aiohttp's read() holds the whole body twice at its end
    (its chunks and their join), which was a block more at the peak of a payload's download."""
    sink = io.BytesIO()
    sink.seek(length - 1)
    sink.write(b"\0")  # sized once, exactly: no growth, and getvalue() hands over this very buffer
    sink.seek(0)
    while chunk := await content.readany():
        sink.write(chunk)
    if sink.tell() != length:  # (aiohttp raises first): never a body padded with the zeros it was sized with
        raise aiohttp.ClientPayloadError(f"the response body ended after {sink.tell()} of its {length} bytes")
    return sink.getvalue()


def _record(
    op: AttemptRecorder,
    method: str,
    attempt: int,
    started: float,
    outcome: Response | TransportError,
    verdict: Response | _Failed,
) -> None:
    """One attempt, for the operation's span and the request metrics."""
    response = outcome if isinstance(outcome, Response) else None
    failed = verdict if isinstance(verdict, _Failed) else None
    op.attempt(
        attempt=attempt,
        method=method,
        status=response.status if response is not None else None,
        request_id=response.headers.get("x-ms-request-id") if response is not None else None,
        error=failed.error if failed is not None else None,
        seconds=time.monotonic() - started,
        retrying=failed is not None and failed.wait is not None,
    )
