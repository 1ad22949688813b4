"""One request, start to finish: sign -> send -> map errors -> retry. Plain functions, no pipeline.

The aiohttp session is created lazily on first use inside the running loop, pooled, and shared by
every child client of the client that created it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from ._auth import Endpoint, SasCredential, SharedKeyCredential, TokenCache
from ._errors import (
    AioQueueError,
    ConfigurationError,
    RequestTimeout,
    TransportError,
    redact,
    service_error,
)
from ._retry import NO_RETRY, RetryPolicy, retry_after_seconds
from ._version import __version__
from ._xml import MalformedResponse, parse_error

log = logging.getLogger("aioqueue")

DEFAULT_API_VERSION = "2025-11-05"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# Azurite closes idle keep-alive connections after 5 s; close ours first so a request rarely
# meets a connection the server has just dropped (when it does, the retry below handles it).
KEEPALIVE_TIMEOUT = 4.0
USER_AGENT = f"aioqueue/{__version__}"
XML_CONTENT_TYPE = "application/xml; charset=utf-8"
# aiohttp would add Content-Type: application/octet-stream to a bodiless PUT, which is signed too.
_SKIP_AUTO_HEADERS = ("Content-Type", "Accept-Encoding")


class State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


class Response(NamedTuple):
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class _DateCache:
    """``x-ms-date`` changes once a second; format it once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._value = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(second))
            self._second = second
        return self._value


_dates = _DateCache()


