"""Bearer challenges: a 401 whose WWW-Authenticate names the tenant (and resource) a token must be for.

Azure answers a token for another tenant or audience with 401 and ``WWW-Authenticate: Bearer
authorization_uri=https://login.microsoftonline.com/<tenant>/oauth2/authorize resource_id=<resource>``
(the header below is the one recorded by the SDKs' tests). Like the official SDKs, aioqueue then asks the
credential once for a token for that tenant and ``<resource>/.default``, and sends the request again.

Neither Azurite (it sends no challenge) nor the recordings (the .NET test runs live only) can show this,
so a local aiohttp server on loopback plays Azure's part: it accepts a token only when its claims name
the recorded tenant and storage's audience, and answers anything else with Azure's recorded 401.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from aioqueue import AuthenticationFailed, QueueClient, RetryPolicy, _auth
from aioqueue._auth import TokenCache
from tests.helpers import STORAGE_SCOPE, TENANT

# recorded by the SDKs' tests (python test_bad_audience_*, .NET *_Error): Azure's challenge and 401 body
RECORDED_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CHALLENGE = (
    f"Bearer authorization_uri=https://login.microsoftonline.com/{RECORDED_TENANT}/oauth2/authorize "
    "resource_id=https://storage.azure.com"
)
REFUSED_BODY = (
    '\ufeff<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidAuthenticationInfo</Code><Message>Server '
    "failed to authenticate the request. Please refer to the information in the www-authenticate header.\n"
    "RequestId:c77c02e7-6003-0000-08b7-edf621000000\nTime:2023-09-23T00:46:17.8537489Z</Message>"
    "<AuthenticationErrorDetail>Audience validation failed. Audience did not match.</AuthenticationErrorDetail></Error>"
)
STORAGE = "https://storage.azure.com"
ACCOUNT_AUDIENCE = "https://account.queue.core.windows.net"  # the .NET test's wrong audience


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


class TenantCredential:
    """Shaped like an azure.identity.aio credential (``get_token(*scopes, tenant_id=None, ...)``): mints
    unsigned tokens whose ``tid`` is the tenant asked for (its own by default) and whose ``aud`` is the
    scope's resource. Records each call's scopes and tenant."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.lifetime = lifetime
        self.minted: list[str] = []
        self.clock = time.time

    async def get_token(self, *scopes: str, tenant_id: str | None = None, **kwargs: Any) -> SimpleNamespace:
        self.calls.append((scopes, tenant_id))
        await asyncio.sleep(0)  # a real credential awaits I/O: let concurrent callers pile up
        return self._mint(scopes[0], tenant_id or TENANT)

    def _mint(self, scope: str, tenant: str) -> SimpleNamespace:
        now = int(self.clock())
        claims = {
            "aud": scope.removesuffix("/.default"),
            "tid": tenant,
            "nbf": now - 60,
            "exp": int(now + self.lifetime),
        }
        token = f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.c2lnbmF0dXJl"
        self.minted.append(token)
        return SimpleNamespace(token=token, expires_on=claims["exp"])


class PlainCredential(TenantCredential):
    """A credential whose get_token takes scopes only: it cannot be asked for another tenant."""

    async def get_token(self, *scopes: str) -> SimpleNamespace:  # type: ignore[override]
        self.calls.append((scopes, None))
        return self._mint(scopes[0], TENANT)


