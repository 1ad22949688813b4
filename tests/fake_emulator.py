"""Stand-ins for Azurite's ``azurite-queue`` command, for testing how aioqueue.testing and the
``aioqueue emulator`` command start, stop and report on an emulator that misbehaves.

Each is a small Python script run in place of ``azurite-queue`` (it ignores the arguments it is
given) that writes its process id to ``pid_file`` first.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

_HEAD = """#!{python}
import os, signal, socket, sys, time
with open({pid_file!r}, "w") as f:
    f.write(str(os.getpid()))
"""

# Listens on a free port and says so as Azurite does; then serves until stopped (or, with
# exit_after_probe, exits with that code once the readiness probe has connected).
_LISTEN = """
if {ignore_sigterm}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen()
print(f"Azurite Queue service successfully listens on http://127.0.0.1:{{sock.getsockname()[1]}}", flush=True)
if {exit_after_probe} is not None:
    sock.accept()[0].close()
    sys.exit({exit_after_probe})
while True:
    time.sleep(60)
"""

# Says it listens on a port nothing listens on, and stays up.
_ANNOUNCE_ONLY = """
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
print(f"Azurite Queue service successfully listens on http://127.0.0.1:{port}", flush=True)
while True:
    time.sleep(60)
"""


def _write(path: Path, body: str) -> Path:
    pid_file = path.with_suffix(".pid")
    path.write_text(_HEAD.format(python=sys.executable, pid_file=str(pid_file)) + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def listening(path: Path, *, ignore_sigterm: bool = False, exit_after_probe: int | None = None) -> Path:
    return _write(path, _LISTEN.format(ignore_sigterm=ignore_sigterm, exit_after_probe=exit_after_probe))


def announcing_a_closed_port(path: Path) -> Path:
    return _write(path, _ANNOUNCE_ONLY)


def pid_of(script: Path) -> int:
    return int(script.with_suffix(".pid").read_text())


def is_running(pid: int) -> bool:
    """Whether the process exists (a child that exited but was never waited for counts: it still
    holds its place, as a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
