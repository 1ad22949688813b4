"""Every Azure endpoint shape: the account name, the primary and secondary, and Shared Key signing.

Azure's rules: the account name in a Shared Key signature (and its canonicalized resource) is always
the primary account's, even when the request goes to ``<account>-secondary``; ``-ipv6`` and
``-dualstack`` are network variants of the same account; custom domains do not name the account.

Requests to these host names go to a local recording server (every name resolves to 127.0.0.1),
which answers like Get Queue Metadata; what the service would say to a signature is checked
against Azurite separately, at the end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver

from aioqueue import (
    ConfigurationError,
    MalformedResponse,
    QueueClient,
    QueueNotFound,
    QueueServiceClient,
    RetryPolicy,
    SasCredential,
    ServerBusy,
    ServiceError,
    SharedKeyCredential,
)
from aioqueue._endpoint import parse_connection_string
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY
from tests.helpers import FakeCredential

KEY = DEV_KEY
SAS = "sv=2025-11-05&ss=q&srt=sco&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig=abc%3D"

# (host as given, the primary's name, the secondary host derived from it or None)
SHAPES = [
    ("myaccount.queue.core.windows.net", "myaccount", "myaccount-secondary.queue.core.windows.net"),
    ("myaccount-secondary.queue.core.windows.net", "myaccount", "myaccount-secondary.queue.core.windows.net"),
    ("myaccount-ipv6.queue.core.windows.net", "myaccount", "myaccount-secondary-ipv6.queue.core.windows.net"),
    (
        "myaccount-dualstack.queue.core.windows.net",
        "myaccount",
        "myaccount-secondary-dualstack.queue.core.windows.net",
    ),
    (
        "myaccount-secondary-ipv6.queue.core.windows.net",
        "myaccount",
        "myaccount-secondary-ipv6.queue.core.windows.net",
    ),
    (
        "myaccount-secondary-dualstack.queue.core.windows.net",
        "myaccount",
        "myaccount-secondary-dualstack.queue.core.windows.net",
    ),
    ("myaccount.queue.core.chinacloudapi.cn", "myaccount", "myaccount-secondary.queue.core.chinacloudapi.cn"),
    ("myaccount.queue.core.usgovcloudapi.net", "myaccount", "myaccount-secondary.queue.core.usgovcloudapi.net"),
    ("myaccount.z42.queue.storage.azure.net", "myaccount", "myaccount-secondary.z42.queue.storage.azure.net"),
    # a custom domain: the name comes from the credential; the secondary is taken to be the public cloud's
    ("www.mydomain.com", None, "myaccount-secondary.queue.core.windows.net"),
]
IDS = [shape[0] for shape in SHAPES]


def _constructors(url: str, name: str | None):
    """The three ways in, each given the account's key (a str when the URL names the account)."""
    key = KEY if name else SharedKeyCredential("myaccount", KEY)
    return {
        "QueueServiceClient": lambda: QueueServiceClient(url, credential=key),
        "QueueClient": lambda: QueueClient(url, "jobs", credential=key),
        "from_queue_url": lambda: QueueClient.from_queue_url(url.rstrip("/") + "/jobs", credential=key),
        "from_connection_string": lambda: QueueServiceClient.from_connection_string(
            f"AccountName=myaccount;AccountKey={KEY};QueueEndpoint={url}"
        ),
        "QueueClient.from_connection_string": lambda: QueueClient.from_connection_string(
            f"AccountName=myaccount;AccountKey={KEY};QueueEndpoint={url}", "jobs"
        ),
    }