class OneTenantCredential(TenantCredential):
    """Takes any keyword but ignores tenant_id: its tokens are always for its own tenant."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> SimpleNamespace:
        self.calls.append((scopes, kwargs.get("tenant_id")))
        return self._mint(scopes[0], TENANT)


class RefusingCredential(TenantCredential):
    """Refuses another tenant, as azure.identity does for a tenant not in additionally_allowed_tenants."""

    async def get_token(self, *scopes: str, tenant_id: str | None = None, **kwargs: Any) -> SimpleNamespace:
        self.calls.append((scopes, tenant_id))
        if tenant_id not in (None, TENANT):
            raise PermissionError(f"tenant {tenant_id} is not allowed for this credential")
        return self._mint(scopes[0], TENANT)


@dataclass
class Azureish:
    """Accepts a bearer token for the recorded tenant and storage's audience (201 to a create); answers
    any other with Azure's recorded 401 and challenge. ``script`` maps a request's number (from 1) to the
    status it gets instead."""

    challenge: str = CHALLENGE
    script: dict[int, int] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)  # each request's token claims
    hold: asyncio.Event | None = None  # when set up: holds the answer to each default-tenant token after the first
    held: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        assert scheme == "Bearer" and token
        claims = _claims(token)
        self.seen.append(claims)
        if self.hold is not None and claims["tid"] == TENANT and any(c["tid"] == TENANT for c in self.seen[:-1]):
            self.held.set()
            await self.hold.wait()
        if len(self.seen) in self.script:
            return web.Response(status=self.script[len(self.seen)], headers={"x-ms-request-id": "scripted"})
        if claims["tid"] == RECORDED_TENANT and claims["aud"] == STORAGE:
            return web.Response(status=201, headers={"x-ms-request-id": "created"})
        headers = {"WWW-Authenticate": self.challenge, "x-ms-error-code": "InvalidAuthenticationInfo"}
        return web.Response(status=401, body=REFUSED_BODY.encode(), headers=headers, content_type="application/xml")


@pytest_asyncio.fixture
async def azure() -> AsyncIterator[SimpleNamespace]:
    state = Azureish()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield SimpleNamespace(state=state, url=f"http://127.0.0.1:{server.port}/myaccount")


def _tenants(seen: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(c["tid"], c["aud"]) for c in seen]


# ---- the challenge is followed once -------------------------------------------------------------


async def test_a_challenge_is_answered_once_with_a_token_for_its_tenant_and_resource(azure):
    """The .NET test's case (a wrong audience) from another tenant: the request succeeds after one resend,
    retries off or not."""
    credential = TenantCredential()
    async with QueueClient(azure.url, "jobs", credential=credential, audience=ACCOUNT_AUDIENCE, retry=None) as q:
        assert await q.create_queue() is True  # created
    assert _tenants(azure.state.seen) == [(TENANT, ACCOUNT_AUDIENCE), (RECORDED_TENANT, STORAGE)]
    assert credential.calls == [((ACCOUNT_AUDIENCE + "/.default",), None), ((STORAGE_SCOPE,), RECORDED_TENANT)]


async def test_later_requests_start_with_the_challenge_s_token(azure):
    """Followed once, the tenant's token serves the client's next requests: no 401 each time."""
    credential = TenantCredential()
    async with QueueClient(azure.url, "jobs", credential=credential, retry=None) as q:
        await q.create_queue()
        await q.create_queue()
        await q.create_queue()
    assert _tenants(azure.state.seen) == [(TENANT, STORAGE)] + [(RECORDED_TENANT, STORAGE)] * 3
    assert len(credential.calls) == 2


async def test_concurrent_challenged_requests_share_one_fetch_of_the_tenant_s_token(azure):
    credential = TenantCredential()
    async with QueueClient(azure.url, "jobs", credential=credential, retry=None) as q:
        await asyncio.gather(*(q.create_queue() for _ in range(10)))
    assert credential.calls == [((STORAGE_SCOPE,), None), ((STORAGE_SCOPE,), RECORDED_TENANT)]
    assert len(azure.state.seen) == 20  # each sent twice: once refused, once with the tenant's token


async def test_a_late_401_for_the_old_token_keeps_the_tenant_s_token(azure):
    """Two requests sent with the first token; the second's 401 comes after the first followed the
    challenge: it refused the old token, so the tenant's stays cached (no second fetch for it)."""
    azure.state.hold = asyncio.Event()
    credential = TenantCredential()
    async with QueueClient(azure.url, "jobs", credential=credential, retry=None) as q:
        late = asyncio.ensure_future(q.create_queue())
        first = asyncio.ensure_future(q.create_queue())
        await azure.state.held.wait()  # one of them is held with its 401 unsent
        done, _ = await asyncio.wait({late, first}, return_when=asyncio.FIRST_COMPLETED)
        assert [t.result() for t in done] == [True]  # the other followed the challenge and got through
        azure.state.hold.set()
        assert list(await asyncio.gather(late, first)) == [True, True]
    assert credential.calls == [((STORAGE_SCOPE,), None), ((STORAGE_SCOPE,), RECORDED_TENANT)]
    assert _tenants(azure.state.seen) == [(TENANT, STORAGE)] * 2 + [(RECORDED_TENANT, STORAGE)] * 2


