"""The one raw message record and the one mapper from it to the public models.

Get Messages, Peek Messages and Put Message all answer with ``<QueueMessage>`` entries that hold
a subset of the same fields. :mod:`._message_list` reads each entry into a :class:`RawMessage`
(strings as the service sent them); the functions here turn one into a model, and are the only place
that does. The list builders (:func:`peeked_messages`, :func:`received_messages`) are fast paths that
build a whole answer a column at a time; beside each stands its twin, the one-message builder, and
:mod:`tests.transport.test_fast_paths` holds one property test for each pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from ._dates import parse_rfc1123
from ._errors import MalformedResponse, MessageEncodingError
from ._models import PeekedMessage, QueueMessage, SendReceipt

__all__ = [
    "RawMessage",
    "answered",
    "decoded_messages",
    "peeked_message",
    "peeked_messages",
    "received_message",
    "received_messages",
    "send_receipt",
    "text_of",
]

M = TypeVar("M", bound=QueueMessage)


class RawMessage(NamedTuple):
    """One ``<QueueMessage>`` entry; a field the answer did not carry is None. The fields are in the
    service's order, so the fast parser makes the records from its columns with one zip."""

    id: str
    inserted_on: str | None
    expires_on: str | None
    pop_receipt: str | None  # absent when peeked
    next_visible_on: str | None  # absent when peeked
    dequeue_count: str | None  # absent from a Put Message answer
    text: str | None  # MessageText, still encoded (absent from a Put Message answer)


def _slot_setters(cls: type) -> tuple[Callable[[object, Any], None], ...]:
    """The slot setters of a slots dataclass's fields, in order. A frozen dataclass's __init__ sets each
    field through object.__setattr__ (about twice what setting the slot costs), and any __init__ is a
    Python call a message; these make the same objects for the 32 messages of an answer, a field at a
    time. Only for classes without __post_init__ (checked)."""
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__: build it with its __init__")
    return tuple(cls.__dict__[f.name].__set__ for f in fields(cls))


_new = object.__new__
_PEEKED = _slot_setters(PeekedMessage)
_RECEIPT = _slot_setters(SendReceipt)


def _missing(operation: str, field: str) -> MalformedResponse:
    return MalformedResponse(f"{operation} answered a message without a valid {field}")


_id = itemgetter(0)


def answered(raws: list[RawMessage], limit: int, operation: str) -> list[RawMessage]:
    """The records of a Get or Peek Messages answer, if it is one the service gives to a request for at
    most ``limit`` messages: no more than that, and no message twice."""
    if len(raws) > limit:
        raise MalformedResponse(f"{operation} answered {len(raws)} messages where at most {limit} were asked for")
    if len(raws) > 1 and len(set(map(_id, raws))) != len(raws):
        raise MalformedResponse(f"{operation} answered one message twice")
    return raws


def _count(text: str) -> int:
    """A dequeue count as the service writes it, ASCII digits (int() also takes '-5', ' 1_0 ', '٩٩');
    ValueError for anything else."""
    if not (text.isdigit() and text.isascii()):
        raise ValueError("not a dequeue count")
    return int(text)


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
            _count(count),
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
        dequeue_count = _count(count)
    except ValueError:
        raise _missing("Peek Messages", "DequeueCount") from None
    set_id, set_content, set_count, set_inserted, set_expires = _PEEKED
    message = _new(PeekedMessage)  # PeekedMessage(raw.id, content, dequeue_count, inserted, expires)
    set_id(message, raw.id)
    set_content(message, content)
    set_count(message, dequeue_count)
    set_inserted(message, parse_rfc1123(inserted))
    set_expires(message, parse_rfc1123(expires))
    return message


def _dates(column: Sequence[str | None]) -> Iterable[datetime]:
    """The column's times, each distinct one parsed once (an answer holds two or three); TypeError
    when one is missing, MalformedResponse when one is not a time."""
    distinct = set(column)
    if None in distinct:
        raise TypeError("a time is missing")
    parsed = {text: parse_rfc1123(text) for text in distinct}
    return map(parsed.__getitem__, column)


def _counts(column: Sequence[str | None]) -> Iterable[int]:
    """The column's dequeue counts, each distinct one converted once (an answer holds one or a few)."""
    distinct = set(column)
    if None in distinct:
        raise TypeError("a count is missing")
    converted = {text: _count(text) for text in distinct}  # type: ignore[arg-type]
    return map(converted.__getitem__, column)


def _checked(counts: Sequence[str | None], *times: Sequence[str | None]) -> tuple[Any, ...] | None:
    """The answer's dequeue counts and times, or None when one is missing or malformed."""
    try:
        return list(_counts(counts)), *map(_dates, times)
    except (TypeError, ValueError, MalformedResponse):
        return None


def text_of(raw: RawMessage) -> str:
    """The text encoding's content: the text itself (an absent text is empty)."""
    return raw.text or ""