@pytest.mark.parametrize(("host", "name", "secondary"), SHAPES, ids=IDS)
@pytest.mark.parametrize("slash", ["", "/"], ids=["bare", "trailing-slash"])
@pytest.mark.parametrize(
    "how",
    [
        "QueueServiceClient",
        "QueueClient",
        "from_queue_url",
        "from_connection_string",
        "QueueClient.from_connection_string",
    ],
)
def test_every_host_shape_names_the_primary_account(host, name, secondary, slash, how):
    client = _constructors(f"https://{host}{slash}", name)[how]()
    assert client.account_name == "myaccount"
    assert client.credential.account_name == "myaccount"
    assert client.credential.account_key == KEY
    assert client.primary_hostname == host
    assert client.secondary_hostname == secondary
    resource = "/jobs" if isinstance(client, QueueClient) else "/"
    assert client.url == client.primary_endpoint == f"https://{host}{resource}"
    if secondary is None:
        with pytest.raises(ConfigurationError, match="secondary_hostname"):
            client.secondary_endpoint  # noqa: B018
    else:
        assert client.secondary_endpoint == f"https://{secondary}{resource}"


@pytest.mark.parametrize("url", ["https://www.mydomain.com", "https://www.mydomain.com/", "www.mydomain.com"])
def test_a_custom_domain_with_a_bare_key_says_the_account_name_is_missing(url):
    with pytest.raises(ConfigurationError, match="does not name the storage account") as info:
        QueueClient(url, "jobs", credential=KEY)
    assert "SharedKeyCredential(account_name, key)" in str(info.value)
    assert KEY not in str(info.value)


def test_a_custom_domain_needs_no_account_name_for_sas_or_anonymous_access():
    q = QueueClient("https://www.mydomain.com/", "jobs", credential=SAS)
    assert q.account_name is None and isinstance(q.credential, SasCredential)
    assert q.url == "https://www.mydomain.com/jobs" and q.secondary_hostname is None
    anonymous = QueueServiceClient("https://www.mydomain.com")
    assert anonymous.account_name is None and anonymous.credential is None
    # a connection string names it even without a key
    named = QueueClient.from_connection_string(
        f"AccountName=myaccount;SharedAccessSignature={SAS};QueueEndpoint=https://www.mydomain.com", "jobs"
    )
    assert named.account_name == "myaccount"


def test_an_account_url_without_a_scheme_is_https():
    for client in (
        QueueServiceClient("myaccount.queue.core.windows.net", credential=KEY),
        QueueServiceClient.from_connection_string(
            f"AccountName=myaccount;AccountKey={KEY};QueueEndpoint=www.mydomain.com"
        ),
    ):
        assert client.url.startswith("https://")
        assert client.account_name == "myaccount"


@pytest.mark.parametrize("url", ["ftp://www.mydomain.com", "ws://myaccount.queue.core.windows.net", "https://", "://x"])
def test_schemes_other_than_http_and_https_are_refused(url):
    with pytest.raises(ConfigurationError, match="https://"):
        QueueServiceClient(url, credential=SharedKeyCredential("myaccount", KEY))
    with pytest.raises(ConfigurationError, match="https://"):
        QueueServiceClient.from_connection_string(f"AccountName=myaccount;AccountKey={KEY};QueueEndpoint={url}")


def test_a_connection_string_with_only_a_secondary_endpoint_is_refused():
    with pytest.raises(ConfigurationError, match="only a secondary endpoint"):
        parse_connection_string(
            f"AccountName=myaccount;AccountKey={KEY};QueueSecondaryEndpoint=https://myaccount-secondary.queue.core.windows.net"
        )


def test_a_connection_string_keeps_its_secondary_endpoint():
    q = QueueClient.from_connection_string(
        f"AccountName=myaccount;AccountKey={KEY};QueueEndpoint=https://www.mydomain.com;"
        "QueueSecondaryEndpoint=https://secondary.mydomain.com",
        "jobs",
    )
    assert q.primary_hostname == "www.mydomain.com"
    assert q.secondary_hostname == "secondary.mydomain.com"
    assert q.secondary_endpoint == "https://secondary.mydomain.com/jobs"


