"""QueueServiceClient and QueueClient: every Queue REST operation as one awaitable with retries."""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from ._auth import (
    AsyncTokenCredential,
    Credential,
    SasCredential,
    SharedKeyCredential,
    TokenCache,
    decode_key,
    normalize_sas,
)
from ._dates import parse_rfc1123
from ._encoding import MessageEncoding, encode_message, get_encoding
from ._endpoint import Endpoint, parse_account_url, parse_connection_string
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
from ._messages import RawMessage, peeked_message, received_message, send_receipt
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
)
from ._options import ReceiveOptions, ReceiveSettings, Unpack
from ._retry import RetryPolicy
from ._settle import ReceivedMessage
from ._streams import BatchStream, MessageStream
from ._transport import (
    DEFAULT_API_VERSION,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    Accept,
    Credentials,
    Response,
    RetryingSession,
    State,
)
from ._validation import (
    MAX_SECONDS,
    Duration,
    message_count,
    metadata_headers,
    positive_int,
    positive_number,
    seconds,
)
from ._validation import (
    api_version as check_api_version,
)
from ._validation import (
    queue_name as check_queue_name,
)
from ._worker import Handler
from ._worker import process as run_worker
from ._xml import (
    message_body,
    parse_error,
    parse_messages,
    parse_queue_list,
    parse_service_properties,
    parse_service_stats,
    parse_signed_identifiers,
    service_properties_body,
    signed_identifiers_body,
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


def _error_for(response: Response) -> AioQueueError:
    """The typed error for one error answer: its ``x-ms-error-code`` header, else the body's code."""
    headers = response.headers
    code, message = parse_error(response.body)
    return service_error(
        response.status,
        headers.get("x-ms-error-code") or code,
        message or f"HTTP {response.status}",
        headers.get("x-ms-request-id"),
        headers,
    )


def _message_gone(response: Response) -> bool:
    """A Delete Message answer saying the message is not there (Azure: 404; Azurite may say 400
    PopReceiptMismatch for a message it has already deleted)."""
    code = response.headers.get("x-ms-error-code")
    return response.status == 404 or code == MessageNotFound.__name__ or code == PopReceiptMismatch.__name__


class _Pool:
    """What a root client and its children share: the HTTP session and every open stream."""

    __slots__ = ("http", "streams")

    def __init__(self, http: RetryingSession) -> None:
        self.http = http
        self.streams: weakref.WeakSet[Closable] = weakref.WeakSet()


def _resolve_credential(endpoint: Endpoint, credential: Credential) -> tuple[Credentials, str]:
    """The credential the transport uses, and the account name."""
    account = endpoint.account_name
    if credential is None:
        return None, account
    if endpoint.sas is not None:
        raise ConfigurationError("the URL carries a SAS token and credential= is given too; pass only one")
    if isinstance(credential, SharedKeyCredential):
        if account and credential.account_name != account and endpoint.path_prefix == "":
            raise ConfigurationError(
                f"the credential is for account {credential.account_name!r} but the URL names {account!r}"
            )
        return credential, credential.account_name
    if isinstance(credential, SasCredential):
        return credential, account
    if isinstance(credential, str):
        if "sig=" in credential:
            return SasCredential(normalize_sas(credential)), account
        decode_key(credential)
        if not account:
            raise ConfigurationError("an account key needs a URL that names the account (or a SharedKeyCredential)")
        return SharedKeyCredential(account, credential), account
    if isinstance(credential, AsyncTokenCredential):
        if not endpoint.secure and not endpoint.loopback:
            raise ConfigurationError("a token credential needs an https:// URL: bearer tokens never travel over http")
        return TokenCache(credential), account
    raise ConfigurationError(
        "credential must be None, an account key or SAS str, SharedKeyCredential, SasCredential, "
        f"or an async token credential; got {type(credential).__name__}"
    )


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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        session: aiohttp.ClientSession | None = None,
        message_encoding: str | MessageEncoding = "text",
        _pool: _Pool | None = None,
    ) -> None:
        self._encoding = get_encoding(message_encoding)
        self._streams: weakref.WeakSet[Closable] = weakref.WeakSet()
        if _pool is not None:
            self._pool = _pool
            self._owner = False
        else:
            endpoint = parse_account_url(account_url)
            cred, account = _resolve_credential(endpoint, credential)
            if retry is not None and not isinstance(retry, RetryPolicy):
                raise ConfigurationError("retry must be a RetryPolicy or None (no retries)")
            if session is not None and not isinstance(session, aiohttp.ClientSession):
                raise ConfigurationError("session must be an aiohttp.ClientSession or None")
            if account != endpoint.account_name:
                endpoint = Endpoint(
                    endpoint.origin, endpoint.path_prefix, account, endpoint.secure, endpoint.loopback, endpoint.sas
                )
            http = RetryingSession(
                endpoint,
                cred,
                api_version=check_api_version(api_version),
                retry=retry,
                timeout=positive_number(timeout, "timeout"),
                max_connections=positive_int(max_connections, "max_connections"),
                session=session,
                map_error=_error_for,
            )
            self._pool = _Pool(http)
            self._owner = True
        self._closed = False

    @property
    def account_name(self) -> str:
        """The storage account's name."""
        return self._pool.http.endpoint.account_name

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

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        secondary: bool = False,
        accept: Accept | None = None,
    ) -> Response:
        if self._closed:
            raise ConfigurationError("this client is closed; create a new one (or use it inside 'async with')")
        return await self._pool.http.request(
            method, path, query=query, body=body, headers=headers, secondary=secondary, accept=accept
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def url(self) -> str:
        """The client's URL."""
        raise NotImplementedError


class QueueServiceClient(_Client):
    """The account's queue service: list, create and delete queues; service properties and stats.

    ``async with QueueServiceClient(url, credential=...) as service:`` opens nothing eagerly and
    closes its connection pool on exit. Queue clients from :meth:`get_queue_client` share that pool.
    """

    def __init__(
        self,
        account_url: str,
        *,
        credential: Credential = None,
        api_version: str = DEFAULT_API_VERSION,
        retry: RetryPolicy | None = _DEFAULT_RETRY,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        session: aiohttp.ClientSession | None = None,
        message_encoding: str | MessageEncoding = "text",
    ) -> None:
        super().__init__(
            account_url,
            credential=credential,
            api_version=api_version,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            session=session,
            message_encoding=message_encoding,
        )

    @classmethod
    def from_connection_string(cls, conn_str: str, **options: Any) -> QueueServiceClient:
        """A client from any connection string form, including ``UseDevelopmentStorage=true``."""
        settings = parse_connection_string(conn_str)
        return cls(settings.account_url, credential=settings.credential, **options)

    @property
    def url(self) -> str:
        """The account's queue service URL (no SAS token in it)."""
        return self._pool.http.endpoint.url

    def get_queue_client(self, queue_name: str) -> QueueClient:
        """A client for one queue that shares this client's connection pool (and never closes it)."""
        return QueueClient("", check_queue_name(queue_name), message_encoding=self._encoding, _pool=self._pool)

    async def list_queues(
        self, *, prefix: str | None = None, include_metadata: bool = False, page_size: int | None = None
    ) -> AsyncIterator[QueueItem]:
        """Every queue (optionally those starting with ``prefix``), following pages transparently.

        ``page_size`` is queues per request (1..5000, the service's cap).
        """
        if page_size is not None and (
            isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 5000
        ):
            raise ConfigurationError(f"page_size must be an int from 1 to 5000; got {page_size!r}")
        if prefix is not None and not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a str")
        marker: str | None = None
        while True:
            query = {"comp": "list"}
            if prefix:
                query["prefix"] = prefix
            if marker:
                query["marker"] = marker
            if page_size is not None:
                query["maxresults"] = str(page_size)
            if include_metadata:
                query["include"] = "metadata"
            response = await self._request("GET", "/", query=query)
            items, marker = parse_queue_list(response.body)
            for item in items:
                yield item
            if not marker:
                return

    async def create_queue(
        self, name: str, *, metadata: Mapping[str, str] | None = None, exist_ok: bool = False
    ) -> QueueClient:
        """Create a queue and return its client (sharing this pool)."""
        queue = self.get_queue_client(name)
        await queue.create_queue(metadata=metadata, exist_ok=exist_ok)
        return queue

    async def delete_queue(self, name: str, *, missing_ok: bool = False) -> None:
        """Delete a queue and its messages. Azure then refuses the name for about 40 s."""
        await self.get_queue_client(name).delete_queue(missing_ok=missing_ok)

    async def get_service_properties(self) -> ServiceProperties:
        """Logging, hour and minute metrics, and CORS rules."""
        response = await self._request("GET", "/", query={"restype": "service", "comp": "properties"})
        return parse_service_properties(response.body)

    async def set_service_properties(self, properties: ServiceProperties) -> None:
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
            "PUT",
            "/",
            query={"restype": "service", "comp": "properties"},
            body=service_properties_body(properties),
        )

    async def get_service_stats(self) -> ServiceStats:
        """Geo-replication status, answered by the account's secondary endpoint (RA-GRS accounts)."""
        response = await self._request("GET", "/", query={"restype": "service", "comp": "stats"}, secondary=True)
        return parse_service_stats(response.body)


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
        api_version: str = DEFAULT_API_VERSION,
        retry: RetryPolicy | None = _DEFAULT_RETRY,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        session: aiohttp.ClientSession | None = None,
        message_encoding: str | MessageEncoding = "text",
        _pool: _Pool | None = None,
    ) -> None:
        self.queue_name = check_queue_name(queue_name)
        super().__init__(
            account_url,
            credential=credential,
            api_version=api_version,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            session=session,
            message_encoding=message_encoding,
            _pool=_pool,
        )
        self._path = f"/{self.queue_name}"
        self._messages_path = f"/{self.queue_name}/messages"

    def _sibling(self, queue_name: str) -> QueueClient:
        """Another queue's client on this client's pool (used for poison queues)."""
        return QueueClient("", check_queue_name(queue_name), message_encoding=self._encoding, _pool=self._pool)

    @classmethod
    def from_connection_string(cls, conn_str: str, queue_name: str, **options: Any) -> QueueClient:
        """A client for one queue from any connection string form."""
        settings = parse_connection_string(conn_str)
        return cls(settings.account_url, queue_name, credential=settings.credential, **options)

    @classmethod
    def from_queue_url(cls, queue_url: str, *, credential: Credential = None, **options: Any) -> QueueClient:
        """A client from a queue's full URL, which may carry a SAS token (``...?sv=...&sig=...``)."""
        if not isinstance(queue_url, str):
            raise ConfigurationError("queue_url must be a str")
        base, query_sep, query = queue_url.partition("?")
        base = base.rstrip("/")
        account_url, slash, name = base.rpartition("/")
        if not slash or "://" not in account_url or account_url.endswith(":/"):
            raise ConfigurationError("queue_url must look like https://<account>.queue.core.windows.net/<queue>")
        return cls(account_url + (query_sep + query if query else ""), name, credential=credential, **options)

    @property
    def url(self) -> str:
        """The queue's URL (no SAS token in it)."""
        return self._pool.http.endpoint.url + self._path

    # ---- queue operations ------------------------------------------------------------------

    async def create_queue(self, *, metadata: Mapping[str, str] | None = None, exist_ok: bool = False) -> bool:
        """Create the queue; True when created, False when it existed and ``exist_ok`` (metadata untouched).

        Raises QueueAlreadyExists when it exists and ``exist_ok`` is false.
        """
        headers = metadata_headers(metadata)
        try:
            response = await self._request("PUT", self._path, headers=headers)
        except QueueAlreadyExists:
            if exist_ok:
                return False
            raise
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

    async def delete_queue(self, *, missing_ok: bool = False) -> bool:
        """Delete the queue and its messages; True when deleted, False when missing and ``missing_ok``."""
        try:
            await self._request("DELETE", self._path)
        except QueueNotFound:
            if missing_ok:
                return False
            raise
        return True

    async def exists(self) -> bool:
        """Whether the queue exists."""
        try:
            await self._request("GET", self._path, query={"comp": "metadata"})
        except QueueNotFound:
            return False
        return True

    async def get_queue_properties(self) -> QueueProperties:
        """Metadata and the approximate message count."""
        response = await self._request("GET", self._path, query={"comp": "metadata"})
        headers = response.headers
        metadata = {k[10:]: v for k, v in headers.items() if k[:10].lower() == "x-ms-meta-"}
        try:
            count = int(headers["x-ms-approximate-messages-count"])
        except (KeyError, ValueError):
            raise MalformedResponse("the response lacks a valid x-ms-approximate-messages-count") from None
        return QueueProperties(name=self.queue_name, metadata=metadata, approximate_message_count=count)

    async def set_queue_metadata(self, metadata: Mapping[str, str] | None) -> None:
        """Replace all of the queue's metadata (None or {} clears it)."""
        await self._request("PUT", self._path, query={"comp": "metadata"}, headers=metadata_headers(metadata))

    async def get_queue_access_policy(self) -> dict[str, AccessPolicy]:
        """The stored access policies, by identifier."""
        response = await self._request("GET", self._path, query={"comp": "acl"})
        return parse_signed_identifiers(response.body)

    async def set_queue_access_policy(self, policies: Mapping[str, AccessPolicy | None]) -> None:
        """Replace the stored access policies (at most 5; identifiers up to 64 characters)."""
        if not isinstance(policies, Mapping):
            raise ConfigurationError("policies must be a mapping of identifier to AccessPolicy (or None)")
        if len(policies) > 5:
            raise ConfigurationError(f"a queue holds at most 5 stored access policies; got {len(policies)}")
        for ident, policy in policies.items():
            if not isinstance(ident, str) or not 1 <= len(ident) <= 64:
                raise ConfigurationError("access policy identifiers must be str of 1 to 64 characters")
            if policy is not None and not isinstance(policy, AccessPolicy):
                raise ConfigurationError(f"policy {ident!r} must be an AccessPolicy or None")
            if policy is not None:
                for when in (policy.start, policy.expiry):
                    if when is not None and when.tzinfo is None:
                        raise ConfigurationError(f"policy {ident!r}: start and expiry must be aware datetimes")
                if policy.permission is not None and (set(policy.permission) - set("raup")):
                    raise ConfigurationError(f"policy {ident!r}: permission letters come from 'raup'")
        await self._request("PUT", self._path, query={"comp": "acl"}, body=signed_identifiers_body(policies))

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

    async def _send_encoded(self, text: str, query: dict[str, str]) -> SendReceipt:
        response = await self._request("POST", self._messages_path, query=query, body=message_body(text))
        entries = parse_messages(response.body)
        if not entries:
            raise MalformedResponse("Put Message answered without the message")
        return send_receipt(entries[0])

    async def send_message(
        self,
        content: Any,
        *,
        visibility_timeout: Duration | None = None,
        time_to_live: Duration | None = None,
    ) -> SendReceipt:
        """Put one message. ``visibility_timeout`` 0 s..7 d (hidden until then) and shorter than
        ``time_to_live`` (default 7 days; -1 never expires). Over 64 KiB encoded: MessageTooLarge.
        A retried send after a lost answer can store the message twice (at-least-once)."""
        query = self._send_query(visibility_timeout, time_to_live)
        return await self._send_encoded(encode_message(self._encoding, content), query)

    async def send_messages(
        self,
        contents: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        visibility_timeout: Duration | None = None,
        time_to_live: Duration | None = None,
    ) -> list[SendReceipt]:
        """Put many messages, up to ``concurrency`` at once; receipts come back in input order.

        A list or other iterable is encoded (and checked) in full before the first request. If a send
        fails, no new sends start, those under way finish, and the first error is raised with
        a :class:`SendMessagesError` whose ``receipts`` is a list in input order holding a SendReceipt
        for each message sent and None for each that was not (``error``: the first failure).
        """
        positive_int(concurrency, "concurrency")
        query = self._send_query(visibility_timeout, time_to_live)
        encoding = self._encoding
        source: AsyncIterator[str] | None = None
        texts: list[str] = []
        if isinstance(contents, AsyncIterable):

            async def _encode_async(items: AsyncIterable[Any]) -> AsyncIterator[str]:
                async for item in items:
                    yield encode_message(encoding, item)

            source = _encode_async(contents)
        elif isinstance(contents, (str, bytes)) or not isinstance(contents, Iterable):
            raise ConfigurationError("contents must be an iterable (or async iterable) of message contents")
        else:
            texts = [encode_message(encoding, item) for item in contents]
        receipts: list[SendReceipt | None] = [None] * len(texts)
        failure: list[BaseException] = []
        lock = asyncio.Lock()
        next_index = [0]

        async def next_text() -> tuple[int, str] | None:
            """The next (index, text); None when done or after a failure."""
            if failure:
                return None
            if source is None:
                index = next_index[0]
                if index >= len(texts):
                    return None
                next_index[0] = index + 1
                return index, texts[index]
            async with lock:  # one reader of the caller's async iterator at a time
                if failure:
                    return None
                try:
                    text = await source.__anext__()
                except StopAsyncIteration:
                    return None
                except BaseException as exc:  # the caller's iterator or its encoding failed
                    failure.append(exc)
                    return None
                receipts.append(None)
                return len(receipts) - 1, text

        async def worker() -> None:
            while (item := await next_text()) is not None:
                index, text = item
                try:
                    receipts[index] = await self._send_encoded(text, query)
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
        self, *, max_messages: int = 1, visibility_timeout: Duration | None = None
    ) -> list[QueueMessage]:
        """Get up to ``max_messages`` (1..32) messages, hiding them for ``visibility_timeout``
        (1 s..7 d; the service default is 30 s). Delete each one once handled, or it comes back."""
        raws = await self._receive_raw(max_messages, visibility_timeout)
        messages: list[QueueMessage] = []
        failure: MessageEncodingError | None = None
        for raw in raws:
            try:
                messages.append(received_message(raw, self._decode(raw), QueueMessage))
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

    async def _receive_raw(self, max_messages: int, visibility_timeout: Duration | None) -> list[RawMessage]:
        query = {"numofmessages": str(message_count(max_messages))}
        if visibility_timeout is not None:
            query["visibilitytimeout"] = str(seconds(visibility_timeout, "visibility_timeout", low=1))
        response = await self._request("GET", self._messages_path, query=query)
        return parse_messages(response.body)

    async def peek_messages(self, *, max_messages: int = 1) -> list[PeekedMessage]:
        """Look at up to ``max_messages`` (1..32) visible messages without hiding or counting them."""
        query = {"peekonly": "true", "numofmessages": str(message_count(max_messages))}
        response = await self._request("GET", self._messages_path, query=query)
        return [peeked_message(raw, self._decode(raw)) for raw in parse_messages(response.body)]

    @staticmethod
    def _id_and_receipt(message: QueueMessage | SendReceipt | str, pop_receipt: str | None) -> tuple[str, str]:
        if isinstance(message, (QueueMessage, SendReceipt)):
            return message.id, pop_receipt or message.pop_receipt
        if not isinstance(message, str) or not message:
            raise ConfigurationError("message must be a QueueMessage or a message id str")
        if not isinstance(pop_receipt, str) or not pop_receipt:
            raise ConfigurationError("a message id needs its pop_receipt")
        return message, pop_receipt

    async def update_message(
        self,
        message: QueueMessage | str,
        pop_receipt: str | None = None,
        *,
        content: Any = UNCHANGED,
        visibility_timeout: Duration = 0,
    ) -> UpdateReceipt:
        """Change a message's visibility (0 s..7 d) and, if ``content`` is given, its content.

        The old pop receipt is dead afterwards; given a QueueMessage, its ``pop_receipt`` and
        ``next_visible_on`` are refreshed in place so the same object can be used again.
        """
        msg_id, receipt = self._id_and_receipt(message, pop_receipt)
        vis = seconds(visibility_timeout, "visibility_timeout", low=0)
        body = None if content is UNCHANGED else message_body(encode_message(self._encoding, content))
        response = await self._request(
            "PUT",
            f"{self._messages_path}/{quote(msg_id, safe='')}",
            query={"popreceipt": receipt, "visibilitytimeout": str(vis)},
            body=body,
        )
        headers = response.headers
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

    async def delete_message(self, message: QueueMessage | str, pop_receipt: str | None = None) -> None:
        """Delete a received message. A retry after a lost answer that finds it gone counts as success."""
        await self._delete(*self._id_and_receipt(message, pop_receipt))
        if isinstance(message, ReceivedMessage) and message.settled is None:
            message._mark_settled("deleted")  # deleted directly: its 'async with' exit skips it

    async def _delete(self, msg_id: str, receipt: str, *, resent: bool = False) -> None:
        """Delete Message; ``resent``: an earlier request for this delete may have landed."""
        await self._request(
            "DELETE",
            f"{self._messages_path}/{quote(msg_id, safe='')}",
            query={"popreceipt": receipt},
            # an earlier attempt (or, with resent, an earlier request) may have deleted it before its
            # answer was lost: finding it gone then means done
            accept=lambda response, attempt: (resent or attempt > 1) and _message_gone(response),
        )

    async def clear_messages(self) -> None:
        """Delete every message in the queue."""
        await self._request("DELETE", self._messages_path)

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

    async def process(
        self,
        handler: Handler,
        *,
        concurrency: int = 16,
        stop: asyncio.Event | None = None,
        handler_timeout: float | None = None,
        shutdown_timeout: float | None = None,
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
        Receive options as for :meth:`receive`.
        """
        settings = ReceiveSettings.build(**options)
        return await run_worker(
            self._link(),
            handler,
            concurrency=concurrency,
            options=settings,
            stop=stop,
            handler_timeout=handler_timeout,
            shutdown_timeout=shutdown_timeout,
        )

    def _link(self) -> _QueueLink:
        return _QueueLink(self)


class _QueueLink:
    """The consumer's view of a QueueClient (implements :class:`._link.QueueLink`)."""

    __slots__ = ("_client", "_created")

    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self._created: set[str] = set()  # queues copy_text has made sure exist

    @property
    def queue_name(self) -> str:
        return self._client.queue_name

    @property
    def closed(self) -> bool:
        return self._client.closed

    async def fetch(self, max_messages: int, visibility_timeout: int) -> list[RawMessage]:
        return await self._client._receive_raw(max_messages, visibility_timeout)

    def decode(self, raw: RawMessage) -> Any:
        return self._client._decode(raw)

    async def delete(self, message: QueueMessage, *, resent: bool = False) -> None:
        await self._client._delete(message.id, message.pop_receipt, resent=resent)

    async def set_visibility(self, message: QueueMessage, visibility_timeout: int) -> None:
        await self._client.update_message(message, visibility_timeout=visibility_timeout)

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
