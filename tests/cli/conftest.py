"""The ``cli`` fixture: the command run in-process against the suite's emulator.

The command runs its own event loop (``asyncio.run``) inside a synchronous test, so its service must
run outside the test's thread: these tests stay on Azurite whatever ``--aioqueue-service`` says (a
FakeQueueService lives in the test's event loop)."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable

import pytest

from aioqueue.cli import main
from aioqueue.testing import Azurite

Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def cli(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli(*argv, stdin=None)``: the exit code and stdout of ``aioqueue ARGV``, connected to the
    suite's emulator through $AZURE_STORAGE_CONNECTION_STRING (stderr is left to capsys)."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str]:
        out = io.StringIO()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv), out=out)
        return code, out.getvalue()

    return run


@pytest.fixture
def azurite_both_conn_str(azurite: Azurite, azurite_blob: Azurite) -> str:
    """A connection string naming the session's Azurite queue and blob services (large payloads)."""
    return f"{azurite.connection_string};BlobEndpoint={azurite_blob.url}"
