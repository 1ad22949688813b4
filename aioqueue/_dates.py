"""Every date aioqueue writes or reads, independent of the process locale.

``time.strftime("%a, %d %b")`` follows ``LC_TIME``: a service that calls
``locale.setlocale(LC_TIME, "de_DE")`` would send ``Fr, 27 Nov`` and every signed request would
fail. Day and month names therefore come from fixed English tables, never from the C library.

- RFC 1123 (HTTP dates): ``x-ms-date``, the message times in Get/Peek/Put Messages answers.
- ISO 8601 (``Z``): SAS tokens and the user delegation key request in whole seconds (the SAS
  spec's form); stored access policies with the fraction when the time has one (Azure stores and
  returns 7 digits, so a policy read and written back keeps its times).
"""

from __future__ import annotations

import functools
import re
import time
from datetime import datetime, timezone

from ._errors import MalformedResponse

__all__ = [
    "RequestDate",
    "format_iso8601",
    "format_iso8601_fraction",
    "format_rfc1123",
    "parse_iso8601",
    "parse_rfc1123",
]

UTC = timezone.utc
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_ISO_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z?", re.ASCII)


def format_rfc1123(value: datetime | float) -> str:
    """An HTTP date (``Fri, 09 Oct 2009 21:04:30 GMT``) from an aware datetime or epoch seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: give an aware one (e.g. tzinfo=timezone.utc)")
        t = value.astimezone(UTC).timetuple()
    else:
        t = time.gmtime(value)
    return (
        f"{_DAY_NAMES[t.tm_wday]}, {t.tm_mday:02d} {_MONTH_NAMES[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


@functools.lru_cache(maxsize=1024)
def parse_rfc1123(text: str) -> datetime:
    """An aware UTC datetime from an HTTP date; anything else is :class:`MalformedResponse`."""
    try:
        _, day, month, year, clock, gmt = text.split()
        hh, mm, ss = clock.split(":")
        if gmt != "GMT" or not (day + year + hh + mm + ss).isascii():
            raise ValueError(text)
        return datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
    except (ValueError, KeyError):
        raise MalformedResponse(f"bad date in the response: {text[:40]!r}") from None


def format_iso8601(value: datetime) -> str:
    """``2026-11-27T11:48:01Z``: how SAS tokens and access policies carry a time (second precision)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: give an aware one (e.g. tzinfo=timezone.utc)")
    v = value.astimezone(UTC)
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}Z"


def format_iso8601_fraction(value: datetime) -> str:
    """``2024-06-06T20:40:45.1173310Z`` (7 digits, as Azure writes them) when ``value`` has a fraction of
    a second, else :func:`format_iso8601`'s ``2024-06-06T20:40:45Z``: how access policies carry a time."""
    text = format_iso8601(value)  # refuses a naive datetime
    micro = value.astimezone(UTC).microsecond
    return text if not micro else f"{text[:-1]}.{micro:06d}0Z"


def parse_iso8601(text: str) -> datetime:
    """An aware UTC datetime from ``2009-09-28T08:49:37.0000000Z`` (any fraction length)."""
    m = _ISO_RE.fullmatch(text.strip())
    if m is None:
        raise MalformedResponse(f"bad date in the response: {text[:40]!r}")
    y, mo, d, h, mi, s, frac = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=UTC)
    except ValueError:
        raise MalformedResponse(f"bad date in the response: {text[:40]!r}") from None


class RequestDate:
    """The ``x-ms-date`` header's value. It changes once a second, so it is formatted once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._value = format_rfc1123(second)
            self._second = second
        return self._value
