"""The aioqueue command, run in-process against the suite's emulator."""

import argparse
import asyncio
import base64
import io
import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from aioqueue import QueueClient
from aioqueue._cli_stats import span
from aioqueue.cli import Progress, build_parser, main
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY
from tests import fake_emulator
from tests.cli import SCRIPT


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


def test_stats_shows_the_length_and_the_oldest_message_s_age(cli, queue_name):
    assert cli("create", queue_name)[0] == 0
    try:
        code, out = cli("stats", queue_name)
        header, row = out.splitlines()
        assert code == 0 and header.split() == ["NAME", "MESSAGES", "OLDEST_AGE", "MEASURED"]
        assert row.split()[:3] == [queue_name, "0", "-"]  # empty: no age
        assert cli("send", queue_name, "--lines", stdin="one\ntwo\n")[0] == 0
        code, out = cli("--json", "stats", queue_name)
        stats = json.loads(out)
        assert code == 0 and stats["queue"] == queue_name and stats["approximate_message_count"] == 2
        assert 0 <= stats["oldest_message_age_seconds"] < 3600
        assert datetime.fromisoformat(stats["measured_on"]).tzinfo is not None
        assert len(json.loads(cli("--json", "peek", queue_name, "--count", "32")[1])) == 2  # not received
        assert cli("stats", queue_name + "-missing")[0] == 3
    finally:
        cli("delete", queue_name, "--missing-ok")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0s"), (59.9, "59s"), (60, "1m 0s"), (303, "5m 3s"), (7200, "2h 0m"), (273600, "3d 4h")],
)
def test_stats_writes_an_age_in_two_units_at_most(seconds, shown):
    assert span(None if seconds is None else timedelta(seconds=seconds)) == shown


def test_errors_are_one_line_with_meaningful_exit_codes(cli, queue_name, capsys):
    assert cli("props", queue_name)[0] == 3  # not found
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as usage:  # bad usage, before any request: argparse's exit 2
        cli("peek", queue_name, "--count", "99")
    assert usage.value.code == 2 and "--count: must be 1..32" in capsys.readouterr().err
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
    assert code == 0 and "srt=sc" in json.loads(out)["sas"] and "ss=q&" in json.loads(out)["sas"]
    code, out = cli("sas", "--account", "--permission", "r", "--services", "qb")  # large payloads: the Blob service
    assert code == 0 and "ss=bq&" in out


def test_console_script_is_installed():
    script = SCRIPT
    assert script.is_file(), f"no console script at {script}: is aioqueue installed (pip install -e .)?"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: aioqueue") and "emulator" in result.stdout


@pytest.mark.emulator
@pytest.mark.parametrize(("stop_signal", "code"), [("SIGINT", 130), ("SIGTERM", 0)])
def test_emulator_command_runs_azurite_in_the_foreground(tmp_path, stop_signal, code):
    """Ctrl-C (130: interrupted) and SIGTERM (0: asked to stop, as a container runtime does) both stop
    Azurite; SIGTERM used to leave node holding the port."""
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(SCRIPT), "emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell runs background jobs with SIGINT ignored and children inherit that (Python then never
        # raises KeyboardInterrupt): give the command Ctrl-C's default, as a terminal would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        conn_line = proc.stdout.readline()
        assert conn_line.startswith("connection string: ")
        out = io.StringIO()
        assert main(["--connection-string", conn_line.split(": ", 1)[1].strip(), "create", "from-cli"], out=out) == 0
    finally:
        proc.send_signal(getattr(signal, stop_signal))
        try:
            proc.communicate(timeout=60)  # stop() allows Azurite 10 s to exit on SIGTERM, then kills it
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave it running for later tests to trip over
            proc.communicate()
            raise
    assert proc.returncode == code  # after stopping the emulator
    with socket.socket() as s:  # nothing holds the port any more
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_send_from_a_file_one_message_per_line_never_expiring(cli, queue_name, tmp_path, capsys):
    lines = tmp_path / "jobs.txt"
    lines.write_text("first job\n\nsecond job\n", encoding="utf-8")
    cli("create", queue_name)
    code, out = cli("--json", "send", queue_name, "--file", str(lines), "--lines", "--ttl", "-1")
    assert code == 0
    assert [r["expires_on"][:4] for r in json.loads(out)] == ["9999", "9999"]  # -1: never expires
    code, out = cli("--json", "peek", queue_name, "--count", "32")
    assert [m["content"] for m in json.loads(out)] == ["first job", "second job"]

    code, _ = cli("send", queue_name, "inline text", "--file", str(lines))
    assert code == 2 and "not both" in capsys.readouterr().err
    code, out = cli("--json", "peek", queue_name, "--count", "32")
    assert len(json.loads(out)) == 2  # nothing was sent