def test_secondary_hostname_option_takes_a_host_or_a_url():
    for given in ("queues-ro.mydomain.com", "https://queues-ro.mydomain.com"):
        s = QueueServiceClient("https://www.mydomain.com", credential=SAS, secondary_hostname=given)
        assert s.secondary_hostname == "queues-ro.mydomain.com"
    with pytest.raises(ConfigurationError, match="same scheme"):
        QueueServiceClient("https://www.mydomain.com", secondary_hostname="http://queues-ro.mydomain.com")
    with pytest.raises(ConfigurationError, match="SAS"):
        QueueServiceClient("https://www.mydomain.com", secondary_hostname=f"https://ro.mydomain.com/?{SAS}")


def test_an_ip_address_or_loopback_url_gets_no_guessed_secondary():
    for url in ("http://10.1.2.3:10001", "http://localhost:10001", "http://[fd00::1]:10001"):
        q = QueueClient(url, "jobs", credential=SharedKeyCredential("acct", KEY))
        assert q.account_name == "acct" and q.secondary_hostname is None


def test_the_account_name_of_a_path_style_url_comes_from_its_path():
    for url in ("http://127.0.0.1:10001/devstoreaccount1", "http://[::1]:10001/devstoreaccount1"):
        q = QueueClient(url, "jobs", credential=DEV_KEY)
        assert q.account_name == DEV_ACCOUNT
        assert q.secondary_endpoint == url.replace(DEV_ACCOUNT, f"{DEV_ACCOUNT}-secondary") + "/jobs"


def test_a_queue_label_outside_azure_s_suffixes_is_only_a_guess():
    """``prod.queue.contoso.com`` is a custom domain that happens to have a ``queue`` label."""
    url = "https://prod.queue.contoso.com"
    keyed = QueueClient.from_connection_string(f"AccountName=myaccount;AccountKey={KEY};QueueEndpoint={url}", "jobs")
    sas = QueueClient.from_connection_string(
        f"AccountName=myaccount;SharedAccessSignature={SAS};QueueEndpoint={url}", "job"
    )
    for client in (keyed, sas):
        assert client.account_name == "myaccount"
        assert client.secondary_hostname == "myaccount-secondary.queue.core.windows.net"
    guessed = QueueClient(url, "jobs", credential=SAS)  # nothing names it: the first label is the best guess
    assert guessed.account_name == "prod" and guessed.secondary_hostname == "prod-secondary.queue.contoso.com"
    # Azure Stack: the connection string's own EndpointSuffix
    stack = QueueServiceClient.from_connection_string(
        f"AccountName=myaccount;AccountKey={KEY};EndpointSuffix=local.azurestack.external"
    )
    assert stack.account_name == "myaccount"
    assert stack.secondary_hostname == "myaccount-secondary.queue.local.azurestack.external"


def test_a_connection_string_naming_another_account_than_an_azure_url_is_refused():
    with pytest.raises(ConfigurationError, match="AccountName is for account 'other'"):
        QueueClient.from_connection_string(
            f"AccountName=other;SharedAccessSignature={SAS};QueueEndpoint=https://myaccount.queue.core.windows.net",
            "job",
        )


def test_a_path_style_url_on_a_host_name_takes_the_account_from_its_path():
    """``http://azurite:10001/devstoreaccount1`` (an emulator in docker compose)."""
    q = QueueClient.from_queue_url(f"http://azurite:10001/{DEV_ACCOUNT}/jobs", credential=DEV_KEY)
    assert q.account_name == DEV_ACCOUNT and q.url == f"http://azurite:10001/{DEV_ACCOUNT}/jobs"
    assert q.secondary_endpoint == f"http://azurite:10001/{DEV_ACCOUNT}-secondary/jobs"
    named = QueueClient("http://azurite:10001/custom/path", "jobs", credential=SharedKeyCredential("myaccount", KEY))
    assert named.account_name == "myaccount" and named.primary_hostname == "azurite:10001/custom/path"


def test_an_azure_host_with_a_path_still_names_the_account():
    q = QueueServiceClient("https://myaccount.queue.core.windows.net/extra", credential=KEY)
    assert q.account_name == "myaccount"
    assert q.secondary_endpoint == "https://myaccount-secondary.queue.core.windows.net/extra/"


