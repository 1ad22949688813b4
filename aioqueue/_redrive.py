"""``QueueClient.redrive``: a poison queue's messages back to their queues, safely.

Each message is re-sent (the original text, exactly) *before* it is deleted from the poison queue, so a
crash or a lost answer can only leave a duplicate, never lose a message. Every message the run looks at
stays hidden while it runs (``visibility`` seconds, renewed by fetching it again), so each is considered
once; the ones it leaves (filtered out, beyond ``limit``, a dry run's) are made visible again at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from ._dates import parse_rfc1123
from ._errors import (
    AioQueueError,
    ConfigurationError,
    MessageNotFound,
    PopReceiptMismatch,
    QueueNotFound,
    TransportError,
)
from ._messages import RawMessage
from ._models import SendReceipt
from ._operations import Pool, QueueOperations
from ._poison import PoisonRecord
from ._validation import MAX_SECONDS, Duration, nonnegative_seconds, positive_int
from ._validation import message_id as check_message_id
from ._validation import pop_receipt as check_pop_receipt
from ._validation import queue_name as check_queue_name

__all__ = ["RedriveError", "RedriveResult", "Redriver", "redrive_filter"]

log = logging.getLogger("aioqueue")

_clock, _sleep = time.monotonic, asyncio.sleep  # the pace's (a test records the waits)
VISIBILITY = 300  # seconds a message the run looks at stays hidden (at least)
_RELEASES_AT_ONCE = 16


@dataclass(frozen=True)
class RedriveResult:
    """What a :meth:`~aioqueue.QueueClient.redrive` did.

    - ``moved``: messages re-sent to their target and then deleted from the poison queue (or whose
      delete failed: see ``duplicates``).
    - ``skipped``: messages a filter (``error``, ``older_than``, ``newer_than``, ``ids``) left in the
      poison queue, and messages this run re-sent that were poisoned again while it ran (left for the
      next run: a run never chases its own messages).
    - ``duplicates``: messages that may reach their target twice: re-sent, but their poison message was
      then taken by someone else (its delete found it gone), or its delete failed or was not answered (it
      may still be there, and a later redrive sends it again); a re-send retried after a lost answer (the
      target may hold it twice); a second record of a message this run moved already (it was poisoned
      twice); or a re-send whose answer was lost (the target may have it; the poison message stays).
      Never a loss: a message leaves the poison queue only after its target answered that it has it.
    - ``no_target``: messages left in the poison queue for want of a target: bare bodies (no poison
      record: ``poison_format="body"``, an Azure Functions poison queue) when no ``to=`` named their
      queue, and records whose source queue does not exist (a warning names it).
    - ``would_move``: with ``dry_run``, what would move (a :class:`PoisonRecord` each, ``poison_id`` set);
      empty otherwise.
    """

    moved: int = 0
    skipped: int = 0
    duplicates: int = 0
    no_target: int = 0
    dry_run: bool = False
    would_move: tuple[PoisonRecord, ...] = ()


class RedriveError(AioQueueError):
    """A redrive stopped part-way: ``error`` is the failure (also ``__cause__``), ``result`` what was
    done before it (a message whose re-send may have landed is counted in ``duplicates``)."""

    def __init__(self, error: AioQueueError, result: RedriveResult) -> None:
        super().__init__(
            f"redrive stopped after moving {result.moved} message{'s' if result.moved != 1 else ''} "
            f"({result.duplicates} possible duplicates): {error}"
        )
        self.error = error
        self.result = result


@dataclass(frozen=True)
class RedriveFilter:
    """Which poison messages a redrive moves (all, by default)."""

    error: str | None = None
    older_than: float | None = None
    newer_than: float | None = None
    ids: frozenset[str] | None = None

    def admits(self, record: PoisonRecord, now: datetime) -> bool:
        if self.ids is not None and record.poison_id not in self.ids and record.message_id not in self.ids:
            return False
        if self.older_than is not None or self.newer_than is not None:
            when = record.poisoned_on
            age = (now - when).total_seconds() if when is not None else 0.0
            if self.older_than is not None and age < self.older_than:
                return False
            if self.newer_than is not None and age > self.newer_than:
                return False
        return self.error is None or record.matches(self.error)


def redrive_filter(
    error: str | None, older_than: Duration | None, newer_than: Duration | None, ids: Iterable[str] | None
) -> RedriveFilter:
    """The filter of ``redrive``'s arguments, checked (ConfigurationError, before any request)."""
    if error is not None and (not isinstance(error, str) or not error):
        raise ConfigurationError("error must be a non-empty str: an exception type's name or text of its message")
    old = None if older_than is None else nonnegative_seconds(older_than, "older_than")
    new = None if newer_than is None else nonnegative_seconds(newer_than, "newer_than")
    wanted = None
    if ids is not None:
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise ConfigurationError("ids must be an iterable of message ids (str), not one str")
        listed = list(ids)
        if not all(isinstance(i, str) and i for i in listed):
            raise ConfigurationError("ids must be message ids (non-empty str)")
        wanted = frozenset(listed)
    return RedriveFilter(error, old, new, wanted)


