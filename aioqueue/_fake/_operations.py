"""Each Queue REST operation of the fake: its query and headers checked as Azure checks them, then
:class:`~._state.Service` asked, then the answer built. The ranges are the REST reference's ("Put
Message", "Get Messages", "Peek Messages", "Update Message", "Delete Message", "List Queues", ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ._errors import Refusal, bad_query, out_of_range
from ._state import DEFAULT_TTL, MAX_MESSAGE_BYTES, MAX_VISIBILITY, Service
from ._wire import (
    message_list,
    parse_message_text,
    parse_policies,
    parse_properties,
    properties_body,
    put_answer,
    queue_list,
    rfc1123,
    signed_identifiers,
    stats_body,
)

__all__ = ["Answer", "Call", "Operations"]

INT32 = 2**31 - 1
LIST_PAGE = 5000  # List Queues: "If maxresults is ... greater than 5,000, the server returns up to 5,000 items"
MAX_METADATA_BYTES = 8 * 1024
_METADATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a C# identifier
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass
class Call:
    """One request, as the operations see it."""

    operation: str
    queue: str | None
    message_id: str | None
    query: Mapping[str, str]  # names lowercased, the first value of each
    headers: Mapping[str, str]  # case-insensitive
    body: bytes


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    xml: bool = False  # the body is an XML document (Content-Type: application/xml)


def _int(query: Mapping[str, str], name: str, low: int, high: int, default: int | None = None) -> int:
    """An integer query parameter in [low, high]; absent: ``default`` (None: required)."""
    text = query.get(name)
    if text is None:
        if default is None:
            raise Refusal("MissingRequiredQueryParameter", details={"QueryParameterName": name})
        return default
    if not _INTEGER.fullmatch(text) or len(text) > 12:
        raise bad_query(name, text)
    value = int(text)
    if not low <= value <= high:
        raise out_of_range(name, text, low, high)
    return value


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if value is None:
        raise Refusal("MissingRequiredQueryParameter", details={"QueryParameterName": name})
    return value


def metadata_of(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``x-ms-meta-*`` headers: names C# identifiers, unique without regard to case, at most 8 KiB."""
    metadata: dict[str, str] = {}
    seen: set[str] = set()
    for header, value in headers.items():
        if not header.lower().startswith("x-ms-meta-"):
            continue
        name = header[10:]
        if not _METADATA_NAME.fullmatch(name) or name.lower() in seen:
            raise Refusal("InvalidMetadata", details={"MetadataName": name})
        seen.add(name.lower())
        metadata[name] = value.strip()
    if sum(len(k) + len(v) for k, v in metadata.items()) > MAX_METADATA_BYTES:
        raise Refusal("MetadataTooLarge")
    return metadata


def _message_text(body: bytes) -> str:
    """A Put/Update Message body's text: over 64 KiB of UTF-8 is 413 RequestBodyTooLarge with MaxLimit,
    as Azure answers (github.com/microsoft/onefuzz/issues/1900) and Azurite too."""
    text = parse_message_text(body)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise Refusal("RequestBodyTooLarge", details={"MaxLimit": str(MAX_MESSAGE_BYTES)})
    return text