def test_a_token_never_goes_to_a_plain_http_secondary():
    with pytest.raises(ConfigurationError, match="in clear to http://queues"):
        QueueClient(
            f"http://127.0.0.1:10001/{DEV_ACCOUNT}",
            "jobs",
            credential=FakeCredential(),
            secondary_hostname=f"http://queues.example.com/{DEV_ACCOUNT}",
        )
    local = QueueClient(f"http://127.0.0.1:10001/{DEV_ACCOUNT}", "jobs", credential=FakeCredential())
    assert local.secondary_hostname == f"127.0.0.1:10001/{DEV_ACCOUNT}-secondary"


def test_a_shared_key_for_another_account_is_refused():
    with pytest.raises(ConfigurationError, match="'other'"):
        QueueClient(
            "https://myaccount-secondary.queue.core.windows.net", "jobs", credential=SharedKeyCredential("other", KEY)
        )


# ---- what goes on the wire ----------------------------------------------------------------------


class _ToLoopback(AbstractResolver):
    """Resolves every host name to 127.0.0.1."""

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self):
        pass


class Recorder:
    """Records requests; answers each host's queued statuses in turn (then 200), like Get Queue Metadata."""

    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.port = 0
        self.statuses: dict[str, list[int]] = {}  # first host label -> statuses still to answer

    def hosts(self) -> list[str]:
        return [r.headers["Host"].split(".", 1)[0] for r in self.requests]


@pytest_asyncio.fixture
async def recorder():
    rec = Recorder()

    async def answer(request: web.Request) -> web.Response:
        rec.requests.append(request)
        queued = rec.statuses.get(request.headers["Host"].split(".", 1)[0])
        status = queued.pop(0) if queued else 200
        if status >= 300:
            code = "QueueNotFound" if status == 404 else "InternalError"
            return web.Response(status=status, headers={"x-ms-error-code": code})
        return web.Response(status=200, headers={"x-ms-approximate-messages-count": "0"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield rec
    finally:
        await runner.cleanup()


def _expected_authorization(date: str, resource: str) -> str:
    # the canonical string, written out: 12 standard headers (all empty for a bodiless GET), the
    # x-ms- headers, then the canonicalized resource with the primary account's name
    canonical = (
        f"GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:2025-11-05\n/myaccount{resource}\ncomp:metadata"
    )
    signature = hmac.new(base64.b64decode(KEY), canonical.encode(), hashlib.sha256).digest()
    return "SharedKey myaccount:" + base64.b64encode(signature).decode()


@pytest.mark.parametrize(("host", "name", "secondary"), SHAPES, ids=IDS)
@pytest.mark.parametrize(
    "how",
    [
        "QueueServiceClient",
        "QueueClient",
        "from_queue_url",
        "from_connection_string",
        "QueueClient.from_connection_string",
    ],
)
async def test_shared_key_signs_with_the_primary_name_for_every_host_shape(recorder, host, name, secondary, how):
    url = f"http://{host}:{recorder.port}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_ToLoopback())) as session:
        client = _constructors(url, name)[how]()
        # the constructors take no session here; hand the client one that resolves to the recorder
        client._pool.http._session = session
        client._pool.http._owns_session = False
        async with client:
            queue = client if isinstance(client, QueueClient) else client.get_queue_client("jobs")
            await queue.get_queue_properties()
    [request] = recorder.requests
    assert request.headers["Host"] == f"{host}:{recorder.port}"
    assert request.path == "/jobs" and request.query_string == "comp=metadata"
    assert request.headers["Authorization"] == _expected_authorization(request.headers["x-ms-date"], "/jobs")


async def test_reads_go_to_the_secondary_in_secondary_mode_and_writes_never_do(recorder):
    url = f"http://myaccount.queue.core.windows.net:{recorder.port}"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_ToLoopback())) as session,
        QueueClient(url, "jobs", credential=KEY, session=session, location_mode="secondary") as q,
    ):
        assert q.location_mode == "secondary"
        await q.get_queue_properties()
        await q.set_queue_metadata({"a": "b"})
    read, write = recorder.requests
    assert read.headers["Host"] == f"myaccount-secondary.queue.core.windows.net:{recorder.port}"
    assert read.headers["Authorization"] == _expected_authorization(read.headers["x-ms-date"], "/jobs")
    assert write.headers["Host"] == f"myaccount.queue.core.windows.net:{recorder.port}"


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_ToLoopback()))


