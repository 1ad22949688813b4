"""Delivery at a time: ``send_message(..., deliver_at=...)`` or ``delay=...``.

Up to 7 days away, the message is sent as it is, hidden until then (the service's initial visibility
timeout), with a time to live of the wait plus the one asked for (default 7 days; -1 stays -1): it
lives as long after it is due as if it had been sent then.

Further away, it travels in an envelope, the whole message text (plain JSON, whatever the client's
message encoding), version 1::

    {"aioqueue_scheduled":1,"due":"2027-03-01T09:00:00Z","ttl":604800,"text":"<message text>"}

``due``: when it is due (UTC, whole seconds, rounded up). ``ttl``: the seconds it lives once due (-1:
never expires). ``text``: the message text exactly as the client's encoding made it (or a large
payload's reference). Each envelope is sent hidden for 7 days and expiring ``ttl`` after ``due``.
When a consumer of this package receives it before it is due, it re-enqueues it for the rest of the
wait (:func:`due_only`): the envelope again, or, once due within 7 days, the original text hidden
until ``due``; it sends the new message first and only then deletes the received one, so a crash or
a failure in between can duplicate it, never lose it. An envelope received when due is handed over
as its original text (a large payload's reference: fetched as it is handed over, as any other's,
and its blob deleted after its message). Whether due is judged by the service's clock: a received
message's ``TimeNextVisible`` less the visibility timeout it was received with. What no sender makes
(``text`` with a character XML 1.0 cannot carry, ``due`` more than 2**31-1 seconds ahead with ``ttl``)
is an ordinary message: re-enqueueing it could never succeed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ._dates import format_iso8601, parse_iso8601
from ._encoding import check_text
from ._errors import AioQueueError, ConfigurationError, MalformedResponse, MessageEncodingError, MessageTooLarge
from ._link import QueueLink
from ._messages import RawMessage, received_message
from ._models import QueueMessage
from ._validation import MAX_SECONDS, seconds

__all__ = ["ENVELOPE_PREFIX", "Envelope", "Schedule", "due_only", "envelope_as_text", "hop_query", "unwrap_peeked"]

log = logging.getLogger("aioqueue")

ENVELOPE_PREFIX = '{"aioqueue_scheduled":1,'
DEFAULT_TTL = 7 * 24 * 3600  # the service's default time to live
MAX_TTL = 2**31 - 1  # messagettl is a 32-bit int: about 68 years
UTC = timezone.utc


def _now() -> datetime:
    """The sender's clock (a test may stand it still)."""
    return datetime.now(UTC)


def hop_query(left: int, ttl: int) -> dict[str, str]:
    """Put Message's query for a message due in ``left`` seconds that lives ``ttl`` seconds once due
    (-1: never expires): hidden until due, or for 7 days (the service's longest) when it is further."""
    return {
        "visibilitytimeout": str(min(max(left, 0), MAX_SECONDS)),
        "messagettl": "-1" if ttl == -1 else str(max(left, 0) + ttl),
    }


