"""Azure's weather on demand: injected failures, lost answers, slow or held answers, and throttling.

A fault names an operation (``"get_messages"``, ``"put_message"``, ... or None for any) and how many
requests it takes (``times``); the first fault registered that matches a request takes it. Throttling
counts the messages each queue served in the last second of the service's clock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from ._auth import OPERATIONS

__all__ = ["Fault", "Faults", "Gate", "Throttle"]

Kind = Literal["fail", "lose", "drop", "truncate", "slow", "hold"]


@dataclass
class Gate:
    """Holds requests at a known point: ``arrived`` is set when one is held, the test sets ``release``
    to let it (and any later one the same hold takes) go on, ``done`` is set once it has been answered."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Fault:
    kind: Kind
    operation: str | None
    times: int
    status: int = 503
    code: str = "ServerBusy"
    message: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    gate: Gate | None = None
    after: bool = False  # hold: after the work is done (before the answer), not before it


def check_operation(operation: str | None) -> str | None:
    if operation is not None and operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; one of: {', '.join(sorted(OPERATIONS))} (or None)")
    return operation


def check_times(times: int) -> int:
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError(f"times must be an int >= 1, not {times!r}")
    return times


class Faults:
    """The faults still to happen, in the order they were asked for."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._pending.append(fault)

    def take(self, operation: str) -> Fault | None:
        """The first pending fault for ``operation``, counted down (and forgotten once spent)."""
        for i, fault in enumerate(self._pending):
            if fault.operation is None or fault.operation == operation:
                fault.times -= 1
                if fault.times == 0:
                    del self._pending[i]
                return fault
        return None

    def clear(self) -> None:
        self._pending.clear()


class Throttle:
    """Per queue, at most ``limit`` messages in any second of the service's clock (None: no limit).

    Azure's scalability target for one queue is 2,000 messages a second; over it, the service answers
    503 ServerBusy. Each message operation counts as its number of messages (Put, Update and Delete
    Message one, Get and Peek Messages the number asked for)."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self._served: dict[str, deque[tuple[datetime, int]]] = {}

    def admit(self, queue: str, messages: int, now: datetime) -> bool:
        """Whether ``messages`` more fit in the queue's last second; if so they are counted."""
        if self.limit is None:
            return True
        window = self._served.setdefault(queue, deque())
        while window and window[0][0] <= now - timedelta(seconds=1):
            window.popleft()
        if sum(n for _, n in window) + messages > self.limit:
            return False
        window.append((now, messages))
        return True
