"""A strict Azure Queue service written in Python, served in-process on a loopback port.

Public as :class:`aioqueue.testing.FakeQueueService`; its modules: ``_state`` (queues, messages, the
clock), ``_wire`` (XML and dates), ``_auth`` (Shared Key, SAS, bearer tokens), ``_operations`` (each
REST operation), ``_faults`` (faults and throttling), ``_http`` (routing and answers, on aiohttp.web).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import TracebackType

from aiohttp import web

from .._endpoint import DEV_ACCOUNT, DEV_KEY
from ._auth import Authenticator
from ._faults import Fault, Faults, Gate, Throttle, check_operation, check_times
from ._http import App, Served
from ._operations import Operations
from ._state import AccessPolicy, Clock, ClockMode, MessageView, QueueView, Service

__all__ = ["FakeQueueService", "Gate", "MessageView", "QueueView", "Served"]

SHUTDOWN_SECONDS = 0.5


class FakeQueueService:
    """A strict, in-process Azure Queue service for tests: no Node.js, a clock you control, Azure's rules.

        async with FakeQueueService() as service:
            conn_str = service.connection_string
            async with QueueClient.from_connection_string(conn_str, "jobs") as queue:
                await queue.create_queue()
                await queue.send_message("hello")
                [message] = await queue.receive_messages(visibility_timeout=30)
                service.advance(timedelta(seconds=31))  # visible again
                service.advance(timedelta(days=8))  # ... and now expired

    It serves the Queue REST API on ``http://<host>:<port>/<account>`` (path-style, as the emulators
    do), so a real :class:`~aioqueue.QueueClient` takes its real path: signing, HTTP, XML, retries. Every
    operation the clients use is there, with Azure's semantics and error answers: pop receipts that
    change on every get and update, visibility and time to live (``-1`` included), dequeue counts, the
    32-message and 64 KiB limits, metadata, access policies, service properties, List Queues' markers,
    Shared Key and SAS checked as Azure checks them (wrong key: 403 ``AuthenticationFailed`` with its
    ``AuthenticationErrorDetail``; an ``x-ms-date`` more than 15 minutes old: refused), and bearer
    tokens taken as Azurite takes them (issuer, audience and lifetime checked, not the signature).

    **The clock.** ``clock="real"`` (the default): the service's time is the real time plus an offset
    that :meth:`advance` grows, so time passes as in any service (a message released for 5 s comes back
    on its own) and :meth:`advance` jumps ahead (visibility timeouts lapse, messages expire).
    ``clock="frozen"``: the time stands still at ``start`` and only :meth:`advance` moves it, for exact
    arithmetic (``expires_on == inserted_on + ttl``). ``start`` (an aware datetime) sets the service's
    time at the start; default: now. Messages, SAS start and expiry times and stored access policies
    follow the service's clock; what a client dates with its own clock (Shared Key's ``x-ms-date``, a
    bearer token's lifetime) is checked against the real time, so :meth:`advance` never makes a
    client's requests stale.

    **Faults.** :meth:`fail`, :meth:`lose_answer`, :meth:`slow`, :meth:`hold` and :meth:`throttle` bring
    Azure's weather: injected error answers, answers lost after the work is done, slow or held answers,
    503 ``ServerBusy`` above a rate. Operation names are the REST operations': ``"create_queue"``,
    ``"delete_queue"``, ``"get_queue_metadata"``, ``"set_queue_metadata"``, ``"get_queue_acl"``,
    ``"set_queue_acl"``, ``"list_queues"``, ``"get_service_properties"``, ``"set_service_properties"``,
    ``"get_service_stats"``, ``"put_message"``, ``"get_messages"``, ``"peek_messages"``,
    ``"update_message"``, ``"delete_message"``, ``"clear_messages"``; None matches any.

    ``deletion_delay``: how long a deleted queue's name stays taken, its re-creation answered 409
    ``QueueBeingDeleted`` (Azure takes about 40 seconds; default 0, as Azurite).

    Not served: CORS preflight (``OPTIONS``), Get User Delegation Key and user delegation SAS (answered
    501 ``NotImplemented`` and 403), https. Get Queue Service Stats is answered by ``<account>-secondary``
    only (the read-only secondary, which serves the other reads too).
    """

    def __init__(
        self,
        *,
        account: str = DEV_ACCOUNT,
        key: str = DEV_KEY,
        start: datetime | None = None,
        clock: ClockMode = "real",
        host: str = "127.0.0.1",
        port: int = 0,
        deletion_delay: timedelta = timedelta(0),
    ) -> None:
        self.account = account
        """The storage account's name (the first segment of every path)."""
        self.key = key
        """The account key (base64) that Shared Key and SAS signatures are checked with."""
        self.host = host
        """The address it listens on (loopback by default)."""
        self._clock = Clock(clock, start)
        self._service = Service(self._clock)
        if not isinstance(deletion_delay, timedelta) or deletion_delay < timedelta(0):
            raise ValueError("deletion_delay must be a timedelta >= 0")
        self._service.deletion_delay = deletion_delay
        self._faults = Faults()
        self._throttle = Throttle()
        auth = Authenticator(account, key, self._clock, self._policies)
        operations = Operations(self._service, account, lambda: self.url)
        self._app = App(self._service, auth, operations, self._faults, self._throttle)
        self._port = port
        self._runner: web.AppRunner | None = None

    def _policies(self, queue: str) -> tuple[AccessPolicy, ...]:
        found = self._service.queues.get(queue)
        return () if found is None else found.policies

    # ---- life -------------------------------------------------------------------------------------

    async def start(self) -> FakeQueueService:
        """Start serving (``async with`` does it)."""
        if self._runner is not None:
            return self
        # at close, a request still held (hold, slow) gets SHUTDOWN_SECONDS to finish, then is cancelled
        runner = web.AppRunner(
            self._app.application(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        return self

    async def close(self) -> None:
        """Stop serving and drop every connection (again: harmless)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeQueueService:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- where -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on (chosen at start when ``port=0``)."""
        return self._port

    @property
    def url(self) -> str:
        """The account URL: ``http://<host>:<port>/<account>``."""
        return f"http://{self.host}:{self._port}/{self.account}"

    @property
    def secondary_url(self) -> str:
        """The read-only secondary's URL: ``http://<host>:<port>/<account>-secondary``."""
        return f"{self.url}-secondary"

    @property
    def connection_string(self) -> str:
        """A connection string for the account (Shared Key), as ``QueueClient.from_connection_string`` takes."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};QueueEndpoint={self.url}"
        )

    # ---- the clock ---------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The service's time now (aware, UTC)."""
        return self._clock.now()

    def advance(self, delta: timedelta) -> None:
        """Move the service's clock forward: hidden messages whose visibility timeout lapses become
        visible, messages whose time to live runs out expire, SAS tokens and access policies age."""
        self._clock.advance(delta)

    # ---- what a test sees --------------------------------------------------------------------------

    @property
    def queues(self) -> Mapping[str, QueueView]:
        """A snapshot of every queue (by name) and its unexpired messages, for assertions."""
        return self._service.view()

    @property
    def requests(self) -> tuple[Served, ...]:
        """The requests answered (or dropped) so far, in order (the latest 100,000): method, path,
        operation, status, error code."""
        return tuple(self._app.served)

    # ---- faults ------------------------------------------------------------------------------------

    def fail(
        self,
        operation: str | None = None,
        *,
        status: int = 503,
        code: str = "ServerBusy",
        message: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """The next ``times`` requests for ``operation`` (None: any) are answered ``status`` with the
        error ``code`` (and its message, or ``message``), with a ``Retry-After`` header when given;
        the operation is not done."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), not {status!r}")
        self._faults.add(
            Fault("fail", check_operation(operation), check_times(times), status, code, message, retry_after)
        )

    def lose_answer(self, operation: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` requests for ``operation`` (None: any) are done, then their connection is
        dropped without an answer: the client cannot know the work was done."""
        self._faults.add(Fault("lose", check_operation(operation), check_times(times)))

    def drop(self, operation: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` requests for ``operation`` (None: any) meet a connection that drops before
        they are done: nothing is done and no answer comes (the fault proxy's ``reset_before``)."""
        self._faults.add(Fault("drop", check_operation(operation), check_times(times)))

    def truncate(self, operation: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` requests for ``operation`` (None: any) are done, and their answer stops
        half-way through its body (its ``Content-Length`` the whole) as the connection closes: a lost
        answer the client sees begin. An answer without a body is cut before its headers."""
        self._faults.add(Fault("truncate", check_operation(operation), check_times(times)))

    def slow(self, operation: str | None, delay: float, *, times: int = 1) -> None:
        """The next ``times`` requests for ``operation`` wait ``delay`` seconds (real ones) before they
        are done and answered. To hold one until the test says so, see :meth:`hold`."""
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not delay >= 0:
            raise ValueError(f"delay must be a number of seconds >= 0, not {delay!r}")
        self._faults.add(Fault("slow", check_operation(operation), check_times(times), delay=float(delay)))

    def hold(self, operation: str | None = None, *, times: int = 1, after: bool = False) -> Gate:
        """Hold the next ``times`` requests for ``operation`` (None: any) before they are done (with
        ``after=True``: once done, before their answer is sent), until the test sets the gate's
        ``release``. ``gate.arrived`` is set when one is held, ``gate.done`` once its answer is sent::

            gate = service.hold("delete_message")
            task = asyncio.create_task(message.delete())
            await gate.arrived.wait(); ...; gate.release.set(); await gate.done.wait()
        """
        gate = Gate()
        self._faults.add(Fault("hold", check_operation(operation), check_times(times), gate=gate, after=after))
        return gate

    def throttle(self, messages_per_second: int | None) -> None:
        """Answer 503 ``ServerBusy`` to a queue's message operations beyond ``messages_per_second`` in any
        second of the service's clock (Azure's target for one queue is 2,000); None turns it off (the
        default). Get and Peek Messages count the messages asked for, the others one each."""
        if messages_per_second is not None and (
            isinstance(messages_per_second, bool) or not isinstance(messages_per_second, int) or messages_per_second < 1
        ):
            raise ValueError(f"messages_per_second must be an int >= 1 or None, not {messages_per_second!r}")
        self._throttle.limit = messages_per_second

    def clear_faults(self) -> None:
        """Forget every fault not yet met (the throttle stays as set)."""
        self._faults.clear()