QUICK = RetryPolicy(max_attempts=4, initial_delay=0, max_delay=0, jitter=None)


async def test_retry_to_secondary_sends_a_failed_read_to_the_secondary(recorder):
    recorder.statuses["myaccount"] = [500, 503]
    url = f"http://myaccount.queue.core.windows.net:{recorder.port}"
    async with (
        _session() as session,
        QueueClient(url, "jobs", credential=KEY, session=session, retry=QUICK, retry_to_secondary=True) as q,
    ):
        props = await q.get_queue_properties()
    assert props.approximate_message_count == 0
    assert recorder.hosts() == ["myaccount", "myaccount-secondary"]
    for request in recorder.requests:  # signed for the primary account wherever it went
        assert request.headers["Authorization"] == _expected_authorization(request.headers["x-ms-date"], "/jobs")


async def test_a_404_from_a_lagging_secondary_is_retried_on_the_primary(recorder):
    recorder.statuses["myaccount"] = [500]
    recorder.statuses["myaccount-secondary"] = [404]
    url = f"http://myaccount.queue.core.windows.net:{recorder.port}"
    async with (
        _session() as session,
        QueueClient(url, "jobs", credential=KEY, session=session, retry=QUICK, retry_to_secondary=True) as q,
    ):
        await q.get_queue_properties()
    assert recorder.hosts() == ["myaccount", "myaccount-secondary", "myaccount"]


async def test_retry_to_secondary_in_secondary_mode_alternates_back_to_the_primary(recorder):
    recorder.statuses["myaccount-secondary"] = [500, 404]
    recorder.statuses["myaccount"] = [500]
    url = f"http://myaccount.queue.core.windows.net:{recorder.port}"
    async with (
        _session() as session,
        QueueClient(
            url,
            "jobs",
            credential=KEY,
            session=session,
            retry=QUICK,
            retry_to_secondary=True,
            location_mode="secondary",
        ) as q,
    ):
        await q.get_queue_properties()
    assert recorder.hosts() == ["myaccount-secondary", "myaccount", "myaccount-secondary", "myaccount"]


@pytest.mark.parametrize("attempts", [2, 3, 4])
async def test_a_lagging_secondary_s_404_never_hides_the_primary_s_failure(recorder, attempts):
    """The primary is busy and the secondary has not caught up: the answer is 'busy', not 'no queue'."""
    recorder.statuses["myaccount"] = [503] * 8
    recorder.statuses["myaccount-secondary"] = [404] * 8
    url = f"http://myaccount.queue.core.windows.net:{recorder.port}"
    retry = RetryPolicy(max_attempts=attempts, initial_delay=0, max_delay=0, jitter=None)
    async with (
        _session() as session,
        QueueClient(url, "jobs", credential=KEY, session=session, retry=retry, retry_to_secondary=True) as q,
    ):
        with pytest.raises(ServerBusy):
            await q.get_queue_properties()
        with pytest.raises(ServerBusy):
            await q.exists()  # not False: nobody said the queue is gone


async def test_a_404_from_the_primary_is_final_even_with_retry_to_secondary(recorder):
    recorder.statuses["myaccount"] = [404]
    url = f"http://myaccount.queue.core.windows.net:{recorder.port}"
    async with (
        _session() as session,
        QueueClient(url, "jobs", credential=KEY, session=session, retry=QUICK, retry_to_secondary=True) as q,
    ):
        with pytest.raises(QueueNotFound):
            await q.get_queue_properties()
    assert recorder.hosts() == ["myaccount"]