def _contents(
    raws: Sequence[RawMessage], texts: Sequence[str | None], decode: Callable[[RawMessage], Any]
) -> Iterable[Any]:
    """Every message's content: the text encoding's straight from the column (no call a message);
    another decoder's lazily, each message's as its model is made, so the first error is the one the
    one-message loop would meet first."""
    if decode is text_of:
        return [text or "" for text in texts]
    return map(decode, raws)


def _build(
    cls: type[Any], setters: tuple[Callable[[object, Any], None], ...], ids: Sequence[str], *columns: Iterable[Any]
) -> list[Any]:
    """``list(map(cls, ids, *columns))`` for a class of :func:`_slot_setters`, a field at a time: one
    C-level loop a field where each message would cost a Python call."""
    objects = list(map(_new, repeat(cls, len(ids))))
    for setter, column in zip(setters, (ids, *columns), strict=True):
        any(map(setter, objects, column))  # the setters return None: any() runs them all
    return objects


# The fast path of peeked_message (its twin: the same models, or what that raises);
# tests/transport/test_fast_paths.py: test_peeked_messages_equals_peeked_message.
def peeked_messages(raws: Sequence[RawMessage], decode: Callable[[RawMessage], Any]) -> list[PeekedMessage]:
    """``[peeked_message(raw, decode(raw)) for raw in raws]``, a field at a time. An answer with a field
    missing or malformed is built that way, so it raises what that raises."""
    if not raws:
        return []
    ids, inserted, expires, _, _, counts, texts = zip(*raws, strict=True)
    checked = _checked(counts, inserted, expires)
    if checked is None:
        return [peeked_message(raw, decode(raw)) for raw in raws]
    return _build(PeekedMessage, _PEEKED, ids, _contents(raws, texts, decode), *checked)


# The fast path of received_message (its twin: the same models, or what that raises);
# tests/transport/test_fast_paths.py: test_received_messages_equals_received_message.
def received_messages(raws: Sequence[RawMessage], decode: Callable[[RawMessage], Any], cls: type[M]) -> list[M]:
    """``[received_message(raw, decode(raw), cls) for raw in raws]``: counts and times converted a column
    at a time, each distinct value once, and ``cls`` (not frozen) called as that calls it, from C. An
    answer with a field missing or malformed (or a class that refuses one) is built one message at a
    time, so it raises what that raises."""
    if not raws:
        return []
    ids, inserted, expires, receipts, visible, counts, texts = zip(*raws, strict=True)
    checked = _checked(counts, inserted, expires, visible) if all(receipts) else None
    if checked is not None:
        contents = _contents(raws, texts, decode)
        count, inserted_on, expires_on, visible_on = checked
        try:
            return list(map(cls, ids, contents, receipts, count, inserted_on, expires_on, visible_on))
        except ValueError:  # what received_message reports of its class's ValueError
            pass
    return [received_message(raw, decode(raw), cls) for raw in raws]


def decoded_messages(
    raws: Sequence[RawMessage], decode: Callable[[RawMessage], Any], cls: type[M]
) -> tuple[list[M], list[tuple[RawMessage, MessageEncodingError]]]:
    """The received messages whose content decodes (the text encoding, which cannot fail: the whole
    answer at once), and each raw message whose content does not, with its MessageEncodingError."""
    if decode is text_of:
        return received_messages(raws, decode, cls), []
    good: list[M] = []
    bad: list[tuple[RawMessage, MessageEncodingError]] = []
    for raw in raws:
        try:
            content = decode(raw)
        except MessageEncodingError as exc:
            bad.append((raw, exc))
        else:
            good.append(received_message(raw, content, cls))
    return good, bad


def send_receipt(raw: RawMessage) -> SendReceipt:
    """What Put Message answered."""
    pop_receipt, inserted, expires, visible = raw.pop_receipt, raw.inserted_on, raw.expires_on, raw.next_visible_on
    if pop_receipt is None or inserted is None or expires is None or visible is None:
        raise _missing(
            "Put Message", _first_missing(raw, ("pop_receipt", "inserted_on", "expires_on", "next_visible_on"))
        )
    set_id, set_receipt, set_inserted, set_expires, set_visible = _RECEIPT
    receipt = _new(SendReceipt)  # SendReceipt(raw.id, pop_receipt, inserted, expires, visible)
    set_id(receipt, raw.id)
    set_receipt(receipt, pop_receipt)
    set_inserted(receipt, parse_rfc1123(inserted))
    set_expires(receipt, parse_rfc1123(expires))
    set_visible(receipt, parse_rfc1123(visible))
    return receipt


_XML_NAMES = {
    "pop_receipt": "PopReceipt",
    "dequeue_count": "DequeueCount",
    "inserted_on": "InsertionTime",
    "expires_on": "ExpirationTime",
    "next_visible_on": "TimeNextVisible",
}


def _first_missing(raw: RawMessage, fields: tuple[str, ...]) -> str:
    return next(_XML_NAMES[f] for f in fields if getattr(raw, f) is None)
