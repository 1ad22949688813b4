"""What both clients share: the pool they own or borrow, where they point, and their life (``async with``,
``close``). The operations themselves are in :mod:`._operations`."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Generic, TypeVar

from ._auth import AsyncTokenCredential, SasCredential, SharedKeyCredential, TokenCache
from ._errors import ConfigurationError
from ._operations import Operations, Pool
from ._transport import Location

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - Python 3.10
    from typing_extensions import Self

__all__ = ["ClientBase"]

O = TypeVar("O", bound=Operations)  # noqa: E741 - the operations' type


class ClientBase(Generic[O]):
    """Lifecycle and endpoint of a client whose requests ``_ops`` makes."""

    _ops: O
    _owner: bool  # it created the pool, and closes it
    # the path below the account URL: "/" for the service (its URLs end in "/", as the official
    # client's do), "/<queue>" for a queue
    _resource = "/"

    def _bind(self, ops: O, owner: bool) -> None:
        self._ops = ops
        self._owner = owner

    @property
    def _pool(self) -> Pool:
        return self._ops.pool

    @property
    def account_name(self) -> str | None:
        """The storage account's name: the primary's, even for a ``-secondary`` URL (None when a
        custom domain's URL is given without a credential or connection string naming it)."""
        return self._pool.http.endpoint.account_name

    @property
    def api_version(self) -> str:
        """The x-ms-version every request sends."""
        return self._pool.http.api_version

    @property
    def credential(self) -> SharedKeyCredential | SasCredential | AsyncTokenCredential | None:
        """The credential requests are signed with (None when anonymous or the SAS is in the URL).

        An account key given as a str comes back as the SharedKeyCredential made from it; reprs hide secrets.
        """
        credential = self._pool.http.credential
        return credential.credential if isinstance(credential, TokenCache) else credential

    @property
    def location_mode(self) -> Location:
        """Where reads go: "primary" or "secondary" (writes always go to the primary)."""
        return self._pool.http.location_mode

    @property
    def primary_hostname(self) -> str:
        """The primary's ``host[:port]`` (plus the account path of a path-style URL)."""
        return self._pool.http.endpoint.hostname

    @property
    def secondary_hostname(self) -> str | None:
        """The read-access secondary's ``host[:port]`` (plus path), or None when not known."""
        return self._pool.http.endpoint.secondary_hostname

    @property
    def primary_endpoint(self) -> str:
        """This client's URL on the primary (no SAS token in it); the same as :attr:`url`.

        A service client's ends in ``/`` (``https://myaccount.queue.core.windows.net/``), a queue
        client's in the queue's name, as in the official client."""
        return self._pool.http.endpoint.url + self._resource

    @property
    def secondary_endpoint(self) -> str:
        """This client's URL on the read-access secondary; ConfigurationError when none is known."""
        base = self._pool.http.endpoint.secondary_url
        if base is None:
            raise ConfigurationError("no secondary endpoint is known for this account: pass secondary_hostname=")
        return base + self._resource

    @property
    def url(self) -> str:
        """The client's URL on the primary (no SAS token in it)."""
        return self._pool.http.endpoint.url + self._resource

    @property
    def closed(self) -> bool:
        """True once this client (or the client whose pool it shares) is closed."""
        return self._ops.closed

    async def close(self) -> None:
        """Close the connection pool this client owns; a child client closes nothing but itself.

        Open receive streams of this client stop first: renewals end and messages fetched but not
        yet yielded become visible again at once.
        """
        ops = self._ops
        if ops.shut:
            return
        for stream in list(self._pool.streams if self._owner else ops.streams):
            await stream.aclose()  # renewals stop; prefetched messages become visible at once
        ops.shut = True
        if self._owner:
            await self._pool.http.close()

    async def __aenter__(self) -> Self:
        if self.closed:
            raise ConfigurationError("this client is closed; create a new one")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
