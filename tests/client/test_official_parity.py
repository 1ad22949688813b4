"""Behaviour ported from the official azure-storage-queue client's own tests (issue #24 item 6).

Each test here stands for an official test aioqueue failed: the service client's URLs end in ``/``,
a named host with a path does not name the account, a per-call ``User-Agent`` goes before aioqueue's,
a SAS bound to a user travels with its bearer token, and receive's two counts.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from aioqueue import (
    ConfigurationError,
    QueueClient,
    QueueServiceClient,
    RequestEvent,
    SasCredential,
    ServiceError,
    SharedKeyCredential,
    __version__,
    generate_queue_sas,
)
from aioqueue._models import UserDelegationKey
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY
from tests.helpers import TENANT, FakeCredential

KEY = DEV_KEY
SAS = "sv=2025-11-05&ss=q&srt=sco&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig=abc%3D"


# ---- (a) the service client's URLs end in "/", a queue client's do not -------------------------


@pytest.mark.parametrize(
    ("account_url", "primary", "secondary"),
    [
        (
            "https://www.mydomain.com",
            "https://www.mydomain.com/",
            "https://myaccount-secondary.queue.core.windows.net/",
        ),
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


# ---- (b) a named host with a path: only a one-segment account path is path-style ---------------

CUSTOM = "http://local-machine:11002/custom/account/path"


def test_a_named_host_with_a_deeper_path_does_not_name_the_account():
    """Official ``test_create_service_with_custom_account_endpoint_path``: the URL names no account
    (``account_name`` None) and no secondary is guessed from its path."""
    service = QueueServiceClient(f"{CUSTOM}/?{SAS}", allow_insecure_http=True)
    queue = QueueClient(f"{CUSTOM}/?{SAS}", "foo", allow_insecure_http=True)
    from_url = QueueClient.from_queue_url(f"{CUSTOM}/foo?{SAS}", allow_insecure_http=True)
    for client in (service, queue, from_url):
        assert client.account_name is None and client.credential is None
        assert client.primary_hostname == "local-machine:11002/custom/account/path"
        assert client.secondary_hostname is None
    assert service.url == f"{CUSTOM}/"
    assert queue.url == from_url.url == f"{CUSTOM}/foo"
    assert from_url.queue_name == "foo"


def test_a_named_host_with_a_deeper_path_takes_the_account_from_the_connection_string():
    conn = f"DefaultEndpointsProtocol=http;AccountName=myaccount;AccountKey={KEY};QueueEndpoint={CUSTOM}/"
    for client in (QueueServiceClient.from_connection_string(conn), QueueClient.from_connection_string(conn, "foo")):
        assert isinstance(client.credential, SharedKeyCredential)
        assert client.account_name == client.credential.account_name == "myaccount"
        assert client.credential.account_key == KEY
        assert client.primary_hostname == "local-machine:11002/custom/account/path"


@pytest.mark.parametrize(
    ("url", "account"),
    [
        (f"http://azurite:10001/{DEV_ACCOUNT}", DEV_ACCOUNT),  # docker compose: one segment, an account's name
        ("http://host.docker.internal:10001/myaccount", "myaccount"),
        ("http://local-machine:11002/Custom_Path", None),  # not an account name (lower-case letters, digits)
        ("http://local-machine:11002/ab", None),  # too short for an account name
        ("http://local-machine:11002/custom/account", None),  # two segments
        (f"http://127.0.0.1:10001/{DEV_ACCOUNT}/extra", DEV_ACCOUNT),  # an IP address: always path-style
    ],
)
def test_which_named_host_paths_name_the_account(url, account):
    client = QueueServiceClient(url)
    assert client.account_name == account
    if account is None:
        assert client.secondary_hostname is None


# ---- (c) a per-call User-Agent goes before aioqueue's own --------------------------------------


async def test_a_per_call_user_agent_goes_before_the_client_s(proxy, queue_client):
    """Official ``test_user_agent_custom``/``test_user_agent_append``: ``TestApp/v2.0 TestApp/v1.0
    azsdk-python-storage-queue/...``; here through ``headers=``, in any spelling of the name."""
    events: list[RequestEvent] = []
    options: dict[str, Any] = {"credential": DEV_KEY, "retry": None, "event_hooks": {"request": [events.append]}}
    async with QueueClient(proxy.url(), queue_client.queue_name, user_agent="TestApp/v1.0", **options) as q:
        await q.peek_messages(headers={"User-Agent": "TestApp/v2.0"})
        await q.peek_messages(headers={"user-agent": "TestApp/v3.0"})
        await q.peek_messages()
    async with QueueServiceClient(proxy.url(), **options) as service:
        await service.get_service_properties(headers={"User-Agent": "customer_user_agent"})
    expected = [
        f"TestApp/v2.0 TestApp/v1.0 aioqueue/{__version__}",
        f"TestApp/v3.0 TestApp/v1.0 aioqueue/{__version__}",
        f"TestApp/v1.0 aioqueue/{__version__}",
        f"customer_user_agent aioqueue/{__version__}",
    ]
    assert [event.headers.getall("User-Agent") for event in events] == [[agent] for agent in expected]
    assert [seen.headers["User-Agent"] for seen in proxy.seen] == expected


# ---- (d) a SAS bound to a user travels with that user's bearer token ---------------------------

DELEGATED_OID = "0b8f3c1e-2222-4f4f-8a8a-123456789abc"
DELEGATION_KEY = UserDelegationKey(
    signed_oid="6a1e7e52-9a5a-4bd4-9b0e-3b6f1c8f0a11",
    signed_tid=TENANT,
    signed_start="2029-12-31T00:00:00Z",
    signed_expiry="2030-01-06T00:00:00Z",
    signed_service="q",
    signed_version="2026-02-06",
    value=base64.b64encode(bytes(range(32))).decode(),
)


def _delegation_sas(queue_name: str, **options: Any) -> str:
    return generate_queue_sas(
        DEV_ACCOUNT,
        queue_name,
        permission="r",
        expiry=timedelta(hours=1),
        user_delegation_key=DELEGATION_KEY,
        **options,
    )


async def test_a_user_bound_sas_in_the_url_is_sent_with_the_bearer_token(proxy, queue_client):
    """The official client keeps a URL's SAS next to a token credential; a SAS naming a delegated
    user (``sduoid``) only works so: the service wants that user's bearer token with it."""
    name = queue_client.queue_name
    sas = _delegation_sas(name, user_delegation_oid=DELEGATED_OID)
    credential = FakeCredential()
    async with QueueClient.from_queue_url(f"{proxy.url()}/{name}?{sas}", credential=credential, retry=None) as q:
        assert q.credential is credential
        with contextlib.suppress(ServiceError):  # Azurite cannot check a delegation SAS: the wire is what counts
            await q.peek_messages()
    seen = proxy.seen[-1]
    assert seen.headers["Authorization"].startswith("Bearer ey") and credential.calls == 1
    query = parse_qs(urlsplit(seen.path).query)
    assert query["sduoid"] == [DELEGATED_OID] and query["sig"] == parse_qs(sas)["sig"]
    assert query["peekonly"] == ["true"]


