"""The autoscaling signals ``aioqueue worker --metrics-port`` exports beside the client's metrics: the
queue's lag (:meth:`QueueClient.lag`: how long the next message has waited, and the approximate count),
measured in the background every ``--lag-interval`` so that a scrape (or a storm of them) sends no
request, and the worker's in-flight counts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ._models import QueueLag
from ._worker import Worker

__all__ = ["DEFAULT_INTERVAL", "LagSampler", "add_gauges"]

log = logging.getLogger("aioqueue")

DEFAULT_INTERVAL = 15.0  # seconds between measurements: two requests each, 11,520 a day per process


class Measure(Protocol):
    """``QueueClient.lag``: a measurement, bounded by the ``previous`` one."""

    def __call__(self, *, previous: QueueLag | None) -> Awaitable[QueueLag]: ...


class LagSampler:
    """Measures the queue's lag every ``interval`` seconds (after each measurement ends) in a task of its
    own; :attr:`latest` is the last measurement, None before the first and while measuring fails (so a
    stale value never stands in for a queue that cannot be reached). ``measure`` is given the last
    measurement that worked (None at first): ``QueueClient.lag(previous=...)`` bounds the age with it,
    so a message that was hidden until due (``delay``) or given back after a failure does not show
    its wait since insertion the moment it is visible."""

    def __init__(self, measure: Measure, interval: float) -> None:
        self._measure = measure
        self.interval = interval
        self.latest: QueueLag | None = None
        self._last: QueueLag | None = None  # the last measurement that worked, kept through failures
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                self.latest = self._last = await self._measure(previous=self._last)
            except Exception as exc:  # an outage, a refusal: the gauges go quiet until it works again
                self.latest = None
                failures += 1
                if failures == 1:
                    log.warning("measuring the queue's lag failed; its gauges are left out until it works: %s", exc)
                else:
                    log.debug("measuring the queue's lag failed again (%d in a row): %s", failures, exc)
            else:
                if failures:
                    log.info("measuring the queue's lag works again after %d failures", failures)
                failures = 0
            await asyncio.sleep(self.interval)


def add_gauges(meter: Any, worker: Worker, sampler: LagSampler, attrs: dict[str, str]) -> None:
    """The gauges of the queue's lag (from ``sampler``) and of the worker's prefetched messages."""
    from opentelemetry.metrics import Observation

    def lag_of(read: Callable[[QueueLag], float]) -> Callable[[Any], list[Any]]:
        def observe(options: Any) -> list[Any]:
            latest = sampler.latest
            return [] if latest is None else [Observation(read(latest), attrs)]

        return observe

    meter.create_observable_gauge(
        "aioqueue.queue.oldest_message_age",
        callbacks=[lag_of(_age_seconds)],
        unit="s",
        description="How long the next message has waited for a handler (0 when none is waiting), measured "
        "every --lag-interval",
    )
    meter.create_observable_gauge(
        "aioqueue.queue.messages",
        callbacks=[lag_of(lambda lag: lag.approximate_message_count)],
        unit="{message}",
        description="Approximate number of messages in the queue, visible or not, measured every --lag-interval",
    )
    meter.create_observable_gauge(
        "aioqueue.worker.prefetched",
        callbacks=[lambda options: [Observation(worker.prefetched, attrs)]],
        unit="{message}",
        description="Messages fetched and not yet handed to a handler",
    )


def _age_seconds(lag: QueueLag) -> float:
    age = lag.oldest_message_age
    return 0.0 if age is None else age.total_seconds()
