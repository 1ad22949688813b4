"""How the aioqueue command fails: an exit code per kind of error, one line on stderr (one JSON
object with --json), and the flag the user typed named in the error."""

from __future__ import annotations

import io
import json
import subprocess
from datetime import timedelta
from importlib.metadata import version

import pytest

import aioqueue
from aioqueue import generate_account_sas
from aioqueue.cli import main
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY, Azurite
from tests.cli import SCRIPT
from tests.cli.conftest import Cli


def test_sending_to_a_missing_queue_is_not_found_exit_3(cli: Cli, queue_name: str, capsys) -> None:
    """It exited 1 (send_messages' SendMessagesError hid the QueueNotFound), where peek, move and
    delete-message exit 3."""
    assert cli("send", queue_name, "hi")[0] == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "QueueNotFound" in err
    assert cli("send", queue_name, "--lines", stdin="a\nb\n")[0] == 3
    assert cli("peek", queue_name)[0] == 3  # the same code as the others


def test_a_service_error_with_json_is_one_json_object_on_stderr(cli: Cli, queue_name: str, capsys) -> None:
    assert cli("--json", "props", queue_name) == (3, "")
    [line] = capsys.readouterr().err.splitlines()
    error = json.loads(line)
    assert error["exit"] == 3 and error["type"] == "QueueNotFound"
    assert error["status"] == 404 and error["code"] == "QueueNotFound" and error["request_id"]
    assert error["error"].startswith("QueueNotFound (HTTP 404)")


def test_a_usage_error_with_json_is_json_too(cli: Cli, capsys) -> None:
    assert cli("create", "Bad_Name", "--json")[0] == 2
    [line] = capsys.readouterr().err.splitlines()
    error = json.loads(line)
    assert (error["exit"], error["type"]) == (2, "ConfigurationError") and "queue name" in error["error"]
    assert "status" not in error  # no answer: nothing was sent


def test_a_command_line_error_with_json_is_json_too(capsys) -> None:
    """argparse's own errors (a value out of range, a missing argument) too, with its exit code 2."""
    with pytest.raises(SystemExit) as exc:
        main(["--json", "--emulator", "peek", "jobs", "--count", "99"], out=io.StringIO())
    assert exc.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line) == {
        "error": "aioqueue peek: argument --count: must be 1..32",
        "exit": 2,
        "type": "UsageError",
    }
    with pytest.raises(SystemExit):
        main(["peek", "--json"], out=io.StringIO())
    assert json.loads(capsys.readouterr().err)["error"].endswith("the following arguments are required: queue")


def test_without_json_a_command_line_error_is_argparse_s(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--emulator", "peek", "jobs", "--count", "99"], out=io.StringIO())
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: aioqueue peek") and err.endswith("error: argument --count: must be 1..32\n")


def test_no_connection_with_json_is_json(monkeypatch, capsys) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    assert main(["props", "jobs", "--json"], out=io.StringIO()) == 2
    error = json.loads(capsys.readouterr().err)
    assert error["exit"] == 2 and error["error"].startswith("no connection given")


# ---- --account-url: with a SAS in it, or with no credential at all ------------------------------


def test_an_account_url_carrying_a_sas_needs_no_other_credential(
    azurite: Azurite, queue_name: str, monkeypatch, capsys
) -> None:
    """A SAS URL, as the portal and Storage Explorer hand it out, is the whole connection (as for
    QueueServiceClient(url) and QueueClient.from_queue_url): the CLI used to drop its query."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    sas = generate_account_sas(
        DEV_ACCOUNT, DEV_KEY, resource_types="sco", permission="rwdlacup", expiry=timedelta(hours=1)
    )
    url = f"{azurite.url}?{sas}"
    assert main(["--account-url", url, "create", queue_name], out=io.StringIO()) == 0, capsys.readouterr().err
    out = io.StringIO()
    assert main(["--account-url", url, "--json", "props", queue_name], out=out) == 0
    assert json.loads(out.getvalue())["name"] == queue_name
    # one SAS, not two
    assert main(["--account-url", url, "--sas", sas, "props", queue_name], out=io.StringIO()) == 2
    assert "--sas" in capsys.readouterr().err
    assert main(["--account-url", url, "--account-key", DEV_KEY, "props", queue_name], out=io.StringIO()) == 2
    assert "--account-key" in capsys.readouterr().err


def test_an_account_url_alone_goes_on_without_a_credential(azurite: Azurite, monkeypatch, capsys) -> None:
    """Anonymous access, as the library allows (credential=None): the request goes out, and the
    service's refusal is the error (exit 1), with a word on what was missing."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    assert main(["--account-url", azurite.url, "queues"], out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(HTTP 40" in err, err
    assert "no credential was given" in err and "--sas" in err and "--account-key" in err


# ---- the name: aioqueue-azure, imported as aioqueue -------------------------------------------


def test_version_names_the_distribution_and_the_import() -> None:
    """`pip install aioqueue` is someone else's package: --version says what to install and import."""
    result = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"aioqueue-azure {aioqueue.__version__} (import aioqueue)\n"
    assert version("aioqueue-azure") == aioqueue.__version__  # what pip installed says the same
