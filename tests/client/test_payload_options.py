"""Large payloads' options and connection settings, checked before any request (issue #27): the Blob
endpoint gets the same https rule as the queue's, and a development-storage connection string that names a
BlobEndpoint still parses, as it did before large payloads read that key."""

from __future__ import annotations

import pytest

from aioqueue import BlobPayloads, ConfigurationError, QueueClient
from aioqueue._endpoint import parse_connection_string
from tests.helpers import FakeCredential

SAS = "sv=2025-11-05&ss=bq&srt=sco&sp=rwdlacup&se=2099-01-01T00:00:00Z&sig=abc%3D"


def test_development_storage_with_a_blob_endpoint_still_parses():
    """It parsed before large payloads (BlobEndpoint was ignored), and the endpoint is now the blob URL."""
    settings = parse_connection_string(
        "UseDevelopmentStorage=true;BlobEndpoint=http://127.0.0.1:20000/devstoreaccount1"
    )
    assert settings.account_url == "http://127.0.0.1:10001/devstoreaccount1"
    assert settings.blob_url == "http://127.0.0.1:20000/devstoreaccount1"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda: QueueClient(
                f"https://acct.queue.core.windows.net/?{SAS}",
                "jobs",
                large_payloads=BlobPayloads(container="payloads", endpoint="http://acct.blob.core.windows.net"),
            ),
            id="a SAS",
        ),
        pytest.param(
            lambda: QueueClient(
                "https://acct.queue.core.windows.net",
                "jobs",
                credential=FakeCredential(),
                large_payloads=BlobPayloads(container="payloads", endpoint="http://acct.blob.core.windows.net"),
            ),
            id="a token",
        ),
        pytest.param(
            lambda: QueueClient.from_connection_string(
                f"QueueEndpoint=https://acct.queue.core.windows.net;BlobEndpoint=http://acct.blob.core.windows.net;"
                f"SharedAccessSignature={SAS}",
                "jobs",
                large_payloads=BlobPayloads(container="payloads"),
            ),
            id="a connection string's SAS",
        ),
    ],
)
def test_secrets_never_go_to_a_plain_http_blob_endpoint(make):
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        make()


def test_allow_insecure_http_lets_a_test_setup_use_an_http_blob_endpoint():
    client = QueueClient(
        f"https://acct.queue.core.windows.net/?{SAS}",
        "jobs",
        large_payloads=BlobPayloads(container="payloads", endpoint="http://acct.blob.core.windows.net"),
        allow_insecure_http=True,
    )
    assert client.queue_name == "jobs"


async def test_peek_resolve_must_be_a_bool():
    async with QueueClient(
        f"https://acct.queue.core.windows.net/?{SAS}", "jobs", large_payloads=BlobPayloads(container="payloads")
    ) as queue:
        with pytest.raises(ConfigurationError, match="resolve"):
            await queue.peek_messages(resolve="no")  # type: ignore[arg-type]
