"""Resumable listing: ``list_queues()`` iterates queues, or pages that carry continuation tokens."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from ._errors import ConfigurationError, MalformedResponse
from ._models import QueueItem

__all__ = ["QueueListing", "QueuePage"]

FetchPage = Callable[[str | None], Awaitable[tuple[list[QueueItem], str | None]]]
"""``fetch(marker)``: one List Queues call from ``marker`` (None: the start); its queues and NextMarker."""


def _token(continuation_token: object) -> str | None:
    if continuation_token is not None and (not isinstance(continuation_token, str) or not continuation_token):
        raise ConfigurationError("continuation_token must be a non-empty str from a page's continuation_token")
    return continuation_token


@dataclass(frozen=True)
class QueuePage:
    """One List Queues answer: its queues, and the token to resume after it (None on the last page)."""

    items: tuple[QueueItem, ...]
    continuation_token: str | None

    def __iter__(self) -> Iterator[QueueItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> QueueItem:
        return self.items[index]


class QueueListing(AsyncIterator[QueueItem]):
    """What ``list_queues()`` returns: ``async for queue in listing`` follows every page;
    ``async for page in listing.pages()`` gives them one at a time, each with its
    ``continuation_token``, which ``list_queues(continuation_token=...)`` resumes from later.

    Nothing is requested until iteration starts.
    """

    __slots__ = ("_fetch", "_items", "_start")

    def __init__(self, fetch: FetchPage, continuation_token: str | None = None) -> None:
        self._fetch = fetch
        self._start = _token(continuation_token)
        self._items: AsyncGenerator[QueueItem, None] | None = None

    async def _pages(self, start: str | None) -> AsyncGenerator[QueuePage, None]:
        marker = start
        seen: set[str] = set()  # markers already asked for: one coming back would loop for ever
        while True:
            if marker is not None:
                seen.add(marker)
            items, next_marker = await self._fetch(marker)
            next_marker = next_marker or None
            if next_marker is not None and next_marker in seen:
                raise MalformedResponse(
                    f"the service answered with the marker {next_marker[:80]!r} again: listing stopped"
                )
            yield QueuePage(tuple(items), next_marker)
            if next_marker is None:
                return
            marker = next_marker

    def pages(self) -> AsyncGenerator[QueuePage, None]:
        """The pages from where this listing starts, each with its ``continuation_token``."""
        return self._pages(self._start)

    def by_page(self, continuation_token: str | None = None) -> AsyncGenerator[QueuePage, None]:
        """The official SDK's spelling: pages from ``continuation_token`` (default: this listing's start)."""
        return self._pages(_token(continuation_token) or self._start)

    async def _all(self) -> AsyncGenerator[QueueItem, None]:
        async for page in self._pages(self._start):
            for item in page.items:
                yield item

    def __aiter__(self) -> QueueListing:
        return self

    async def __anext__(self) -> QueueItem:
        if self._items is None:
            self._items = self._all()
        return await self._items.__anext__()

    async def aclose(self) -> None:
        """Stop iterating (as an async generator's ``aclose``)."""
        if self._items is not None:
            await self._items.aclose()
