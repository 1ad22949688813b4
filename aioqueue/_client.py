"""QueueServiceClient and QueueClient: every Queue REST operation as one awaitable with retries."""

from __future__ import annotations

import asyncio
import re
import sys
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Final, TypedDict

import aiohttp
from yarl import URL

from ._auth import (
    AsyncTokenCredential,
    Credential,
    SasCredential,
    SharedKeyCredential,
    TokenCache,
    decode_key,
    normalize_sas,
    token_scope,
)
from ._dates import parse_rfc1123
from ._encoding import MAX_MESSAGE_BYTES, MessageEncoding, TextEncoding, encode_message, get_encoding
from ._endpoint import ConnectionSettings, Endpoint, parse_account_url, parse_connection_string, parse_secondary
from ._errors import (
    AioQueueError,
    ConfigurationError,
    MalformedResponse,
    MessageEncodingError,
    MessageNotFound,
    PopReceiptMismatch,
    QueueAlreadyExists,
    QueueNotFound,
    SendMessagesError,
    service_error,
)
from ._link import Closable
from ._message_list import message_body, parse_messages, parse_put_answer
from ._messages import (
    RawMessage,
    answered,
    peeked_messages,
    received_message,
    received_messages,
    send_receipt,
    text_of,
)
from ._models import (
    AccessPolicy,
    PeekedMessage,
    ProcessStats,
    QueueItem,
    QueueMessage,
    QueueProperties,
    SendReceipt,
    ServiceProperties,
    ServiceStats,
    UpdateReceipt,
    UserDelegationKey,
)
from ._options import ReceiveOptions, ReceiveSettings, Unpack
from ._paging import QueueListing
from ._retry import RetryPolicy
from ._sas import USER_DELEGATION_VERSION, delegation_key_window
from ._settle import ReceivedMessage
from ._streams import BatchStream, MessageStream
from ._telemetry import Operation, Telemetry, _Off, count_outcome
from ._transport import (
    DEFAULT_API_VERSION,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    Accept,
    Credentials,
    Location,
    Response,
    RetryingSession,
    State,
    check_event_hooks,
)
from ._validation import (
    MAX_SECONDS,
    POP_RECEIPT,
    Duration,
    message_count,
    metadata_headers,
    positive_int,
    positive_number,
    seconds,
    signed_identifier,
)
from ._validation import (
    api_version as check_api_version,
)
from ._validation import (
    message_id as check_message_id,
)
from ._validation import (
    pop_receipt as check_pop_receipt,
)
from ._validation import (
    queue_name as check_queue_name,
)
from ._validation import (
    user_agent as check_user_agent,
)
from ._validation import (
    user_headers as check_user_headers,
)
from ._worker import FailureHook, Handler, PoisonHook, Worker
from ._xml import (
    OFF_LOOP_BYTES,
    off_loop,
    parse_error,
    parse_queue_list,
    parse_service_properties,
    parse_service_stats,
    parse_signed_identifiers,
    parse_user_delegation_key,
    service_properties_body,
    signed_identifiers_body,
    user_delegation_key_body,
)

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - Python 3.10
    from typing_extensions import Self

__all__ = ["QueueClient", "QueueServiceClient"]


class _Unchanged:
    def __repr__(self) -> str:
        return "<unchanged>"


UNCHANGED: Final = _Unchanged()
_DEFAULT_RETRY = RetryPolicy()

# The largest answer each operation can legally get: the transport reads no more (README, "Bounds").
# A message's text is at most 64 KiB as sent; in an answer it is XML-escaped again ("&quot;" is 6
# bytes for 1), beside its id, receipt and dates.
_MESSAGE_ENTRY_BYTES = 6 * MAX_MESSAGE_BYTES + 1024
# A queue's entry in List Queues: its name, or with metadata up to 8 KiB of names and values, escaped,
# with an element per name: names are case-insensitive identifiers, so 8 KiB holds at most about
# 3,100 of them (27 of one character, 999 of two, the rest of three).
_QUEUE_ENTRY_BYTES = 1024
_QUEUE_ENTRY_WITH_METADATA_BYTES = 6 * 8192 + 7 * 3200 + 1024
_QUEUE_ELEMENTS, _QUEUE_ELEMENTS_WITH_METADATA = 3, 3 + 3200
_LIST_PAGE = 5000  # the service's default and largest page
_LIST_PAGE_WITH_METADATA = 100  # asked for explicitly, so a page's legal size stays near 11 MiB
# Five CORS rules of up to 64 origins, 64 allowed and 64 exposed headers of 256 characters, escaped.
_SERVICE_PROPERTIES_BYTES = 2 * 1024 * 1024
_SMALL_DOCUMENT_BYTES = 16 * 1024  # an ACL (5 policies), service stats, a user delegation key


def _messages_bytes(count: int) -> int:
    return count * _MESSAGE_ENTRY_BYTES + 1024


# Peek Messages' query and answer cap for each count (read-only: shared by every request)
_PEEK = {n: ({"peekonly": "true", "numofmessages": str(n)}, _messages_bytes(n)) for n in range(1, 33)}


def _error_for(response: Response) -> AioQueueError:
    """The typed error for one error answer: its ``x-ms-error-code`` header, else the body's code."""
    headers = response.headers
    code, message = parse_error(response.body)
    return service_error(
        response.status,
        headers.get("x-ms-error-code") or code,
        message,
        headers.get("x-ms-request-id"),
        headers,
        response.after_lost_answer,  # an earlier attempt may have done it (a retried update finds its receipt spent)
    )


def _error_code(response: Response) -> str | None:
    """The answer's error code: the ``x-ms-error-code`` header, else the body's <Code>."""
    return response.headers.get("x-ms-error-code") or parse_error(response.body)[0]


def _message_gone(response: Response) -> bool:
    """A Delete Message answer saying the message is not there (Azure: 404; Azurite may say 400
    PopReceiptMismatch for a message it has already deleted)."""
    code = response.headers.get("x-ms-error-code")
    return response.status == 404 or code == MessageNotFound.__name__ or code == PopReceiptMismatch.__name__


class _Pool:
    """What a root client and its children share: the HTTP session and every open stream."""

    __slots__ = ("http", "streams", "telemetry")

    def __init__(self, http: RetryingSession, telemetry: Telemetry) -> None:
        self.http = http
        self.telemetry = telemetry
        self.streams: weakref.WeakSet[Closable] = weakref.WeakSet()


