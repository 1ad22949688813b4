"""Client lifecycle: lazy opening, owned vs shared pools, closed clients, no unclosed-session warnings."""

import gc
import warnings

import aiohttp
import pytest

from aioqueue import ConfigurationError, QueueClient, QueueServiceClient


def test_constructing_opens_nothing():
    # no running loop needed, no session made
    q = QueueClient.from_connection_string("UseDevelopmentStorage=true", "jobs")
    assert q._pool.http._session is None


async def test_closed_client_refuses_calls(conn_str, queue_client):
    q = QueueClient.from_connection_string(conn_str, queue_client.queue_name)
    async with q:
        await q.peek_messages()
    assert q.closed
    with pytest.raises(ConfigurationError, match="closed"):
        await q.peek_messages()
    with pytest.raises(ConfigurationError, match="closed"):
        async with q:
            pass
    await q.close()  # closing twice is harmless


async def test_child_never_closes_the_parents_pool(conn_str, queue_client):
    async with QueueServiceClient.from_connection_string(conn_str) as service:
        child = service.get_queue_client(queue_client.queue_name)
        await child.send_message("a")
        await child.close()
        with pytest.raises(ConfigurationError):
            await child.peek_messages()
        sibling = service.get_queue_client(queue_client.queue_name)
        assert len(await sibling.peek_messages()) == 1  # the pool still works
        session = service._pool.http._session
        assert session is not None and not session.closed
    assert session.closed
    with pytest.raises(ConfigurationError, match="closed"):
        await sibling.peek_messages()  # the parent closed the shared pool


async def test_bring_your_own_session_is_never_closed(conn_str, queue_client):
    async with aiohttp.ClientSession() as session:
        async with QueueClient.from_connection_string(conn_str, queue_client.queue_name, session=session) as q:
            await q.send_message("mine")
        assert not session.closed
        async with QueueClient.from_connection_string(conn_str, queue_client.queue_name, session=session) as q:
            assert len(await q.peek_messages()) == 1


async def test_no_unclosed_session_warning_in_correct_use(conn_str, queue_client, recwarn):
    warnings.simplefilter("always")
    for _ in range(3):
        async with QueueClient.from_connection_string(conn_str, queue_client.queue_name) as q:
            await q.send_message("x")
    service = QueueServiceClient.from_connection_string(conn_str)
    await service.get_queue_client(queue_client.queue_name).peek_messages()
    await service.close()
    del q, service
    gc.collect()
    assert not [w for w in recwarn if "Unclosed" in str(w.message)]


def test_unknown_options_are_refused():
    with pytest.raises(TypeError):
        QueueClient.from_connection_string("UseDevelopmentStorage=true", "jobs", retries=3)  # type: ignore[call-arg]  # mypy refuses it too
    with pytest.raises(ConfigurationError):
        QueueClient.from_connection_string("UseDevelopmentStorage=true", "jobs", timeout=0)
    with pytest.raises(ConfigurationError):
        QueueClient.from_connection_string("UseDevelopmentStorage=true", "jobs", max_connections=0)
    with pytest.raises(ConfigurationError):
        QueueClient.from_connection_string("UseDevelopmentStorage=true", "jobs", api_version="latest")
    with pytest.raises(ConfigurationError):
        QueueClient.from_connection_string("UseDevelopmentStorage=true", "jobs", message_encoding="yaml")
    with pytest.raises(ConfigurationError):
        QueueClient.from_connection_string("UseDevelopmentStorage=true", "Bad_Name")
    with pytest.raises(ConfigurationError):
        QueueClient("ftp://example.com", "jobs")
    with pytest.raises(ConfigurationError):
        QueueClient("https://acct.queue.core.windows.net", "jobs", credential=12345)  # type: ignore[arg-type]


def test_url_and_names():
    q = QueueClient("https://acct.queue.core.windows.net/", "jobs", credential="sv=1&sig=x")
    assert q.url == "https://acct.queue.core.windows.net/jobs" and q.account_name == "acct"
    s = QueueServiceClient("http://127.0.0.1:10001/devstoreaccount1")
    assert s.account_name == "devstoreaccount1" and s.get_queue_client("jobs").url.endswith("/devstoreaccount1/jobs")


def test_public_surface_is_exported():
    import aioqueue

    names = {
        "QueueServiceClient",
        "QueueClient",
        "SharedKeyCredential",
        "SasCredential",
        "RetryPolicy",
        "generate_queue_sas",
        "generate_account_sas",
        "AioQueueError",
        "ConfigurationError",
        "MessageEncodingError",
        "MessageTooLarge",
        "TransportError",
        "RequestTimeout",
        "ServiceError",
        "AuthenticationFailed",
        "QueueNotFound",
        "QueueAlreadyExists",
        "QueueBeingDeleted",
        "MessageNotFound",
        "PopReceiptMismatch",
        "ServerBusy",
        "SendReceipt",
        "QueueMessage",
        "PeekedMessage",
        "UpdateReceipt",
        "QueueItem",
        "QueueProperties",
        "AccessPolicy",
        "ServiceProperties",
        "ServiceStats",
        "ProcessStats",
        "MessageEncoding",
    }
    assert names <= set(aioqueue.__all__)
    assert all(hasattr(aioqueue, n) for n in aioqueue.__all__)
    assert issubclass(aioqueue.ConfigurationError, ValueError)
    assert issubclass(aioqueue.MessageTooLarge, aioqueue.MessageEncodingError)
    assert issubclass(aioqueue.RequestTimeout, TimeoutError) and issubclass(aioqueue.TransportError, OSError)
