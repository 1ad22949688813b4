"""``aioqueue worker --processes N`` and signals, as systemd, a terminal and the kernel send them: one signal
to the whole process group is one graceful drain, children stop when their parent dies (even by SIGKILL),
and a signal while the handler module is still importing is a clean exit (0).

The workers reach the queue fixtures' service (``conn_str``): Azurite, or under the switch the test's
FakeQueueService, which answers from the test's event loop; so the tests wait for the processes without
blocking the loop (``await worker.wait_until(...)``, ``await worker.finish()``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc")

# Each handler writes "start PID CONTENT" and holds its message until the test creates the "go" file, then
# writes "end PID CONTENT": the test knows which process holds what, and whether a handler ran to its end.
HANDLER = """
import asyncio, os

MARKS = os.environ["MARKS_FILE"]

async def handle(msg):
    with open(MARKS, "a") as f:
        f.write(f"start {os.getpid()} {msg.content}\\n")
    while not os.path.exists(MARKS + ".go"):
        await asyncio.sleep(0.05)
    with open(MARKS, "a") as f:
        f.write(f"end {os.getpid()} {msg.content}\\n")
"""

# A handler module whose import does not finish until the test says so (a slow import: a model loaded,
# a connection made), having said that it began.
SLOW_IMPORT = """
import os, time

MARKS = os.environ["MARKS_FILE"]
with open(MARKS, "a") as f:
    f.write(f"importing {os.getpid()}\\n")
while not os.path.exists(MARKS + ".go"):
    time.sleep(0.05)

async def handle(msg):
    pass