async def test_the_resend_is_not_counted_against_the_retry_policy(azure):
    """401 (challenge), then 503, then 201: with max_attempts=2 the 503 still gets its retry."""
    azure.state.script = {2: 503}  # the resend (the tenant's token) meets a 503
    credential = TenantCredential()
    retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=None)
    async with QueueClient(azure.url, "jobs", credential=credential, retry=retry) as q:
        assert await q.create_queue() is True  # created
    assert _tenants(azure.state.seen) == [(TENANT, STORAGE)] + [(RECORDED_TENANT, STORAGE)] * 2


# ---- and never more -----------------------------------------------------------------------------


async def test_a_second_401_raises_authentication_failed_with_azure_s_detail(azure, caplog):
    """A credential that takes tenant_id but ignores it: the resend is refused too, and that stands."""
    caplog.set_level(logging.DEBUG, logger="aioqueue")
    credential = OneTenantCredential()
    async with QueueClient(azure.url, "jobs", credential=credential, retry=RetryPolicy(initial_delay=0)) as q:
        with pytest.raises(AuthenticationFailed) as caught:
            await q.create_queue()
    error = caught.value
    assert error.status == 401 and error.error_code == "InvalidAuthenticationInfo"
    assert error.details == {"AuthenticationErrorDetail": "Audience validation failed. Audience did not match."}
    assert len(azure.state.seen) == 2  # one resend, no loop (and 401 is no retry status)
    assert credential.calls == [((STORAGE_SCOPE,), None), ((STORAGE_SCOPE,), RECORDED_TENANT)]
    shown = str(error) + repr(error) + caplog.text
    assert not any(token in shown or token.split(".")[1] in shown for token in credential.minted)


async def test_a_credential_without_tenant_support_gets_the_plain_401(azure):
    credential: Any = PlainCredential()  # get_token(*scopes) is enough at run time
    async with QueueClient(azure.url, "jobs", credential=credential, retry=None) as q:
        with pytest.raises(AuthenticationFailed) as caught:
            await q.create_queue()
    assert caught.value.status == 401 and "Audience validation failed" in str(caught.value)
    assert len(azure.state.seen) == 1 and credential.calls == [((STORAGE_SCOPE,), None)]


async def test_a_credential_refusing_the_tenant_gets_the_401_caused_by_its_refusal(azure):
    credential = RefusingCredential()
    async with QueueClient(azure.url, "jobs", credential=credential, retry=None) as q:
        with pytest.raises(AuthenticationFailed) as caught:
            await q.create_queue()
    assert caught.value.status == 401
    assert isinstance(caught.value.__cause__, PermissionError)
    assert len(azure.state.seen) == 1


