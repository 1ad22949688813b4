"""Behaviour ported from the official azure-storage-queue client's own tests (issue #24 item 6).

Each test here stands for an official test aioqueue failed: the service client's URLs end in ``/``,
a named host with a path does not name the account, a per-call ``User-Agent`` goes before aioqueue's,
a SAS bound to a user travels with its bearer token, and receive's two counts.
"""

from __future__ import annotations

import pytest

from aioqueue import QueueClient, QueueServiceClient, SharedKeyCredential
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY

KEY = DEV_KEY
SAS = "sv=2025-11-05&ss=q&srt=sco&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig=abc%3D"


# ---- (a) the service client's URLs end in "/", a queue client's do not -------------------------


@pytest.mark.parametrize(
    ("account_url", "primary", "secondary"),
    [
        ("https://www.mydomain.com", "https://www.mydomain.com/", "https://myaccount-secondary.queue.core.windows.net/"),
        (
            "https://myaccount.queue.core.windows.net/",
            "https://myaccount.queue.core.windows.net/",
            "https://myaccount-secondary.queue.core.windows.net/",
        ),
        (
            f"http://127.0.0.1:10001/{DEV_ACCOUNT}",
            f"http://127.0.0.1:10001/{DEV_ACCOUNT}/",
            f"http://127.0.0.1:10001/{DEV_ACCOUNT}-secondary/",
        ),
    ],
)
def test_the_service_client_s_urls_end_in_a_slash(account_url, primary, secondary):
    """Official ``test_create_service_with_connection_string_endpoint_protocol`` and friends:
    ``service.primary_endpoint.startswith('https://www.mydomain.com/')``."""
    credential = SharedKeyCredential("myaccount" if "127.0.0.1" not in account_url else DEV_ACCOUNT, KEY)
    service = QueueServiceClient(account_url, credential=credential)
    assert service.url == service.primary_endpoint == primary
    assert service.secondary_endpoint == secondary
    assert repr(service) == f"QueueServiceClient({primary!r})"
    queue = service.get_queue_client("jobs")
    assert queue.url == queue.primary_endpoint == primary + "jobs"
    assert queue.secondary_endpoint == secondary + "jobs"


def test_a_connection_string_s_endpoints_end_in_a_slash_on_the_service_client():
    service = QueueServiceClient.from_connection_string(
        f"AccountName=myaccount;AccountKey={KEY};QueueEndpoint=www.mydomain.com;"
        "QueueSecondaryEndpoint=www-sec.mydomain.com;"
    )
    assert service.primary_endpoint == "https://www.mydomain.com/"
    assert service.secondary_endpoint == "https://www-sec.mydomain.com/"
    assert service.primary_hostname == "www.mydomain.com"  # hostnames stay bare
