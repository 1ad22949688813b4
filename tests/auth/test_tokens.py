"""Token credentials: a hanging fetch is bounded and shared, a 401 drops the cached token, a short-lived token
is fetched once for many calls and again at half its life."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from aioqueue import (
    AuthenticationFailed,
    QueueClient,
    RequestTimeout,
)
from aioqueue._auth import TokenCache
from tests.faults import Fault, token_refused
from tests.helpers import FakeCredential, mint_token

# ---- tokens -------------------------------------------------------------------------------------


class HangingCredential:
    def __init__(self) -> None:
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: object) -> SimpleNamespace:
        self.calls += 1
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")


async def test_a_hanging_token_fetch_is_bounded_by_the_timeout(proxy, queue_name):
    credential = HangingCredential()
    async with QueueClient(proxy.url(), queue_name, credential=credential, retry=None, timeout=0.5) as q:
        with pytest.raises(RequestTimeout, match="token"):
            await q.exists()
    assert credential.calls == 1 and proxy.seen == []


async def test_callers_waiting_for_a_hanging_token_fetch_share_it_and_each_wait_only_their_timeout():
    """Waiting callers queued on a lock, each then fetching with its own timeout: 20 callers of a
    hanging credential took 20 timeouts in a row and 20 fetches."""
    credential = HangingCredential()
    cache = TokenCache(credential)
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(*(cache.token(0.5) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, RequestTimeout) for r in results)
    assert credential.calls == 1
    assert asyncio.get_running_loop().time() - started < 5  # 20 one after another would take 10 s


async def test_a_401_drops_the_cached_token(proxy, queue_name):
    credential = FakeCredential()
    async with QueueClient(proxy.url(), queue_name, credential=credential, retry=None) as q:
        proxy.script(Fault("canned", status=401, headers={"x-ms-error-code": "InvalidAuthenticationInfo"}))
        with pytest.raises(AuthenticationFailed):
            await q.exists()
        assert credential.calls == 1
        proxy.script(token_refused())
        with pytest.raises(AuthenticationFailed):
            await q.exists()
    assert credential.calls == 2  # the refused token was not sent again


async def test_a_short_lived_token_is_fetched_once_for_many_calls_and_again_at_half_life(monkeypatch):
    """Tokens living under 5 minutes were fetched again for every request."""
    now = [1_000_000.0]
    monkeypatch.setattr("aioqueue._auth._wall", lambda: now[0])
    monkeypatch.setattr("aioqueue._auth._monotonic", lambda: now[0])

    class ShortLived(FakeCredential):
        async def get_token(self, *scopes: str, **kwargs: object) -> SimpleNamespace:
            self.calls += 1
            await asyncio.sleep(0)
            return SimpleNamespace(token=mint_token().token, expires_on=now[0] + 120)  # 2 minutes

    credential = ShortLived()
    cache = TokenCache(credential)
    tokens = await asyncio.gather(*(cache.token(5) for _ in range(100)))
    assert credential.calls == 1 and len(set(tokens)) == 1
    now[0] += 59  # before half its life: kept
    await cache.token(5)
    assert credential.calls == 1
    now[0] += 2  # past half its life: fetched again, before it expires
    await cache.token(5)
    assert credential.calls == 2
