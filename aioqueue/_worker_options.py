"""The worker's options, written once: :class:`WorkerOptions` (the keywords of ``worker()`` and
``process()`` besides the receive options, as users and mypy see them) and :class:`WorkerSettings`
(their defaults and checks). ``aioqueue worker`` builds its flags from the same names."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypedDict

from ._options import ReceiveOptions
from ._settle import ReceivedMessage
from ._validation import nonnegative_seconds, positive_int, positive_number

__all__ = ["FailureHook", "Handler", "PoisonHook", "ProcessOptions", "WorkerOptions", "WorkerSettings"]

Handler = Callable[[ReceivedMessage], Awaitable[Any]]
"""An ``async def handler(message)``; its return value is ignored."""
FailureHook = Callable[[ReceivedMessage, BaseException], object]
"""``on_failure(message, error)`` / ``on_lease_lost(message, error)``: a plain or async function."""
PoisonHook = Callable[[ReceivedMessage, str], object]
"""``on_poison(message, why)``: a plain or async function."""


class WorkerOptions(TypedDict, total=False):
    """The worker's own options (defaults in brackets).

    - ``concurrency`` [16]: handlers running at once.
    - ``stop`` [None]: an ``asyncio.Event``; setting it stops the worker gracefully.
    - ``handler_timeout`` [None]: a handler running longer is cancelled and counted as failed.
    - ``shutdown_timeout`` [None]: after stop, handlers still running this much later are cancelled
      and their messages released (``None``: they finish, however long).
    - ``on_failure(message, error)`` [None]: after a handler raised (or timed out) and its message was released.
    - ``on_poison(message, why)`` [None]: after a message moved to the poison queue.
    - ``on_lease_lost(message, error)`` [None]: when a handled message could not be deleted because its
      lease was lost (the service refused its pop receipt), or its renewals stopped before it was
      settled (once a message). A delete that failed otherwise (an outage) is counted in
      ``delete_failed`` and logged, not told here.
    """

    concurrency: int
    stop: asyncio.Event | None
    handler_timeout: float | None
    shutdown_timeout: float | None
    on_failure: FailureHook | None
    on_poison: PoisonHook | None
    on_lease_lost: FailureHook | None


class ProcessOptions(WorkerOptions, ReceiveOptions, total=False):
    """Every keyword of ``worker()`` and ``process()``: :class:`WorkerOptions` and :class:`ReceiveOptions`."""


@dataclass(frozen=True)
class WorkerSettings:
    """The checked worker options; the defaults here are the only ones."""

    concurrency: int = 16
    stop: asyncio.Event | None = None
    handler_timeout: float | None = None
    shutdown_timeout: float | None = None
    on_failure: FailureHook | None = None
    on_poison: PoisonHook | None = None
    on_lease_lost: FailureHook | None = None

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> WorkerSettings:
        """Check the worker's options (a misspelt one is caught by the caller, with the receive options)."""
        merged: dict[str, Any] = {**_DEFAULTS, **options}
        positive_int(merged["concurrency"], "concurrency")
        if merged["handler_timeout"] is not None:
            merged["handler_timeout"] = positive_number(merged["handler_timeout"], "handler_timeout")
        if merged["shutdown_timeout"] is not None:
            merged["shutdown_timeout"] = nonnegative_seconds(merged["shutdown_timeout"], "shutdown_timeout")
        if merged["stop"] is not None and not isinstance(merged["stop"], asyncio.Event):
            raise TypeError("stop must be an asyncio.Event")
        for hook in ("on_failure", "on_poison", "on_lease_lost"):
            if merged[hook] is not None and not callable(merged[hook]):
                raise TypeError(f"{hook} must be a function (plain or async) or None")
        return cls(**merged)


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(WorkerSettings)}
WORKER_NAMES = frozenset(WorkerOptions.__annotations__)  # a test checks these name the same options as _DEFAULTS
