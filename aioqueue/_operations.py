"""The wire half of every Queue REST operation: its path, query, headers, body, the largest answer it
can legally get, what answer counts as done, its parser and its errors. One method per operation.

The clients above check the caller's arguments, build the models the caller sees and add the
conveniences; they call these methods with values already checked. :class:`QueueOperations` is also
the consumer's view of a queue (it implements :class:`._link.QueueLink`), so the streams, the worker
and the command line use it, never a client's private members.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from ._dates import parse_rfc1123
from ._encoding import MAX_MESSAGE_BYTES, MessageEncoding, TextEncoding, encode_message
from ._errors import (
    AioQueueError,
    ConfigurationError,
    MalformedResponse,
    MessageEncodingError,
    MessageNotFound,
    PopReceiptMismatch,
    QueueAlreadyExists,
    QueueNotFound,
    service_error,
)
from ._link import Closable
from ._message_list import message_body, parse_messages, parse_put_answer
from ._messages import RawMessage, answered, send_receipt, text_of
from ._models import (
    AccessPolicy,
    QueueItem,
    QueueMessage,
    SendReceipt,
    ServiceProperties,
    ServiceStats,
    UpdateReceipt,
    UserDelegationKey,
)
from ._payload_resolution import HeldPayloads, Resolved, content_of, resolve_all, resolve_received
from ._payloads import PayloadStore, Reference, keep_forever
from ._telemetry import Operation, Telemetry, _Off, count_outcome
from ._transport import DEFAULT_MAX_RESPONSE_BYTES, Accept, Response, RetryingSession, State, Where
from ._validation import POP_RECEIPT, metadata_headers
from ._validation import message_id as check_message_id
from ._validation import pop_receipt as check_pop_receipt
from ._validation import user_headers as check_user_headers
from ._xml import (
    OFF_LOOP_BYTES,
    off_loop,
    parse_error,
    parse_error_body,
    parse_queue_list,
    parse_service_properties,
    parse_service_stats,
    parse_signed_identifiers,
    parse_user_delegation_key,
    service_properties_body,
    signed_identifiers_body,
    user_delegation_key_body,
)

__all__ = ["UNCHANGED", "Pool", "QueueOperations", "ServiceOperations", "error_for"]

log = logging.getLogger("aioqueue")


class _Unchanged:
    def __repr__(self) -> str:
        return "<unchanged>"


UNCHANGED: Final = _Unchanged()
"""``update_message``'s default content: the service keeps the message's text."""

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
LIST_PAGE = 5000  # the service's default and largest page
_LIST_PAGE_WITH_METADATA = 100  # asked for explicitly, so a page's legal size stays near 11 MiB
# Five CORS rules of up to 64 origins, 64 allowed and 64 exposed headers of 256 characters, escaped.
_SERVICE_PROPERTIES_BYTES = 2 * 1024 * 1024
_SMALL_DOCUMENT_BYTES = 16 * 1024  # an ACL (5 policies), service stats, a user delegation key


def _messages_bytes(count: int) -> int:
    return count * _MESSAGE_ENTRY_BYTES + 1024


# Get and Peek Messages' queries and answer caps for each count (read-only: shared by every request)
_GET = {n: (str(n), _messages_bytes(n)) for n in range(1, 33)}
_PEEK = {n: ({"peekonly": "true", "numofmessages": str(n)}, _messages_bytes(n)) for n in range(1, 33)}
_PUT_BYTES = _messages_bytes(1)


def error_for(response: Response) -> AioQueueError:
    """The typed error for one error answer: its ``x-ms-error-code`` header, else the body's code; the
    body's other elements as the error's ``details``."""
    headers = response.headers
    code, message, details = parse_error_body(response.body)
    return service_error(
        response.status,
        headers.get("x-ms-error-code") or code,
        message,
        headers.get("x-ms-request-id"),
        headers,
        response.after_lost_answer,  # an earlier attempt may have done it (a retried update finds its receipt spent)
        details,  # e.g. why Azure refused the request (redacted by the error)
    )


def _error_code(response: Response) -> str | None:
    """The answer's error code: the ``x-ms-error-code`` header, else the body's <Code>."""
    return response.headers.get("x-ms-error-code") or parse_error(response.body)[0]


def _message_gone(response: Response) -> bool:
    """A Delete Message answer saying the message is not there (Azure: 404; Azurite may say 400
    PopReceiptMismatch for a message it has already deleted)."""
    code = response.headers.get("x-ms-error-code")
    return response.status == 404 or code == MessageNotFound.__name__ or code == PopReceiptMismatch.__name__


def _merge_headers(own: Mapping[str, str] | None, extra: Mapping[str, str], agent: str) -> dict[str, str]:
    """The operation's headers plus the caller's; a caller's header the operation sets is an error.
    A caller's User-Agent goes before the client's own ``agent``, as the ``user_agent`` option's does."""
    merged = dict(own or {})
    taken = {name.lower() for name in merged}
    for name, value in check_user_headers(extra).items():
        if name.lower() in taken:
            raise ConfigurationError(f"the {name} header is set by this operation; pass it through its argument")
        if name.lower() == "user-agent":
            name, value = "User-Agent", f"{value.strip()} {agent}".lstrip()
        merged[name] = value
    return merged