@pytest.mark.parametrize(
    "challenge",
    [
        # another resource: a token for it would go to this host (a hostile endpoint could harvest one)
        f"Bearer authorization_uri=https://login.microsoftonline.com/{RECORDED_TENANT}/oauth2/authorize "
        "resource_id=https://management.azure.com",
        "Bearer resource_id=https://storage.azure.com",  # no tenant named
        "Bearer authorization_uri=https://login.microsoftonline.com/ resource_id=https://storage.azure.com",
        'Basic realm="storage"',
    ],
)
async def test_a_challenge_that_names_no_tenant_or_another_resource_is_not_followed(azure, challenge):
    azure.state.challenge = challenge
    credential = TenantCredential()
    async with QueueClient(azure.url, "jobs", credential=credential, retry=None) as q:
        with pytest.raises(AuthenticationFailed):
            await q.create_queue()
    assert len(azure.state.seen) == 1 and len(credential.calls) == 1


# ---- the challenge and the cache ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "tenant", "scope"),
    [
        (CHALLENGE, RECORDED_TENANT, STORAGE_SCOPE),
        # RFC 7235's form: quoted values, commas
        (
            'Bearer authorization_uri="https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/authorize",'
            ' resource_id="https://storage.azure.com/"',
            "contoso.onmicrosoft.com",
            STORAGE_SCOPE,
        ),
        # no resource_id: the cache's own scope
        (
            "bearer authorization_uri=https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/oauth2/authorize",
            "00000000-0000-0000-0000-000000000000",
            "https://myaccount.queue.core.windows.net/.default",
        ),
        # the account's own audience
        (
            f"Bearer authorization_uri=https://login.microsoftonline.com/{RECORDED_TENANT}/oauth2/authorize "
            "resource_id=https://myaccount.queue.core.windows.net",
            RECORDED_TENANT,
            "https://myaccount.queue.core.windows.net/.default",
        ),
    ],
)
def test_the_challenge_s_tenant_and_scope(header, tenant, scope):
    challenge = _auth.parse_bearer_challenge(
        header, "myaccount.queue.core.windows.net", "https://myaccount.queue.core.windows.net/.default"
    )
    assert challenge == _auth.BearerChallenge(scope=scope, tenant=tenant)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer authorization_uri=https://login.microsoftonline.com/a%20b/oauth2/authorize resource_id=https://storage.azure.com",
        f"Bearer authorization_uri=https://login.microsoftonline.com/{RECORDED_TENANT}/oauth2/authorize resource_id=http://storage.azure.com",
        f"Bearer authorization_uri=https://login.microsoftonline.com/{RECORDED_TENANT}/oauth2/authorize resource_id=https://evil.example",
    ],
)
def test_a_challenge_without_a_usable_tenant_or_resource_is_none(header):
    assert _auth.parse_bearer_challenge(header, "myaccount.queue.core.windows.net", STORAGE_SCOPE) is None


async def test_the_tenant_s_token_is_cached_apart_and_refreshed_for_the_tenant(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr("aioqueue._auth._wall", lambda: now[0])
    monkeypatch.setattr("aioqueue._auth._monotonic", lambda: now[0])
    credential = TenantCredential()
    credential.clock = lambda: now[0]
    cache = TokenCache(credential)
    default = await cache.token(5)
    tenant = await cache.follow(_auth.BearerChallenge(STORAGE_SCOPE, RECORDED_TENANT), 5)
    assert _claims(default)["tid"] == TENANT and _claims(tenant)["tid"] == RECORDED_TENANT
    assert await cache.token(5) == tenant and len(credential.calls) == 2
    now[0] += 3600 - 299  # within 5 minutes of its expiry: fetched again, for the tenant
    await cache.token(5)
    assert credential.calls[-1] == ((STORAGE_SCOPE,), RECORDED_TENANT) and len(credential.calls) == 3


def test_only_a_credential_that_takes_a_tenant_is_challenged():
    host = "myaccount.queue.core.windows.net"
    plain: Any = PlainCredential()
    assert TokenCache(plain).challenge(CHALLENGE, host) is None
    for credential in (TenantCredential(), OneTenantCredential()):  # tenant_id, or any keyword
        assert TokenCache(credential).challenge(CHALLENGE, host) == (STORAGE_SCOPE, RECORDED_TENANT)
    assert TokenCache(TenantCredential()).challenge(None, host) is None
