"""The event hooks of a client: what they see of each attempt (read-only, without secrets), how a
client's ``event_hooks=`` is checked, and how the transport calls them; and what an operation's
telemetry takes from each attempt (:class:`AttemptRecorder`)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from ._errors import ConfigurationError, redact_headers

Location = Literal["primary", "secondary"]


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """What a ``"request"`` event hook sees of one attempt, just before it is sent.

    Read-only, and without secrets: the ``sig`` of a SAS token (in ``url`` or a header) and the values
    of ``Authorization`` and the other credential headers are replaced by ``REDACTED``.
    """

    method: str
    url: str
    headers: CIMultiDictProxy[str]
    attempt: int  # 1 for the first try, 2 for the first retry, ...
    location: Location  # "primary", or "secondary" for the read-access geo-redundant secondary


@dataclass(frozen=True, slots=True)
class ResponseEvent:
    """What a ``"response"`` event hook sees of one attempt's outcome (every attempt, retried or not).

    ``status`` is None when no answer came (a connection error or timeout; ``error`` says which).
    """

    request: RequestEvent
    status: int | None
    headers: CIMultiDictProxy[str]
    request_id: str | None  # the service's x-ms-request-id
    elapsed: float  # seconds from sending to the whole answer read
    error: str | None = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def url(self) -> str:
        return self.request.url

    @property
    def attempt(self) -> int:
        return self.request.attempt

    @property
    def location(self) -> Location:
        return self.request.location


RequestHook = Callable[[RequestEvent], Awaitable[None] | None]
ResponseHook = Callable[[ResponseEvent], Awaitable[None] | None]
NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class Hooks(NamedTuple):
    request: tuple[RequestHook, ...] = ()
    response: tuple[ResponseHook, ...] = ()


def check_event_hooks(event_hooks: Mapping[str, Iterable[Callable[..., object]]] | None) -> Hooks | None:
    """httpx's shape: ``{"request": [fn, ...], "response": [fn, ...]}``; fns may be sync or async."""
    if event_hooks is None:
        return None
    if not isinstance(event_hooks, Mapping):
        raise ConfigurationError('event_hooks must be a mapping like {"request": [...], "response": [...]}')
    unknown = set(event_hooks) - {"request", "response"}
    if unknown:
        raise ConfigurationError(f"event_hooks keys are 'request' and 'response'; got {sorted(map(str, unknown))}")
    found: dict[str, tuple[Callable[..., object], ...]] = {}
    for kind, hooks in event_hooks.items():
        if callable(hooks) or isinstance(hooks, (str, bytes)) or not isinstance(hooks, Iterable):
            raise ConfigurationError(f"event_hooks[{kind!r}] must be a list of callables")
        found[kind] = tuple(hooks)
        if not all(callable(h) for h in found[kind]):
            raise ConfigurationError(f"event_hooks[{kind!r}] must hold only callables")
    hooks_ = Hooks(found.get("request", ()), found.get("response", ()))  # type: ignore[arg-type]
    return hooks_ if hooks_.request or hooks_.response else None


async def call_hooks(hooks: tuple[Callable[..., object], ...], event: object) -> None:
    for hook in hooks:
        result = hook(event)
        if inspect.isawaitable(result):
            await result


def response_event(
    event: RequestEvent, started: float, status: int | None, headers: CIMultiDictProxy[str], error: str | None = None
) -> ResponseEvent:
    request_id = headers.get("x-ms-request-id")
    return ResponseEvent(event, status, headers, request_id, time.monotonic() - started, error)


def visible_headers(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(redact_headers(headers)))


class AttemptRecorder(Protocol):
    """What an operation's telemetry takes from the retry loop (``on`` False: nothing, and the loop
    does not even read the clock for it)."""

    on: bool

    def attempt(
        self,
        *,
        attempt: int,
        method: str,
        status: int | None,
        request_id: str | None,
        error: BaseException | None,
        seconds: float,
        retrying: bool,
    ) -> None: ...


class _NotRecorded:
    on = False

    def attempt(self, **_: object) -> None:  # pragma: no cover - never called while on is False
        return None


NOT_RECORDED: AttemptRecorder = _NotRecorded()
