"""Every way to authenticate, against the queue fixtures' service (Azurite, or the fake under the switch: each
validates Shared Key and SAS), and bearer tokens against Azurite over HTTPS."""

import asyncio
import base64
import ssl
from datetime import timedelta
from types import SimpleNamespace

import aiohttp
import pytest

from aioqueue import (
    AuthenticationFailed,
    ConfigurationError,
    QueueClient,
    QueueServiceClient,
    SasCredential,
    SharedKeyCredential,
    generate_account_sas,
    generate_queue_sas,
)
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY, Azurite
from tests.faults import token_refused
from tests.helpers import FakeCredential, mint_token, oauth_tls_args

WRONG_KEY = base64.b64encode(b"w" * 64).decode()


async def test_wrong_key_is_authentication_failed(aioqueue_service, queue_client):
    cred = SharedKeyCredential(DEV_ACCOUNT, WRONG_KEY)
    async with QueueClient(aioqueue_service.url, queue_client.queue_name, credential=cred) as q:
        with pytest.raises(AuthenticationFailed) as info:
            await q.peek_messages()
    assert info.value.status == 403 and info.value.error_code == "AuthenticationFailed"
    assert WRONG_KEY not in str(info.value) and WRONG_KEY not in repr(info.value)


async def test_account_key_as_str(aioqueue_service, queue_client):
    async with QueueClient(aioqueue_service.url, queue_client.queue_name, credential=DEV_KEY) as q:
        await q.send_message("via key str")
        assert [p.content for p in await q.peek_messages()] == ["via key str"]


async def test_generated_queue_sas_grants_only_its_permissions(aioqueue_service, queue_client):
    name = queue_client.queue_name
    full = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="raup", expiry=timedelta(hours=1))
    read_only = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(hours=1))
    async with QueueClient(aioqueue_service.url, name, credential=full) as q:
        await q.send_message("sas")
        [m] = await q.receive_messages()
        await q.update_message(m, visibility_timeout=0)
        await q.send_message("second")
    async with QueueClient(aioqueue_service.url, name, credential=read_only) as q:
        assert len(await q.peek_messages(max_messages=5)) == 2
        with pytest.raises(AuthenticationFailed):
            await q.send_message("refused")


async def test_sas_in_queue_url(aioqueue_service, queue_client):
    name = queue_client.queue_name
    sas = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="ra", expiry=timedelta(hours=1))
    async with QueueClient.from_queue_url(f"{aioqueue_service.url}/{name}?{sas}") as q:
        await q.send_message("from url")
        assert (await q.peek_messages())[0].content == "from url"
        assert "sig" not in q.url


async def test_expired_sas_is_refused(aioqueue_service, queue_client):
    name = queue_client.queue_name
    expired = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(seconds=-60))
    async with QueueClient(aioqueue_service.url, name, credential=expired) as q:
        with pytest.raises(AuthenticationFailed):
            await q.peek_messages()


async def test_sas_credential_rotates_in_place(aioqueue_service, queue_client):
    name = queue_client.queue_name
    cred = SasCredential(generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(hours=1)))
    async with QueueClient(aioqueue_service.url, name, credential=cred) as q:
        with pytest.raises(AuthenticationFailed):
            await q.send_message("not yet")
        cred.update("?" + generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="ra", expiry=timedelta(hours=1)))
        await q.send_message("now")
    assert "sig" not in repr(cred)


def _rotate_after_the_first_attempt(rotate):
    """A response hook that calls ``rotate()`` once the first attempt's (injected) 503 is in."""

    def hook(event):
        if event.attempt == 1 and event.status == 503:
            rotate()

    return {"response": [hook]}


async def test_a_retry_in_flight_carries_the_updated_sas(proxy, queue_client):
    name = queue_client.queue_name
    old = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(hours=1))
    new = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="ra", expiry=timedelta(hours=2))
    cred = SasCredential(old)
    proxy.script("503")  # the first attempt never reaches the server; the retry does
    hooks = _rotate_after_the_first_attempt(lambda: cred.update(new))
    async with QueueClient(proxy.url(), name, credential=cred, event_hooks=hooks) as q:
        await q.send_message("signed anew")  # "a" (add) is only in the new SAS
    first, retry = proxy.seen
    assert old in first.path and new not in first.path
    assert new in retry.path and old not in retry.path
    assert [m.content for m in await queue_client.peek_messages()] == ["signed anew"]


@pytest.mark.parametrize("how", ["update", "assignment"])
async def test_a_retry_in_flight_is_signed_with_the_updated_key(proxy, queue_client, how):
    cred = SharedKeyCredential(DEV_ACCOUNT, WRONG_KEY)
    rotate = (lambda: cred.update(DEV_KEY)) if how == "update" else (lambda: setattr(cred, "account_key", DEV_KEY))
    proxy.script("503")
    hooks = _rotate_after_the_first_attempt(rotate)
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=cred, event_hooks=hooks) as q:
        await q.send_message("signed anew")  # the service accepts only the development key
    first, retry = proxy.seen
    assert first.headers["Authorization"] != retry.headers["Authorization"]
    assert cred.account_key == DEV_KEY
    assert [m.content for m in await queue_client.peek_messages()] == ["signed anew"]


