"""``aioqueue redrive POISON``: the dry run's list, the summary, the filters and ``--to``, progress, and
the exit codes (2 for bad usage and for bare bodies left without ``--to``, 3 for a missing target)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from aioqueue import PoisonRecord, QueueClient, ReceivedMessage
from aioqueue.testing import Azurite
from tests.cli.conftest import Cli


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _poison(conn: str, queue: str, errors: dict[str, Exception]) -> None:
    """Each text of ``errors`` sent to ``queue`` and poisoned on its first failure, with that error."""
    async with QueueClient.from_connection_string(conn, queue) as client:
        await client.create_queue(exist_ok=True)
        await client.send_messages(list(errors))

        async def fail(msg: ReceivedMessage) -> None:
            raise errors[msg.content]

        stats = await client.process(fail, max_dequeue_count=1, idle_timeout=1, poll_interval=0.05)
        assert stats.poisoned == len(errors)


async def _texts(conn: str, queue: str) -> list[str]:
    async with QueueClient.from_connection_string(conn, queue) as client:
        return sorted(m.content for m in await client.peek_messages(max_messages=32))


@pytest.fixture
def queues(azurite: Azurite, queue_name: str) -> Iterator[tuple[str, str]]:
    """(a queue, its poison queue), both deleted afterwards."""
    yield queue_name, f"{queue_name}-poison"

    async def clean() -> None:
        for name in (queue_name, f"{queue_name}-poison", f"{queue_name}-other"):
            async with QueueClient.from_connection_string(azurite.connection_string, name) as client:
                await client.delete_queue(missing_ok=True)

    _run(clean())


ERRORS = {"order 1": ValueError("order 1 is malformed"), "order 2": KeyError("customer 7")}


def test_dry_run_lists_then_redrive_moves_and_sums_up(cli: Cli, azurite: Azurite, queues: tuple[str, str]) -> None:
    queue, poison = queues
    _run(_poison(azurite.connection_string, queue, ERRORS))
    code, out = cli("redrive", poison, "--dry-run")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "MESSAGE_ID", "TO", "DEQUEUE_COUNT", "REASON", "ERROR"]
    assert [line.split()[2] for line in lines[1:-1]] == [queue, queue]  # to: the source queue
    assert "ValueError: order 1 is malformed" in out
    assert lines[-1] == f"would move 2 messages from {poison} (0 skipped by the filters)"

    code, out = cli("--json", "redrive", poison, "--dry-run", "--error", "KeyError")
    assert code == 0
    data = json.loads(out)
    assert (data["dry_run"], data["moved"], data["skipped"], data["poison_queue"]) == (True, 0, 1, poison)
    (planned,) = data["would_move"]
    assert planned["content"] == "order 2" and planned["failures"][0]["type"] == "KeyError"

    assert cli("redrive", poison, "--id", planned["message_id"]) == (
        0,
        f"moved 1 message from {poison} (1 skipped by the filters)\n",
    )
    assert _run(_texts(azurite.connection_string, queue)) == ["order 2"]
    code, out = cli("--json", "redrive", poison, "--limit", "5")
    assert code == 0 and json.loads(out)["moved"] == 1
    assert _run(_texts(azurite.connection_string, queue)) == ["order 1", "order 2"]
    assert _run(_texts(azurite.connection_string, poison)) == []


def test_bare_bodies_need_to(
    cli: Cli, azurite: Azurite, queues: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    queue, poison = queues
    assert cli("create", queue)[0] == 0 and cli("create", poison)[0] == 0
    assert cli("send", poison, "from a Functions app")[0] == 0
    code, out = cli("redrive", poison)
    assert code == 2
    assert out == f"moved 0 messages from {poison} (0 skipped by the filters, 1 left without a target queue)\n"
    assert "pass --to QUEUE" in capsys.readouterr().err
    assert cli("redrive", poison, "--to", queue)[0] == 0
    assert _run(_texts(azurite.connection_string, queue)) == ["from a Functions app"]


def test_a_missing_target_is_exit_3_and_the_record_stays(
    cli: Cli, azurite: Azurite, queues: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    queue, poison = queues
    _run(_poison(azurite.connection_string, queue, {"m": ValueError("no")}))
    capsys.readouterr()
    code, _ = cli("--json", "redrive", poison, "--to", f"{queue}-other")
    assert code == 3
    error = json.loads(capsys.readouterr().err)
    assert error["type"] == "QueueNotFound" and error["error"].startswith("redrive stopped after moving 0 messages")
    (record,) = [PoisonRecord.parse(t) for t in _run(_texts(azurite.connection_string, poison))]
    assert record.content == "m"


@pytest.mark.parametrize("argv", [["--limit", "0"], ["--older-than", "soon"], ["--rate", "fast"]])
def test_bad_flags_are_argparse_usage_errors(cli: Cli, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        cli("redrive", "jobs-poison", *argv)
    assert usage.value.code == 2 and argv[0] in capsys.readouterr().err


def test_a_bad_rate_is_exit_2_before_any_request(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("redrive", "jobs-poison", "--rate", "0") == (2, "")
    assert "rate must be a positive number" in capsys.readouterr().err


def test_progress_counts_what_moved(
    cli: Cli, azurite: Azurite, queues: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, poison = queues
    _run(_poison(azurite.connection_string, queue, ERRORS))
    shown: list[tuple[str, int | None, int]] = []

    class Recorded:  # cli.Progress, which draws only on a terminal
        def __init__(self, label: str, total: int | None) -> None:
            self.label, self.total, self.done = label, total, 0

        def add(self, n: int) -> None:
            self.done += n

        def finish(self) -> None:
            shown.append((self.label, self.total, self.done))

    monkeypatch.setattr("aioqueue.cli.Progress", Recorded)
    with monkeypatch.context() as terminal:
        # on a terminal the bar's length is the poison queue's approximate count (the limit when smaller)
        terminal.setattr("aioqueue._cli_redrive._terminal", lambda: True)
        assert cli("redrive", poison, "--dry-run")[0] == 0
    assert cli("redrive", poison, "--limit", "10", "--rate", "100")[0] == 0
    # not on a terminal: the limit, and no request for the length
    assert shown == [("would move", 2, 2), ("moved", 10, 2)]
