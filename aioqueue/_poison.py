"""Poison records: what a poisoned message becomes in its poison queue (``poison_format="record"``).

A record is one message whose whole text is compact JSON, opened by a marker that is also its version::

    {"aioqueue_poison":1,"source_queue":"jobs","message_id":"...","inserted_on":"2026-11-27T03:46:05.000Z",
     "time_to_live":604800,"dequeue_count":5,"poisoned_on":"2026-11-27T04:01:17.250Z",
     "kind":"max_dequeue_count","reason":"...","failures":[{"type":"ValueError","message":"...",
     "time":"...","host":"worker-7","pid":4711}],"trace_id":"...","content":"<the original text>"}

``content`` is the original message's text exactly as the queue held it (still encoded: base64 stays
base64, a large payload's reference stays a reference), so a redrive puts back the very same text.
The record itself never expires. docs/guide/poison.md describes every field for other languages.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Literal

from ._encoding import MAX_MESSAGE_BYTES
from ._errors import redact_text

__all__ = [
    "POISON_FORMATS",
    "Failures",
    "POISON_PREFIX",
    "VERSION",
    "PoisonFailure",
    "PoisonFormat",
    "PoisonRecord",
    "failure_of",
    "new_record",
    "record_text",
    "without_content",
]

POISON_MARKER = "aioqueue_poison"
POISON_PREFIX = '{"' + POISON_MARKER + '":'
VERSION = 1
PoisonFormat = Literal["record", "body"]
"""``poison_format``: a poison record (JSON), or the original message's text alone."""
POISON_FORMATS = ("record", "body")
FAILURE_TEXT = 2000  # characters of a failure's message kept at first (fewer when the record is too big)
MAX_FAILURES = 10  # the most failures one record lists: the latest ones
# Characters XML 1.0 (so a message) cannot carry: replaced in what aioqueue writes (a failure's text).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _time(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _clean(text: str, limit: int) -> str:
    """Text aioqueue writes into a record: secrets redacted, characters XML cannot carry replaced, at most
    ``limit`` characters (cut ones end in "...")."""
    text = _NOT_XML.sub("\ufffd", redact_text(text))
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


@dataclass(frozen=True)
class PoisonFailure:
    """One failure of a poisoned message: the exception's type (``module.Name``, or ``Name`` for a
    built-in) and text (redacted as errors are), when, and on which host and process."""

    type: str
    message: str
    time: datetime
    host: str
    pid: int

    def matches(self, error: str) -> bool:
        """Its type is ``error`` (with or without the module), or its text holds ``error`` (any case)."""
        return error in (self.type, self.type.rpartition(".")[2]) or error.lower() in self.message.lower()

    def _json(self, limit: int) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": _clean(self.message, limit),
            "time": _time(self.time),
            "host": self.host,
            "pid": self.pid,
        }


def failure_of(error: BaseException, when: datetime | None = None) -> PoisonFailure:
    """The :class:`PoisonFailure` of an exception (raised now, unless ``when``), text redacted."""
    kind = type(error)
    module = "aioqueue" if kind.__module__.startswith("aioqueue._") else kind.__module__  # its public name
    name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    try:
        text = str(error)
    except Exception:  # a handler's exception whose __str__ raises
        text = f"<{kind.__name__}: unprintable>"
    return PoisonFailure(
        type=name,
        message=_clean(text, FAILURE_TEXT),
        time=when or datetime.now(timezone.utc),
        host=socket.gethostname(),
        pid=os.getpid(),
    )


