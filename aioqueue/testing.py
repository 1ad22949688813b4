"""Run the real Azurite emulator for tests, examples and local development; a pytest plugin too.

    async with azurite() as conn_str:  # Azurite's queue service, in memory
        async with QueueClient.from_connection_string(conn_str, "jobs") as queue: ...

    async with FakeQueueService() as service:  # a strict one in Python: no Node.js
        conn_str = service.connection_string
        async with QueueClient.from_connection_string(conn_str, "jobs") as queue: ...

The pytest plugin (registered automatically, or ``-p aioqueue.testing``; ``pip install
'aioqueue-azure[testing]'`` brings pytest-asyncio) provides fixtures: ``azurite`` (session-scoped: the
running emulator, ``.connection_string``; per worker under pytest-xdist), ``azurite_factory`` (more
emulators with other arguments), ``fake_queue_service`` (a fresh :class:`FakeQueueService` per test),
and function-scoped ``queue_service_client``, ``queue_client`` (a fresh queue per test, deleted
afterwards) and ``queue_factory`` (queues with options, deleted with their poison queues afterwards),
which run on ``aioqueue_service``: Azurite by default, the fake with ``--aioqueue-service=fake`` or the
ini option ``aioqueue_service = fake`` (then no Azurite is started for them).

Azurite comes from npm (``npm install azurite@3.35.0``). It is found through ``$AIOQUEUE_AZURITE``
(the path of ``azurite-queue``), a ``node_modules/.bin`` above the working directory or this package,
or ``PATH``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.metadata
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ._endpoint import DEV_ACCOUNT, DEV_KEY, parse_connection_string
from ._errors import AioQueueError
from ._fake import FakeQueueService

__all__ = [
    "DEV_ACCOUNT",
    "DEV_KEY",
    "Azurite",
    "FakeQueueService",
    "azurite",
    "find_azurite",
    "local_connection_string",
]

_LISTENING = re.compile(r"listens on (https?)://([^:\s]+):(\d+)")
DEFAULT_PORT = 10001


def find_azurite(executable: str | None = None, service: str = "queue") -> str:
    """The path of Azurite's ``azurite-queue`` command (``service="blob"``: ``azurite-blob``, found beside
    it), or an error saying how to install it."""
    command = f"azurite-{service}"
    candidates: list[Path] = []
    if executable:
        candidates.append(Path(executable))
    env = os.environ.get("AIOQUEUE_AZURITE")
    if env:
        candidates.append(Path(env) if service == "queue" else Path(env).with_name(command))
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            candidates.append(folder / "node_modules" / ".bin" / command)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(command)
    if found:
        return found
    raise AioQueueError(
        "Azurite is not installed: run 'npm install azurite@3.35.0' in your project "
        "(or set AIOQUEUE_AZURITE to the path of azurite-queue)"
    )


def connection_string(host: str, port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"QueueEndpoint=http://{host}:{port}/{DEV_ACCOUNT}"
    )


class Azurite:
    """One Azurite queue-service process (``service="blob"``: its blob service, for large payloads).
    Use as a context manager.

    Its data lives in memory, or on disk in ``location`` (a folder; a new emulator started on the
    same folder and port finds the queues and messages again, as after a crash of the real service).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        executable: str | None = None,
        startup_timeout: float = 60.0,
        extra_args: tuple[str, ...] = (),
        location: str | os.PathLike[str] | None = None,
        service: str = "queue",
    ) -> None:
        if service not in ("queue", "blob"):
            raise ValueError("service must be 'queue' or 'blob'")
        self.service = service
        self.host = host
        self.port = port
        self.executable = executable
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.location = None if location is None else os.fspath(location)
        self._process: subprocess.Popen[str] | None = None
        self._listening = False
        self._output: collections.deque[str] = collections.deque(maxlen=200)  # the last lines it printed

    @property
    def url(self) -> str:
        """The account URL (path-style): ``http://127.0.0.1:<port>/devstoreaccount1``."""
        return f"http://{self.host}:{self.port}/{DEV_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        if self.service == "blob":
            return connection_string(self.host, self.port).replace("QueueEndpoint=", "BlobEndpoint=")
        return connection_string(self.host, self.port)

    def start(self) -> Azurite:
        exe = find_azurite(self.executable, self.service)
        self._listening = False
        args = [
            exe,
            f"--{self.service}Host",
            self.host,
            f"--{self.service}Port",
            str(self.port),
            *(("--location", self.location) if self.location else ("--inMemoryPersistence",)),
            "--silent",
            "--disableTelemetry",
            *self.extra_args,
        ]
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )
        self._process = process
        ready = threading.Event()
        assert process.stdout is not None
        threading.Thread(target=self._drain, args=(process.stdout, ready), daemon=True).start()
        # ready is also set when the emulator closes its output: then it is ending, though perhaps not
        # reaped yet, so only the "listens on" line (which sets _listening) counts as a start
        if not ready.wait(self.startup_timeout) or not self._listening or process.poll() is not None:
            self.stop()
            raise AioQueueError("Azurite did not start: " + " | ".join(list(self._output)[-5:]))
        try:
            _wait_for_port(self.host, self.port, self.startup_timeout)
        except AioQueueError:
            self.stop()  # a started process never outlives a failed start
            raise
        return self

    def _drain(self, stream: IO[str], ready: threading.Event) -> None:
        for line in stream:
            self._output.append(line.rstrip())
            m = _LISTENING.search(line)
            if m and not ready.is_set():
                self.port = int(m.group(3))
                self._listening = True
                ready.set()
        ready.set()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdout is not None:
            process.stdout.close()

    def kill(self) -> None:
        """SIGKILL the emulator, as a crash would (for outage tests); :meth:`start` runs it again."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()

    def wait(self) -> int:
        """Block until the emulator exits (for running it in the foreground); its exit code."""
        process = self._process
        return process.wait() if process is not None else 0

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AioQueueError(f"Azurite did not answer on {host}:{port}") from None
            time.sleep(0.05)


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@contextlib.asynccontextmanager
async def azurite(*, host: str = "127.0.0.1", port: int = 0, executable: str | None = None) -> AsyncIterator[str]:
    """Start Azurite's queue service (a free port unless ``port`` is given), yield its connection
    string, and stop it on exit."""
    emulator = Azurite(host=host, port=port, executable=executable)
    await asyncio.to_thread(emulator.start)
    try:
        yield emulator.connection_string
    finally:
        await asyncio.to_thread(emulator.stop)


@contextlib.asynccontextmanager
async def local_connection_string(
    env_var: str = "AZURE_STORAGE_CONNECTION_STRING",
    *,
    port: int = DEFAULT_PORT,
    report: Callable[[str], object] | None = None,
) -> AsyncIterator[str]:
    """A connection string for local work: ``$AZURE_STORAGE_CONNECTION_STRING`` when set; else the
    emulator on 127.0.0.1:``port`` (10001: ``UseDevelopmentStorage=true``), started here when nothing
    answers there and stopped on exit. ``report`` (``print``, say) is told in one line which of the three
    it is: the account's endpoint, an emulator already running (not started here), or one started here."""
    say = report or (lambda line: None)
    configured = os.environ.get(env_var)
    if configured:
        say(f"using ${env_var}: {_endpoint_of(configured)}")
        yield configured
        return
    conn_str = "UseDevelopmentStorage=true" if port == DEFAULT_PORT else connection_string("127.0.0.1", port)
    if await asyncio.to_thread(_port_open, "127.0.0.1", port):
        say(
            f"using the emulator already listening on 127.0.0.1:{port} "
            "(not started here: its queues and messages are its own, and it keeps running)"
        )
        yield conn_str
        return
    async with azurite(port=port):
        say(f"started Azurite on 127.0.0.1:{port} (in memory; stopped again at the end)")
        yield conn_str


