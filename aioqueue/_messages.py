"""The one raw message record and the one mapper from it to the public models.

Get Messages, Peek Messages and Put Message all answer with ``<QueueMessage>`` entries that hold
a subset of the same fields. :mod:`._xml` reads each entry into a :class:`RawMessage` (strings as
the service sent them); the functions here turn one into a model, and are the only place that does.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

from ._dates import parse_rfc1123
from ._errors import MalformedResponse
from ._models import PeekedMessage, QueueMessage, SendReceipt

__all__ = ["RawMessage", "peeked_message", "received_message", "send_receipt"]

M = TypeVar("M", bound=QueueMessage)


class RawMessage(NamedTuple):
    """One ``<QueueMessage>`` entry; a field the answer did not carry is None."""

    id: str
    text: str | None  # MessageText, still encoded (absent from a Put Message answer)
    pop_receipt: str | None  # absent when peeked
    dequeue_count: str | None  # absent from a Put Message answer
    inserted_on: str | None
    expires_on: str | None
    next_visible_on: str | None  # absent when peeked


def _missing(operation: str, field: str) -> MalformedResponse:
    return MalformedResponse(f"{operation} answered a message without a valid {field}")


def received_message(raw: RawMessage, content: Any, cls: type[M]) -> M:
    """A received message (``QueueMessage`` or a subclass) with already-decoded ``content``."""
    pop_receipt, count, inserted, expires, visible = (
        raw.pop_receipt,
        raw.dequeue_count,
        raw.inserted_on,
        raw.expires_on,
        raw.next_visible_on,
    )
    if pop_receipt is None or count is None or inserted is None or expires is None or visible is None:
        raise _missing(
            "Get Messages",
            _first_missing(raw, ("pop_receipt", "dequeue_count", "inserted_on", "expires_on", "next_visible_on")),
        )
    try:  # positional (QueueMessage's field order): this runs 32 times per receive
        return cls(
            raw.id,
            content,
            pop_receipt,
            int(count),
            parse_rfc1123(inserted),
            parse_rfc1123(expires),
            parse_rfc1123(visible),
        )
    except ValueError:
        raise _missing("Get Messages", "DequeueCount") from None


def peeked_message(raw: RawMessage, content: Any) -> PeekedMessage:
    """A peeked message with already-decoded ``content``."""
    count, inserted, expires = raw.dequeue_count, raw.inserted_on, raw.expires_on
    if count is None or inserted is None or expires is None:
        raise _missing("Peek Messages", _first_missing(raw, ("dequeue_count", "inserted_on", "expires_on")))
    try:
        return PeekedMessage(raw.id, content, int(count), parse_rfc1123(inserted), parse_rfc1123(expires))
    except ValueError:
        raise _missing("Peek Messages", "DequeueCount") from None


def send_receipt(raw: RawMessage) -> SendReceipt:
    """What Put Message answered."""
    pop_receipt, inserted, expires, visible = raw.pop_receipt, raw.inserted_on, raw.expires_on, raw.next_visible_on
    if pop_receipt is None or inserted is None or expires is None or visible is None:
        raise _missing(
            "Put Message", _first_missing(raw, ("pop_receipt", "inserted_on", "expires_on", "next_visible_on"))
        )
    return SendReceipt(raw.id, pop_receipt, parse_rfc1123(inserted), parse_rfc1123(expires), parse_rfc1123(visible))


_XML_NAMES = {
    "pop_receipt": "PopReceipt",
    "dequeue_count": "DequeueCount",
    "inserted_on": "InsertionTime",
    "expires_on": "ExpirationTime",
    "next_visible_on": "TimeNextVisible",
}


def _first_missing(raw: RawMessage, fields: tuple[str, ...]) -> str:
    return next(_XML_NAMES[f] for f in fields if getattr(raw, f) is None)