def _maybe_sent(error: AioQueueError) -> bool:
    """Might a failed request have been done (an attempt sent, its answer lost)?"""
    if isinstance(error, TransportError):
        return not error.unsent
    return bool(getattr(error, "maybe_applied", False))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class Redriver:
    """One redrive run over a poison queue."""

    def __init__(
        self,
        poison: QueueOperations,
        to: str | None,
        *,
        dry_run: bool,
        limit: int | None,
        rate: float | None,
        where: RedriveFilter,
        on_progress: Callable[[RedriveResult], object] | None = None,
    ) -> None:
        if poison.closed:
            raise ConfigurationError("this client is closed; create a new one (or use it inside 'async with')")
        if to is not None:
            check_queue_name(to)
            if to == poison.queue_name:
                raise ConfigurationError(f"to= names the poison queue itself ({to!r})")
        if not isinstance(dry_run, bool):
            raise ConfigurationError("dry_run must be True or False")
        if limit is not None:
            positive_int(limit, "limit")
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf
        ):
            raise ConfigurationError(f"rate must be a positive number (of messages a second); got {rate!r}")
        if on_progress is not None and not callable(on_progress):
            raise ConfigurationError(f"on_progress must be a function of a RedriveResult, or None; got {on_progress!r}")
        # texts as stored: a large payload's reference is never resolved (nor its blob touched)
        self.poison = QueueOperations(Pool(poison.pool.http, poison.pool.telemetry), poison.queue_name, poison.encoding)
        self.to, self.dry_run, self.limit, self.where = to, dry_run, limit, where
        self.interval = 1 / rate if rate else 0.0
        self.visibility = VISIBILITY if not rate else min(MAX_SECONDS, max(VISIBILITY, math.ceil(64 / rate)))
        self.on_progress = on_progress
        self.result = RedriveResult(dry_run=dry_run)
        self.planned: list[PoisonRecord] = []
        self._targets: dict[str, QueueOperations] = {}
        self._missing: set[str] = set()  # source queues that do not exist: their records are left
        self._present: set[str] = set()  # target queues a dry run found (or could not look at)
        self._gone: set[str] = set()  # the poison messages deleted (moved, or taken meanwhile)
        self._held: dict[str, RawMessage] = {}  # looked at and left (id, receipt): visible again at the end
        self._seen: set[str] = set()
        self._moved: set[str] = set()  # the original ids of the records moved
        self._sent_ids: set[str] = set()  # the ids of the messages re-sent, in their targets
        self._sent_texts: dict[bytes, datetime] = {}  # what was re-sent (digest): when first (service time)
        self._bare = 0  # bare bodies left for want of to=
        self._next_send = 0.0

    def _count(self, **changes: int) -> None:
        result = self.result
        self.result = replace(result, **{k: getattr(result, k) + v for k, v in changes.items()})
        if self.on_progress is not None:
            self.on_progress(self.snapshot())

    def snapshot(self) -> RedriveResult:
        return replace(self.result, would_move=tuple(self.planned))

    def _left(self) -> int | None:
        """How many more may move (or be planned), None without a limit."""
        return None if self.limit is None else self.limit - self.result.moved - len(self.planned)

    def _done(self) -> bool:
        left = self._left()
        return left is not None and left <= 0

    async def run(self) -> RedriveResult:
        try:
            while not self._done():
                left = self._left()
                wanted = 32 if left is None else min(32, left)
                batch, _ = await self.poison.get_messages(wanted, self.visibility)
                if not batch:
                    break
                await self._consider_all(batch)
        except AioQueueError as exc:
            raise RedriveError(exc, self.snapshot()) from exc
        finally:
            await self._release_held()
        if self._bare:
            log.warning(
                "%d messages of %s have no poison record (a bare body: poison_format='body', or an Azure "
                "Functions poison queue), so their queue is unknown; they were left: pass to= to redrive them",
                self._bare,
                self.poison.queue_name,
            )
        return self.snapshot()

    def _hold(self, raw: RawMessage) -> None:
        """Leave ``raw`` in the poison queue: made visible again at the end (by its newest receipt; its
        text is not kept)."""
        self._held[raw.id] = raw._replace(text=None)

    def _leave(self, raw: RawMessage, **counts: int) -> None:
        self._hold(raw)
        self._count(**counts)

    async def _consider_all(self, batch: list[RawMessage]) -> None:
        for at, raw in enumerate(batch):
            try:
                await self._consider(raw)
            except BaseException:
                # stopped (a failure, a cancellation): the one under way, unless it left the poison queue
                # (a failed re-send or delete: it stays there), and the rest, fetched but not looked at,
                # are visible again at the end
                if raw.id not in self._gone:
                    self._hold(raw)
                for rest in batch[at + 1 :]:
                    self._hold(rest)
                raise

    async def _consider(self, raw: RawMessage) -> None:
        """One fetched message: moved, planned (dry run), or held and left."""
        if raw.id in self._seen or self._done():  # back again (its visibility lapsed), or past the limit
            self._hold(raw)
            return
        self._seen.add(raw.id)
        poisoned_on = parse_rfc1123(raw.inserted_on) if raw.inserted_on else None
        record = PoisonRecord.parse(raw.text or "", poison_id=raw.id, poisoned_on=poisoned_on)
        target = self.to or record.source_queue
        if self._came_back(record) or not self.where.admits(record, datetime.now(timezone.utc)):
            self._leave(raw, skipped=1)
        elif target is None or not _valid_queue(target) or target in self._missing:
            self._bare += target is None
            self._leave(raw, no_target=1)
        elif target == self.poison.queue_name:  # a record naming the poison queue itself as its source
            self._leave(raw, no_target=1)
        elif self.dry_run:
            if await self._missing_target(raw, target):
                return
            self.planned.append(record)
            self._leave(raw)
        else:
            await self._pace()
            await self._move(raw, record, target)

    async def _missing_target(self, raw: RawMessage, target: str) -> bool:
        """A dry run's look at ``target`` (once a queue, on the primary, where a real run sends): a missing
        source queue leaves ``raw`` (True), as a real run would; a missing ``to=`` queue stops the run, as
        it stops a real one. A look that fails (a credential that may send but not read a queue's
        metadata) lists the records all the same: a real run would try them."""
        if target in self._present:
            return False
        try:
            exists = await self._target(target).exists(extra=None, where="primary")
        except AioQueueError as exc:
            log.warning("dry run: whether queue %s exists could not be told (%s); its records are listed",
                        target, exc)  # fmt: skip
            exists = True
        if exists:
            self._present.add(target)
            return False
        if self.to is not None:
            raise QueueNotFound(f"The specified queue does not exist: {target!r} (to=)", status=404,
                                error_code="QueueNotFound")  # fmt: skip
        self._note_missing(raw, target)
        return True

    def _note_missing(self, raw: RawMessage, target: str) -> None:
        """``target``, a record's source queue, does not exist: its records are left."""
        self._missing.add(target)
        log.warning("poison records of queue %s were left: that queue does not exist (create it, or pass to=)",
                    target)  # fmt: skip
        self._leave(raw, no_target=1)

    def _came_back(self, record: PoisonRecord) -> bool:
        """Is it a message this run re-sent, poisoned again since? (A record: by the id the re-send got;
        a bare body: by its text, poisoned no earlier than that text's re-send, on the service's clock.)"""
        if record.is_record:
            return record.message_id in self._sent_ids
        since = self._sent_texts.get(_digest(record.content))
        return since is not None and record.poisoned_on is not None and record.poisoned_on >= since

    async def _pace(self) -> None:
        """At most ``rate`` re-sends a second."""
        if not self.interval:
            return
        wait = self._next_send - _clock()
        if wait > 0:
            await _sleep(wait)
        self._next_send = max(_clock(), self._next_send) + self.interval

    def _target(self, name: str) -> QueueOperations:
        ops = self._targets.get(name)
        if ops is None:
            ops = self._targets[name] = QueueOperations(self.poison.pool, name, self.poison.encoding)
        return ops

    async def _move(self, raw: RawMessage, record: PoisonRecord, target: str) -> None:
        """Re-send, then delete: a failure in between leaves the message in both queues, never in none."""
        sent = await self._resend(raw, record, target)
        if sent is None:  # its source queue does not exist: left
            return
        receipt, lost = sent
        twice = lost or (record.is_record and record.message_id in self._moved)
        if record.is_record and record.message_id:
            self._moved.add(record.message_id)
        self._sent_ids.add(receipt.id)
        self._sent_texts.setdefault(_digest(record.content), receipt.inserted_on)
        await self._delete(raw, target, twice)

    async def _resend(self, raw: RawMessage, record: PoisonRecord, target: str) -> tuple[SendReceipt, bool] | None:
        """Put the original text into ``target``, with the original's time to live: the receipt, and
        whether the target may hold it twice (a retry after a lost answer); None when ``target`` is a
        record's source queue that does not exist (the message is left)."""
        query = {}
        ttl = record.time_to_live
        if ttl is not None and (ttl == -1 or ttl >= 1):
            query["messagettl"] = str(ttl)
        ops = self._target(target)
        try:
            sent = await ops.put_message_answered(record.content, query)
        except AioQueueError as exc:
            if isinstance(exc, QueueNotFound) and self.to is None and not _maybe_sent(exc):
                self._note_missing(raw, target)
                return None
            if _maybe_sent(exc):
                self._count(duplicates=1)
            raise
        return sent

    async def _delete(self, raw: RawMessage, target: str, twice: bool) -> None:
        """Delete the poison message once its target has it (``twice``: it may hold it twice)."""
        try:
            await self.poison.delete_message(check_message_id(raw.id), check_pop_receipt(raw.pop_receipt or ""))
        except (MessageNotFound, PopReceiptMismatch) as exc:
            # its lease lapsed and someone else holds (or deleted) it: it may be re-sent a second time
            self._gone.add(raw.id)
            log.warning("poison message %s was re-sent to %s, but someone else took it meanwhile: %s", raw.id, target,
                        exc)  # fmt: skip
            self._count(moved=1, duplicates=1)
            return
        except AioQueueError:
            self._count(moved=1, duplicates=1)
            raise
        self._gone.add(raw.id)
        self._count(moved=1, duplicates=int(twice))

    async def _release_held(self) -> None:
        """Make every message looked at and left visible again (a failure: it returns after its visibility)."""
        held = list(self._held.values())
        self._held.clear()
        gate = asyncio.Semaphore(_RELEASES_AT_ONCE)

        async def release(raw: RawMessage) -> None:
            async with gate:
                try:
                    await self.poison.update_message(
                        "release", check_message_id(raw.id), check_pop_receipt(raw.pop_receipt or ""), 0, None
                    )
                except AioQueueError as exc:
                    log.info("poison message %s: making it visible again failed (it returns later): %s", raw.id, exc)

        if held and not self.poison.closed:
            await asyncio.gather(*(release(raw) for raw in held))


def _valid_queue(name: str) -> bool:
    try:
        check_queue_name(name)
    except ConfigurationError:
        return False
    return True