def _endpoint_of(conn_str: str) -> str:
    """The queue endpoint a connection string names (never its key or SAS), or why it names none."""
    try:
        return parse_connection_string(conn_str).account_url.partition("?")[0]
    except AioQueueError as exc:
        return f"(not a valid connection string: {exc})"


# ---- pytest plugin ---------------------------------------------------------------------------

ASYNC_HINT = (
    "aioqueue's queue fixtures are async and need pytest-asyncio: pip install 'aioqueue-azure[testing]' "
    '(and set asyncio_mode = "auto" under [tool.pytest.ini_options])'
)

try:
    import pytest
except ImportError:  # pragma: no cover - the plugin needs pytest
    pytest = None  # type: ignore[assignment]
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests, without it
    pytest_asyncio = None  # type: ignore[assignment]

# pytest-asyncio warns on every run while this option is unset (a PytestDeprecationWarning); from 1.5 on it
# takes "fixture-scope", which is what unset means (each async fixture's loop has the fixture's scope)
LOOP_SCOPE_OPTION = "asyncio_default_fixture_loop_scope"
LOOP_SCOPE_AS_UNSET = "fixture-scope"


def _takes_fixture_scope() -> bool:
    """Does the installed pytest-asyncio take ``asyncio_default_fixture_loop_scope = "fixture-scope"`` (1.5+)?"""
    try:
        version = importlib.metadata.version("pytest-asyncio")
    except importlib.metadata.PackageNotFoundError:
        return False
    found = re.match(r"(\d+)\.(\d+)", version)
    return found is not None and (int(found[1]), int(found[2])) >= (1, 5)


