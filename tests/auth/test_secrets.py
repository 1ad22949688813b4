"""No secret in any log record, error or repr, and no SAS or token sent over plain HTTP to the network without
an explicit opt-in."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from aioqueue import (
    AioQueueError,
    ConfigurationError,
    QueueClient,
    QueueServiceClient,
    RetryPolicy,
    ServiceError,
    generate_queue_sas,
)
from aioqueue._endpoint import parse_account_url
from aioqueue._errors import service_error
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY
from tests.faults import Fault, FaultProxy
from tests.helpers import STORAGE_SCOPE, FakeCredential

FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=None)


async def _exercise(q: QueueClient, proxy: FaultProxy, seen: list[str]) -> None:
    """A whole flow with faults, collecting every error text and repr."""
    proxy.script("503", "reset_before", Fault("429", headers={"Retry-After": "0"}))
    for call in (
        lambda: q.create_queue(exist_ok=True),
        lambda: q.send_message("secret-free"),
        lambda: q.peek_messages(),
        lambda: q.receive_messages(),
        lambda: q.get_queue_properties(),
    ):
        try:
            await call()
        except AioQueueError as exc:
            seen += [str(exc), repr(exc), str(getattr(exc, "headers", ""))]
    proxy.script(*["503"] * 3)
    try:
        await q.peek_messages()
    except AioQueueError as exc:
        seen += [str(exc), repr(exc), str(getattr(exc, "headers", ""))]
    seen.append(repr(q))


async def test_no_secret_leaks_with_debug_logging(proxy, queue_name, caplog):
    caplog.set_level(logging.DEBUG)
    sas = generate_queue_sas(DEV_ACCOUNT, queue_name, DEV_KEY, permission="raup", expiry=timedelta(hours=1))
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    seen: list[str] = []
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY, retry=FAST) as service:
        await service.create_queue(queue_name)
        await _exercise(service.get_queue_client(queue_name), proxy, seen)
    async with QueueClient(proxy.url(), queue_name, credential=sas, retry=FAST) as q:
        await _exercise(q, proxy, seen)
    async with QueueClient.from_queue_url(f"{proxy.url()}/{queue_name}?{sas}", retry=FAST) as q:
        await _exercise(q, proxy, seen)
    token_cred = FakeCredential(lifetime=-30)  # expired: every service refuses it (Azurite any token over http)
    async with QueueClient(proxy.url(), queue_name, credential=token_cred, retry=FAST) as q:
        with pytest.raises(AioQueueError) as info:
            await q.peek_messages()  # a refusal to inspect
        seen += [str(info.value), repr(info.value), str(getattr(info.value, "headers", ""))]
    token = (await token_cred.get_token(STORAGE_SCOPE)).token
    async with QueueServiceClient(proxy.url(), credential=DEV_KEY) as service:
        await service.delete_queue(queue_name)
    records = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    everything = "\n".join(records + seen)
    assert len(caplog.records) > 20 and "attempt=" in everything
    for secret in (DEV_KEY, signature, token.split(".")[1]):
        assert secret not in everything


# ---- secrets ------------------------------------------------------------------------------------


def test_a_service_error_s_message_never_holds_a_sas_signature():
    """A server that echoes the URL put sig= into .message (str() was redacted, .message was not)."""
    error = service_error(403, "AuthenticationFailed", "bad request to /q?sv=1&sig=SECRETSIG", "rid", {})
    assert isinstance(error, ServiceError)
    assert "SECRETSIG" not in error.message and "SECRETSIG" not in str(error) and "SECRETSIG" not in repr(error)


@pytest.mark.parametrize(
    "echo",
    [
        "copy source https://a.blob.core.windows.net/c/b%3Fsv%3D1%26sig%3DSECRETSIG%26se%3D2 refused",  # URL-encoded
        'bad SAS {"sv": "1", "sig": "SECRETSIG"}',  # a JSON echo, short value
        "bad SAS sig: SECRETSIG",
        "bad SAS 'sig'='SECRETSIG'",
    ],
)
def test_a_sas_signature_echoed_encoded_or_quoted_is_hidden(echo):
    """A service (or a handler's exception) can quote a SAS URL-encoded inside another URL, or as a JSON
    field: its signature is hidden there too (the review of #28 found both passed through)."""
    error = service_error(403, "AuthenticationFailed", echo, "rid", {})
    assert isinstance(error, ServiceError)
    assert "SECRETSIG" not in error.message and "SECRETSIG" not in str(error), error.message


def test_an_endpoint_s_repr_never_holds_its_sas():
    endpoint = parse_account_url("https://acct.queue.core.windows.net/?sv=1&sig=SECRETSIG")
    assert endpoint.sas is not None and "SECRETSIG" not in repr(endpoint)


def test_a_sas_over_http_to_the_network_takes_an_explicit_opt_in():
    url = "http://queues.example.com/devstoreaccount1"
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        QueueClient(url, "jobs", credential="sv=2025-11-05&sig=abc")
    q = QueueClient(url, "jobs", credential="sv=2025-11-05&sig=abc", allow_insecure_http=True)
    assert q.credential is not None
    QueueClient("http://127.0.0.1:10001/devstoreaccount1", "jobs", credential="sv=2025-11-05&sig=abc")  # loopback
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        QueueClient(url, "jobs", credential=FakeCredential())
    QueueClient(url, "jobs", credential=FakeCredential(), allow_insecure_http=True)
