"""``aioqueue emulator --fake``: the fake Queue service in the foreground, as ``aioqueue emulator`` runs
Azurite (the banner and connection string, --port, --host, Ctrl-C 130 and SIGTERM 0), with no Node.js:
a stand-in azurite-queue that leaves a file behind shows Azurite is never started."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess

import pytest

from aioqueue.cli import main
from tests.cli import SCRIPT
from tests.plugin import azurite_tripwire


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(os.name == "nt", reason="signals")
@pytest.mark.parametrize(("stop_signal", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_the_fake_serves_in_the_foreground_until_ctrl_c_or_sigterm(tmp_path, queue_name, stop_signal, code):
    tripwire, started = azurite_tripwire(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [str(SCRIPT), "emulator", "--fake", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "AIOQUEUE_AZURITE": str(tripwire)},
        # Ctrl-C's default, as a terminal gives it (a background job inherits SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        conn_line = proc.stdout.readline()
        assert banner.startswith("Fake Azure Queue service (aioqueue.testing.FakeQueueService) on "), banner
        assert f"http://127.0.0.1:{port}/devstoreaccount1 (in memory)" in banner
        assert conn_line.startswith("connection string: "), (banner, conn_line)
        conn_str = conn_line.split(": ", 1)[1].strip()
        assert f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1" in conn_str
        assert main(["--connection-string", conn_str, "create", queue_name], out=io.StringIO()) == 0
        assert main(["--connection-string", conn_str, "send", queue_name, "to the fake"], out=io.StringIO()) == 0
        # the well-known account's key: --emulator --port N talks to it as to Azurite
        out = io.StringIO()
        assert main(["--emulator", "--port", str(port), "--json", "peek", queue_name], out=out) == 0
        assert [m["content"] for m in json.loads(out.getvalue())] == ["to the fake"]
    finally:
        proc.send_signal(stop_signal)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave it running
            proc.communicate()
            raise
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    with socket.socket() as s:  # nothing holds the port any more
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert not started.exists()


def test_location_is_azurites_and_a_usage_error_with_fake(capsys) -> None:
    expected = "--location is Azurite's: the fake (--fake) keeps its queues in memory only"
    assert main(["emulator", "--fake", "--location", "data"], out=io.StringIO()) == 2
    assert capsys.readouterr().err == f"aioqueue: {expected}\n"
    assert main(["emulator", "--fake", "--location", "data", "--json"], out=io.StringIO()) == 2
    assert json.loads(capsys.readouterr().err) == {"error": expected, "exit": 2, "type": "ConfigurationError"}


def test_a_port_already_taken_is_an_error_that_says_so(capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = io.StringIO()
        assert main(["emulator", "--fake", "--port", str(port)], out=out) == 1
    assert out.getvalue() == ""  # no banner: it never served
    err = capsys.readouterr().err
    assert err.startswith(f"aioqueue: the fake queue service could not listen on 127.0.0.1:{port}: "), err
    assert "in use" in err, err