def test_update_without_content_only_changes_visibility(cli, queue_name):
    cli("create", queue_name)
    cli("send", queue_name, "keep me")
    [msg] = json.loads(cli("--json", "receive", queue_name, "--visibility", "1h")[1])
    assert json.loads(cli("--json", "peek", queue_name)[1]) == []  # hidden for an hour
    assert cli("update", queue_name, msg["id"], msg["pop_receipt"])[0] == 0  # default --visibility 0
    [again] = json.loads(cli("--json", "peek", queue_name)[1])
    assert (again["id"], again["content"], again["dequeue_count"]) == (msg["id"], "keep me", 1)


def test_tables_say_when_there_is_nothing(cli, queue_name):
    cli("create", queue_name)
    assert cli("peek", queue_name) == (0, "(none)\n")
    assert cli("queues", "--prefix", queue_name + "-none") == (0, "(none)\n")


def test_sas_start_and_expiry_as_iso_date_times(cli, queue_name, azurite):
    cli("create", queue_name)
    code, out = cli("sas", queue_name, "--permission", "ra", "--start", "2020-01-01T00:00:00", "--expiry",
                    "2099-01-01T02:00:00+02:00")  # fmt: skip
    assert code == 0
    token = out.strip()
    assert "st=2020-01-01T00%3A00%3A00Z" in token  # a date-time naming no zone is UTC
    assert "se=2099-01-01T00%3A00%3A00Z" in token  # one naming a zone is converted to UTC
    assert "se=2099-01-01T00%3A00%3A00Z" in cli("sas", queue_name, "--expiry", "2099-01-01T00:00:00Z")[1]

    async def use() -> list[str]:
        async with QueueClient.from_queue_url(f"{azurite.url}/{queue_name}?{token}") as q:
            await q.send_message("with a dated SAS")
        async with QueueClient.from_connection_string(azurite.connection_string, queue_name) as q:
            return [m.content for m in await q.peek_messages()]

    assert asyncio.run(use()) == ["with a dated SAS"]