@dataclass(frozen=True)
class Envelope:
    """A scheduled message's envelope: when it is due, its time to live from then, its text."""

    due: datetime
    ttl: int
    text: str

    def dump(self) -> str:
        """The envelope's text, checked against the service's 64 KiB."""
        fields = {"aioqueue_scheduled": 1, "due": format_iso8601(self.due), "ttl": self.ttl, "text": self.text}
        envelope = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        try:
            return check_text(envelope)
        except MessageTooLarge as exc:
            raise MessageTooLarge(
                f"{exc} (a message due more than 7 days ahead travels in an envelope: its text, JSON-escaped, "
                "plus about 80 bytes)"
            ) from None

    def reached(self, now: datetime) -> bool:
        """Is it due at most 2**31-1 seconds after ``now``, its ``ttl`` included (what a sender can
        schedule, and what a hop can send: the service refuses a longer ``messagettl``)? One that is
        not is an ordinary message."""
        return math.ceil((self.due - now).total_seconds()) + max(self.ttl, 0) <= MAX_TTL

    @classmethod
    def parse(cls, text: str | None) -> Envelope | None:
        """The envelope a message's text is, or None for any other text (one that only looks like
        an envelope, too: it is an ordinary message; so is one whose text no sender makes, which
        re-enqueueing could not send: a character XML 1.0 cannot carry, a lone surrogate)."""
        if text is None or not text.startswith(ENVELOPE_PREFIX):
            return None
        try:
            fields = json.loads(text)
            version, due, ttl, inner = fields["aioqueue_scheduled"], fields["due"], fields["ttl"], fields["text"]
            if type(version) is not int or version != 1 or type(due) is not str or type(inner) is not str:
                return None
            if type(ttl) is not int or not (ttl == -1 or 1 <= ttl <= MAX_TTL):
                return None
            check_text(inner)  # what a hop can send again: XML 1.0 characters only (MessageEncodingError)
            return cls(parse_iso8601(due), ttl, inner)
        except (ValueError, TypeError, KeyError, RecursionError, MalformedResponse, MessageEncodingError):
            return None


def _round_up(when: datetime) -> datetime:
    """``when`` in UTC, rounded up to a whole second (the service counts in seconds)."""
    when = when.astimezone(UTC)
    return when if not when.microsecond else when.replace(microsecond=0) + timedelta(seconds=1)


@dataclass(frozen=True)
class Schedule:
    """When a message is due, and how long it lives from then (-1: never expires); ``envelope``
    when it was more than 7 days away at the call."""

    due: datetime
    ttl: int
    envelope: bool

    @classmethod
    def build(cls, deliver_at: Any, delay: Any, visibility_timeout: Any, time_to_live: Any) -> Schedule | None:
        """The schedule of ``send_message``'s arguments (None without ``deliver_at`` and ``delay``),
        every one checked (ConfigurationError), before any request."""
        if deliver_at is None and delay is None:
            return None
        if deliver_at is not None and delay is not None:
            raise ConfigurationError("give deliver_at or delay, not both")
        if visibility_timeout is not None:
            raise ConfigurationError(
                "deliver_at and delay set the message's initial visibility; leave visibility_timeout out"
            )
        ttl = DEFAULT_TTL
        if time_to_live is not None:
            ttl = seconds(time_to_live, "time_to_live", low=1, high=MAX_TTL, allow_never=True)
        now = _now()
        if delay is not None:
            due = now + timedelta(seconds=seconds(delay, "delay", low=0, high=MAX_TTL))
        else:
            due = max(_aware(deliver_at), now)  # one in the past is due now
        if (due - now).total_seconds() + (0 if ttl == -1 else ttl) >= MAX_TTL:
            raise ConfigurationError(
                "a message can be scheduled at most 2**31-1 seconds (about 68 years) ahead, time_to_live included"
            )
        return cls(due, ttl, math.ceil((due - now).total_seconds()) > MAX_SECONDS)

    def query(self) -> dict[str, str]:
        """Put Message's query, now: hidden until due (for 7 days, at most), expiring ``ttl`` after."""
        return hop_query(math.ceil((self.due - _now()).total_seconds()), self.ttl)

    def text(self, inner: str) -> str:
        """The message text to send: in its envelope when the message is more than 7 days away."""
        return Envelope(_round_up(self.due), self.ttl, inner).dump() if self.envelope else inner


def _aware(deliver_at: Any) -> datetime:
    if not isinstance(deliver_at, datetime):
        raise ConfigurationError(f"deliver_at must be an aware datetime, not {type(deliver_at).__name__}")
    if deliver_at.tzinfo is None or deliver_at.utcoffset() is None:
        raise ConfigurationError(
            "deliver_at must be an aware datetime (with a tzinfo, e.g. datetime.now(timezone.utc) + ...); "
            "a naive one could mean any time zone"
        )
    return deliver_at