def test_a_bad_key_update_is_refused_and_keeps_the_old_key():
    cred = SharedKeyCredential(DEV_ACCOUNT, DEV_KEY)
    for bad in ("not base64!", "", 42):
        with pytest.raises(ConfigurationError) as info:
            cred.update(bad)  # type: ignore[arg-type]
        assert "not base64!" not in str(info.value)
        with pytest.raises(ConfigurationError):
            cred.account_key = bad  # type: ignore[assignment]
    assert cred.account_key == DEV_KEY
    assert DEV_KEY not in repr(cred)
    with pytest.raises(AttributeError):
        cred.acount_key = WRONG_KEY  # type: ignore[attr-defined]  # a misspelling is refused, not kept


async def test_account_sas_with_service_client(aioqueue_service, queue_client):
    sas = generate_account_sas(DEV_ACCOUNT, DEV_KEY, resource_types="sco", permission="rl", expiry=timedelta(hours=1))
    async with QueueServiceClient(aioqueue_service.url, credential=sas) as service:
        names = [q.name async for q in service.list_queues()]
        assert queue_client.queue_name in names
        with pytest.raises(AuthenticationFailed):
            await service.create_queue("not-allowed-here")


# ---- bearer tokens over HTTPS ------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_azurite(tmp_path_factory):
    tls, ca_file = oauth_tls_args(tmp_path_factory.mktemp("tls"))
    with Azurite(extra_args=tls) as emulator:
        yield SimpleNamespace(url=f"https://127.0.0.1:{emulator.port}/{DEV_ACCOUNT}", ca_file=ca_file)


@pytest.mark.emulator
async def test_token_credential_over_https(https_azurite, queue_name):
    ctx = ssl.create_default_context(cafile=https_azurite.ca_file)
    credential = FakeCredential()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        async with QueueClient(https_azurite.url, queue_name, credential=credential, session=session) as q:
            await q.create_queue()
            await asyncio.gather(*(q.send_message(f"m{i}") for i in range(10)))
            assert len(await q.peek_messages(max_messages=32)) == 10
            await q.delete_queue()
        assert not session.closed  # a session we brought is never closed by the client
    assert credential.calls == 1  # cached, and one refresh shared by ten concurrent callers


@pytest.mark.emulator
async def test_expired_token_is_refused_by_the_service(https_azurite, queue_name):
    ctx = ssl.create_default_context(cafile=https_azurite.ca_file)

    class Expired(FakeCredential):
        async def get_token(self, *scopes, **kwargs):
            self.calls += 1
            return mint_token(-30)

    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        QueueClient(https_azurite.url, queue_name, credential=Expired(), session=session) as q,
    ):
        with pytest.raises(AuthenticationFailed):
            await q.exists()


async def _bearer_tokens_sent(q, proxy, calls: int) -> set[str]:
    """Make ``calls`` concurrent requests through the proxy, which refuses each token (a 403, which
    keeps it cached) and sees it; the distinct Authorization headers they sent."""
    before = len(proxy.seen)
    proxy.script(*(token_refused() for _ in range(calls)))
    results = await asyncio.gather(*(q.exists() for _ in range(calls)), return_exceptions=True)
    assert all(isinstance(r, AuthenticationFailed) for r in results), results
    sent = proxy.seen[before:]
    assert len(sent) == calls
    return {s.headers["Authorization"] for s in sent}


async def test_a_token_inside_the_refresh_margin_is_kept_for_half_its_life(proxy, queue_name):
    """A 200 s token (inside the 300 s margin) was fetched anew for every request; it is kept for
    100 s now (tests/auth/test_tokens.py moves the clock past that)."""
    credential = FakeCredential(lifetime=200)
    async with QueueClient(proxy.url(), queue_name, credential=credential, retry=None) as q:
        await _bearer_tokens_sent(q, proxy, 1)
        await _bearer_tokens_sent(q, proxy, 1)
    assert credential.calls == 1


async def test_a_long_lived_token_is_fetched_once_for_many_concurrent_calls(proxy, queue_name):
    credential = FakeCredential(lifetime=3600)
    async with QueueClient(proxy.url(), queue_name, credential=credential, retry=None) as q:
        first = await _bearer_tokens_sent(q, proxy, 50)
        again = await _bearer_tokens_sent(q, proxy, 1)
    assert credential.calls == 1
    assert len(first) == 1 and first == again and first.pop().startswith("Bearer ey")
