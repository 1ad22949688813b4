"""The local emulator in the ``aioqueue`` command: ``aioqueue emulator`` (Azurite's queue service in the
foreground; with ``--fake``, :class:`~aioqueue.testing.FakeQueueService`, no Node.js) and the connection
``--emulator [--port N]`` names."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import TextIO

from ._cli_errors import EXIT_OK
from ._endpoint import DEV_ACCOUNT, DEV_KEY
from ._errors import AioQueueError, ConfigurationError

__all__ = ["DEFAULT_PORT", "SUMMARY", "add_arguments", "connection_string", "run_emulator", "start_hint"]

DEFAULT_PORT = 10001  # Azurite's queue port, which UseDevelopmentStorage=true names


SUMMARY = (
    "run the Azurite emulator in the foreground (Ctrl-C or SIGTERM stops it); --port N (default 10001); "
    "--fake: aioqueue's fake Queue service instead (no Node.js)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``aioqueue emulator``'s own options (``--port`` is one of the common ones)."""
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument(
        "--location", metavar="DIR", help="keep the queues and messages in this folder (default: in memory)"
    )
    parser.add_argument(
        "--fake",
        action="store_true",
        help="serve aioqueue.testing.FakeQueueService (strict, in memory, no Node.js) instead of Azurite",
    )


def connection_string(port: int | None) -> str:
    """The connection ``--emulator`` names: Azurite's well-known account on 127.0.0.1 (port 10001 unless
    ``--port`` says otherwise)."""
    if port is None or port == DEFAULT_PORT:
        return "UseDevelopmentStorage=true"
    if not 1 <= port <= 65535:
        raise ConfigurationError(
            "--port must be 1..65535 with --emulator (0, any free port, is for 'aioqueue emulator')"
        )
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT}"
    )


def start_hint(port: int | None) -> str:
    """What to add to a connection error with ``--emulator``."""
    flag = "" if port is None or port == DEFAULT_PORT else f" --port {port}"
    return f" (no emulator running? start one with 'aioqueue emulator{flag}')"


class _Terminated(Exception):
    """SIGTERM arrived while the emulator ran in the foreground."""


# a clean end, or the emulator stopped with the terminal's Ctrl-C or a SIGTERM (as a signal, or as 128 + N)
_STOPPED_BY_SIGNAL = frozenset({0, -2, -15, 130, 143})


def run_emulator(args: argparse.Namespace, out: TextIO) -> int:
    """``aioqueue emulator``: Azurite in the foreground until it ends, Ctrl-C (130) or SIGTERM (0)."""
    if args.fake:
        return run_fake(args, out)
    from . import testing  # pytest's plugin module: imported only for this command

    try:
        executable = testing.find_azurite()
    except AioQueueError as exc:  # something to install first: a usage error, as every other one
        raise ConfigurationError(str(exc)) from None
    port = DEFAULT_PORT if args.port is None else args.port
    emulator = testing.Azurite(host=args.host, port=port, executable=executable, location=args.location)
    kept = f"data in {args.location}, kept when it stops" if args.location else "in memory"

    def stop(signum: int, frame: object) -> None:
        raise _Terminated  # unwinds to the finally below, which stops the emulator

    # taken over before the banner: a SIGTERM as soon as it is printed must stop Azurite too
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        emulator.start()
        out.write(
            f"Azurite queue service on {emulator.url} ({kept}). Ctrl-C or SIGTERM stops it.\n"
            f"connection string: {emulator.connection_string}\n"
        )
        out.flush()
        code = emulator.wait()
    except _Terminated:
        code = 0  # asked to stop: a clean end (Ctrl-C's KeyboardInterrupt still ends as 130)
    finally:
        emulator.stop()
        signal.signal(signal.SIGTERM, previous)
    if code not in _STOPPED_BY_SIGNAL:
        raise AioQueueError(f"the emulator exited with code {code}")  # exit 1, as any failure of the service
    return EXIT_OK


def run_fake(args: argparse.Namespace, out: TextIO) -> int:
    """``aioqueue emulator --fake``: the fake Queue service in the foreground until Ctrl-C (130) or
    SIGTERM (0), as Azurite."""
    if args.location:
        raise ConfigurationError("--location is Azurite's: the fake (--fake) keeps its queues in memory only")
    port = DEFAULT_PORT if args.port is None else args.port
    asyncio.run(_serve_fake(args.host, port, out))
    return EXIT_OK


async def _serve_fake(host: str, port: int, out: TextIO) -> None:
    from ._fake import FakeQueueService

    service = FakeQueueService(host=host, port=port)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    # taken over before the banner: a SIGTERM as soon as it is printed must stop the service too
    with contextlib.suppress(NotImplementedError):  # (Windows: Ctrl-C only)
        loop.add_signal_handler(signal.SIGTERM, stopped.set)
    try:
        try:
            await service.start()
        except OSError as exc:  # the port is taken, or the address is not this machine's
            raise AioQueueError(f"the fake queue service could not listen on {host}:{port}: {exc.strerror}") from None
        out.write(
            f"Fake Azure Queue service (aioqueue.testing.FakeQueueService) on {service.url} (in memory). "
            "Ctrl-C or SIGTERM stops it.\n"
            f"connection string: {service.connection_string}\n"
        )
        out.flush()
        await stopped.wait()
    finally:
        await service.close()  # (harmless when it never started)
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGTERM)
