"""The aioqueue command's large payloads: ``send QUEUE @FILE`` (``--container C``), ``peek``/``receive``
with ``--resolve``, and ``payloads sweep``, against Azurite's queue and blob services together."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest

from aioqueue import BlobPayloads, QueueClient
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY
from tests.cli.conftest import Cli


def _container() -> str:
    return f"payloads-{uuid.uuid4().hex[:12]}"


def _blob_names(conn: str, queue: str, container: str) -> list[str]:
    async def names() -> list[str]:
        payloads = BlobPayloads(container=container)
        async with QueueClient.from_connection_string(conn, queue, large_payloads=payloads) as client:
            store = client._pool.payloads
            assert store is not None
            page, _ = await store.blobs.list_blobs(prefix=f"{queue}/")
            return [b.name for b in page]

    return asyncio.run(names())


def test_send_at_file_reads_the_file_and_at_at_is_a_literal_at(
    cli: Cli, queue_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "message.txt"
    path.write_text("from a file\n", encoding="utf-8")
    assert cli("create", queue_name)[0] == 0
    assert cli("send", queue_name, f"@{path}")[0] == 0
    assert cli("send", queue_name, "@@channel")[0] == 0
    assert cli("send", queue_name, "plain")[0] == 0
    code, out = cli("--json", "peek", queue_name, "--count", "3")
    assert code == 0
    assert [m["content"] for m in json.loads(out)] == ["from a file\n", "@channel", "plain"]  # the file verbatim

    capsys.readouterr()
    assert cli("send", queue_name, "@")[0] == 2
    assert "@FILE" in capsys.readouterr().err
    assert cli("send", queue_name, f"@{tmp_path / 'missing.txt'}")[0] == 2
    assert "missing.txt" in capsys.readouterr().err
    assert cli("send", queue_name, f"@{path}", "--file", str(path))[0] == 2
    assert cli("delete", queue_name)[0] == 0


def test_send_with_container_then_peek_and_receive_resolve(
    cli: Cli, azurite_both_conn_str: str, queue_name: str, tmp_path: Path
) -> None:
    container = _container()
    text = "large payload " * 10_000  # 140,000 characters: over 64 KiB
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    conn = ("--connection-string", azurite_both_conn_str)
    assert cli(*conn, "create", queue_name)[0] == 0
    assert cli(*conn, "send", queue_name, f"@{path}", "--container", container)[0] == 0
    (blob,) = _blob_names(azurite_both_conn_str, queue_name, container)

    # without --resolve: the reference's text
    code, out = cli(*conn, "--json", "peek", queue_name)
    ref = json.loads(json.loads(out)[0]["content"])
    assert code == 0 and ref["aioqueue_payload"] == 1 and ref["blob"] == blob and ref["size"] == len(text)
    # --resolve: the payload, from the container the reference names or the one given
    for extra in ((), ("--container", container)):
        code, out = cli(*conn, "--json", "peek", queue_name, "--resolve", *extra)
        assert code == 0 and json.loads(out)[0]["content"] == text
    code, out = cli(*conn, "--json", "receive", queue_name, "--resolve", "--container", container, "--delete")
    assert code == 0 and json.loads(out)[0]["content"] == text
    assert _blob_names(azurite_both_conn_str, queue_name, container) == []  # deleted after its message
    assert cli(*conn, "delete", queue_name)[0] == 0


def test_payloads_sweep(cli: Cli, azurite_both_conn_str: str, queue_name: str) -> None:
    container = _container()
    conn = ("--connection-string", azurite_both_conn_str)

    async def orphans() -> None:
        payloads = BlobPayloads(container=container)
        async with QueueClient.from_connection_string(azurite_both_conn_str, queue_name, large_payloads=payloads) as q:
            store = q._pool.payloads
            assert store is not None
            await store.blobs.create_container()
            past, later = str(int(time.time()) - 60), str(int(time.time()) + 3600)
            await store.blobs.put_blob(f"{queue_name}/gone", b"x", {"aioqueue_expires": past})
            await store.blobs.put_blob(f"{queue_name}/waiting", b"x", {"aioqueue_expires": later})
            await store.blobs.put_blob(f"{queue_name}/forever", b"x", {"aioqueue_expires": "never"})

    asyncio.run(orphans())
    sweep = (*conn, "payloads", "sweep", queue_name, "--container", container)
    assert cli(*sweep, "--dry-run") == (0, f"would remove 1 payload blob of {queue_name} (container {container})\n")
    assert len(_blob_names(azurite_both_conn_str, queue_name, container)) == 3
    code, out = cli("--json", *sweep)
    assert code == 0
    assert json.loads(out) == {"queue": queue_name, "container": container, "removed": 1, "dry_run": False}
    assert sorted(_blob_names(azurite_both_conn_str, queue_name, container)) == [
        f"{queue_name}/forever",
        f"{queue_name}/waiting",
    ]
    assert cli(*sweep) == (0, f"removed 0 payload blobs of {queue_name} (container {container})\n")


def test_payload_options_are_checked_before_any_request(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    # nothing listens on port 9: a request would be exit 1, not 2
    endpoints = f"QueueEndpoint=http://127.0.0.1:9/{DEV_ACCOUNT};BlobEndpoint=http://127.0.0.1:9/{DEV_ACCOUNT}"
    conn = f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};{endpoints}"
    unreachable = ("--connection-string", conn)
    for argv, said in [
        (("receive", "jobs", "--resolve"), "needs --container"),
        (("peek", "jobs", "--container", "payloads"), "--container goes with --resolve"),
        (("receive", "jobs", "--container", "payloads"), "--container goes with --resolve"),
        (("payloads", "sweep", "jobs", "--container", "Bad_Name"), "invalid container name"),
        (("send", "jobs", "x", "--container", "a"), "invalid container name"),
    ]:
        assert cli(*unreachable, *argv)[0] == 2, argv
        assert said in capsys.readouterr().err, argv
    with pytest.raises(SystemExit) as usage:
        cli("payloads", "sweep", "jobs")
    assert usage.value.code == 2 and "--container" in capsys.readouterr().err
