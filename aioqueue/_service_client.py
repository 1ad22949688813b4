"""QueueServiceClient: the account's queue service (list, create and delete queues; service
properties and stats; user delegation keys). Arguments are checked here; the requests are
:class:`._operations.ServiceOperations`'."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from ._auth import Credential, TokenCache
from ._client_base import ClientBase
from ._client_options import ClientOptions, open_pool
from ._endpoint import ConnectionSettings, parse_connection_string
from ._errors import ConfigurationError
from ._models import QueueItem, ServiceProperties, ServiceStats, UserDelegationKey
from ._operations import ServiceOperations
from ._options import Unpack
from ._paging import QueueListing
from ._queue_client import QueueClient
from ._sas import USER_DELEGATION_VERSION, delegation_key_window
from ._validation import queue_name as check_queue_name
from ._validation import user_headers as check_user_headers

__all__ = ["QueueServiceClient"]


class QueueServiceClient(ClientBase[ServiceOperations]):
    """The account's queue service: list, create and delete queues; service properties and stats.

    ``async with QueueServiceClient(url, credential=...) as service:`` opens nothing eagerly and
    closes its connection pool on exit. Queue clients from :meth:`get_queue_client` share that pool.
    """

    def __init__(
        self,
        account_url: str,
        *,
        credential: Credential = None,
        _connection: ConnectionSettings | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        pool, self._encoding = open_pool(account_url, credential, options, _connection)
        self._bind(ServiceOperations(pool), owner=True)

    @classmethod
    def from_connection_string(cls, conn_str: str, **options: Unpack[ClientOptions]) -> QueueServiceClient:
        """A client from any connection string form, including ``UseDevelopmentStorage=true``."""
        settings = parse_connection_string(conn_str)
        return cls(settings.account_url, credential=settings.credential, _connection=settings, **options)

    def get_queue_client(self, queue_name: str) -> QueueClient:
        """A client for one queue that shares this client's connection pool (and never closes it)."""
        return QueueClient("", check_queue_name(queue_name), _parent=(self._pool, self._encoding))

    def list_queues(
        self,
        *,
        prefix: str | None = None,
        include_metadata: bool = False,
        page_size: int | None = None,
        continuation_token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> QueueListing:
        """Every queue (optionally those starting with ``prefix``), following pages transparently.

        ``page_size`` is queues per request (1..5000, the service's cap). ``.pages()`` on the result
        yields pages with a ``continuation_token``; ``continuation_token=`` resumes from one.
        A read: with ``location_mode="secondary"`` the secondary answers it.
        """
        if page_size is not None and (
            isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 5000
        ):
            raise ConfigurationError(f"page_size must be an int from 1 to 5000; got {page_size!r}")
        if prefix is not None and not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a str")
        extra = check_user_headers(headers) if headers is not None else None
        ops = self._ops

        async def fetch(marker: str | None) -> tuple[list[QueueItem], str | None]:
            return await ops.list_queues_page(
                prefix=prefix, include_metadata=include_metadata, page_size=page_size, marker=marker, extra=extra
            )

        return QueueListing(fetch, continuation_token)

    async def create_queue(
        self,
        name: str,
        *,
        metadata: Mapping[str, str] | None = None,
        exist_ok: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> QueueClient:
        """Create a queue and return its client (sharing this pool)."""
        queue = self.get_queue_client(name)
        await queue.create_queue(metadata=metadata, exist_ok=exist_ok, headers=headers)
        return queue

    async def delete_queue(
        self, name: str, *, missing_ok: bool = False, headers: Mapping[str, str] | None = None
    ) -> None:
        """Delete a queue and its messages. Azure then refuses the name for about 40 s."""
        await self.get_queue_client(name).delete_queue(missing_ok=missing_ok, headers=headers)

    async def get_service_properties(self, *, headers: Mapping[str, str] | None = None) -> ServiceProperties:
        """Logging, hour and minute metrics, and CORS rules."""
        return await self._ops.get_service_properties(extra=headers)

    async def set_service_properties(
        self, properties: ServiceProperties, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Set the parts of ``properties`` that are not None (at most 5 CORS rules)."""
        if not isinstance(properties, ServiceProperties):
            raise ConfigurationError("properties must be a ServiceProperties")
        if properties.cors is not None and len(properties.cors) > 5:
            raise ConfigurationError(f"the service allows at most 5 CORS rules; got {len(properties.cors)}")
        for part in (properties.hour_metrics, properties.minute_metrics, properties.analytics_logging):
            r = getattr(part, "retention_policy", None)
            if r is not None and r.enabled and not (isinstance(r.days, int) and 1 <= r.days <= 365):
                raise ConfigurationError("an enabled retention policy needs days from 1 to 365")
        await self._ops.set_service_properties(properties=properties, extra=headers)

    async def get_service_stats(self, *, headers: Mapping[str, str] | None = None) -> ServiceStats:
        """Geo-replication status, answered by the account's secondary endpoint (RA-GRS accounts)."""
        return await self._ops.get_service_stats(extra=headers)

    async def get_user_delegation_key(
        self,
        start: datetime | timedelta | None = None,
        expiry: datetime | timedelta | None = None,
        *,
        delegated_user_tid: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UserDelegationKey:
        """A key for signing user delegation SAS tokens: ``generate_queue_sas(..., user_delegation_key=key)``.

        Needs a token credential (Microsoft Entra ID). ``start`` and ``expiry`` are aware datetimes or
        timedeltas from now (``start`` None: now; ``expiry`` is required); the key may live at most 7
        days from now. ``delegated_user_tid`` is the
        Entra ID tenant of the user a SAS signed with the key will be bound to (optional).
        """
        if not isinstance(self._pool.http.credential, TokenCache):
            raise ConfigurationError(
                "get_user_delegation_key needs a token credential (Microsoft Entra ID), not an account key or SAS"
            )
        if delegated_user_tid is not None and (not isinstance(delegated_user_tid, str) or not delegated_user_tid):
            raise ConfigurationError("delegated_user_tid must be a non-empty str (an Entra ID tenant id)")
        if expiry is None:
            raise ConfigurationError(
                "get_user_delegation_key needs expiry= (an aware datetime or a timedelta from now)"
            )
        st, se = delegation_key_window(timedelta(0) if start is None else start, expiry)
        # The Queue service hands out delegation keys from version 2026-02-06 on: send at least that.
        version = max(self._pool.http.api_version, USER_DELEGATION_VERSION)
        return await self._ops.get_user_delegation_key(
            start=st, expiry=se, tenant=delegated_user_tid, version=version, extra=headers
        )