@dataclass(frozen=True)
class PoisonRecord:
    """A message of a poison queue, read: a poison record (``version`` set) or a bare body (``version``
    None: the poison copy of ``poison_format="body"``, of an Azure Functions app, or any other message).

    ``content`` is the original message's text exactly as its queue held it, still encoded (a bare body:
    the message's text). ``time_to_live`` is the original's in seconds (-1: it never expired).
    ``poison_id`` and ``poisoned_on`` are the poison queue message's id and insertion time when the record
    was read from a queue (a redrive's list); ``kind`` is ``"max_dequeue_count"``, ``"undecodable"`` or
    ``"explicit"`` (``message.poison(reason)``).
    """

    content: str
    source_queue: str | None = None
    message_id: str | None = None
    inserted_on: datetime | None = None
    time_to_live: int | None = None
    dequeue_count: int | None = None
    poisoned_on: datetime | None = None
    kind: str | None = None
    reason: str | None = None
    failures: tuple[PoisonFailure, ...] = ()
    trace_id: str | None = None
    version: int | None = None
    poison_id: str | None = None

    @property
    def is_record(self) -> bool:
        """True for a poison record, False for a bare body."""
        return self.version is not None

    @classmethod
    def parse(cls, text: str, *, poison_id: str | None = None, poisoned_on: datetime | None = None) -> PoisonRecord:
        """A poison queue message's text, read: a record when it is one (any version: fields it does not
        know are ignored), else a bare body."""
        bare = cls(content=text, poison_id=poison_id, poisoned_on=poisoned_on)
        if not text.startswith(POISON_PREFIX):
            return bare
        try:
            fields = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested past the recursion limit (hostile)
            return bare
        version, content = fields.get(POISON_MARKER), fields.get("content")
        if type(version) is not int or version < 1 or not isinstance(content, str) or _NOT_XML.search(content):
            return bare  # (content JSON escaped and no message can carry: never aioqueue's record)
        return cls(
            content=content,
            source_queue=_str(fields.get("source_queue")),
            message_id=_str(fields.get("message_id")),
            inserted_on=_parse_time(fields.get("inserted_on")),
            time_to_live=_int(fields.get("time_to_live")),
            dequeue_count=_int(fields.get("dequeue_count")),
            poisoned_on=_parse_time(fields.get("poisoned_on")) or poisoned_on,
            kind=_str(fields.get("kind")),
            reason=_str(fields.get("reason")),
            failures=_failures(fields.get("failures")),
            trace_id=_str(fields.get("trace_id")),
            version=version,
            poison_id=poison_id,
        )

    def matches(self, error: str) -> bool:
        """A failure's type or text names ``error``, or the reason holds it (any case); never a bare body."""
        if not self.is_record:
            return False
        reason = (self.reason or "").lower()
        return error.lower() in reason or any(f.matches(error) for f in self.failures)

    def text(self, *, failure_text: int = FAILURE_TEXT, failures: int = MAX_FAILURES) -> str:
        """The record's message text (a bare body's: its content), failures' texts cut to ``failure_text``
        characters, the latest ``failures`` of them."""
        if not self.is_record:
            return self.content
        fields: dict[str, Any] = {POISON_MARKER: self.version or VERSION}
        for name in ("source_queue", "message_id"):
            fields[name] = getattr(self, name)
        fields["inserted_on"] = _time(self.inserted_on) if self.inserted_on else None
        fields["time_to_live"] = self.time_to_live
        fields["dequeue_count"] = self.dequeue_count
        fields["poisoned_on"] = _time(self.poisoned_on) if self.poisoned_on else None
        fields["kind"] = self.kind
        fields["reason"] = _clean(self.reason or "", max(failure_text, 200))
        kept = self.failures[len(self.failures) - failures :] if failures else ()
        fields["failures"] = [f._json(failure_text) for f in kept]
        if self.trace_id:
            fields["trace_id"] = self.trace_id
        fields["content"] = self.content
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _failures(value: Any) -> tuple[PoisonFailure, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for item in value:
        if not isinstance(item, dict):
            continue
        out.append(
            PoisonFailure(
                type=_str(item.get("type")) or "",
                message=_str(item.get("message")) or "",
                time=_parse_time(item.get("time")) or datetime.fromtimestamp(0, timezone.utc),
                host=_str(item.get("host")) or "",
                pid=_int(item.get("pid")) or 0,
            )
        )
    return tuple(out)


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


# How a record too big for one message is cut, step by step: (failure text, failures listed).
_CUTS = ((FAILURE_TEXT, MAX_FAILURES), (500, 3), (100, 1), (0, 0))


def record_text(record: PoisonRecord) -> str | None:
    """The record's message text, at most 64 KiB: the failures' texts cut (then fewer failures listed,
    then none) until it fits; None when even that is too big (the original content is near 64 KiB),
    and the poison copy must be the bare body."""
    for text_limit, count in _CUTS:
        text = record.text(failure_text=text_limit, failures=count)
        if _size(text) <= MAX_MESSAGE_BYTES:
            return text
    return None


def new_record(
    content: str,
    *,
    source_queue: str,
    message_id: str,
    inserted_on: datetime,
    expires_on: datetime,
    dequeue_count: int,
    kind: str,
    reason: str,
    failures: Sequence[PoisonFailure],
    trace_id: str | None,
) -> PoisonRecord:
    """The record of a message poisoned now."""
    never = expires_on.year >= 9999
    ttl = -1 if never else max(1, round((expires_on - inserted_on).total_seconds()))
    return PoisonRecord(
        content=content,
        source_queue=source_queue,
        message_id=message_id,
        inserted_on=inserted_on,
        time_to_live=ttl,
        dequeue_count=dequeue_count,
        poisoned_on=datetime.now(timezone.utc),
        kind=kind,
        reason=reason,
        failures=tuple(failures),
        trace_id=trace_id,
        version=VERSION,
    )


def without_content(record: PoisonRecord) -> str:
    """The record's text with its content left out, for the log line of a record kept as a bare body."""
    return replace(record, content="").text(failure_text=500, failures=3)


class Failures:
    """One consumer's memory of handler failures, by message id, for the poison records: the latest
    MAX_FAILURES of each of the latest KEPT_MESSAGES messages (bounded, whatever the traffic)."""

    KEPT_MESSAGES = 256

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, list[PoisonFailure]] = OrderedDict()

    def add(self, msg_id: str, error: BaseException) -> None:
        kept = self._by_id.pop(msg_id, [])
        kept.append(failure_of(error))
        self._by_id[msg_id] = kept[-MAX_FAILURES:]
        while len(self._by_id) > self.KEPT_MESSAGES:
            self._by_id.popitem(last=False)

    def of(self, msg_id: str) -> tuple[PoisonFailure, ...]:
        return tuple(self._by_id.get(msg_id, ()))

    def forget(self, msg_id: str) -> None:
        self._by_id.pop(msg_id, None)