class Connection:
    """What a root client and its children share: endpoint, credential, options and the session."""

    def __init__(
        self,
        endpoint: Endpoint,
        credential: SharedKeyCredential | SasCredential | TokenCache | None,
        *,
        api_version: str,
        retry: RetryPolicy | None,
        timeout: float,
        max_connections: int,
        session: aiohttp.ClientSession | None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.endpoint = endpoint
        self.credential = credential
        self.api_version = api_version
        self.retry = retry if retry is not None else NO_RETRY
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        self._session = session
        self._owns_session = session is None
        self.state = State.UNOPENED
        self._static_headers = {"x-ms-version": api_version, "User-Agent": USER_AGENT}
        self.sleep = asyncio.sleep  # how retries wait; tests may replace it to observe the delays
        self.consumers: weakref.WeakSet[Any] = weakref.WeakSet()  # open receive streams, closed first

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=KEEPALIVE_TIMEOUT)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                trust_env=False,
            )
            # aiohttp >= 3.10 silently resends an idempotent-method request once when a pooled
            # connection drops. Queue operations are not idempotent in HTTP's sense (a resent Update
            # kills the receipt, a resent Delete answers 404), so only our retry policy resends, with
            # each attempt counted, logged, re-signed and judged. There is no public switch for it.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        self.state = State.OPENED
        return self._session

    async def close(self) -> None:
        if self.state is State.CLOSED:
            return
        for consumer in list(self.consumers):
            await consumer.aclose()  # renewals stop; prefetched messages become visible at once
        self.state = State.CLOSED
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    def _query_string(self, query: Mapping[str, str] | None) -> str:
        qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items()) if query else ""
        credential = self.credential
        sas = credential.token if isinstance(credential, SasCredential) else self.endpoint.sas
        if sas:
            qs = f"{qs}&{sas}" if qs else sas
        return qs

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        delete_is_idempotent: bool = False,
        resent: bool = False,
        secondary: bool = False,
    ) -> Response:
        """Send one operation with retries; return a 2xx response or raise a typed error.

        ``path`` is below the account (``/queue/messages``). With ``delete_is_idempotent``, a 404
        ``MessageNotFound`` (or Azurite's ``PopReceiptMismatch``) on a retry counts as success: an
        earlier attempt may have deleted the message before its answer was lost; with ``resent`` as
        well, an earlier request outside this call may have, so that holds from the first attempt.
        """
        session = self._session
        if session is None or self.state is not State.OPENED:
            if self.state is State.CLOSED:
                raise ConfigurationError("this client is closed; create a new one (or use it inside 'async with')")
            session = self._get_session()
        origin, prefix = _secondary(self.endpoint) if secondary else (self.endpoint.origin, self.endpoint.path_prefix)
        full_path = prefix + path
        qs = self._query_string(query)
        url_text = f"{origin}{full_path}?{qs}" if qs else f"{origin}{full_path}"
        url = URL(url_text, encoded=True)
        retry = self.retry
        delays = None  # made on the first retry: most requests need none
        content_length = len(body) if body else 0
        debug = log.isEnabledFor(logging.DEBUG)
        attempt = 0
        while True:
            attempt += 1
            hdrs = dict(self._static_headers)
            hdrs["x-ms-date"] = _dates.now()
            if headers:
                hdrs.update(headers)
            if body is not None:
                hdrs["Content-Type"] = XML_CONTENT_TYPE
            credential = self.credential
            if isinstance(credential, SharedKeyCredential):
                hdrs["Authorization"] = credential.authorization(method, full_path, query or {}, hdrs, content_length)
            elif isinstance(credential, TokenCache):
                hdrs["Authorization"] = "Bearer " + await credential.token()
            started = time.monotonic() if debug else 0.0
            error: AioQueueError | None = None
            response: Response | None = None
            try:
                async with session.request(
                    method,
                    url,
                    data=body,
                    headers=hdrs,
                    timeout=self.timeout,
                    allow_redirects=False,
                    skip_auto_headers=_SKIP_AUTO_HEADERS,
                ) as resp:
                    response = Response(resp.status, resp.headers, await self._read(resp))
            except asyncio.CancelledError:
                raise
            except asyncio.TimeoutError:
                error = RequestTimeout(f"{method} {redact(full_path)}: no answer within {self.timeout.total} s")
            except (aiohttp.ClientError, OSError) as exc:
                error = TransportError(f"{method} {redact(full_path)}: {type(exc).__name__}: {redact(str(exc))}")
            if debug:
                elapsed = time.monotonic() - started
                log.debug(
                    "%s %s -> %s request_id=%s attempt=%d elapsed=%.3fs",
                    method,
                    redact(url_text),
                    response.status if response is not None else type(error).__name__,
                    response.headers.get("x-ms-request-id") if response is not None else None,
                    attempt,
                    elapsed,
                )
            wait: float | None = None
            if response is not None:
                status = response.status
                if status < 300:
                    return response
                code = response.headers.get("x-ms-error-code")
                if (
                    delete_is_idempotent
                    and (attempt > 1 or resent)
                    and (code == "MessageNotFound" or code == "PopReceiptMismatch" or status == 404)
                ):
                    return response
                error = self._error(response)
                if status in retry.retry_statuses:
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    if wait is not None and wait > retry.max_retry_after:
                        raise error
                else:
                    raise error
            if error is None or attempt >= retry.max_attempts:
                raise error or TransportError(f"{method} {redact(full_path)}: no response")
            if delays is None:
                delays = retry.delays()
            delay = next(delays)
            await self.sleep(wait if wait is not None else delay)

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.max_response_bytes
        length = resp.content_length
        if length is not None and length > limit:
            raise MalformedResponse(f"the response body is {length} bytes, over the {limit}-byte limit")
        if length is not None:
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise MalformedResponse(f"the response body is over the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _error(response: Response) -> AioQueueError:
        headers = response.headers
        code, message = parse_error(response.body)
        code = headers.get("x-ms-error-code") or code
        return service_error(
            response.status,
            code,
            message or f"HTTP {response.status}",
            headers.get("x-ms-request-id"),
            headers,
        )


def _secondary(endpoint: Endpoint) -> tuple[str, str]:
    """Origin and path prefix of a geo-redundant account's secondary (``<account>-secondary``)."""
    account = endpoint.account_name
    if endpoint.path_prefix:
        return endpoint.origin, f"/{account}-secondary"
    scheme, _, netloc = endpoint.origin.partition("://")
    return f"{scheme}://{netloc.replace(account + '.', account + '-secondary.', 1)}", ""
