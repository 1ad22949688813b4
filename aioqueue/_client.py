"""QueueServiceClient and QueueClient: every Queue REST operation as one awaitable with retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import aiohttp

from ._auth import (
    AsyncTokenCredential,
    Credential,
    Endpoint,
    SasCredential,
    SharedKeyCredential,
    TokenCache,
    decode_key,
    normalize_sas,
    parse_account_url,
    parse_connection_string,
)
from ._consumer import BatchStream, MessageStream, ReceivedMessage, ReceiveOptions, RetryDelay
from ._consumer import process as run_worker
from ._encoding import MessageEncoding, encode_message, get_encoding
from ._errors import ConfigurationError, MessageEncodingError, QueueAlreadyExists, QueueNotFound
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
from ._retry import RetryPolicy
from ._transport import (
    DEFAULT_API_VERSION,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    Connection,
    Response,
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
from ._xml import (
    MalformedResponse,
    message_body,
    parse_messages,
    parse_queue_list,
    parse_rfc1123,
    parse_service_properties,
    parse_service_stats,
    parse_signed_identifiers,
    service_properties_body,
    signed_identifiers_body,
)

__all__ = ["QueueClient", "QueueServiceClient"]


class _Unchanged:
    def __repr__(self) -> str:
        return "<unchanged>"


UNCHANGED: Final = _Unchanged()
_DEFAULT_RETRY = RetryPolicy()
_M = TypeVar("_M", bound=QueueMessage)


def _resolve_credential(
    endpoint: Endpoint, credential: Credential
) -> tuple[SharedKeyCredential | SasCredential | TokenCache | None, str]:
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
        _connection: Connection | None = None,
    ) -> None:
        self._encoding = get_encoding(message_encoding)
        if _connection is not None:
            self._conn = _connection
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
            self._conn = Connection(
                endpoint,
                cred,
                api_version=check_api_version(api_version),
                retry=retry,
                timeout=positive_number(timeout, "timeout"),
                max_connections=positive_int(max_connections, "max_connections"),
                session=session,
            )
            self._owner = True
        self._closed = False

    @property
    def account_name(self) -> str:
        """The storage account's name."""
        return self._conn.endpoint.account_name

    @property
    def closed(self) -> bool:
        return self._closed or self._conn.state is State.CLOSED

    async def close(self) -> None:
        """Close the connection pool this client owns; a child client closes nothing but itself.

        Open receive streams of this client stop first: renewals end and messages fetched but not
        yet yielded become visible again at once.
        """
        if self._closed:
            return
        for consumer in [c for c in self._conn.consumers if c.owner is self]:
            await consumer.aclose()
        self._closed = True
        if self._owner:
            await self._conn.close()

    async def __aenter__(self) -> Any:
        if self.closed:
            raise ConfigurationError("this client is closed; create a new one")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Response:
        if self._closed:
            raise ConfigurationError("this client is closed; create a new one (or use it inside 'async with')")
        return await self._conn.request(method, path, **kwargs)

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
        return self._conn.endpoint.url

    async def __aenter__(self) -> QueueServiceClient:
        result: QueueServiceClient = await super().__aenter__()
        return result

    def get_queue_client(self, queue_name: str) -> QueueClient:
        """A client for one queue that shares this client's connection pool (and never closes it)."""
        return QueueClient._child(self._conn, check_queue_name(queue_name), self._encoding)

    async def list_queues(
        self, *, prefix: str | None = None, include_metadata: bool = False, page_size: int | None = None
    ) -> AsyncIterator[QueueItem]:
        """Every queue (optionally those starting with ``prefix``), following pages transparently.

        ``page_size`` is queues per request (1..5000, the service's cap).
        """
        if page_size is not None and (isinstance(page_size, bool) or not isinstance(page_size, int)
                                      or not 1 <= page_size <= 5000):
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
        response = await self._request(
            "GET", "/", query={"restype": "service", "comp": "stats"}, secondary=True
        )
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
        _connection: Connection | None = None,
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
            _connection=_connection,
        )
        self._path = f"/{self.queue_name}"
        self._messages_path = f"/{self.queue_name}/messages"

    @classmethod
    def _child(cls, connection: Connection, queue_name: str, encoding: MessageEncoding) -> QueueClient:
        return cls("", queue_name, message_encoding=encoding, _connection=connection)

    def _sibling(self, queue_name: str) -> QueueClient:
        """Another queue's client on this client's pool (used for poison queues)."""
        return QueueClient._child(self._conn, check_queue_name(queue_name), self._encoding)

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
        return self._conn.endpoint.url + self._path

    async def __aenter__(self) -> QueueClient:
        result: QueueClient = await super().__aenter__()
        return result

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
        e = entries[0]
        try:
            return SendReceipt(
                id=e["MessageId"],
                pop_receipt=e["PopReceipt"],
                inserted_on=parse_rfc1123(e["InsertionTime"]),
                expires_on=parse_rfc1123(e["ExpirationTime"]),
                next_visible_on=parse_rfc1123(e["TimeNextVisible"]),
            )
        except KeyError as exc:
            raise MalformedResponse(f"Put Message answered without {exc.args[0]}") from None

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
        ``.receipts`` set: a list in input order holding a SendReceipt for each message sent and
        None for each that was not.
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
            exc = failure[0]
            if isinstance(exc, Exception):
                exc.receipts = receipts  # type: ignore[attr-defined]
            raise exc
        return [r for r in receipts if r is not None]

    def _decode(self, e: dict[str, Any]) -> Any:
        try:
            return self._encoding.decode(e.get("MessageText", ""))
        except MessageEncodingError as exc:
            raise MessageEncodingError(f"message {e.get('MessageId')}: {exc}") from None

    def _message(self, e: dict[str, Any], cls: type[_M] = QueueMessage, decode: bool = True) -> _M:  # type: ignore[assignment]
        """A message model from a raw entry; undecodable content is a MessageEncodingError
        (with ``decode=False`` the content is None)."""
        content = self._decode(e) if decode else None
        try:
            return cls(  # positional (QueueMessage's field order): this runs 32 times per receive
                e["MessageId"],
                content,
                e["PopReceipt"],
                int(e["DequeueCount"]),
                parse_rfc1123(e["InsertionTime"]),
                parse_rfc1123(e["ExpirationTime"]),
                parse_rfc1123(e["TimeNextVisible"]),
            )
        except (KeyError, ValueError) as exc:
            raise MalformedResponse(f"a received message lacks a valid {exc.args[0]}") from None

    async def receive_messages(
        self, *, max_messages: int = 1, visibility_timeout: Duration | None = None
    ) -> list[QueueMessage]:
        """Get up to ``max_messages`` (1..32) messages, hiding them for ``visibility_timeout``
        (1 s..7 d; the service default is 30 s). Delete each one once handled, or it comes back."""
        return [self._message(e) for e in await self._receive_entries(max_messages, visibility_timeout)]

    async def _receive_entries(self, max_messages: int, visibility_timeout: Duration | None) -> list[dict[str, Any]]:
        query = {"numofmessages": str(message_count(max_messages))}
        if visibility_timeout is not None:
            query["visibilitytimeout"] = str(seconds(visibility_timeout, "visibility_timeout", low=1))
        response = await self._request("GET", self._messages_path, query=query)
        return parse_messages(response.body)

    async def peek_messages(self, *, max_messages: int = 1) -> list[PeekedMessage]:
        """Look at up to ``max_messages`` (1..32) visible messages without hiding or counting them."""
        query = {"peekonly": "true", "numofmessages": str(message_count(max_messages))}
        response = await self._request("GET", self._messages_path, query=query)
        entries = parse_messages(response.body)
        try:  # positional: this runs 32 times per call
            return [
                PeekedMessage(
                    e["MessageId"],
                    self._decode(e),
                    int(e["DequeueCount"]),
                    parse_rfc1123(e["InsertionTime"]),
                    parse_rfc1123(e["ExpirationTime"]),
                )
                for e in entries
            ]
        except MessageEncodingError:
            raise
        except (KeyError, ValueError) as exc:
            raise MalformedResponse(f"a peeked message lacks a valid {exc.args[0]}") from None

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
            delete_is_idempotent=True,
            resent=resent,
        )

    async def clear_messages(self) -> None:
        """Delete every message in the queue."""
        await self._request("DELETE", self._messages_path)

    # ---- consuming -------------------------------------------------------------------------

    def receive(
        self,
        *,
        max_batch_size: int = 32,
        visibility_timeout: Duration = 30,
        max_messages: int | None = None,
        idle_timeout: Duration | None = None,
        poll_interval: tuple[float, float] | float = (0.1, 10.0),
        auto_renew: bool = False,
        max_renewal: Duration | None = 300.0,
        max_dequeue_count: int | None = None,
        poison_queue: str | None = None,
        retry_delay: RetryDelay = 0,
    ) -> MessageStream:
        """Messages one at a time, fetched up to ``max_batch_size`` (1..32) per call.

        ``async for msg in queue.receive(): async with msg: ...`` deletes each message when its block
        ends cleanly and, on an exception, makes it visible again after ``retry_delay`` (seconds, a
        timedelta, or a function of the dequeue count). Options:

        - ``visibility_timeout``: how long a fetched message stays hidden (1 s..7 d).
        - ``max_messages``: stop after yielding this many; ``idle_timeout``: stop once the queue has
          stayed empty that long (``None``: run until cancelled or closed).
        - ``poll_interval=(min, max)``: randomised exponential back-off between empty polls, reset by
          a non-empty one (Azure has no long polling).
        - ``auto_renew``: keep extending held messages' visibility before it lapses, for at most
          ``max_renewal`` seconds per message (``None``: no limit).
        - ``max_dequeue_count`` / ``poison_queue``: a message received more often than that is moved to
          the poison queue (default ``<queue>-poison``, created on demand, messages never expire) and
          not yielded; so is content the encoding cannot decode.

        Leaving the stream (``break``, an exception, cancellation, the end of ``async with``, closing
        the client) stops renewals and makes fetched-but-not-yielded messages visible at once.
        Delivery is at-least-once: handlers should be idempotent.
        """
        return MessageStream(
            self,
            ReceiveOptions.build(
                max_batch_size=max_batch_size, visibility_timeout=visibility_timeout, max_messages=max_messages,
                idle_timeout=idle_timeout, poll_interval=poll_interval, auto_renew=auto_renew,
                max_renewal=max_renewal, max_dequeue_count=max_dequeue_count, poison_queue=poison_queue,
                retry_delay=retry_delay,
            ),
        )

    def receive_batches(
        self,
        *,
        max_batch_size: int = 32,
        visibility_timeout: Duration = 30,
        max_messages: int | None = None,
        idle_timeout: Duration | None = None,
        poll_interval: tuple[float, float] | float = (0.1, 10.0),
        auto_renew: bool = False,
        max_renewal: Duration | None = 300.0,
        max_dequeue_count: int | None = None,
        poison_queue: str | None = None,
        retry_delay: RetryDelay = 0,
    ) -> BatchStream:
        """Batches of up to ``max_batch_size`` (1..32) messages, one per Get Messages call.

        ``async with batch:`` deletes every unsettled message on a clean exit (concurrently) and
        releases them all after ``retry_delay`` on an exception. Options as for :meth:`receive`.
        """
        return BatchStream(
            self,
            ReceiveOptions.build(
                max_batch_size=max_batch_size, visibility_timeout=visibility_timeout, max_messages=max_messages,
                idle_timeout=idle_timeout, poll_interval=poll_interval, auto_renew=auto_renew,
                max_renewal=max_renewal, max_dequeue_count=max_dequeue_count, poison_queue=poison_queue,
                retry_delay=retry_delay,
            ),
        )

    async def process(
        self,
        handler: Callable[[ReceivedMessage], Awaitable[Any]],
        *,
        concurrency: int = 16,
        stop: asyncio.Event | None = None,
        max_batch_size: int = 32,
        visibility_timeout: Duration = 30,
        max_messages: int | None = None,
        idle_timeout: Duration | None = None,
        poll_interval: tuple[float, float] | float = (0.1, 10.0),
        auto_renew: bool = False,
        max_renewal: Duration | None = 300.0,
        max_dequeue_count: int | None = None,
        poison_queue: str | None = None,
        retry_delay: RetryDelay = 0,
    ) -> ProcessStats:
        """Run ``await handler(msg)`` on up to ``concurrency`` messages at once: delete on success;
        on an exception log it, release the message after ``retry_delay`` and keep going.

        Ends when ``max_messages`` were handled or the queue stayed empty for ``idle_timeout``, or
        when ``stop`` (an ``asyncio.Event``) is set: then fetching stops, prefetched messages are
        released at once and handlers under way finish. It returns ``ProcessStats(processed, failed,
        poisoned)``. Cancelling it cancels the handlers under way, releases their messages at once
        (none is deleted unless its handler succeeded) and re-raises CancelledError. Transport
        errors while fetching are logged and retried after ``poll_interval``'s maximum.
        Receive options as for :meth:`receive`.
        """
        options = ReceiveOptions.build(
            max_batch_size=max_batch_size, visibility_timeout=visibility_timeout, max_messages=max_messages,
            idle_timeout=idle_timeout, poll_interval=poll_interval, auto_renew=auto_renew,
            max_renewal=max_renewal, max_dequeue_count=max_dequeue_count, poison_queue=poison_queue,
            retry_delay=retry_delay,
        )
        return await run_worker(self, handler, concurrency=concurrency, options=options, stop=stop)


async def _aiter_list(items: list[str]) -> AsyncIterator[str]:
    for item in items:
        yield item