# ---- receiving --------------------------------------------------------------------------------


def _enveloped(raws: list[RawMessage]) -> bool:
    for raw in raws:
        text = raw.text
        if text is not None and text.startswith(ENVELOPE_PREFIX):
            return True
    return False


async def due_only(link: QueueLink, raws: list[RawMessage], visibility: int) -> tuple[list[RawMessage], int]:
    """The received messages to hand over, and how many were re-enqueued. A scheduled message due
    is its original text (a large payload's reference: held, to go once its message is deleted, and
    fetched as any other when it is handed over); one not yet due is re-enqueued for the rest of its
    wait and left out (re-enqueueing it failed: left out too, back after ``visibility`` seconds)."""
    if not _enveloped(raws):
        return raws, 0
    out: list[RawMessage] = []
    due: list[RawMessage] = []
    hops = 0
    for raw in raws:
        scheduled = _scheduled(raw, visibility)
        if scheduled is None:
            out.append(raw)
            continue
        envelope, message, now = scheduled
        if envelope.due <= now:
            due.append(raw._replace(text=envelope.text))
            out.append(due[-1])
        elif await _hop(link, message, envelope, raw.text or "", now):
            hops += 1
    if due:
        link.hold_payloads(due)
    return out, hops


def _scheduled(raw: RawMessage, visibility: int) -> tuple[Envelope, QueueMessage, datetime] | None:
    """A received message's envelope, the message, and the service's time when it was received
    (its ``TimeNextVisible`` less ``visibility``); None for an ordinary message."""
    envelope = Envelope.parse(raw.text)
    if envelope is None:
        return None
    try:
        message = received_message(raw, None, QueueMessage)
    except MalformedResponse:  # raised again as the answer is read
        return None
    now = message.next_visible_on - timedelta(seconds=visibility)  # the service's clock
    return (envelope, message, now) if envelope.reached(now) else None


async def _hop(link: QueueLink, message: QueueMessage, envelope: Envelope, text: str, now: datetime) -> bool:
    """Re-enqueue a scheduled message not due yet: the new message first (the envelope again, or,
    due within 7 days, the original text hidden until due), then the received one deleted. True
    once the new one is sent."""
    left = math.ceil((envelope.due - now).total_seconds())
    due = format_iso8601(envelope.due)
    try:
        await link.put_message(envelope.text if left <= MAX_SECONDS else text, hop_query(left, envelope.ttl))
    except AioQueueError as exc:
        log.warning(
            "scheduled message %s (due %s): re-enqueueing it failed; it is tried again when it is visible "
            "again: %s",
            message.id, due, exc,
        )  # fmt: skip
        return False
    link.count("rescheduled")
    try:
        await link.delete(message)
    except AioQueueError as exc:
        log.warning(
            "scheduled message %s (due %s) was re-enqueued, but deleting it failed; it comes back and is "
            "re-enqueued again (a duplicate, never a loss): %s",
            message.id, due, exc,
        )  # fmt: skip
    return True


def unwrap_peeked(raws: list[RawMessage]) -> list[RawMessage]:
    """Peeked messages as they will be delivered: a scheduled message's original text (a large
    payload's reference still, for the caller to fetch as any other's), due or not."""
    if not _enveloped(raws):
        return raws
    out: list[RawMessage] = []
    now = _now()  # only to tell one out of reach (decades away): this machine's clock will do
    for raw in raws:
        envelope = Envelope.parse(raw.text)
        out.append(raw if envelope is None or not envelope.reached(now) else raw._replace(text=envelope.text))
    return out


def envelope_as_text(decode: Callable[[RawMessage], Any]) -> Callable[[RawMessage], Any]:
    """``decode``, except that a scheduled message's envelope is its own text (peek's resolve=False)."""

    def shown(raw: RawMessage) -> Any:
        text = raw.text
        if text is not None and Envelope.parse(text) is not None:
            return text
        return decode(raw)

    return shown