class ClientOptions(TypedDict, total=False):
    """Keyword options every client constructor accepts (defaults in brackets).

    - ``api_version`` ["2025-11-05"]: the x-ms-version sent.
    - ``retry`` [RetryPolicy()]: ``None`` for no retries.
    - ``timeout`` [30.0]: seconds per attempt, from when it holds one of the pool's connections:
      connecting, sending and the whole answer (waiting for a free connection is not counted).
      ``max_connections`` [100]: the pool's size.
    - ``session`` [None]: your own ``aiohttp.ClientSession`` (the client never closes it; size its
      connector yourself: ``max_connections`` is refused with it).
    - ``message_encoding`` ["text"]: "text", "base64", "binary", "json", "base64-json" or a MessageEncoding.
    - ``secondary_hostname`` [derived]: the read-access geo-redundant secondary, as a host name or a URL;
      derived for ``*.queue.core.windows.net``-shaped hosts and path-style emulator URLs.
    - ``location_mode`` ["primary"]: "secondary" sends reads (peek, properties, metadata, ACL, list
      queues, service properties) to the secondary; writes always go to the primary.
    - ``retry_to_secondary`` [False]: retries of reads alternate between primary and secondary.
    - ``user_agent`` [None]: text put before aioqueue's own User-Agent.
    - ``audience`` [None]: token audience, e.g. ``https://<account>.queue.core.windows.net`` (default
      ``https://storage.azure.com``); only with a token credential.
    - ``event_hooks`` [None]: ``{"request": [fn, ...], "response": [fn, ...]}``, each called (or
      awaited) with a :class:`RequestEvent` / :class:`ResponseEvent` for every attempt.
    - ``allow_insecure_http`` [False]: let a SAS or bearer token travel over plain http to a host that
      is not loopback (test setups only: anyone on the path could replay it).
    - ``tracer_provider`` / ``meter_provider`` [the global ones]: OpenTelemetry providers for this
      client's spans and metrics (docs: Observability); nothing is recorded while neither is configured.
    - ``trace_context_field`` [None]: a field name, e.g. ``"traceparent"``: sent JSON-object messages
      carry the send span's W3C trace context in it, and a worker's process span links to the context
      it finds there (opt-in on both sides; other content is sent unchanged).
    """

    api_version: str
    retry: RetryPolicy | None
    timeout: float
    max_connections: int | None
    session: aiohttp.ClientSession | None
    message_encoding: str | MessageEncoding
    secondary_hostname: str | None
    location_mode: Location
    retry_to_secondary: bool
    user_agent: str | None
    audience: str | None
    event_hooks: Mapping[str, Iterable[Callable[..., object]]] | None
    allow_insecure_http: bool
    tracer_provider: Any
    meter_provider: Any
    trace_context_field: str | None


def _resolve_credential(
    endpoint: Endpoint, credential: Credential, account_name: str | None, audience: str | None
) -> tuple[Endpoint, Credentials]:
    """The endpoint with the account's name settled, and the credential the transport uses.

    The name comes from a Shared Key credential, else the URL, else the connection string's AccountName.
    """
    if credential is not None and endpoint.sas is not None:
        raise ConfigurationError("the URL carries a SAS token and credential= is given too; pass only one")
    if audience is not None and not isinstance(credential, AsyncTokenCredential):
        raise ConfigurationError("audience= applies only to a token credential (an Entra ID identity)")
    name = endpoint.account_name
    given, source = (
        (credential.account_name, "the credential is")
        if isinstance(credential, SharedKeyCredential)
        else (account_name, "the connection string's AccountName is")
    )
    if given and given != name:
        if name and endpoint.account_certain and not endpoint.path_prefix:
            raise ConfigurationError(f"{source} for account {given!r} but the URL names {name!r}")
        name = given  # the URL only guessed it (or did not name it)
        endpoint = endpoint.with_account(given)
    if credential is None or isinstance(credential, (SharedKeyCredential, SasCredential)):
        return endpoint, credential
    if isinstance(credential, str):
        if "sig=" in credential:
            return endpoint, SasCredential(normalize_sas(credential))
        decode_key(credential)
        if not name:
            raise ConfigurationError(
                f"the URL {endpoint.hostname!r} does not name the storage account (a custom domain?), so an "
                "account key cannot sign for it: pass SharedKeyCredential(account_name, key), or a connection "
                "string with AccountName"
            )
        return endpoint, SharedKeyCredential(name, credential)
    if isinstance(credential, AsyncTokenCredential):
        return endpoint, TokenCache(credential, token_scope(audience))
    raise ConfigurationError(
        "credential must be None, an account key or SAS str, SharedKeyCredential, SasCredential, "
        f"or an async token credential; got {type(credential).__name__}"
    )


def _refuse_secrets_over_http(endpoint: Endpoint, credential: Credentials, allowed: object) -> None:
    """Bearer tokens and SAS tokens are secrets anyone on the path could replay: https only, except to
    loopback, or with ``allow_insecure_http=True`` for a test setup (an emulator in docker compose)."""
    if not isinstance(allowed, bool):
        raise ConfigurationError("allow_insecure_http must be True or False")
    if isinstance(credential, TokenCache):
        secret = "a token credential"
    elif isinstance(credential, SasCredential) or endpoint.sas is not None:
        secret = "a SAS token"
    else:
        return
    hosts = endpoint.plain_http_hosts()
    if hosts and not allowed:
        raise ConfigurationError(
            f"{secret} needs an https:// URL: it would travel in clear to {hosts[0]} "
            "(for a test setup on a private network, pass allow_insecure_http=True; --allow-insecure-http in the CLI)"
        )


def _pool_size(max_connections: int | None, session: aiohttp.ClientSession | None) -> int:
    if max_connections is None:
        return DEFAULT_MAX_CONNECTIONS
    if session is not None:
        raise ConfigurationError(
            "max_connections sizes aioqueue's own pool; with session= size your session's connector "
            "(aiohttp.TCPConnector(limit=...)) instead"
        )
    return positive_int(max_connections, "max_connections")


def _location_mode(value: object) -> Location:
    if value not in ("primary", "secondary"):
        raise ConfigurationError(f"location_mode must be 'primary' or 'secondary'; got {value!r}")
    return "primary" if value == "primary" else "secondary"


def _merge_headers(own: Mapping[str, str] | None, extra: Mapping[str, str]) -> dict[str, str]:
    """The operation's headers plus the caller's; a caller's header the operation sets is an error."""
    merged = dict(own or {})
    taken = {name.lower() for name in merged}
    for name, value in check_user_headers(extra).items():
        if name.lower() in taken:
            raise ConfigurationError(f"the {name} header is set by this operation; pass it through its argument")
        merged[name] = value
    return merged


def _make_telemetry(endpoint: Endpoint, tracer_provider: Any, meter_provider: Any, trace_field: object) -> Telemetry:
    """The pool's telemetry: options checked, and the server address and port its metrics name."""
    for name, provider, method in (
        ("tracer_provider", tracer_provider, "get_tracer"),
        ("meter_provider", meter_provider, "get_meter"),
    ):
        if provider is not None and not callable(getattr(provider, method, None)):
            raise ConfigurationError(f"{name} must be an OpenTelemetry {name.replace('_', ' ')} (with .{method}())")
    if trace_field is not None and (not isinstance(trace_field, str) or not _FIELD.fullmatch(trace_field)):
        raise ConfigurationError("trace_context_field must be a JSON field name of letters, digits, '_', '-' or '.'")
    url = URL(endpoint.origin)
    server = (url.host, url.port) if url.host is not None and url.port is not None else None
    return Telemetry(tracer_provider, meter_provider, server=server, trace_field=trace_field)


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")