@pytest.mark.parametrize(
    "credential",
    [FakeCredential(), DEV_KEY, SharedKeyCredential(DEV_ACCOUNT, DEV_KEY), SasCredential("sv=2025-11-05&sig=x")],
    ids=["token", "key", "shared-key", "sas"],
)
def test_any_other_sas_in_the_url_with_a_credential_is_still_refused(credential):
    url = f"https://{DEV_ACCOUNT}.queue.core.windows.net/jobs?"
    unbound = _delegation_sas("jobs")
    with pytest.raises(ConfigurationError, match="pass only one"):
        QueueClient.from_queue_url(url + unbound, credential=credential)
    if not isinstance(credential, FakeCredential):  # a user-bound SAS goes only with a bearer token
        with pytest.raises(ConfigurationError, match="bearer token"):
            QueueClient.from_queue_url(
                url + _delegation_sas("jobs", user_delegation_oid=DELEGATED_OID), credential=credential
            )


def test_a_user_bound_sas_takes_the_tenant_from_its_key():
    """``skdutid`` (cross-tenant) comes from the delegation key, as in the official client (its
    ``get_user_delegation_key(delegated_user_tid=)``); ``generate_queue_sas`` takes no separate tenant."""
    other_tenant = "11111111-2222-3333-4444-555555555555"
    key = dataclasses.replace(DELEGATION_KEY, signed_delegated_user_tid=other_tenant)
    token = generate_queue_sas(
        DEV_ACCOUNT,
        "jobs",
        permission="r",
        expiry=timedelta(hours=1),
        user_delegation_key=key,
        user_delegation_oid=DELEGATED_OID,
    )
    assert parse_qs(token)["skdutid"] == [other_tenant]
    with pytest.raises(TypeError):
        generate_queue_sas(DEV_ACCOUNT, "jobs", user_delegation_key=key, user_delegation_tid=other_tenant)  # type: ignore[call-arg]


# ---- (e) max_messages below max_batch_size: a total and a per-call cap, never an over-fetch -----


async def test_max_messages_below_max_batch_size_fetches_no_more_than_it_hands_out(proxy, queue_client):
    """The official client refuses ``max_messages < messages_per_page`` (ValueError); aioqueue accepts
    it (with the default max_batch_size of 32 every small ``max_messages`` is that case) and caps each
    Get Messages call at what is left to hand out, so no message is hidden and then not handed out."""
    for n in range(5):
        await queue_client.send_message(f"m{n}")
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, retry=None) as q:
        got = [msg.content async for msg in q.receive(max_batch_size=5, max_messages=2, idle_timeout=0)]
        assert got == ["m0", "m1"]
        fetches = [parse_qs(urlsplit(s.path).query) for s in proxy.seen if s.method == "GET"]
        assert [f["numofmessages"] for f in fetches] == [["2"]]
        assert len(await q.peek_messages(max_messages=32)) == 3  # the other three stayed visible