def test_sas_needs_an_account_key_and_a_queue_or_account(cli, capsys):
    sas_only = "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;SharedAccessSignature=sv=2025-11-05&sig=abc"
    assert cli("--connection-string", sas_only, "sas", "jobs")[0] == 2
    assert "AccountName and AccountKey" in capsys.readouterr().err
    assert cli("sas")[0] == 2
    assert "name the queue, or pass --account" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["send", "jobs", "x", "--ttl", "soon"], "not a duration: 'soon'"),
        (["receive", "jobs", "--visibility", "5 minutes"], "not a duration"),
        (["create", "jobs", "--metadata", "team"], "metadata must be name=value, not 'team'"),
        (["sas", "jobs", "--expiry", "next tuesday"], "not a duration or ISO date-time: 'next tuesday'"),
    ],
)
def test_bad_option_values_are_usage_errors_before_any_request(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--connection-string", "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1", *argv], out=io.StringIO())
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_for_big_jobs_only():
    tty = _Terminal()
    progress = Progress("sent", 100, stream=tty)
    progress.add(40)
    progress.add(60)
    progress.finish()
    assert tty.getvalue() == "\rsent [########------------] 40/100\rsent [####################] 100/100\n"
    tty = _Terminal()
    progress = Progress("received", None, stream=tty)  # no total known
    progress.add(5)
    progress.finish()
    assert tty.getvalue() == "\rreceived 5\n"
    for stream, total in ((_Terminal(), 32), (io.StringIO(), 1000)):  # small, or not a terminal: quiet
        progress = Progress("sent", total, stream=stream)
        progress.add(total)
        progress.finish()
        assert stream.getvalue() == ""


def test_debug_logs_requests_and_shows_the_traceback(azurite):
    wrong_key = base64.b64encode(b"w" * 64).decode()
    conn = azurite.connection_string.replace(DEV_KEY, wrong_key)
    result = subprocess.run(
        [str(SCRIPT), "--debug", "--connection-string", conn, "queues"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1  # a service error
    assert "aioqueue DEBUG GET http://" in result.stderr  # each request, logged
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("aioqueue: AuthenticationFailed (HTTP 403)")
    assert wrong_key not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a script stands in for azurite-queue")
def test_emulator_command_ends_when_the_emulator_does(tmp_path, monkeypatch):
    script = fake_emulator.listening(tmp_path / "azurite-queue", exit_after_probe=0)
    monkeypatch.setenv("AIOQUEUE_AZURITE", str(script))
    out = io.StringIO()
    assert main(["emulator", "--port", "0"], out=out) == 0
    assert "connection string: DefaultEndpointsProtocol=http;" in out.getvalue()


@pytest.mark.skipif(sys.platform == "win32", reason="a script stands in for azurite-queue")
def test_emulator_command_fails_when_the_emulator_crashes(tmp_path, monkeypatch):
    script = fake_emulator.listening(tmp_path / "azurite-queue", exit_after_probe=3)
    monkeypatch.setenv("AIOQUEUE_AZURITE", str(script))
    assert main(["emulator", "--port", "0"], out=io.StringIO()) != 0


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for azurite-queue")
def test_emulator_command_that_cannot_start_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    broken = tmp_path / "azurite-queue"
    broken.write_text('#!/bin/sh\necho "Error: listen EADDRINUSE: address already in use 127.0.0.1:10001"\nexit 1\n')
    broken.chmod(0o755)
    monkeypatch.setenv("AIOQUEUE_AZURITE", str(broken))
    assert main(["emulator"], out=io.StringIO()) == 1
    assert capsys.readouterr().err == (
        "aioqueue: Azurite did not start: Error: listen EADDRINUSE: address already in use 127.0.0.1:10001\n"
    )


def test_a_sas_over_plain_http_to_the_network_needs_the_cli_s_opt_in(cli, capsys):
    """An emulator in docker compose with a SAS connection string: refused, naming the flag; with it,
    the request goes out (to a port nothing listens on here: exit 1, not 2)."""
    conn = "QueueEndpoint=http://queues.invalid:9/devstoreaccount1;SharedAccessSignature=sv=2025-11-05&sig=abc"
    assert cli("--connection-string", conn, "queues")[0] == 2
    assert "--allow-insecure-http" in capsys.readouterr().err
    assert cli("--allow-insecure-http", "--connection-string", conn, "queues")[0] == 1


# ---- issue 14: no silent fallback, options anywhere, encodings, new commands, exit codes --------


def test_no_connection_is_a_usage_error_that_says_how_to_give_one(monkeypatch, capsys):
    """It quietly used the local emulator: a missing variable in production looked like a missing queue."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    assert main(["props", "jobs"], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "no connection given" in err and "--connection-string" in err and "--emulator" in err


def test_emulator_account_url_and_connection_string_are_each_enough(azurite, queue_name, monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    url = azurite.url
    assert main(["--account-url", url, "--account-key", DEV_KEY, "create", queue_name], out=io.StringIO()) == 0
    assert main(["--connection-string", azurite.connection_string, "props", queue_name], out=io.StringIO()) == 0
    out = io.StringIO()
    assert main(["props", queue_name, "--connection-string", azurite.connection_string, "--json"], out=out) == 0
    assert json.loads(out.getvalue())["name"] == queue_name  # options after the command too
    code = main(["--emulator", "--connection-string", azurite.connection_string, "queues"], out=io.StringIO())
    assert code == 2  # two connections: which one?


def test_options_go_before_or_after_the_command(cli, queue_name):
    cli("create", queue_name)
    cli("send", queue_name, "hello")
    code, before = cli("--json", "peek", queue_name)
    code2, after = cli("peek", queue_name, "--json")
    assert code == code2 == 0 and json.loads(before) == json.loads(after)
    assert json.loads(after)[0]["content"] == "hello"


def test_encoding_for_send_peek_and_receive(cli, queue_name):
    """An Azure Functions message (base64 of JSON) peeked as eyJvcmRlciI6IDQyfQ==."""
    cli("create", queue_name)
    assert cli("send", queue_name, '{"order": 42}', "--encoding", "base64-json")[0] == 0
    code, out = cli("--json", "peek", queue_name, "--encoding", "base64-json")
    assert code == 0 and json.loads(out)[0]["content"] == {"order": 42}
    code, out = cli("--json", "peek", queue_name)  # as text: what is on the wire, base64 of the JSON
    assert json.loads(base64.b64decode(json.loads(out)[0]["content"])) == {"order": 42}
    code, out = cli("--json", "receive", queue_name, "--encoding", "base64-json", "--delete")
    assert json.loads(out)[0]["content"] == {"order": 42}


def test_stdin_loses_exactly_one_trailing_newline_unless_raw(cli, queue_name):
    cli("create", queue_name)
    cli("send", queue_name, stdin="line\n")
    cli("send", queue_name, stdin="two\n\n")
    cli("send", queue_name, "--raw", stdin="kept\n")
    code, out = cli("--json", "peek", queue_name, "--count", "3")
    assert code == 0 and [m["content"] for m in json.loads(out)] == ["line", "two\n", "kept\n"]


def test_delete_message_and_a_stale_pop_receipt_exit_code(cli, queue_name):
    cli("create", queue_name)
    cli("send", queue_name, "x")
    [msg] = json.loads(cli("--json", "receive", queue_name)[1])
    assert cli("delete-message", queue_name, msg["id"], msg["pop_receipt"]) == (0, f"deleted: {msg['id']}\n")
    # gone now: 404 MessageNotFound on Azure, 400 PopReceiptMismatch on Azurite; one exit code for both
    assert cli("delete-message", queue_name, msg["id"], msg["pop_receipt"])[0] == 3


def test_move_replays_messages_exactly_and_deletes_only_what_was_stored(cli, queue_name):
    poison = queue_name + "-poison"
    cli("create", poison)
    texts = ["plain", "eyJvcmRlciI6IDQyfQ==", "<&>", "x" * 1000]
    for text in texts:
        cli("send", poison, text)
    moved_two = (0, f"moved 2 messages: {poison} -> {queue_name}\n")
    assert cli("move", poison, queue_name, "--count", "2", "--ttl", "1h") == moved_two
    assert cli("move", poison, queue_name, "--all")[0] == 0
    moved = json.loads(cli("--json", "peek", queue_name, "--count", "32")[1])
    assert sorted(m["content"] for m in moved) == sorted(texts)  # the text as stored, not re-encoded
    assert json.loads(cli("--json", "props", poison)[1])["approximate_message_count"] == 0
    lives = sorted(datetime.fromisoformat(m["expires_on"]) - datetime.fromisoformat(m["inserted_on"]) for m in moved)
    assert timedelta(minutes=59) <= lives[0] <= lives[1] <= timedelta(minutes=61)  # --ttl 1h, given explicitly
    assert timedelta(days=7) - timedelta(minutes=1) <= lives[2]  # the default: 7 days, given explicitly
    assert cli("move", queue_name, queue_name, "--all")[0] == 2


def test_an_existing_queue_is_exit_4_in_words(cli, queue_name, capsys):
    """'QueueAlreadyExists (HTTP 204)' showed a success status as an error."""
    cli("create", queue_name)
    capsys.readouterr()
    assert cli("create", queue_name)[0] == 4
    err = capsys.readouterr().err
    assert err == f"aioqueue: queue already exists with the same metadata: {queue_name} (--exist-ok accepts that)\n"


def test_flag_errors_name_the_flag(cli, queue_name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli("peek", queue_name, "--count", "99")
    assert exc.value.code == 2 and "--count: must be 1..32" in capsys.readouterr().err
    # a range the library checks: said with the flag, not the Python parameter
    assert cli("receive", queue_name, "--visibility", "8d")[0] == 2
    err = capsys.readouterr().err
    assert "--visibility must be" in err and "visibility_timeout" not in err
    assert cli("send", queue_name, "x", "--ttl", "30", "--visibility", "60")[0] == 2
    err = capsys.readouterr().err
    assert "--visibility must be shorter than --ttl" in err, err


def test_every_flag_has_help_in_plain_text():
    parser = build_parser()
    commands: dict[str, argparse.ArgumentParser] = parser._subparsers._group_actions[0].choices  # type: ignore
    for p in [parser, *commands.values()]:
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{p.prog} {action.option_strings} has no help"
        text = p.format_help()
        assert "``" not in text, f"{p.prog}: reStructuredText in the help"
        assert "{https,https,http}" not in text
    assert "exit codes:" in parser.format_help()


def test_an_empty_error_answer_reads_in_words():
    from aioqueue._errors import service_error

    assert str(service_error(500, None, "", None, {})) == "HTTP 500, with no error code or message in the answer"


def test_the_worker_stops_within_kubernetes_default_grace_period_by_default():
    """Issue #22: with its defaults `aioqueue worker` exited 121.6 s after SIGTERM. The receive under way is
    now given at most FETCH_GRACE_ON_STOP, and handlers are cancelled after the default shutdown timeout:
    together well inside Kubernetes' default 30 s."""
    from aioqueue._consumer import FETCH_GRACE_ON_STOP

    args = build_parser().parse_args(["worker", "jobs", "tasks:handle"])
    assert args.shutdown_timeout is not None
    assert args.shutdown_timeout + FETCH_GRACE_ON_STOP <= 25