"""

GRACE = "import sys, aioqueue._consumer as s; s.FETCH_GRACE_ON_STOP = {}; import aioqueue.cli as c; sys.exit(c.main())"


class Worker:
    """``python -m aioqueue.cli worker`` in a session of its own (so that ``killpg`` reaches only its
    tree), its stderr collected by a thread so that waiting for a line never blocks past its bound."""

    def __init__(
        self, conn_str: str, tmp_path: Path, queue: str, *options: str, handler: str, fetch_grace: float | None = None
    ) -> None:
        (tmp_path / "signals_handler.py").write_text(handler)
        self.marks = tmp_path / "marks.txt"
        # fetch_grace: how long the receive under way at a stop may take to answer (5 s), raised so that
        # a test holding that answer does not race the bound on a loaded machine
        command = ["-m", "aioqueue.cli"] if fetch_grace is None else ["-c", GRACE.format(fetch_grace)]
        self.proc = subprocess.Popen(
            [sys.executable, *command, "worker", queue, "signals_handler:handle", *options],
            cwd=tmp_path,
            env={
                **os.environ,
                "AZURE_STORAGE_CONNECTION_STRING": conn_str,
                "MARKS_FILE": str(self.marks),
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # until every process holding the pipe has exited
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def count(self, words: str) -> int:
        return sum(words in line for line in list(self.lines))

    def mark_lines(self, kind: str) -> list[str]:
        lines = self.marks.read_text().splitlines() if self.marks.exists() else []
        return [line for line in lines if line.startswith(kind + " ")]

    def pids(self, kind: str) -> set[int]:
        return {int(line.split()[1]) for line in self.mark_lines(kind)}

    def go(self) -> None:
        Path(f"{self.marks}.go").touch()

    async def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"{what} (within {timeout} s); stderr:\n{self.err[-3000:]}"
            await asyncio.sleep(0.05)

    async def finish(self, timeout: float = 60) -> int:
        """The parent's exit code, once every process writing to its stderr has exited."""
        code = await asyncio.to_thread(self.proc.wait, timeout)
        await asyncio.to_thread(self.reader.join, timeout)
        assert not self.reader.is_alive(), f"a process still holds stderr open:\n{self.err[-3000:]}"
        return code


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Started workers; whatever still runs at the end (orphaned children included) is killed."""
    started: list[Worker] = []
    yield started
    for worker in started:
        for pid in {worker.proc.pid} | worker.pids("start") | worker.pids("importing"):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        worker.proc.wait(timeout=60)
        worker.reader.join(60)
        if worker.proc.stderr is not None:
            worker.proc.stderr.close()


def proc_field(pid: int, name: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def alive(pid: int) -> bool:
    """Running, or stopped; not gone and not a zombie left for a parent that no longer reaps it."""
    state = proc_field(pid, "State")
    return state is not None and not state.startswith(("Z", "X"))


def sigterm_pending(pid: int) -> bool:
    bit = 1 << (signal.SIGTERM - 1)
    return any(int(proc_field(pid, field) or "0", 16) & bit for field in ("SigPnd", "ShdPnd"))


async def start_holding(conn_str: str, tmp_path: Path, queue: str, workers: list[Worker]) -> Worker:
    """Two processes, each holding messages in handlers waiting for the go file."""
    worker = Worker(conn_str, tmp_path, queue, "--processes", "2", "--concurrency", "2", handler=HANDLER)
    workers.append(worker)
    await worker.wait_until(lambda: len(worker.pids("start")) == 2, "both processes hold messages")
    return worker


def assert_drained_once(worker: Worker, code: int) -> None:
    err = worker.err
    assert code == 0, err
    assert worker.count("SIGTERM: stopping") == 2, err  # each child, once
    assert "second SIGTERM" not in err and "cancelled" not in err, err
    assert worker.count("done: processed=") == 2, err
    started = sorted(line.split(" ", 1)[1] for line in worker.mark_lines("start"))
    assert sorted(line.split(" ", 1)[1] for line in worker.mark_lines("end")) == started, "a handler was cut short"


@pytest.mark.parametrize("late_forward", [False, True], ids=["group", "group-then-late-forward"])
async def test_one_sigterm_to_the_process_group_is_one_graceful_drain_in_each_child(
    conn_str, queue_client, tmp_path, workers, late_forward
):
    """A signal to the process group (a terminal's Ctrl-C; systemd's KillMode=control-group signals each
    process of the unit alike) reaches parent and children, and the parent passes it on too. The children
    must count it once, not as the second signal that cancels their handlers. ``late_forward`` makes the
    parent pass it on only after the children have taken the group's signal (as a parent scheduled late on
    a busy machine does), which the race decides otherwise."""
    await queue_client.send_messages([f"job {i}" for i in range(8)])
    worker = await start_holding(conn_str, tmp_path, queue_client.queue_name, workers)
    parent = worker.proc.pid
    children = worker.pids("start")
    if late_forward:
        os.kill(parent, signal.SIGSTOP)
        await worker.wait_until(lambda: (proc_field(parent, "State") or "").startswith("T"), "the parent stopped")
    os.killpg(parent, signal.SIGTERM)
    if late_forward:
        await worker.wait_until(lambda: not any(sigterm_pending(pid) for pid in children), "the children took it")
        os.kill(parent, signal.SIGCONT)
    await worker.wait_until(lambda: worker.count("SIGTERM: stopping") >= 2, "both children stopping")
    assert worker.mark_lines("end") == [], "the handlers wait for the go file"
    worker.go()
    assert_drained_once(worker, await worker.finish())


async def test_children_drain_and_exit_when_their_parent_is_killed(conn_str, queue_client, tmp_path, workers):
    """SIGKILL of the parent (an OOM kill, a careless kill -9) must not leave its children consuming as
    orphans: each drains gracefully, as on SIGTERM, and exits."""
    await queue_client.send_messages([f"job {i}" for i in range(8)])
    worker = await start_holding(conn_str, tmp_path, queue_client.queue_name, workers)
    children = worker.pids("start")
    os.kill(worker.proc.pid, signal.SIGKILL)
    assert await asyncio.to_thread(worker.proc.wait, 60) == -signal.SIGKILL
    await worker.wait_until(lambda: worker.count("SIGTERM: stopping") >= 2, "both children stopping", timeout=30)
    assert worker.count("parent process is gone") == 2, worker.err
    worker.go()
    await worker.wait_until(lambda: not any(alive(pid) for pid in children), "the children exited", timeout=30)
    await worker.finish()
    assert_drained_once(worker, 0)


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_a_sigterm_while_the_handler_module_imports_exits_0(conn_str, tmp_path, workers, processes):
    """A signal before the worker started (the handler's module still importing) ends it cleanly: exit 0 and
    a line saying so, not death by the signal (-15), nor 241 from the parent of --processes children."""
    worker = Worker(conn_str, tmp_path, "jobs", "--processes", processes, handler=SLOW_IMPORT)
    workers.append(worker)
    await worker.wait_until(lambda: len(worker.pids("importing")) == int(processes), "the handler module importing")
    os.killpg(worker.proc.pid, signal.SIGTERM)
    code = await worker.finish()
    assert code == 0, worker.err
    assert worker.count("SIGTERM: stopped before the worker started") == int(processes), worker.err
    assert not any(alive(pid) for pid in worker.pids("importing"))


@pytest.mark.parametrize("target", ["group", "parent"])
async def test_a_second_signal_still_cancels_the_handlers(conn_str, queue_client, tmp_path, workers, target):
    """Counting a group-wide signal once must not swallow a real second one, sent to the group again or to
    the parent alone (as Kubernetes and Docker signal PID 1)."""
    await queue_client.send_messages([f"job {i}" for i in range(8)])
    worker = await start_holding(conn_str, tmp_path, queue_client.queue_name, workers)
    kill = os.killpg if target == "group" else os.kill
    kill(worker.proc.pid, signal.SIGTERM)
    await worker.wait_until(lambda: worker.count("SIGTERM: stopping") >= 2, "both children stopping")
    kill(worker.proc.pid, signal.SIGTERM)
    assert await worker.finish() == 0, worker.err
    assert worker.count("second SIGTERM: cancelling the handlers under way") == 2, worker.err
    assert worker.count("cancelled: handlers under way were cancelled") == 2, worker.err
    assert worker.mark_lines("end") == [], "the handlers were cancelled while they waited"


async def test_children_still_importing_the_handler_exit_when_their_parent_is_killed(conn_str, tmp_path, workers):
    worker = Worker(conn_str, tmp_path, "jobs", "--processes", "2", handler=SLOW_IMPORT)
    workers.append(worker)
    await worker.wait_until(lambda: len(worker.pids("importing")) == 2, "the handler module importing")
    os.kill(worker.proc.pid, signal.SIGKILL)
    await worker.wait_until(lambda: not any(alive(pid) for pid in worker.pids("importing")), "the children exited", 30)
    await worker.finish()
    assert worker.count("the parent process is gone") == 2, worker.err
    assert worker.count("SIGTERM: stopped before the worker started") == 2, worker.err


@pytest.mark.fake_options(clock="frozen")
async def test_sigterm_gives_fetched_but_unstarted_messages_back_before_the_drain(fake, fake_queue, tmp_path, workers):
    """A message the worker has fetched but not started is visible to another client right after SIGTERM,
    while a handler under way still runs (so before the drain ends), not after its visibility timeout: on
    scale-in another replica takes it at once. The fake's clock stands still, so nothing but a release can
    make it visible again (its hour-long visibility timeout never lapses)."""
    queue = fake_queue.queue_name
    options = ("--concurrency", "2", "--visibility", "1h", "--shutdown-timeout", "1h")  # nothing lapses meanwhile
    worker = Worker(fake.connection_string, tmp_path, queue, *options, handler=HANDLER, fetch_grace=600)
    workers.append(worker)
    await fake_queue.send_message("running")
    await worker.wait_until(lambda: bool(worker.mark_lines("start")), "the first handler started")
    gate = fake.hold("get_messages")  # the worker's next receive (for its one free slot), held before it is done
    await asyncio.wait_for(gate.arrived.wait(), 60)
    await fake_queue.send_message("unstarted")
    worker.proc.send_signal(signal.SIGTERM)
    await worker.wait_until(lambda: worker.count("SIGTERM: stopping") == 1, "the worker stopping")
    gate.release.set()  # the receive now leases "unstarted" for an hour, and answers a worker that is stopping
    await asyncio.wait_for(gate.done.wait(), 60)
    deadline = time.monotonic() + 30  # far less than the hour it was leased for
    while not (visible := await fake_queue.peek_messages(max_messages=32)) or visible[0].content != "unstarted":
        assert time.monotonic() < deadline, f"the unstarted message was not given back; stderr:\n{worker.err[-3000:]}"
        await asyncio.sleep(0.05)
    assert [m.content for m in visible] == ["unstarted"] and visible[0].dequeue_count == 1  # fetched once
    assert worker.proc.poll() is None and worker.mark_lines("end") == [], "the handler under way still runs"
    worker.go()
    assert await worker.finish() == 0, worker.err
    assert [line.split(" ", 2)[2] for line in worker.mark_lines("start")] == ["running"], "it never started"
    assert worker.count("done: processed=1 ") == 1, worker.err
    assert [m.content for m in await fake_queue.peek_messages(max_messages=32)] == ["unstarted"]
