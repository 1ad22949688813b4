"""Helpers shared by the tests: a fake Entra ID token credential, unsigned tokens Azurite accepts, waiting
for a queue to reach a state (``eventually``, ``visible``), and fast retries (``FAST_RETRY``)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aioqueue import RetryPolicy

STORAGE_SCOPE = "https://storage.azure.com/.default"
TENANT = "ab1f708d-50f6-404c-a006-d71b2ac7a606"

# retries that wait milliseconds, not the default's tenths of seconds (the fake_queue fixture's)
FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def mint_token(lifetime: float = 3600) -> SimpleNamespace:
    """An unsigned JWT: Azurite checks iss, aud, nbf and exp but not the signature."""
    now = int(time.time())
    claims = {
        "aud": "https://storage.azure.com",
        "iss": f"https://sts.windows.net/{TENANT}/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": int(now + lifetime),
        "oid": "00000000-0000-0000-0000-000000000001",
        "tid": TENANT,
    }
    token = f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.c2lnbmF0dXJl"
    return SimpleNamespace(token=token, expires_on=claims["exp"])


class FakeCredential:
    """Shaped like an azure.identity.aio credential; counts its calls. Each token lives ``lifetime``
    seconds (negative: already expired)."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.calls = 0
        self.lifetime = lifetime

    async def get_token(self, *scopes: str, **kwargs: Any) -> SimpleNamespace:
        assert scopes == (STORAGE_SCOPE,)
        self.calls += 1
        await asyncio.sleep(0)  # a real credential awaits I/O: let concurrent callers pile up
        return mint_token(self.lifetime)


async def visible(queue, n=32):
    return [p.content for p in await queue.peek_messages(max_messages=n)]


async def eventually(
    condition: Callable[[], Awaitable[bool]], within: float = 15.0, what: str = "the condition"
) -> None:
    """Wait until ``await condition()`` is true: at most ``within`` seconds, a bound far above what a
    correct client needs (it fails a client that never gets there, not a slow machine)."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not hold within {within} s"
        await asyncio.sleep(0.05)


async def eventually_visible(queue, expected: int, within: float = 15.0) -> None:
    """A bare 'async for' is finalised by the event loop a moment after it is left."""

    async def enough() -> bool:
        return len(await visible(queue)) >= expected

    await eventually(enough, within, f"{expected} visible messages")


async def count(queue):
    return (await queue.get_queue_properties()).approximate_message_count


def oauth_tls_args(folder: Path) -> tuple[tuple[str, ...], str]:
    """Azurite's arguments for bearer tokens over HTTPS (``--oauth basic`` with a certificate for
    127.0.0.1 from a throw-away trustme CA, written into ``folder``), and the CA file a client trusts."""
    import trustme  # a dev dependency; only these tests need it

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    return ("--oauth", "basic", "--cert", str(cert_file), "--key", str(key_file)), str(ca_file)