def _with_settings(settings: ConnectionSettings, options: ClientOptions) -> dict[str, Any]:
    """The options plus what the connection string adds: the account name and the secondary."""
    merged: dict[str, Any] = dict(options)
    if settings.secondary_url is not None:
        given = merged.get("secondary_hostname")
        if given is not None and given != settings.secondary_url:
            raise ConfigurationError("secondary_hostname= and the connection string's QueueSecondaryEndpoint differ")
        merged["secondary_hostname"] = settings.secondary_url
    merged["_account_name"] = settings.account_name
    return merged


class _Client:
    """Lifecycle and options shared by both clients."""

    def __init__(
        self,
        account_url: str,
        *,
        credential: Credential = None,
        api_version: str = DEFAULT_API_VERSION,
        retry: RetryPolicy | None = _DEFAULT_RETRY,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int | None = None,
        session: aiohttp.ClientSession | None = None,
        message_encoding: str | MessageEncoding = "text",
        secondary_hostname: str | None = None,
        location_mode: Location = "primary",
        retry_to_secondary: bool = False,
        user_agent: str | None = None,
        audience: str | None = None,
        event_hooks: Mapping[str, Iterable[Callable[..., object]]] | None = None,
        allow_insecure_http: bool = False,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        trace_context_field: str | None = None,
        _pool: _Pool | None = None,
        _account_name: str | None = None,
    ) -> None:
        self._encoding = get_encoding(message_encoding)
        self._streams: weakref.WeakSet[Closable] = weakref.WeakSet()
        if _pool is not None:
            self._pool = _pool
            self._owner = False
        else:
            endpoint, cred = _resolve_credential(parse_account_url(account_url), credential, _account_name, audience)
            if secondary_hostname is not None:
                endpoint = endpoint.with_secondary(
                    parse_secondary(secondary_hostname, "https" if endpoint.secure else "http")
                )
            _refuse_secrets_over_http(endpoint, cred, allow_insecure_http)
            mode = _location_mode(location_mode)
            if not isinstance(retry_to_secondary, bool):
                raise ConfigurationError("retry_to_secondary must be True or False")
            if (mode == "secondary" or retry_to_secondary) and endpoint.secondary_origin is None:
                raise ConfigurationError(
                    f"{'location_mode=secondary' if mode == 'secondary' else 'retry_to_secondary'} needs the "
                    "account's secondary endpoint, which this URL does not show: pass secondary_hostname="
                )
            if retry is not None and not isinstance(retry, RetryPolicy):
                raise ConfigurationError("retry must be a RetryPolicy or None (no retries)")
            if session is not None and not isinstance(session, aiohttp.ClientSession):
                raise ConfigurationError("session must be an aiohttp.ClientSession or None")
            http = RetryingSession(
                endpoint,
                cred,
                api_version=check_api_version(api_version),
                retry=retry,
                timeout=positive_number(timeout, "timeout"),
                max_connections=_pool_size(max_connections, session),
                session=session,
                map_error=_error_for,
                location_mode=mode,
                retry_to_secondary=retry_to_secondary,
                user_agent=check_user_agent(user_agent),
                hooks=check_event_hooks(event_hooks),
            )
            self._pool = _Pool(http, _make_telemetry(endpoint, tracer_provider, meter_provider, trace_context_field))
            self._owner = True
        self._closed = False

    @property
    def account_name(self) -> str | None:
        """The storage account's name: the primary's, even for a ``-secondary`` URL (None when a
        custom domain's URL is given without a credential or connection string naming it)."""
        return self._pool.http.endpoint.account_name

    @property
    def api_version(self) -> str:
        """The x-ms-version every request sends."""
        return self._pool.http.api_version

    @property
    def credential(self) -> SharedKeyCredential | SasCredential | AsyncTokenCredential | None:
        """The credential requests are signed with (None when anonymous or the SAS is in the URL).

        An account key given as a str comes back as the SharedKeyCredential made from it; reprs hide secrets.
        """
        credential = self._pool.http.credential
        return credential.credential if isinstance(credential, TokenCache) else credential

    @property
    def location_mode(self) -> Location:
        """Where reads go: "primary" or "secondary" (writes always go to the primary)."""
        return self._pool.http.location_mode

    @property
    def primary_hostname(self) -> str:
        """The primary's ``host[:port]`` (plus the account path of a path-style URL)."""
        return self._pool.http.endpoint.hostname

    @property
    def secondary_hostname(self) -> str | None:
        """The read-access secondary's ``host[:port]`` (plus path), or None when not known."""
        return self._pool.http.endpoint.secondary_hostname

    @property
    def primary_endpoint(self) -> str:
        """This client's URL on the primary (no SAS token in it); the same as :attr:`url`."""
        return self._pool.http.endpoint.url + self._resource

    @property
    def secondary_endpoint(self) -> str:
        """This client's URL on the read-access secondary; ConfigurationError when none is known."""
        base = self._pool.http.endpoint.secondary_url
        if base is None:
            raise ConfigurationError("no secondary endpoint is known for this account: pass secondary_hostname=")
        return base + self._resource

    @property
    def url(self) -> str:
        """The client's URL on the primary (no SAS token in it)."""
        return self._pool.http.endpoint.url + self._resource

    _resource = ""  # the path below the account: "" for the service, "/<queue>" for a queue

    @property
    def closed(self) -> bool:
        """True once this client (or the client whose pool it shares) is closed."""
        return self._closed or self._pool.http.state is State.CLOSED

    async def close(self) -> None:
        """Close the connection pool this client owns; a child client closes nothing but itself.

        Open receive streams of this client stop first: renewals end and messages fetched but not
        yet yielded become visible again at once.
        """
        if self._closed:
            return
        pool = self._pool
        for stream in list(pool.streams if self._owner else self._streams):
            await stream.aclose()  # renewals stop; prefetched messages become visible at once
        self._closed = True
        if self._owner:
            await pool.http.close()

    def _track(self, stream: Closable) -> None:
        self._streams.add(stream)
        self._pool.streams.add(stream)

    def _untrack(self, stream: Closable) -> None:
        self._streams.discard(stream)
        self._pool.streams.discard(stream)

    async def __aenter__(self) -> Self:
        if self.closed:
            raise ConfigurationError("this client is closed; create a new one")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _operation(self, name: str, message: QueueMessage | None = None) -> Operation | _Off:
        """The telemetry recorder of one operation (:data:`OFF` when OpenTelemetry is not configured)."""
        return self._pool.telemetry.operation(name, self._queue_label, message)

    _queue_label: str | None = None  # messaging.destination.name: the queue's name on a QueueClient

    async def _request(
        self,
        op: str | Operation | _Off,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
        read: bool = False,
        secondary: bool = False,
        accept: Accept | None = None,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> Response:
        """One operation. ``op``: its name (its telemetry is recorded here) or the recorder its caller
        opened; ``headers``: the operation's own; ``extra``: the caller's ``headers=`` (checked here,
        before any request); ``read``: the secondary may answer it; ``max_bytes``: the largest answer
        body it can legally get."""
        if self._closed:
            raise ConfigurationError("this client is closed; create a new one (or use it inside 'async with')")
        if extra is not None:
            headers = _merge_headers(headers, extra)
        http = self._pool.http
        if isinstance(op, str):
            op = self._pool.telemetry.operation(op, self._queue_label)
            if op.on:
                with op:
                    return await http.request(
                        method, path, query, body, headers, read, secondary, accept, max_bytes, op
                    )
        # positional: keyword arguments cost ~2k instructions a call here
        return await http.request(method, path, query, body, headers, read, secondary, accept, max_bytes, op)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class QueueServiceClient(_Client):
    """The account's queue service: list, create and delete queues; service properties and stats.

    ``async with QueueServiceClient(url, credential=...) as service:`` opens nothing eagerly and
    closes its connection pool on exit. Queue clients from :meth:`get_queue_client` share that pool.
    """

    def __init__(self, account_url: str, *, credential: Credential = None, **options: Unpack[ClientOptions]) -> None:
        super().__init__(account_url, credential=credential, **options)

    @classmethod
    def from_connection_string(cls, conn_str: str, **options: Unpack[ClientOptions]) -> QueueServiceClient:
        """A client from any connection string form, including ``UseDevelopmentStorage=true``."""
        settings = parse_connection_string(conn_str)
        return cls(settings.account_url, credential=settings.credential, **_with_settings(settings, options))

    def get_queue_client(self, queue_name: str) -> QueueClient:
        """A client for one queue that shares this client's connection pool (and never closes it)."""
        return QueueClient("", check_queue_name(queue_name), message_encoding=self._encoding, _pool=self._pool)

    def list_queues(
        self,
        *,
        prefix: str | None = None,
        include_metadata: bool = False,
        page_size: int | None = None,
        continuation_token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> QueueListing:
        """Every queue (optionally those starting with ``prefix``), following pages transparently.

        ``page_size`` is queues per request (1..5000, the service's cap). ``.pages()`` on the result
        yields pages with a ``continuation_token``; ``continuation_token=`` resumes from one.
        A read: with ``location_mode="secondary"`` the secondary answers it.
        """
        if page_size is not None and (
            isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 5000
        ):
            raise ConfigurationError(f"page_size must be an int from 1 to 5000; got {page_size!r}")
        if prefix is not None and not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a str")
        extra = check_user_headers(headers) if headers is not None else None
        base = {"comp": "list"}
        if prefix:
            base["prefix"] = prefix
        if include_metadata:
            base["include"] = "metadata"
            page = page_size or _LIST_PAGE_WITH_METADATA
            base["maxresults"] = str(page)
            max_bytes, max_elements = page * _QUEUE_ENTRY_WITH_METADATA_BYTES, page * _QUEUE_ELEMENTS_WITH_METADATA
        else:
            if page_size is not None:
                base["maxresults"] = str(page_size)
            page = page_size or _LIST_PAGE
            max_bytes, max_elements = page * _QUEUE_ENTRY_BYTES, page * _QUEUE_ELEMENTS
        max_bytes += 4096  # the envelope: prefix, markers (up to 1 KiB each, escaped)

        async def fetch(marker: str | None) -> tuple[list[QueueItem], str | None]:
            query = {**base, "marker": marker} if marker else base
            response = await self._request(
                "list_queues", "GET", "/", query=query, extra=extra, read=True, max_bytes=max_bytes
            )
            body = response.body
            if len(body) <= OFF_LOOP_BYTES:
                return parse_queue_list(body, max_elements + 16)
            return await off_loop(parse_queue_list, body, max_elements + 16)

        return QueueListing(fetch, continuation_token)

    async def create_queue(
        self,
        name: str,
        *,
        metadata: Mapping[str, str] | None = None,
        exist_ok: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> QueueClient:
        """Create a queue and return its client (sharing this pool)."""
        queue = self.get_queue_client(name)
        await queue.create_queue(metadata=metadata, exist_ok=exist_ok, headers=headers)
        return queue

    async def delete_queue(
        self, name: str, *, missing_ok: bool = False, headers: Mapping[str, str] | None = None
    ) -> None:
        """Delete a queue and its messages. Azure then refuses the name for about 40 s."""
        await self.get_queue_client(name).delete_queue(missing_ok=missing_ok, headers=headers)

    async def get_service_properties(self, *, headers: Mapping[str, str] | None = None) -> ServiceProperties:
        """Logging, hour and minute metrics, and CORS rules."""
        response = await self._request(
            "get_service_properties",
            "GET",
            "/",
            query={"restype": "service", "comp": "properties"},
            extra=headers,
            read=True,
            max_bytes=_SERVICE_PROPERTIES_BYTES,
        )
        body = response.body
        if len(body) <= OFF_LOOP_BYTES:
            return parse_service_properties(body)
        return await off_loop(parse_service_properties, body)

    async def set_service_properties(
        self, properties: ServiceProperties, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Set the parts of ``properties`` that are not None (at most 5 CORS rules)."""
        if not isinstance(properties, ServiceProperties):
            raise ConfigurationError("properties must be a ServiceProperties")
        if properties.cors is not None and len(properties.cors) > 5:
            raise ConfigurationError(f"the service allows at most 5 CORS rules; got {len(properties.cors)}")
        for part in (properties.hour_metrics, properties.minute_metrics, properties.analytics_logging):
            r = getattr(part, "retention_policy", None)
            if r is not None and r.enabled and not (isinstance(r.days, int) and 1 <= r.days <= 365):
                raise ConfigurationError("an enabled retention policy needs days from 1 to 365")
        await self._request(
            "set_service_properties",
            "PUT",
            "/",
            query={"restype": "service", "comp": "properties"},
            body=service_properties_body(properties),
            extra=headers,
        )

    async def get_service_stats(self, *, headers: Mapping[str, str] | None = None) -> ServiceStats:
        """Geo-replication status, answered by the account's secondary endpoint (RA-GRS accounts)."""
        response = await self._request(
            "get_service_stats",
            "GET",
            "/",
            query={"restype": "service", "comp": "stats"},
            extra=headers,
            secondary=True,
            max_bytes=_SMALL_DOCUMENT_BYTES,
        )
        return parse_service_stats(response.body)

    async def get_user_delegation_key(
        self,
        start: datetime | timedelta | None = None,
        expiry: datetime | timedelta | None = None,
        *,
        delegated_user_tid: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UserDelegationKey:
        """A key for signing user delegation SAS tokens: ``generate_queue_sas(..., user_delegation_key=key)``.

        Needs a token credential (Microsoft Entra ID). ``start`` and ``expiry`` are aware datetimes or
        timedeltas from now (``start`` None: now; ``expiry`` is required); the key may live at most 7
        days from now. ``delegated_user_tid`` is the
        Entra ID tenant of the user a SAS signed with the key will be bound to (optional).
        """
        if not isinstance(self._pool.http.credential, TokenCache):
            raise ConfigurationError(
                "get_user_delegation_key needs a token credential (Microsoft Entra ID), not an account key or SAS"
            )
        if delegated_user_tid is not None and (not isinstance(delegated_user_tid, str) or not delegated_user_tid):
            raise ConfigurationError("delegated_user_tid must be a non-empty str (an Entra ID tenant id)")
        if expiry is None:
            raise ConfigurationError(
                "get_user_delegation_key needs expiry= (an aware datetime or a timedelta from now)"
            )
        st, se = delegation_key_window(timedelta(0) if start is None else start, expiry)
        # The Queue service hands out delegation keys from version 2026-02-06 on: send at least that.
        version = max(self._pool.http.api_version, USER_DELEGATION_VERSION)
        response = await self._request(
            "get_user_delegation_key",
            "POST",
            "/",
            query={"restype": "service", "comp": "userdelegationkey"},
            body=user_delegation_key_body(st, se, delegated_user_tid),
            headers={"x-ms-version": version},
            extra=headers,
            max_bytes=_SMALL_DOCUMENT_BYTES,
        )
        return parse_user_delegation_key(response.body)


class QueueClient(_Client):
    """One queue: queue operations, message operations and the consumer loop.

    Service limits: 32 messages per receive or peek, 64 KiB of message text after encoding,
    visibility timeouts up to 7 days.
    """

    def __init__(
        self,
        account_url: str,
        queue_name: str,
        *,
        credential: Credential = None,
        _pool: _Pool | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.queue_name = self._queue_label = check_queue_name(queue_name)
        super().__init__(account_url, credential=credential, _pool=_pool, **options)
        self._path = self._resource = f"/{self.queue_name}"
        self._messages_path = f"/{self.queue_name}/messages"

    def _sibling(self, queue_name: str) -> QueueClient:
        """Another queue's client on this client's pool (used for poison queues)."""
        return QueueClient("", check_queue_name(queue_name), message_encoding=self._encoding, _pool=self._pool)

    @classmethod
    def from_connection_string(cls, conn_str: str, queue_name: str, **options: Unpack[ClientOptions]) -> QueueClient:
        """A client for one queue from any connection string form."""
        settings = parse_connection_string(conn_str)
        return cls(
            settings.account_url, queue_name, credential=settings.credential, **_with_settings(settings, options)
        )

    @classmethod
    def from_queue_url(
        cls, queue_url: str, *, credential: Credential = None, **options: Unpack[ClientOptions]
    ) -> QueueClient:
        """A client from a queue's full URL, which may carry a SAS token (``...?sv=...&sig=...``)."""
        if not isinstance(queue_url, str):
            raise ConfigurationError("queue_url must be a str")
        base, query_sep, query = queue_url.partition("?")
        base = base.rstrip("/")
        account_url, slash, name = base.rpartition("/")
        if not slash or "://" not in account_url or account_url.endswith(":/"):
            raise ConfigurationError("queue_url must look like https://<account>.queue.core.windows.net/<queue>")
        return cls(account_url + (query_sep + query if query else ""), name, credential=credential, **options)

    # ---- queue operations ------------------------------------------------------------------

    async def create_queue(
        self,
        *,
        metadata: Mapping[str, str] | None = None,
        exist_ok: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Create the queue; True when created, False when it existed and ``exist_ok`` (metadata untouched).

        Raises QueueAlreadyExists when it exists and ``exist_ok`` is false. When an attempt's answer
        was lost, the retry's "already exists" is taken as this call's success (True): the lost
        attempt may have created it.
        """
        rec = self._operation("create_queue")  # an existing queue with exist_ok is no failed operation
        with rec:
            try:
                response = await self._request(
                    rec,
                    "PUT",
                    self._path,
                    headers=metadata_headers(metadata),
                    extra=headers,
                    accept=lambda r: r.after_lost_answer and _error_code(r) == "QueueAlreadyExists",
                )
            except QueueAlreadyExists:
                if exist_ok:
                    return False
                raise
        if response.after_lost_answer and response.status in (204, 409):
            return True  # an earlier attempt, whose answer was lost, may have created it
        if response.status == 204:  # already there, with identical metadata
            if exist_ok:
                return False
            raise QueueAlreadyExists(
                "The specified queue already exists.",
                status=204,
                error_code="QueueAlreadyExists",
                request_id=response.headers.get("x-ms-request-id"),
                headers=response.headers,
            )
        return True

    async def delete_queue(self, *, missing_ok: bool = False, headers: Mapping[str, str] | None = None) -> bool:
        """Delete the queue and its messages; True when deleted, False when missing and ``missing_ok``.

        When an attempt's answer was lost, the retry's "not found" is this call's success (True).
        """
        rec = self._operation("delete_queue")  # a missing queue with missing_ok is no failed operation
        with rec:
            try:
                await self._request(
                    rec,
                    "DELETE",
                    self._path,
                    extra=headers,
                    accept=lambda r: r.after_lost_answer and _error_code(r) == "QueueNotFound",
                )
            except QueueNotFound:
                if missing_ok:
                    return False
                raise
        return True

    async def exists(self, *, headers: Mapping[str, str] | None = None) -> bool:
        """Whether the queue exists."""
        rec = self._operation("exists")  # "no" is an answer, not a failed operation
        with rec:
            try:
                await self._request(rec, "GET", self._path, query={"comp": "metadata"}, extra=headers, read=True)
            except QueueNotFound:
                return False
        return True

    async def get_queue_properties(self, *, headers: Mapping[str, str] | None = None) -> QueueProperties:
        """Metadata and the approximate message count."""
        response = await self._request(
            "get_queue_properties", "GET", self._path, query={"comp": "metadata"}, extra=headers, read=True
        )
        headers = response.headers
        metadata = {k[10:]: v for k, v in headers.items() if k[:10].lower() == "x-ms-meta-"}
        try:
            count = int(headers["x-ms-approximate-messages-count"])
        except (KeyError, ValueError):
            raise MalformedResponse("the response lacks a valid x-ms-approximate-messages-count") from None
        return QueueProperties(name=self.queue_name, metadata=metadata, approximate_message_count=count)

    async def set_queue_metadata(
        self, metadata: Mapping[str, str] | None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Replace all of the queue's metadata (None or {} clears it)."""
        await self._request(
            "set_queue_metadata",
            "PUT",
            self._path,
            query={"comp": "metadata"},
            headers=metadata_headers(metadata),
            extra=headers,
        )

    async def get_queue_access_policy(self, *, headers: Mapping[str, str] | None = None) -> dict[str, AccessPolicy]:
        """The stored access policies, by identifier."""
        response = await self._request(
            "get_queue_access_policy",
            "GET",
            self._path,
            query={"comp": "acl"},
            extra=headers,
            read=True,
            max_bytes=_SMALL_DOCUMENT_BYTES,
        )
        return parse_signed_identifiers(response.body)

    async def set_queue_access_policy(
        self, policies: Mapping[str, AccessPolicy | None], *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Replace the stored access policies (at most 5; identifiers up to 64 characters)."""
        if not isinstance(policies, Mapping):
            raise ConfigurationError("policies must be a mapping of identifier to AccessPolicy (or None)")
        if len(policies) > 5:
            raise ConfigurationError(f"a queue holds at most 5 stored access policies; got {len(policies)}")
        for ident, policy in policies.items():
            signed_identifier(ident, "an access policy identifier")
            if policy is not None and not isinstance(policy, AccessPolicy):
                raise ConfigurationError(f"policy {ident!r} must be an AccessPolicy or None")
            if policy is not None:
                for when in (policy.start, policy.expiry):
                    if when is not None and when.tzinfo is None:
                        raise ConfigurationError(f"policy {ident!r}: start and expiry must be aware datetimes")
                if policy.permission is not None and (
                    not isinstance(policy.permission, str) or set(policy.permission) - set("raup")
                ):
                    raise ConfigurationError(f"policy {ident!r}: permission must be a str of letters from 'raup'")
        await self._request(
            "set_queue_access_policy",
            "PUT",
            self._path,
            query={"comp": "acl"},
            body=signed_identifiers_body(policies),
            extra=headers,
        )

    # ---- message operations ----------------------------------------------------------------

    def _send_query(self, visibility_timeout: Duration | None, time_to_live: Duration | None) -> dict[str, str]:
        query: dict[str, str] = {}
        ttl = None
        if time_to_live is not None:
            ttl = seconds(time_to_live, "time_to_live", low=1, high=None, allow_never=True)
            query["messagettl"] = str(ttl)
        if visibility_timeout is not None:
            vis = seconds(visibility_timeout, "visibility_timeout", low=0)
            if ttl is not None and ttl != -1 and vis >= ttl:
                raise ConfigurationError("visibility_timeout must be shorter than time_to_live")
            if ttl is None and vis >= MAX_SECONDS:
                raise ConfigurationError("visibility_timeout must be shorter than the default 7-day time_to_live")
            query["visibilitytimeout"] = str(vis)
        return query

    async def _send_encoded(
        self, text: str, query: dict[str, str], extra: Mapping[str, str] | None = None, content: Any = UNCHANGED
    ) -> SendReceipt:
        """Put Message with ``text``; ``content`` (when given) gets the send span's trace context
        when ``trace_context_field`` is set, and is encoded again with it."""
        rec = self._operation("send")
        with rec:
            if rec.span is not None:
                if content is not UNCHANGED:
                    traced = self._pool.telemetry.inject(content, rec.span)
                    if traced is not content:
                        text = encode_message(self._encoding, traced)
                rec.set("messaging.message.body.size", len(text.encode("utf-8", "surrogatepass")))
            response = await self._request(
                rec,
                "POST",
                self._messages_path,
                query=query,
                body=message_body(text),
                extra=extra,
                max_bytes=_messages_bytes(1),
            )
            entries = parse_put_answer(response.body)
            if not entries:
                raise MalformedResponse("Put Message answered without the message")
            receipt = send_receipt(entries[0])
            rec.set("messaging.message.id", receipt.id)
        return receipt

    async def send_message(
        self,
        content: Any,
        *,
        visibility_timeout: Duration | None = None,
        time_to_live: Duration | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SendReceipt:
        """Put one message. ``visibility_timeout`` 0 s..7 d (hidden until then) and shorter than
        ``time_to_live`` (default 7 days; -1 never expires). Over 64 KiB encoded: MessageTooLarge.
        A retried send after a lost answer can store the message twice (at-least-once)."""
        query = self._send_query(visibility_timeout, time_to_live)
        return await self._send_encoded(encode_message(self._encoding, content), query, headers, content)

    async def send_messages(
        self,
        contents: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        visibility_timeout: Duration | None = None,
        time_to_live: Duration | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[SendReceipt]:
        """Put many messages, up to ``concurrency`` at once; receipts come back in input order.

        A list or other iterable is encoded (and checked) in full before the first request. If a send
        fails, no new sends start, those under way finish, and the first error is raised with
        a :class:`SendMessagesError` whose ``receipts`` is a list in input order holding a SendReceipt
        for each message sent and None for each that was not (``error``: the first failure).
        """
        positive_int(concurrency, "concurrency")
        query = self._send_query(visibility_timeout, time_to_live)
        extra = check_user_headers(headers) if headers is not None else None
        encoding = self._encoding
        source: AsyncIterator[tuple[str, Any]] | None = None
        texts: list[str] = []
        items: list[Any] = []
        if isinstance(contents, AsyncIterable):

            async def _encode_async(items: AsyncIterable[Any]) -> AsyncIterator[tuple[str, Any]]:
                async for item in items:
                    yield encode_message(encoding, item), item

            source = _encode_async(contents)
        elif isinstance(contents, (str, bytes)) or not isinstance(contents, Iterable):
            raise ConfigurationError("contents must be an iterable (or async iterable) of message contents")
        else:
            items = list(contents)
            texts = [encode_message(encoding, item) for item in items]
        receipts: list[SendReceipt | None] = [None] * len(texts)
        failure: list[BaseException] = []
        lock = asyncio.Lock()
        next_index = [0]

        async def next_text() -> tuple[int, str, Any] | None:
            """The next (index, text, content); None when done or after a failure."""
            if failure:
                return None
            if source is None:
                index = next_index[0]
                if index >= len(texts):
                    return None
                next_index[0] = index + 1
                return index, texts[index], items[index]
            async with lock:  # one reader of the caller's async iterator at a time
                if failure:
                    return None
                try:
                    text, content = await source.__anext__()
                except StopAsyncIteration:
                    return None
                except BaseException as exc:  # the caller's iterator or its encoding failed
                    failure.append(exc)
                    return None
                receipts.append(None)
                return len(receipts) - 1, text, content

        async def worker() -> None:
            while (item := await next_text()) is not None:
                index, text, content = item
                try:
                    receipts[index] = await self._send_encoded(text, query, extra, content)
                except BaseException as exc:
                    failure.append(exc)
                    return

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if failure:
            first = failure[0]
            if not isinstance(first, Exception):
                raise first  # cancellation and the like pass through untouched
            raise SendMessagesError(first, receipts) from first
        return [r for r in receipts if r is not None]

    def _decoder(self) -> Callable[[RawMessage], Any]:
        """:meth:`_decode`, or for the text encoding (which cannot fail: the text is the content) a
        plain function, one call and one try block less per message."""
        return text_of if type(self._encoding) is TextEncoding else self._decode

    def _decode(self, raw: RawMessage) -> Any:
        """The content; any failure of the encoding (a custom one's exception, a RecursionError on
        deeply nested JSON) is a MessageEncodingError naming the message."""
        try:
            return self._encoding.decode(raw.text or "")
        except MessageEncodingError as exc:
            raise MessageEncodingError(f"message {raw.id}: {exc}") from None
        except Exception as exc:
            raise MessageEncodingError(
                f"message {raw.id} does not decode: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None

    async def receive_messages(
        self,
        *,
        max_messages: int = 1,
        visibility_timeout: Duration | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[QueueMessage]:
        """Get up to ``max_messages`` (1..32) messages, hiding them for ``visibility_timeout``
        (1 s..7 d; the service default is 30 s). Delete each one once handled, or it comes back."""
        raws = await self._receive_raw(max_messages, visibility_timeout, headers)
        decode = self._decoder()
        if decode is text_of:  # the text encoding cannot fail: the whole answer at once
            return received_messages(raws, decode, QueueMessage)
        messages: list[QueueMessage] = []
        failure: MessageEncodingError | None = None
        for raw in raws:
            try:
                messages.append(received_message(raw, decode(raw), QueueMessage))
            except MessageEncodingError as exc:
                failure = failure or exc
        if failure is not None:
            # the caller gets no message, so none stays hidden for it: the decodable ones are visible
            # again at once (the undecodable ones stay hidden for their visibility timeout)
            await asyncio.gather(
                *(self.update_message(m, visibility_timeout=0) for m in messages), return_exceptions=True
            )
            raise failure
        return messages

    async def receive_message(
        self, *, visibility_timeout: Duration | None = None, headers: Mapping[str, str] | None = None
    ) -> QueueMessage | None:
        """One message (hidden for ``visibility_timeout``, as :meth:`receive_messages`), or None when
        the queue has no visible message."""
        messages = await self.receive_messages(max_messages=1, visibility_timeout=visibility_timeout, headers=headers)
        return messages[0] if messages else None

    async def _receive_raw(
        self, max_messages: int, visibility_timeout: Duration | None, extra: Mapping[str, str] | None = None
    ) -> list[RawMessage]:
        query = {"numofmessages": str(message_count(max_messages))}
        if visibility_timeout is not None:
            query["visibilitytimeout"] = str(seconds(visibility_timeout, "visibility_timeout", low=1))
        rec = self._operation("receive")
        with rec:
            response = await self._request(
                rec, "GET", self._messages_path, query=query, extra=extra, max_bytes=_messages_bytes(max_messages)
            )
            body = response.body  # a big answer is parsed in a worker thread: the loop runs on meanwhile
            big = len(body) > OFF_LOOP_BYTES
            raws = await off_loop(parse_messages, body) if big else parse_messages(body)
            answered(raws, max_messages, "Get Messages")
            if rec.on:
                rec.received(raws)
        return raws

    async def peek_messages(
        self, *, max_messages: int = 1, headers: Mapping[str, str] | None = None
    ) -> list[PeekedMessage]:
        """Look at up to ``max_messages`` (1..32) visible messages without hiding or counting them."""
        query, max_bytes = _PEEK[message_count(max_messages)]
        rec = self._operation("peek")
        with rec:
            response = await self._request(
                rec, "GET", self._messages_path, query=query, extra=headers, read=True, max_bytes=max_bytes
            )
            body = response.body
            big = len(body) > OFF_LOOP_BYTES
            raws = await off_loop(parse_messages, body) if big else parse_messages(body)
            messages = peeked_messages(answered(raws, max_messages, "Peek Messages"), self._decoder())
            rec.messages(len(messages))
        return messages

    @staticmethod
    def _id_and_receipt(message: QueueMessage | SendReceipt | str, pop_receipt: str | None) -> tuple[str, str]:
        """Checked, so no id or receipt the service never issues (``..``, ``a/b``, a space) reaches a URL."""
        if isinstance(message, (QueueMessage, SendReceipt)):
            return check_message_id(message.id), check_pop_receipt(pop_receipt or message.pop_receipt)
        if not isinstance(message, str) or not message:
            raise ConfigurationError("message must be a QueueMessage or a message id str")
        if not isinstance(pop_receipt, str) or not pop_receipt:
            raise ConfigurationError("a message id needs its pop_receipt")
        return check_message_id(message), check_pop_receipt(pop_receipt)

    async def update_message(
        self,
        message: QueueMessage | str,
        pop_receipt: str | None = None,
        *,
        content: Any = UNCHANGED,
        visibility_timeout: Duration = 0,
        headers: Mapping[str, str] | None = None,
    ) -> UpdateReceipt:
        """Change a message's visibility (0 s..7 d) and, if ``content`` is given, its content.

        The old pop receipt is dead afterwards; given a QueueMessage, its ``pop_receipt`` and
        ``next_visible_on`` are refreshed in place so the same object can be used again. Given a message
        from ``receive()`` still held, it waits for that message's settle or renewal under way (its
        receipt may be about to change) and uses the newest receipt.
        """
        if isinstance(message, ReceivedMessage) and pop_receipt is None and message.settled is None:
            return await message._in_turn(
                partial(self._update_message, "update", message, None, content, visibility_timeout, headers)
            )
        return await self._update_message("update", message, pop_receipt, content, visibility_timeout, headers)

    async def _update_message(
        self,
        op: str,
        message: QueueMessage | str,
        pop_receipt: str | None,
        content: Any,
        visibility_timeout: Duration,
        headers: Mapping[str, str] | None,
    ) -> UpdateReceipt:
        """Update Message, recorded as ``op`` ("update", or a received message's "release"/"renew")."""
        msg_id, receipt = self._id_and_receipt(message, pop_receipt)
        vis = seconds(visibility_timeout, "visibility_timeout", low=0)
        body = None if content is UNCHANGED else message_body(encode_message(self._encoding, content))
        rec = self._operation(op, message if isinstance(message, QueueMessage) else None)
        with rec:
            response = await self._request(
                rec,
                "PUT",
                f"{self._messages_path}/{msg_id}",  # a checked id: nothing in it to escape
                query={"popreceipt": receipt, "visibilitytimeout": str(vis)},
                body=body,
                extra=headers,
            )
        headers = response.headers
        receipt_text = headers.get("x-ms-popreceipt")
        if receipt_text is not None and not POP_RECEIPT.fullmatch(receipt_text):
            raise MalformedResponse("Update Message answered a pop receipt the service never issues")
        try:
            result = UpdateReceipt(
                pop_receipt=headers["x-ms-popreceipt"],
                next_visible_on=parse_rfc1123(headers["x-ms-time-next-visible"]),
            )
        except KeyError as exc:
            raise MalformedResponse(f"Update Message answered without {exc.args[0]}") from None
        if isinstance(message, QueueMessage):
            message.pop_receipt = result.pop_receipt
            message.next_visible_on = result.next_visible_on
            if content is not UNCHANGED:
                message.content = content
        return result

    async def delete_message(
        self, message: QueueMessage | str, pop_receipt: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Delete a received message. A retry after a lost answer that finds it gone counts as success.
        A message from ``receive()`` not settled yet is settled by this (its ``async with`` exit skips it),
        after any settle or renewal of it under way, with its newest receipt: as ``msg.delete()``."""
        if isinstance(message, ReceivedMessage) and pop_receipt is None and message.settled is None:
            await message._in_turn(partial(self._delete_held, message, headers), settles="deleted")
            return
        await self._delete(
            *self._id_and_receipt(message, pop_receipt),
            extra=headers,
            message=message if isinstance(message, QueueMessage) else None,
        )
        if isinstance(message, ReceivedMessage) and message.settled is None:
            message._mark_settled("deleted")  # deleted directly: its 'async with' exit skips it

    async def _delete_held(self, message: ReceivedMessage, headers: Mapping[str, str] | None) -> None:
        await self._delete(*self._id_and_receipt(message, None), extra=headers, message=message)

    async def _delete(
        self,
        msg_id: str,
        receipt: str,
        *,
        resent: bool = False,
        extra: Mapping[str, str] | None = None,
        message: QueueMessage | None = None,
    ) -> None:
        """Delete Message; ``resent``: an earlier request for this delete may have landed."""
        rec = self._operation("delete", message)
        with rec:
            await self._request(
                rec,
                "DELETE",
                f"{self._messages_path}/{msg_id}",  # a checked id: nothing in it to escape
                query={"popreceipt": receipt},
                # an earlier attempt (or, with resent, an earlier request) may have deleted it before its
                # answer was lost: finding it gone then means done
                accept=lambda response: (resent or response.after_lost_answer) and _message_gone(response),
                extra=extra,
            )

    async def clear_messages(self, *, headers: Mapping[str, str] | None = None) -> None:
        """Delete every message in the queue."""
        await self._request("clear", "DELETE", self._messages_path, extra=headers)

    # ---- consuming -------------------------------------------------------------------------

    def receive(self, **options: Unpack[ReceiveOptions]) -> MessageStream:
        """Messages one at a time, fetched up to ``max_batch_size`` (1..32) per call.

        ``async for msg in queue.receive(): async with msg: ...`` deletes each message when its block
        ends cleanly and, on an exception, makes it visible again after ``retry_delay``. The options
        (:class:`ReceiveOptions`) are checked here, before any request: ``max_batch_size=32``,
        ``visibility_timeout=30``, ``max_messages=None``, ``idle_timeout=None``,
        ``poll_interval=(0.1, 10.0)``, ``auto_renew=False``, ``max_renewal=300``,
        ``max_dequeue_count=None``, ``poison_queue=None`` (``"<queue>-poison"``), ``retry_delay=0``.

        Leaving the stream (``break``, an exception, cancellation, the end of ``async with``, closing
        the client) stops renewals and makes fetched-but-not-yielded messages visible at once.
        Delivery is at-least-once: handlers should be idempotent.
        """
        return MessageStream(self._link(), ReceiveSettings.build(**options))

    def receive_batches(self, **options: Unpack[ReceiveOptions]) -> BatchStream:
        """Batches of up to ``max_batch_size`` (1..32) messages, one per Get Messages call.

        ``async with batch:`` deletes every unsettled message on a clean exit (concurrently) and
        releases them all after ``retry_delay`` on an exception. Options as for :meth:`receive`.
        """
        return BatchStream(self._link(), ReceiveSettings.build(**options))

    def worker(
        self,
        handler: Handler,
        *,
        concurrency: int = 16,
        stop: asyncio.Event | None = None,
        handler_timeout: float | None = None,
        shutdown_timeout: float | None = None,
        on_failure: FailureHook | None = None,
        on_poison: PoisonHook | None = None,
        on_lease_lost: FailureHook | None = None,
        **options: Unpack[ReceiveOptions],
    ) -> Worker:
        """The worker :meth:`process` runs, as an object: ``await worker.run()`` runs it, and while it
        runs ``worker.stats``, ``worker.in_flight``, ``worker.state`` and ``worker.last_answer`` can
        be read and ``worker.stop()`` ends it gracefully. Every argument is checked here, before any
        request; the arguments are :meth:`process`'s, plus callbacks (plain or async functions, their
        failures logged): ``on_failure(message, error)`` after a handler raised (or timed out) and its
        message was released, ``on_poison(message, why)`` after a message moved to the poison queue,
        ``on_lease_lost(message, error)`` when a handled message could not be deleted.
        """
        return Worker(
            self._link(),
            handler,
            concurrency=concurrency,
            options=ReceiveSettings.build(**options),
            stop=stop,
            handler_timeout=handler_timeout,
            shutdown_timeout=shutdown_timeout,
            on_failure=on_failure,
            on_poison=on_poison,
            on_lease_lost=on_lease_lost,
        )

    async def process(
        self,
        handler: Handler,
        *,
        concurrency: int = 16,
        stop: asyncio.Event | None = None,
        handler_timeout: float | None = None,
        shutdown_timeout: float | None = None,
        on_failure: FailureHook | None = None,
        on_poison: PoisonHook | None = None,
        on_lease_lost: FailureHook | None = None,
        **options: Unpack[ReceiveOptions],
    ) -> ProcessStats:
        """Run ``await handler(msg)`` on up to ``concurrency`` messages at once: delete on success;
        on an exception log it, release the message after ``retry_delay`` and keep going.

        ``handler`` must be an async function (a plain function is a TypeError here, before any
        request). A handler running longer than ``handler_timeout`` seconds is cancelled and counted
        as failed. Ends when ``max_messages`` were handed out, the queue stayed empty for
        ``idle_timeout``, or ``stop`` (an ``asyncio.Event``) is set, which wakes the worker at once:
        nothing more is fetched, no new handler starts, prefetched messages are released at once,
        and handlers under way finish (those still running ``shutdown_timeout`` seconds later are
        cancelled and their messages released). Returns :class:`ProcessStats`.

        Fetch failures that retrying can fix (408, 429, 500, 502, 503, 504, connection errors,
        timeouts) are logged once per streak and retried with back-off up to ``poll_interval``'s
        maximum; any other error (authentication, queue not found) ends the worker and is raised.
        On that, on cancellation, and on every other exit no handler outlives the call: handlers
        are awaited or cancelled, and the messages of cancelled ones released at once.
        Receive options as for :meth:`receive`; the callbacks as for :meth:`worker`, which gives the
        same worker as an object whose stats can be read while it runs.
        """
        worker = self.worker(
            handler,
            concurrency=concurrency,
            stop=stop,
            handler_timeout=handler_timeout,
            shutdown_timeout=shutdown_timeout,
            on_failure=on_failure,
            on_poison=on_poison,
            on_lease_lost=on_lease_lost,
            **options,
        )
        return await worker.run()

    def _link(self) -> _QueueLink:
        return _QueueLink(self)


class _QueueLink:
    """The consumer's view of a QueueClient (implements :class:`._link.QueueLink`)."""

    __slots__ = ("_client", "_created", "decode")

    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self._created: set[str] = set()  # queues copy_text has made sure exist
        self.decode = client._decoder()

    @property
    def queue_name(self) -> str:
        return self._client.queue_name

    @property
    def closed(self) -> bool:
        return self._client.closed

    async def fetch(self, max_messages: int, visibility_timeout: int) -> list[RawMessage]:
        return await self._client._receive_raw(max_messages, visibility_timeout)

    async def delete(self, message: QueueMessage, *, resent: bool = False) -> None:
        await self._client._delete(*self._client._id_and_receipt(message, None), resent=resent, message=message)

    async def set_visibility(self, message: QueueMessage, visibility_timeout: int, *, why: str = "update") -> None:
        await self._client._update_message(why, message, None, UNCHANGED, visibility_timeout, None)

    def operation(self, name: str, message: QueueMessage | None = None) -> Operation | _Off:
        return self._client._operation(name, message)

    def count(self, outcome: str) -> None:
        count_outcome(self._client._pool.telemetry, outcome, self._client.queue_name)

    async def copy_text(self, queue_name: str, text: str) -> None:
        other = self._client._sibling(queue_name)
        if queue_name not in self._created:
            await other.create_queue(exist_ok=True)
            self._created.add(queue_name)
        await other._send_encoded(text, {"messagettl": "-1"})

    def track(self, stream: Closable) -> None:
        self._client._track(stream)

    def untrack(self, stream: Closable) -> None:
        self._client._untrack(stream)