SERVICES = ("azurite", "fake")
"""What the queue fixtures can run on: the values of ``--aioqueue-service`` and of ``aioqueue_service``."""


def chosen_service(config: Any) -> str:
    """What the queue fixtures run on in this session: ``--aioqueue-service``, else the ``aioqueue_service``
    ini option, else ``"azurite"``. A value not in :data:`SERVICES` is a usage error (pytest exits 4)."""
    chosen = config.getoption("aioqueue_service", None) or config.getini("aioqueue_service").strip() or "azurite"
    if chosen not in SERVICES:
        raise pytest.UsageError(f"aioqueue_service must be one of {', '.join(SERVICES)}; got {chosen!r}")
    return str(chosen)


if pytest is not None:

    def pytest_addoption(parser: Any) -> None:
        parser.addini(
            "aioqueue_azurite_args",
            type="args",
            default=[],
            help="extra arguments for the session's Azurite (e.g. --oauth basic --cert cert.pem --key key.pem)",
        )
        what = (
            "what aioqueue's queue fixtures (queue_client, queue_service_client, queue_factory) run on: "
            "azurite (the default) or fake (a FakeQueueService per test; no Node.js)"
        )
        parser.addini("aioqueue_service", default="azurite", help=what)
        parser.getgroup("aioqueue").addoption(
            "--aioqueue-service", dest="aioqueue_service", choices=SERVICES, default=None, help=what + "; over the ini"
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(config: Any) -> None:
        """Before pytest-asyncio reads it: when the project leaves ``asyncio_default_fixture_loop_scope``
        unset, it becomes "fixture-scope", what unset means, so that nothing changes but the warning is
        gone. (pytest has no public way to give another plugin's ini option a value: this fills pytest's
        cache of ini values, and without that cache, or before pytest-asyncio 1.5, the warning stays.)"""
        chosen_service(config)  # a wrong aioqueue_service stops the run before any test
        try:
            configured = config.getini(LOOP_SCOPE_OPTION)
        except ValueError:  # pytest-asyncio is not installed or not loaded (-p no:asyncio)
            return
        cache = getattr(config, "_inicache", None)
        if not configured and isinstance(cache, dict) and _takes_fixture_scope():
            cache[LOOP_SCOPE_OPTION] = LOOP_SCOPE_AS_UNSET

    @pytest.fixture(scope="session")
    def azurite_factory() -> Iterator[Any]:
        """Start more emulators with options: ``azurite_factory(extra_args=(...), location=...)`` returns a
        started :class:`Azurite`; every one is stopped at the end of the session."""
        started: list[Azurite] = []

        def start(**options: Any) -> Azurite:
            emulator = Azurite(**options).start()
            started.append(emulator)
            return emulator

        try:
            yield start
        finally:
            for emulator in started:
                emulator.stop()

    @pytest.fixture(scope="session")
    def azurite_emulator(request: Any) -> Iterator[Azurite]:
        """The running Azurite emulator for this test session (``.connection_string``, ``.url``), on a
        free port: under pytest-xdist each worker process has its own. Extra Azurite arguments come from
        the ``aioqueue_azurite_args`` ini option."""
        with Azurite(extra_args=tuple(request.config.getini("aioqueue_azurite_args"))) as emulator:
            yield emulator

    @pytest.fixture(scope="session", name="azurite")
    def azurite_fixture(azurite_emulator: Azurite) -> Azurite:
        """Alias of ``azurite_emulator``."""
        return azurite_emulator

    def pytest_report_header(config: Any) -> str:
        return f"aioqueue: queue fixtures on {chosen_service(config)}"

    @pytest.fixture
    def aioqueue_service(request: Any) -> Any:
        """The service the queue fixtures use: the session's Azurite (``azurite_emulator``), or with
        ``--aioqueue-service=fake`` (or the ini option ``aioqueue_service = fake``) this test's own
        ``fake_queue_service``, and then no Azurite is started for it. Either has ``.connection_string``,
        ``.url``, ``.host`` and ``.port``. A test that asks for ``azurite`` gets Azurite either way."""
        if chosen_service(request.config) == "fake":
            return request.getfixturevalue("fake_queue_service")
        return request.getfixturevalue("azurite_emulator")

    if pytest_asyncio is not None:

        @pytest_asyncio.fixture
        async def fake_queue_service() -> AsyncIterator[FakeQueueService]:
            """A fresh, started :class:`FakeQueueService` for this test alone (its own queues, clock and
            faults): ``.connection_string``, ``.advance(timedelta)``, ``.fail(...)``; closed after the test."""
            async with FakeQueueService() as service:
                yield service

        @pytest_asyncio.fixture
        async def queue_service_client(aioqueue_service: Any) -> AsyncIterator[Any]:
            """A QueueServiceClient on ``aioqueue_service`` (the session's emulator, or the test's fake),
            closed after the test."""
            from ._service_client import QueueServiceClient

            async with QueueServiceClient.from_connection_string(aioqueue_service.connection_string) as service:
                yield service

        @pytest_asyncio.fixture
        async def queue_client(queue_service_client: Any) -> AsyncIterator[Any]:
            """A QueueClient on a freshly created, uniquely named queue, deleted after the test."""
            queue = await queue_service_client.create_queue(f"test-{uuid.uuid4().hex[:20]}")
            try:
                yield queue
            finally:
                await queue.delete_queue(missing_ok=True)

        @pytest_asyncio.fixture
        async def queue_factory(aioqueue_service: Any) -> AsyncIterator[Any]:
            """``await queue_factory(prefix="orders", message_encoding="json", retry=None, ...)``: a
            QueueClient on a new, uniquely named queue, with any client options. After the test every
            queue it made, and its poison queue (``<name>-poison``), is deleted and its client closed."""
            from ._queue_client import QueueClient

            made: list[Any] = []

            async def make(*, prefix: str = "test", **options: Any) -> Any:
                name = f"{prefix}-{uuid.uuid4().hex[:20]}"
                queue = QueueClient.from_connection_string(aioqueue_service.connection_string, name, **options)
                made.append(queue)
                await queue.create_queue()
                return queue

            try:
                yield make
            finally:
                for queue in made:
                    for name in (queue.queue_name, f"{queue.queue_name}-poison"):
                        cleaner = QueueClient.from_connection_string(aioqueue_service.connection_string, name)
                        async with cleaner:
                            await cleaner.delete_queue(missing_ok=True)
                    await queue.close()

    else:

        @pytest.fixture
        def fake_queue_service() -> Any:
            """Needs pytest-asyncio (see ASYNC_HINT)."""
            pytest.fail(ASYNC_HINT, pytrace=False)

        @pytest.fixture
        def queue_service_client() -> Any:
            """Needs pytest-asyncio (see ASYNC_HINT)."""
            pytest.fail(ASYNC_HINT, pytrace=False)

        @pytest.fixture
        def queue_client() -> Any:
            """Needs pytest-asyncio (see ASYNC_HINT)."""
            pytest.fail(ASYNC_HINT, pytrace=False)

        @pytest.fixture
        def queue_factory() -> Any:
            """Needs pytest-asyncio (see ASYNC_HINT)."""
            pytest.fail(ASYNC_HINT, pytrace=False)
