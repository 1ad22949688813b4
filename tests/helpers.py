"""Helpers shared by the tests: a fake Entra ID token credential, and unsigned tokens Azurite accepts."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from types import SimpleNamespace
from typing import Any

STORAGE_SCOPE = "https://storage.azure.com/.default"
TENANT = "ab1f708d-50f6-404c-a006-d71b2ac7a606"


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
