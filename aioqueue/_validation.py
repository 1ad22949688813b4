"""Argument checks that run before any request; each failure is a ConfigurationError naming the problem."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ._errors import ConfigurationError

MAX_SECONDS = 7 * 24 * 3600  # 7 days: the longest visibility timeout the service allows
SERVICE_VISIBILITY = 30  # the service's visibility timeout when Get Messages names none
# Every pattern is used with fullmatch and spells its classes in ASCII: re.match(...$) lets a trailing
# newline through, and \d matches full-width and other non-ASCII digits.
_QUEUE_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
_METADATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_API_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# what the service issues as message ids (GUIDs) and pop receipts (base64-like): no '.', so no dot
# segment (".." in DELETE .../messages/.. would name the queue to a path-normalising hop)
POP_RECEIPT = re.compile(r"[A-Za-z0-9+/=_-]{1,1024}")
MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,1024}")
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9]{1,64}")  # Azure: 3-24 lowercase; emulators are freer
# control characters, and what XML or UTF-8 cannot carry (lone surrogates, U+FFFE, U+FFFF)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

Duration = int | float | timedelta


def queue_name(name: Any) -> str:
    """3-63 characters: lowercase letters, digits and single hyphens, starting and ending alphanumeric."""
    if not isinstance(name, str):
        raise ConfigurationError(f"queue name must be a str, not {type(name).__name__}")
    if not _QUEUE_NAME.fullmatch(name):
        raise ConfigurationError(
            f"invalid queue name {name[:80]!r}: use 3-63 lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def seconds(value: Any, what: str, *, low: int, high: int | None = MAX_SECONDS, allow_never: bool = False) -> int:
    """A duration (seconds or timedelta) as whole seconds, rounded up, within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, timedelta)):
        raise ConfigurationError(f"{what} must be seconds (int or float) or a timedelta, not {type(value).__name__}")
    if allow_never and not isinstance(value, timedelta) and value == -1:
        return -1
    try:
        raw = value.total_seconds() if isinstance(value, timedelta) else float(value)
    except OverflowError:  # an int too large for a float
        raw = math.inf
    if math.isnan(raw) or math.isinf(raw):
        raise ConfigurationError(f"{what} must be a finite duration")
    whole = math.ceil(raw)
    if whole < low or (high is not None and whole > high):
        limit = f"{low}..{high} seconds" if high is not None else f">= {low} seconds"
        never = " (or -1 for never)" if allow_never else ""
        raise ConfigurationError(f"{what} must be {limit}{never}; got {raw:g}")
    return whole


def message_count(value: Any, what: str = "max_messages") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise ConfigurationError(f"{what} must be an int from 1 to 32 (the service's limit per call); got {value!r}")
    return value


def metadata_headers(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """``x-ms-meta-*`` headers; names are C# identifiers (case-insensitive), values printable ASCII."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ConfigurationError("metadata must be a mapping of str to str")
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in metadata.items():
        if not isinstance(name, str) or not _METADATA_NAME.fullmatch(name):
            raise ConfigurationError(
                f"invalid metadata name {str(name)[:64]!r}: use letters, digits and '_', not starting with a digit"
            )
        if name.lower() in seen:
            raise ConfigurationError(f"metadata name {name!r} is given twice (names are case-insensitive)")
        seen.add(name.lower())
        if not isinstance(value, str):
            raise ConfigurationError(f"metadata value for {name!r} must be a str, not {type(value).__name__}")
        if not all(" " <= c <= "~" for c in value):
            raise ConfigurationError(f"metadata value for {name!r} must be printable ASCII (encode other text first)")
        headers[f"x-ms-meta-{name}"] = value
    return headers


def api_version(value: Any) -> str:
    if not isinstance(value, str) or not _API_VERSION.fullmatch(value):
        raise ConfigurationError(f"api_version must look like '2025-11-05', not {value!r}")
    return value


def positive_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ConfigurationError(f"{what} must be a positive number of seconds; got {value!r}")
    return float(value)


def nonnegative_seconds(value: Any, what: str) -> float:
    """Seconds (int, float or timedelta) >= 0, as a float."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(f"{what} must be a number of seconds >= 0 (or a timedelta); got {value!r}")
    return float(value)


def positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{what} must be an int >= 1; got {value!r}")
    return value


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
# headers aioqueue owns: the signature covers them, or the connection depends on them
_OWNED_HEADERS = frozenset(
    {"authorization", "x-ms-date", "x-ms-version", "date", "content-length", "content-type", "host"}
)
# standard headers Shared Key signs by name: sent in the spelling the signer looks up
_SIGNED_HEADERS = {
    name.lower(): name
    for name in (
        "Content-Encoding",
        "Content-Language",
        "Content-MD5",
        "If-Modified-Since",
        "If-Match",
        "If-None-Match",
        "If-Unmodified-Since",
        "Range",
    )
}


def user_agent(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or not all(" " <= c <= "~" for c in value):
        raise ConfigurationError("user_agent must be a non-empty str of printable ASCII")
    return value.strip()


def user_headers(headers: Any) -> dict[str, str]:
    """Extra request headers a caller adds to one operation (e.g. ``x-ms-client-request-id``)."""
    if not isinstance(headers, Mapping):
        raise ConfigurationError("headers must be a mapping of header name to str value")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigurationError(f"{str(name)[:64]!r} is not a valid header name")
        if name.lower() in _OWNED_HEADERS:
            raise ConfigurationError(f"the {name} header is set by aioqueue (it is signed or owned by the connection)")
        if not isinstance(value, str) or not all(" " <= c <= "~" or c == "\t" for c in value):
            raise ConfigurationError(f"the {name} header's value must be a str of printable ASCII (no line breaks)")
        if name.lower() in (k.lower() for k in checked):
            raise ConfigurationError(f"the {name} header is given twice (names are case-insensitive)")
        checked[_SIGNED_HEADERS.get(name.lower(), name)] = value
    return checked


def message_id(value: Any) -> str:
    """A message id as the service issues it (a GUID): never empty, a dot segment or a path."""
    if not isinstance(value, str) or not MESSAGE_ID.fullmatch(value):
        raise ConfigurationError(
            f"message id {str(value)[:80]!r} is not one the service issues (letters, digits, '-' and '_')"
        )
    return value


def pop_receipt(value: Any) -> str:
    """A pop receipt as the service issues it (base64-like text)."""
    if not isinstance(value, str) or not POP_RECEIPT.fullmatch(value):
        raise ConfigurationError("the pop receipt is not one the service issues (base64 letters, digits, '+/=-_')")
    return value


def signed_identifier(value: Any, what: str = "policy id") -> str:
    """A stored access policy's id: 1..64 characters, no control characters (no newline, no NUL) and
    nothing XML cannot carry."""
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or _CONTROL.search(value):
        raise ConfigurationError(
            f"{what} must be a str of 1 to 64 characters without control characters (or ones XML cannot carry)"
        )
    return value


def account_name(value: Any) -> str:
    """A storage account's name: letters and digits only (nothing that could reshape what is signed)."""
    if not isinstance(value, str) or not _ACCOUNT_NAME.fullmatch(value):
        raise ConfigurationError(
            f"account name {str(value)[:40]!r} must be letters and digits (Azure's are 3-24 lowercase ones)"
        )
    return value
