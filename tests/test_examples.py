"""The examples run against the suite's emulator, as a user would run them."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aioqueue import QueueServiceClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def fresh_jobs_queue(azurite):
    """The worker example uses fixed queue names; start each run from none."""

    async def drop():
        async with QueueServiceClient.from_connection_string(azurite.connection_string) as service:
            for name in ("jobs", "jobs-poison"):
                await service.delete_queue(name, missing_ok=True)

    asyncio.run(drop())


def run_example(name, conn_str, *args, timeout=60):
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": conn_str}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_quickstart(azurite):
    result = run_example("quickstart.py", azurite.connection_string)
    assert result.returncode == 0, result.stderr
    for line in ("peeked: Hello, World", "got: Updated contents", "processed a batch of 16",
                 "approximate length: 4", "deleted the queue"):
        assert line in result.stdout


def test_batch_consumer(azurite):
    result = run_example("batch_consumer.py", azurite.connection_string)
    assert result.returncode == 0, result.stderr
    assert '{"stored": 100}' in result.stdout


def test_worker_until_idle(azurite, fresh_jobs_queue):
    result = run_example("worker.py", azurite.connection_string)
    assert result.returncode == 0, result.stderr
    assert "processed=49 failed=3 poisoned=1" in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_worker_shuts_down_gracefully_on_sigterm(azurite, fresh_jobs_queue):
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "worker.py"), "--forever"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "worker started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.startswith("processed=")
