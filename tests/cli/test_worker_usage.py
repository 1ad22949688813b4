"""`aioqueue worker` given a bad handler or a bad option: one line naming what the user typed, exit 2,
before any process starts or any request goes out."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli import SCRIPT

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the worker command runs on POSIX")

TASKS = "async def handle(message):\n    pass\n\n\ndef helper():\n    pass\n"


def worker(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``aioqueue --emulator worker ARGV`` in ``tmp_path`` (which holds tasks.py): each of these stops
    before its first request, so no emulator need be running."""
    (tmp_path / "tasks.py").write_text(TASKS)
    env = {k: v for k, v in os.environ.items() if k != "AZURE_STORAGE_CONNECTION_STRING"}
    return subprocess.run(
        [str(SCRIPT), "--emulator", "worker", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        ("tasks:nosuch", "cannot load the handler 'tasks:nosuch': module 'tasks' has no attribute 'nosuch'"),
        ("tasks:handel", "cannot load the handler 'tasks:handel': module 'tasks' has no attribute 'handel'"),
        ("nosuch:handle", "cannot load the handler 'nosuch:handle': no module named 'nosuch'"),
        ("tasks.sub:handle", "cannot load the handler 'tasks.sub:handle': no module named 'tasks.sub'"),
    ],
)
def test_a_handler_that_is_not_there_is_one_line_and_exit_2(tmp_path: Path, handler: str, words: str) -> None:
    """A misspelt function printed AttributeError's traceback and exited 1, where a missing module was
    one line and exit 2: now both are the same one line, and exit 2."""
    result = worker(tmp_path, "jobs", handler)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"aioqueue: {words}"), line
    if handler == "tasks:handel":
        assert line.endswith("(did you mean 'handle'?)")


def test_a_plain_function_as_handler_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = worker(tmp_path, "jobs", "tasks:helper")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "async" in result.stderr


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--max-messages", "0", "--processes", "2"], "--max-messages must be"),
        (["--max-messages", "0"], "--max-messages must be"),
        (["--idle-timeout", "-1"], "--idle-timeout must be"),
        (["--visibility", "8d", "--processes", "2"], "--visibility must be"),
        (["--handler-timeout", "0"], "--handler-timeout must be"),
        (["--max-dequeue-count", "0", "--processes", "3"], "--max-dequeue-count must be"),
        (["--poison-queue", "Bad_Name", "--processes", "2"], "--poison-queue: invalid queue name 'Bad_Name'"),
        (["--metrics-port", "9464", "--lag-interval", "0"], "--lag-interval must be more than 0 seconds"),
    ],
)
def test_a_bad_option_is_said_once_with_the_worker_s_flag(tmp_path: Path, argv: list[str], words: str) -> None:
    """`--max-messages 0 --processes 2` printed `--count must be ...` (the peek command's flag) once per
    process; `--idle-timeout -1` named `idle_timeout`. Now: once, before any process starts, in the
    worker's own flags. (The handler module is never imported: the options come first.)"""
    result = worker(tmp_path, "jobs", "nosuch:handle", *argv)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("aioqueue: ") and words in line, line
    for parameter in ("max_messages", "idle_timeout", "visibility_timeout", "handler_timeout", "--count"):
        assert parameter not in line


def test_worker_errors_with_json_are_json(tmp_path: Path) -> None:
    result = worker(tmp_path, "jobs", "tasks:nosuch", "--json")
    assert result.returncode == 2
    error = json.loads(result.stderr)
    assert error["exit"] == 2 and "has no attribute 'nosuch'" in error["error"]