class Operations:
    """The operations of one account's service."""

    def __init__(self, service: Service, account: str, endpoint: Callable[[], str]) -> None:
        self.service = service
        self.account = account
        self._endpoint = endpoint  # the account's URL
        self.table: dict[str, Callable[[Call], Answer]] = {
            name: getattr(self, name)
            for name in (
                "list_queues",
                "get_service_properties",
                "set_service_properties",
                "get_service_stats",
                "create_queue",
                "delete_queue",
                "get_queue_metadata",
                "set_queue_metadata",
                "get_queue_acl",
                "set_queue_acl",
                "put_message",
                "get_messages",
                "peek_messages",
                "delete_message",
                "update_message",
                "clear_messages",
            )
        }

    # ---- the service -----------------------------------------------------------------------------

    def list_queues(self, call: Call) -> Answer:
        q = call.query
        include = q.get("include", "")
        if include not in ("", "metadata"):
            raise bad_query("include", include)
        limit = min(_int(q, "maxresults", 1, INT32, LIST_PAGE), LIST_PAGE)
        marker = q.get("marker")
        start = None
        if marker:
            head = f"/{self.account}/"
            if not marker.startswith(head) or not marker[len(head) :]:
                # a marker the service never issued (recording ServiceClientTests.GetQueuesAsync_ErrorAsync)
                raise Refusal("OutOfRangeInput", "One of the request inputs is out of range.")
            start = marker[len(head) :]
        queues, following = self.service.list_queues(q.get("prefix", ""), start, limit)
        body = queue_list(
            self._endpoint() + "/",
            queues,
            prefix=q.get("prefix"),
            marker=marker,
            max_results=q.get("maxresults"),
            next_marker=None if following is None else f"/{self.account}/{following}",
            metadata=include == "metadata",
        )
        return Answer(200, {"Cache-Control": "no-cache"}, body, xml=True)

    def get_service_properties(self, call: Call) -> Answer:
        return Answer(200, {"Cache-Control": "no-cache"}, properties_body(self.service.properties), xml=True)

    def set_service_properties(self, call: Call) -> Answer:
        self.service.properties.update(parse_properties(call.body))
        return Answer(202)

    def get_service_stats(self, call: Call) -> Answer:
        return Answer(200, {"Cache-Control": "no-cache"}, stats_body(self.service.clock.now()), xml=True)

    # ---- a queue ---------------------------------------------------------------------------------

    def _queue(self, call: Call) -> str:
        assert call.queue is not None  # the router gives queue operations a queue
        return call.queue

    def create_queue(self, call: Call) -> Answer:
        created = self.service.create_queue(self._queue(call), metadata_of(call.headers))
        return Answer(201 if created else 204)

    def delete_queue(self, call: Call) -> Answer:
        self.service.delete_queue(self._queue(call))
        return Answer(204)

    def get_queue_metadata(self, call: Call) -> Answer:
        queue = self.service.queue(self._queue(call))
        headers = {f"x-ms-meta-{k}": v for k, v in sorted(queue.metadata.items(), key=lambda kv: kv[0].lower())}
        headers["x-ms-approximate-messages-count"] = str(len(queue.messages))
        headers["Cache-Control"] = "no-cache"
        return Answer(200, headers)

    def set_queue_metadata(self, call: Call) -> Answer:
        self.service.set_metadata(self._queue(call), metadata_of(call.headers))
        return Answer(204)

    def get_queue_acl(self, call: Call) -> Answer:
        queue = self.service.queue(self._queue(call))
        return Answer(200, {"Cache-Control": "no-cache"}, signed_identifiers(queue.policies), xml=True)

    def set_queue_acl(self, call: Call) -> Answer:
        name = self._queue(call)
        self.service.queue(name)  # 404 before the body is read
        self.service.set_policies(name, parse_policies(call.body))
        return Answer(204)

    # ---- messages --------------------------------------------------------------------------------

    def put_message(self, call: Call) -> Answer:
        q = call.query
        visibility = _int(q, "visibilitytimeout", 0, MAX_VISIBILITY, 0)
        ttl = DEFAULT_TTL
        if "messagettl" in q:
            text = q["messagettl"]
            if not _INTEGER.fullmatch(text) or len(text) > 12 or int(text) > INT32:
                raise bad_query("messagettl", text)
            ttl = int(text)
            if ttl == 0 or ttl < -1:
                # Azurite's reason; the reference: "any positive number, as well as -1"
                raise bad_query(
                    "messagettl", text, "Value must be greater than or equal to 1, or -1 to indicate an infinite TTL."
                )
        if ttl != -1 and visibility >= ttl:
            # "The visibility timeout of a message cannot be set to a value later than the expiry time"
            raise bad_query("visibilitytimeout", str(visibility), "messagettl must be greater than visibilitytimeout.")
        message = self.service.put_message(self._queue(call), _message_text(call.body), visibility, ttl)
        return Answer(201, {}, put_answer(message), xml=True)

    def get_messages(self, call: Call) -> Answer:
        count = _int(call.query, "numofmessages", 1, 32, 1)
        visibility = _int(call.query, "visibilitytimeout", 1, MAX_VISIBILITY, 30)
        messages = self.service.get_messages(self._queue(call), count, visibility)
        return Answer(200, {"Cache-Control": "no-cache"}, message_list(messages, peeked=False), xml=True)

    def peek_messages(self, call: Call) -> Answer:
        count = _int(call.query, "numofmessages", 1, 32, 1)
        messages = self.service.peek_messages(self._queue(call), count)
        return Answer(200, {"Cache-Control": "no-cache"}, message_list(messages, peeked=True), xml=True)

    def delete_message(self, call: Call) -> Answer:
        assert call.message_id is not None
        self.service.delete_message(self._queue(call), call.message_id, _required(call.query, "popreceipt"))
        return Answer(204)

    def update_message(self, call: Call) -> Answer:
        assert call.message_id is not None
        receipt = _required(call.query, "popreceipt")
        visibility = _int(call.query, "visibilitytimeout", 0, MAX_VISIBILITY)
        text = _message_text(call.body) if call.body.strip() else None
        message = self.service.update_message(self._queue(call), call.message_id, receipt, visibility, text)
        return Answer(204, {"x-ms-popreceipt": message.receipt, "x-ms-time-next-visible": rfc1123(message.visible_at)})

    def clear_messages(self, call: Call) -> Answer:
        self.service.clear_messages(self._queue(call))
        return Answer(204)
