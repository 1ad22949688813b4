"""Microsoft Entra ID (Azure AD) tokens instead of keys.

With AZURE_STORAGE_ACCOUNT_URL set (https://<account>.queue.core.windows.net),
this uses azure-identity's DefaultAzureCredential (`pip install
'aioqueue-azure[identity]'`; your identity needs the "Storage Queue Data
Contributor" role). Without it, it runs the same code against a local
stand-in: Azurite over HTTPS with OAuth switched on, and a credential that
mints tokens the emulator accepts (it checks issuer, audience and lifetime,
not signatures).
"""

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
import uuid
from types import SimpleNamespace
from typing import Any

import aiohttp

from aioqueue import QueueClient


async def demo(
    account_url: str,
    credential: Any,
    session: aiohttp.ClientSession | None = None,
) -> None:
    # a token is fetched once, cached, and refreshed 5 minutes before it expires
    queue_name = f"entra-{uuid.uuid4().hex[:8]}"
    async with QueueClient(
        account_url, queue_name, credential=credential, session=session
    ) as queue:
        await queue.create_queue()
        await queue.send_message("authenticated with a bearer token")
        [message] = await queue.receive_messages()
        print(f"got: {message.content}")
        await queue.delete_queue()


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class EmulatorCredential:
    """Shaped like azure.identity.aio's credentials: ``async get_token()``."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> SimpleNamespace:
        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{uuid.uuid4()}/",
            "nbf": now - 60,
            "exp": now + 3600,
            "iat": now - 60,
        }
        token = f"{_b64({'alg': 'none'})}.{_b64(claims)}.x"
        return SimpleNamespace(token=token, expires_on=claims["exp"])


async def main() -> None:
    account_url = os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
    if account_url:
        from azure.identity.aio import DefaultAzureCredential

        async with DefaultAzureCredential() as credential:
            await demo(account_url, credential)
        return

    import trustme  # a throw-away certificate authority, for the local emulator

    from aioqueue.testing import Azurite

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    with tempfile.TemporaryDirectory() as folder:
        cert_file = os.path.join(folder, "cert.pem")
        key_file = os.path.join(folder, "key.pem")
        cert.cert_chain_pems[0].write_to_path(cert_file)
        cert.private_key_pem.write_to_path(key_file)
        oauth = ("--oauth", "basic", "--cert", cert_file, "--key", key_file)
        with Azurite(extra_args=oauth) as emulator:
            ssl_context = ssl.create_default_context()
            ca.configure_trust(ssl_context)
            connector = aiohttp.TCPConnector(ssl=ssl_context)
            url = f"https://127.0.0.1:{emulator.port}/devstoreaccount1"
            async with aiohttp.ClientSession(connector=connector) as session:
                await demo(url, EmulatorCredential(), session)


if __name__ == "__main__":
    asyncio.run(main())