async def test_writes_and_get_messages_never_go_to_the_secondary(recorder):
    recorder.statuses["myaccount"] = [500, 500, 500, 500, 500, 500, 500, 500]
    url = f"http://myaccount.queue.core.windows.net:{recorder.port}"
    retry = RetryPolicy(max_attempts=2, initial_delay=0, max_delay=0, jitter=None)
    async with (
        _session() as session,
        QueueClient(
            url,
            "jobs",
            credential=KEY,
            session=session,
            retry=retry,
            retry_to_secondary=True,
            location_mode="secondary",
        ) as q,
    ):
        with pytest.raises(ServiceError):
            await q.set_queue_metadata({"a": "b"})
        with pytest.raises(ServiceError):
            await q.receive_messages()  # Get Messages hides messages: a write, refused by a secondary
        with pytest.raises(ServiceError):
            await q.send_message("x")
    assert recorder.hosts() == ["myaccount"] * 6


async def test_service_stats_go_to_a_secondary_given_by_name(recorder):
    url = f"http://www.mydomain.com:{recorder.port}"
    async with (
        _session() as session,
        QueueServiceClient(
            url,
            credential=SharedKeyCredential("myaccount", KEY),
            session=session,
            secondary_hostname=f"ro.mydomain.com:{recorder.port}",
        ) as service,
    ):
        with pytest.raises(MalformedResponse):  # the recorder's empty body is no stats document
            await service.get_service_stats()
    assert recorder.hosts() == ["ro"]


def test_secondary_features_need_a_known_secondary():
    for option in ({"location_mode": "secondary"}, {"retry_to_secondary": True}):
        with pytest.raises(ConfigurationError, match="secondary_hostname"):
            QueueClient("https://www.mydomain.com", "jobs", credential=SAS, **option)
        QueueClient("https://www.mydomain.com", "jobs", credential=SAS, secondary_hostname="ro.mydomain.com", **option)


async def test_shared_key_to_a_secondary_host_is_accepted_by_azurite(azurite, azurite_queue):
    """Azurite answers host-style URLs, secondary ones included, and checks the signature (the fake
    serves path-style URLs only: this is Azurite's, whatever the switch says)."""
    await azurite_queue.send_message("replicated")
    url = f"http://{DEV_ACCOUNT}-secondary.queue.example.test:{azurite.port}"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_ToLoopback())) as session,
        QueueClient(url, azurite_queue.queue_name, credential=DEV_KEY, session=session) as q,
    ):
        assert q.account_name == DEV_ACCOUNT
        [peeked] = await q.peek_messages()
    assert peeked.content == "replicated"


@pytest.mark.parametrize(
    "make",
    [
        lambda: QueueClient.from_queue_url("https://acct.queue.core.windows.net/jobs?sv=1&sig=secret#rest"),
        lambda: QueueClient("https://acct.queue.core.windows.net?sv=1&sig=secret#rest", "jobs"),
        lambda: QueueServiceClient("https://acct.queue.core.windows.net/#secret"),
        lambda: QueueServiceClient("https://acct.queue.core.windows.net", credential="sv=1&sig=secret#rest"),
    ],
)
def test_a_url_with_a_fragment_is_refused_without_echoing_the_signature(make):
    """Everything after '#' is a fragment, never sent: the rest of a SAS signature would be dropped."""
    with pytest.raises(ConfigurationError) as info:
        make()
    assert "'#'" in str(info.value) and "secret" not in str(info.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: QueueServiceClient("https://acct.queue.core.windows.net@evil.example", credential=KEY),
        lambda: QueueServiceClient("https://user:secret@acct.queue.core.windows.net", credential=KEY),
        lambda: QueueClient.from_queue_url("https://acct.queue.core.windows.net@evil.example/jobs?sv=1&sig=secret"),
        lambda: QueueServiceClient(
            "https://acct.queue.core.windows.net", credential=KEY, secondary_hostname="https://x@evil.example"
        ),
    ],
)
def test_a_url_with_user_info_is_refused(make):
    """``user@host`` sends requests to the host after the '@' (the signed ones included)."""
    with pytest.raises(ConfigurationError, match="user name") as info:
        make()
    assert "secret" not in str(info.value) and "evil" not in str(info.value)
