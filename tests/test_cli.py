"""The aioqueue command, run in-process against the suite's emulator."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aioqueue.cli import main
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY


@pytest.fixture
def cli(azurite, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)

    def run(*argv, stdin=None):
        out = io.StringIO()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv), out=out)
        return code, out.getvalue()

    return run


def test_queue_lifecycle_and_messages(cli, queue_name, capsys):
    assert cli("create", queue_name, "--metadata", "team=core") == (0, f"created: {queue_name}\n")
    code, out = cli("--json", "queues", "--prefix", queue_name, "--metadata")
    assert code == 0 and json.loads(out) == [{"name": queue_name, "metadata": {"team": "core"}}]

    code, out = cli("--json", "send", queue_name, "hello cli", "--ttl", "1h")
    assert code == 0 and len(json.loads(out)) == 1
    assert cli("send", queue_name, "--lines", stdin="a\nb\n\nc\n")[0] == 0

    code, out = cli("--json", "peek", queue_name, "--count", "32")
    assert [m["content"] for m in json.loads(out)] == ["hello cli", "a", "b", "c"]
    code, out = cli("props", queue_name)
    assert code == 0 and "4" in out and "team=core" in out

    code, out = cli("--json", "receive", queue_name, "--visibility", "30s")
    [msg] = json.loads(out)
    code, out = cli("--json", "update", queue_name, msg["id"], msg["pop_receipt"], "--content", "changed")
    assert code == 0 and json.loads(out)["pop_receipt"] != msg["pop_receipt"]
    code, out = cli("--json", "receive", queue_name, "--count", "10", "--delete")
    assert sorted(m["content"] for m in json.loads(out)) == ["a", "b", "c", "changed"]

    cli("send", queue_name, "x")
    assert cli("clear", queue_name) == (0, f"cleared: {queue_name}\n")
    assert json.loads(cli("--json", "props", queue_name)[1])["approximate_message_count"] == 0
    assert cli("delete", queue_name) == (0, f"deleted: {queue_name}\n")


def test_errors_are_one_line_with_meaningful_exit_codes(cli, queue_name, capsys):
    assert cli("props", queue_name)[0] == 3  # not found
    assert capsys.readouterr().err.count("\n") == 1
    assert cli("peek", queue_name, "--count", "99")[0] == 2  # bad usage, before any request
    assert "1 to 32" in capsys.readouterr().err
    assert cli("create", "Bad_Name")[0] == 2
    code, _ = cli("--connection-string", "AccountName=x;Oops", "queues")
    assert code == 2 and "Traceback" not in capsys.readouterr().err


def test_unreachable_service_is_exit_1(cli, capsys):
    code, _ = cli(
        "--connection-string",
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"QueueEndpoint=http://127.0.0.1:9/{DEV_ACCOUNT}",
        "queues",
    )
    assert code == 1 and "aioqueue:" in capsys.readouterr().err


def test_sas_generation(cli):
    code, out = cli("sas", "jobs", "--permission", "pa", "--expiry", "2h")
    assert code == 0 and "sp=ap" in out and "sig=" in out
    code, out = cli("--json", "sas", "--account", "--permission", "lr", "--resource-types", "sc")
    assert code == 0 and "srt=sc" in json.loads(out)["sas"]


def test_console_script_is_installed():
    """The 'aioqueue' command the package installs, beside this Python (the virtual environment's bin/)."""
    script = Path(sys.executable).with_name("aioqueue.exe" if sys.platform == "win32" else "aioqueue")
    assert script.is_file(), f"no console script at {script}: is aioqueue installed (pip install -e .)?"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: aioqueue") and "emulator" in result.stdout


def test_emulator_command_runs_azurite_in_the_foreground(tmp_path):
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "aioqueue.cli", "emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        conn_line = proc.stdout.readline()
        assert conn_line.startswith("connection string: ")
        out = io.StringIO()
        assert main(["--connection-string", conn_line.split(": ", 1)[1].strip(), "create", "from-cli"], out=out) == 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 130  # interrupted, after stopping the emulator