async def _parsed(parse: Callable[..., Any], body: bytes, *args: Any) -> Any:
    """``parse(body, *args)``; a big answer in a worker thread, so the event loop runs on meanwhile."""
    if len(body) <= OFF_LOOP_BYTES:
        return parse(body, *args)
    return await off_loop(parse, body, *args)


class Pool:
    """What a root client and its children share: the HTTP session, telemetry and every open stream."""

    __slots__ = ("http", "payloads", "streams", "telemetry")

    def __init__(self, http: RetryingSession, telemetry: Telemetry, payloads: PayloadStore | None = None) -> None:
        self.http = http
        self.telemetry = telemetry
        self.payloads = payloads  # large payloads' blobs (the large_payloads option), or None
        self.streams: weakref.WeakSet[Closable] = weakref.WeakSet()


class Operations:
    """One client's requests: each operation one request with retries, recorded for telemetry."""

    __slots__ = ("label", "pool", "shut", "streams")

    def __init__(self, pool: Pool, label: str | None = None) -> None:
        self.pool = pool
        self.label = label  # messaging.destination.name: the queue's name
        self.shut = False  # this client was closed (its pool may live on in others)
        self.streams: weakref.WeakSet[Closable] = weakref.WeakSet()  # this client's open streams

    @property
    def closed(self) -> bool:
        """True once this client (or the client whose pool it shares) is closed."""
        return self.shut or self.pool.http.state is State.CLOSED

    def operation(self, name: str, message: QueueMessage | None = None) -> Operation | _Off:
        """The telemetry recorder of one operation (a no-op one while OpenTelemetry is not configured)."""
        return self.pool.telemetry.operation(name, self.label, message)

    def track(self, stream: Closable) -> None:
        """Close ``stream`` when the client closes (held weakly)."""
        self.streams.add(stream)
        self.pool.streams.add(stream)

    def untrack(self, stream: Closable) -> None:
        self.streams.discard(stream)
        self.pool.streams.discard(stream)

    async def call(
        self,
        op: str | Operation | _Off,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
        where: Where = "primary",
        accept: Accept | None = None,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> Response:
        """One request. ``op``: the operation's name (its telemetry is recorded here) or the recorder its
        caller opened; ``headers``: the operation's own; ``extra``: the caller's ``headers=`` (checked
        here, before any request); ``where``: "read" when the secondary may answer, "secondary" when only
        it can; ``max_bytes``: the largest answer body the operation can legally get. The hot paths call
        it positionally: keyword arguments cost ~2k instructions a call."""
        if self.shut:
            raise ConfigurationError("this client is closed; create a new one (or use it inside 'async with')")
        http = self.pool.http
        if extra is not None:
            headers = _merge_headers(headers, extra, http.user_agent)
        if isinstance(op, str):
            op = self.pool.telemetry.operation(op, self.label)
            if op.on:
                with op:
                    return await http.request(method, path, query, body, headers, where, accept, max_bytes, op)
        return await http.request(method, path, query, body, headers, where, accept, max_bytes, op)


class ServiceOperations(Operations):
    """The account's queue service: list queues, service properties and stats, delegation keys."""

    __slots__ = ()

    async def list_queues_page(
        self, *, prefix: str | None, include_metadata: bool, page_size: int | None, marker: str | None, extra: Any
    ) -> tuple[list[QueueItem], str | None]:
        """One page of List Queues: its queues and the next page's marker (None after the last)."""
        query = {"comp": "list"}
        if prefix:
            query["prefix"] = prefix
        if include_metadata:
            query["include"] = "metadata"
            page = page_size or _LIST_PAGE_WITH_METADATA
            query["maxresults"] = str(page)
            max_bytes, max_elements = page * _QUEUE_ENTRY_WITH_METADATA_BYTES, page * _QUEUE_ELEMENTS_WITH_METADATA
        else:
            if page_size is not None:
                query["maxresults"] = str(page_size)
            page = page_size or LIST_PAGE
            max_bytes, max_elements = page * _QUEUE_ENTRY_BYTES, page * _QUEUE_ELEMENTS
        if marker:
            query["marker"] = marker
        max_bytes += 4096  # the envelope: prefix, markers (up to 1 KiB each, escaped)
        response = await self.call("list_queues", "GET", "/", query, None, None, extra, "read", None, max_bytes)
        result: tuple[list[QueueItem], str | None] = await _parsed(parse_queue_list, response.body, max_elements + 16)
        return result

    async def get_service_properties(self, *, extra: Mapping[str, str] | None) -> ServiceProperties:
        query = {"restype": "service", "comp": "properties"}
        response = await self.call(
            "get_service_properties", "GET", "/", query, None, None, extra, "read", None, _SERVICE_PROPERTIES_BYTES
        )
        result: ServiceProperties = await _parsed(parse_service_properties, response.body)
        return result

    async def set_service_properties(self, *, properties: ServiceProperties, extra: Mapping[str, str] | None) -> None:
        query = {"restype": "service", "comp": "properties"}
        await self.call("set_service_properties", "PUT", "/", query, service_properties_body(properties), None, extra)

    async def get_service_stats(self, *, extra: Mapping[str, str] | None) -> ServiceStats:
        """Answered by the account's secondary endpoint only."""
        query = {"restype": "service", "comp": "stats"}
        response = await self.call(
            "get_service_stats", "GET", "/", query, None, None, extra, "secondary", None, _SMALL_DOCUMENT_BYTES
        )
        return parse_service_stats(response.body)

    async def get_user_delegation_key(
        self, *, start: str, expiry: str, tenant: str | None, version: str, extra: Mapping[str, str] | None
    ) -> UserDelegationKey:
        """``start``/``expiry`` as the service writes them; ``version``: the x-ms-version to send."""
        response = await self.call(
            "get_user_delegation_key",
            "POST",
            "/",
            {"restype": "service", "comp": "userdelegationkey"},
            user_delegation_key_body(start, expiry, tenant),
            {"x-ms-version": version},
            extra,
            "primary",
            None,
            _SMALL_DOCUMENT_BYTES,
        )
        return parse_user_delegation_key(response.body)


class QueueOperations(Operations):
    """One queue's operations, and the consumer's view of it (:class:`._link.QueueLink`)."""

    __slots__ = ("_created", "_held", "decode", "encoding", "messages_path", "path", "queue_name")

    def __init__(self, pool: Pool, queue_name: str, encoding: MessageEncoding) -> None:
        super().__init__(pool, queue_name)
        self.queue_name = queue_name
        self.path = f"/{queue_name}"
        self.messages_path = f"/{queue_name}/messages"
        self.encoding = encoding
        # the content of a raw message: for the text encoding (which cannot fail: the text is the content)
        # a plain function, one call and one try block less per message
        plain = type(encoding) is TextEncoding and pool.payloads is None
        self.decode: Callable[[RawMessage], Any] = text_of if plain else self._decode
        self._created: set[str] = set()  # queues copy_text has made sure exist
        # the payload blobs of received messages, each deleted once its message is (never before)
        self._held = HeldPayloads(pool.payloads, queue_name) if pool.payloads is not None else None

    def sibling(self, queue_name: str) -> QueueOperations:
        """Another queue of the account, on the same pool and encoding (a poison queue)."""
        return QueueOperations(self.pool, queue_name, self.encoding)

    def _decode(self, raw: RawMessage) -> Any:
        """The content; any failure of the encoding (a custom one's exception, a RecursionError on
        deeply nested JSON) is a MessageEncodingError naming the message. A large payload's message
        has its content (or its failure) already."""
        if type(raw) is Resolved:
            if raw.failure is not None:
                raise raw.failure
            return raw.content
        try:
            return self.encoding.decode(raw.text or "")
        except MessageEncodingError as exc:
            raise MessageEncodingError(f"message {raw.id}: {exc}") from None
        except Exception as exc:
            raise MessageEncodingError(
                f"message {raw.id} does not decode: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None

    def undecoded(self, raw: RawMessage) -> Any:
        """The content, except that a large payload's reference is its own text (peek's resolve=False)."""
        text = raw.text or ""
        return text if Reference.parse(text) is not None else self.decode(raw)

    # ---- the queue ---------------------------------------------------------------------------

    async def create_queue(self, *, metadata: Mapping[str, str] | None, exist_ok: bool, extra: Any) -> bool:
        """Create Queue: True when created; an existing queue is False with ``exist_ok`` (and no failed
        operation), else QueueAlreadyExists. After a lost answer the retry's "already exists" is this
        call's success: the lost attempt may have created it."""
        rec = self.operation("create_queue")
        with rec:
            headers = metadata_headers(metadata)
            response = await self._on_queue(rec, "PUT", headers, extra, QueueAlreadyExists, exist_ok)
            if response is None:
                return False
            if response.after_lost_answer and response.status in (204, 409):
                return True
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

    async def delete_queue(self, *, missing_ok: bool, extra: Any) -> bool:
        """Delete Queue: True when deleted; a missing queue is False with ``missing_ok``. After a lost
        answer the retry's "not found" is this call's success."""
        rec = self.operation("delete_queue")
        with rec:
            return await self._on_queue(rec, "DELETE", None, extra, QueueNotFound, missing_ok) is not None

    async def _on_queue(
        self,
        rec: Operation | _Off,
        method: str,
        headers: Mapping[str, str] | None,
        extra: Any,
        refusal: type[QueueAlreadyExists | QueueNotFound],
        tolerated: bool,
    ) -> Response | None:
        """Create or delete the queue itself. After a lost answer the retry's ``refusal`` (already there,
        not found) is this call's success: the lost attempt may have done it. Otherwise that refusal is
        None when ``tolerated`` (exist_ok, missing_ok: then no failed operation either), else raised."""
        code = refusal.__name__

        def done(response: Response) -> bool:
            return response.after_lost_answer and _error_code(response) == code

        try:
            return await self.call(rec, method, self.path, None, None, headers, extra, "primary", done)
        except refusal:
            if tolerated:
                return None
            raise

    async def exists(self, *, extra: Any, where: Where = "read") -> bool:
        rec = self.operation("exists")  # "no" is an answer, not a failed operation
        with rec:
            try:
                await self.call(rec, "GET", self.path, {"comp": "metadata"}, None, None, extra, where)
            except QueueNotFound:
                return False
        return True

    async def get_metadata(self, *, extra: Any) -> tuple[dict[str, str], int]:
        """Get Queue Metadata: the metadata and the approximate message count."""
        response = await self.call(
            "get_queue_properties", "GET", self.path, {"comp": "metadata"}, None, None, extra, "read"
        )
        headers = response.headers
        metadata = {k[10:]: v for k, v in headers.items() if k[:10].lower() == "x-ms-meta-"}
        count = headers.get("x-ms-approximate-messages-count", "")
        if not (count.isdigit() and count.isascii()):
            raise MalformedResponse("the response lacks a valid x-ms-approximate-messages-count")
        return metadata, int(count)

    async def set_metadata(self, *, metadata: Mapping[str, str] | None, extra: Any) -> None:
        headers = metadata_headers(metadata)
        await self.call("set_queue_metadata", "PUT", self.path, {"comp": "metadata"}, None, headers, extra)

    async def get_access_policy(self, *, extra: Any) -> dict[str, AccessPolicy]:
        response = await self.call(
            "get_queue_access_policy", "GET", self.path, {"comp": "acl"}, None, None, extra, "read", None,
            _SMALL_DOCUMENT_BYTES,
        )  # fmt: skip
        return parse_signed_identifiers(response.body)

    async def set_access_policy(self, *, policies: Mapping[str, AccessPolicy | None], extra: Any) -> None:
        body = signed_identifiers_body(policies)
        await self.call("set_queue_access_policy", "PUT", self.path, {"comp": "acl"}, body, None, extra)

    # ---- messages ----------------------------------------------------------------------------

    async def put_message(
        self, text: str, query: dict[str, str], extra: Mapping[str, str] | None = None, content: Any = UNCHANGED
    ) -> SendReceipt:
        """Put Message with ``text`` (already encoded). ``content`` (when given) gets the send span's trace
        context when ``trace_context_field`` is set, and is encoded again with it."""
        return (await self.put_message_answered(text, query, extra, content))[0]

    async def put_message_answered(
        self, text: str, query: dict[str, str], extra: Mapping[str, str] | None = None, content: Any = UNCHANGED
    ) -> tuple[SendReceipt, bool]:
        """:meth:`put_message`, and whether the answer came to a retry after an attempt's answer was lost
        (the queue may then hold the message twice)."""
        rec = self.operation("send")
        with rec:
            if rec.span is not None:
                if content is not UNCHANGED:
                    traced = self.pool.telemetry.inject(content, rec.span)
                    if traced is not content:
                        text = encode_message(self.encoding, traced)
                rec.set("messaging.message.body.size", len(text.encode("utf-8", "surrogatepass")))
            response = await self.call(
                rec, "POST", self.messages_path, query, message_body(text), None, extra, "primary", None, _PUT_BYTES
            )
            entries = parse_put_answer(response.body)
            if not entries:
                raise MalformedResponse("Put Message answered without the message")
            receipt = send_receipt(entries[0])
            rec.set("messaging.message.id", receipt.id)
        return receipt, response.after_lost_answer

    async def get_messages(
        self, count: int, visibility_timeout: int | None, extra: Mapping[str, str] | None = None
    ) -> tuple[list[RawMessage], float]:
        """Get Messages: up to ``count`` (1..32) raw entries, and time.monotonic() when the request that
        leased them was sent (their visibility runs from no earlier). A large payload's message is its
        reference still (see :meth:`resolve_received`, :meth:`payload`)."""
        number, max_bytes = _GET[count]
        query = {"numofmessages": number}
        if visibility_timeout is not None:
            query["visibilitytimeout"] = str(visibility_timeout)
        rec = self.operation("receive")
        with rec:
            response = await self.call(
                rec, "GET", self.messages_path, query, None, None, extra, "primary", None, max_bytes
            )
            raws: list[RawMessage] = await _parsed(parse_messages, response.body)
            answered(raws, count, "Get Messages")
            if rec.on:
                rec.received(raws)
        self.hold_payloads(raws)  # a large payload's blob goes once its message is deleted
        return raws, response.sent

    async def peek_messages(
        self, count: int, extra: Mapping[str, str] | None = None, resolve: bool = True
    ) -> list[RawMessage]:
        """Peek Messages: up to ``count`` (1..32) raw entries, neither hidden nor counted; with large
        payloads and ``resolve``, each reference's content fetched."""
        raws, _ = await self.peek_dated(count, extra)
        if self.pool.payloads is not None and resolve:
            raws = await self.resolve_peeked(raws)
        return raws

    async def peek_dated(self, count: int, extra: Mapping[str, str] | None = None) -> tuple[list[RawMessage], str]:
        """Peek Messages' raw entries (never resolved) and the answer's ``Date``: the service's clock."""
        query, cap = _PEEK[count]
        rec = self.operation("peek")
        with rec:
            response = await self.call(rec, "GET", self.messages_path, query, None, None, extra, "read", None, cap)
            raws: list[RawMessage] = await _parsed(parse_messages, response.body)
            answered(raws, count, "Peek Messages")
            rec.messages(len(raws))
        return raws, response.headers.get("Date", "")

    async def resolve_peeked(self, raws: list[RawMessage]) -> list[RawMessage]:
        """Each peeked message whose text is a large payload's reference, with its content fetched (or
        its failure); a failure to fetch one (the Blob service unreachable, refusing) is raised."""
        assert self.pool.payloads is not None
        return await resolve_all(self.pool.payloads, self.encoding, raws)

    async def resolve_received(
        self, raws: list[RawMessage], visibility: int | None, leased_at: float
    ) -> tuple[list[RawMessage], dict[str, UpdateReceipt]]:
        """Each received message whose text is a large payload's reference, with its content fetched,
        one after the other, the list's leases renewed meanwhile; and those renewals by message id."""
        assert self.pool.payloads is not None
        return await resolve_received(self.pool.payloads, self.encoding, raws, self._visibility, visibility, leased_at)

    async def _visibility(self, msg_id: str, receipt: str, seconds: int, why: str) -> UpdateReceipt:
        return await self.update_message(why, check_message_id(msg_id), check_pop_receipt(receipt), seconds, None)

    async def replace_payload(self, msg_id: str, blob: str | None) -> None:
        """After an Update Message with new text succeeded: the old payload blob (if known) deleted,
        the new one (if any) held to go with the message."""
        if self._held is not None:
            await self._held.replace(msg_id, blob)

    async def update_message(
        self,
        op: str,
        msg_id: str,
        receipt: str,
        visibility_timeout: int,
        text: str | None,
        extra: Mapping[str, str] | None = None,
        message: QueueMessage | None = None,
    ) -> UpdateReceipt:
        """Update Message (recorded as ``op``: "update", or a received message's "release"/"renew"):
        the visibility, and the text when ``text`` is not None. The message, when given, takes the new
        receipt and visibility in place."""
        body = None if text is None else message_body(text)
        rec = self.operation(op, message)
        with rec:
            response = await self.call(
                rec,
                "PUT",
                f"{self.messages_path}/{msg_id}",  # a checked id: nothing in it to escape
                {"popreceipt": receipt, "visibilitytimeout": str(visibility_timeout)},
                body,
                None,
                extra,
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
        if message is not None:
            message.pop_receipt = result.pop_receipt
            message.next_visible_on = result.next_visible_on
        return result

    async def delete_message(
        self,
        msg_id: str,
        receipt: str,
        resent: bool = False,
        extra: Mapping[str, str] | None = None,
        message: QueueMessage | None = None,
    ) -> None:
        """Delete Message; ``resent``: an earlier request for this delete may have landed."""
        rec = self.operation("delete", message)
        with rec:
            response = await self.call(
                rec,
                "DELETE",
                f"{self.messages_path}/{msg_id}",  # a checked id: nothing in it to escape
                {"popreceipt": receipt},
                None,
                None,
                extra,
                "primary",
                # an earlier attempt (or, with resent, an earlier request) may have deleted it before its
                # answer was lost: finding it gone then means done
                lambda response: (resent or response.after_lost_answer) and _message_gone(response),
            )
        held = self._held
        if held is not None and held.blobs:
            if response.status < 300:
                await held.drop(msg_id)
            else:  # a resend's "gone" (404 on Azure, 400 on Azurite) is also a stale receipt's answer
                held.forget(msg_id)

    async def clear_messages(self, *, extra: Mapping[str, str] | None) -> None:
        await self.call("clear", "DELETE", self.messages_path, None, None, None, extra)

    # ---- the consumer's link (._link.QueueLink) ----------------------------------------------

    async def fetch(self, max_messages: int, visibility_timeout: int) -> tuple[list[RawMessage], float]:
        return await self.get_messages(max_messages, visibility_timeout)

    def unfetched(self, raws: list[RawMessage]) -> Collection[str]:
        if self.pool.payloads is None:
            return ()
        return {raw.id for raw in raws if Reference.parse(raw.text or "") is not None}

    async def payload(self, message_id: str, text: str) -> Any:
        ref, store = Reference.parse(text), self.pool.payloads
        assert ref is not None and store is not None
        return await content_of(store, self.encoding, message_id, ref)

    def hold_payloads(self, raws: list[RawMessage]) -> None:
        if self._held is not None:
            self._held.hold_received(raws)

    async def delete(self, message: QueueMessage, *, resent: bool = False) -> None:
        msg_id, receipt = check_message_id(message.id), check_pop_receipt(message.pop_receipt)
        await self.delete_message(msg_id, receipt, resent, None, message)

    async def set_visibility(self, message: QueueMessage, visibility_timeout: int, *, why: str = "update") -> None:
        msg_id, receipt = check_message_id(message.id), check_pop_receipt(message.pop_receipt)
        await self.update_message(why, msg_id, receipt, visibility_timeout, None, None, message)

    def count(self, outcome: str) -> None:
        count_outcome(self.pool.telemetry, outcome, self.queue_name)

    async def copy_text(self, queue_name: str, text: str, original: str | None = None) -> None:
        store = self.pool.payloads
        ref = Reference.parse(text if original is None else original) if store is not None else None
        if ref is not None:  # the copy points at the payload: it stays, and never expires (as the copy)
            assert store is not None
            await keep_forever(store, ref)
            if self._held is not None:
                self._held.keep(ref.blob)
        other = self.sibling(queue_name)
        if queue_name not in self._created:
            await other.create_queue(metadata=None, exist_ok=True, extra=None)
            self._created.add(queue_name)
        try:
            await other.put_message(text, {"messagettl": "-1"})
        except QueueNotFound:  # deleted since this client made it (by hand, by a clean-up): made again
            await other.create_queue(metadata=None, exist_ok=True, extra=None)
            await other.put_message(text, {"messagettl": "-1"})
