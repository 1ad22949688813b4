import pytest

from aioqueue import (
    AuthenticationFailed,
    ConfigurationError,
    QueueClient,
    QueueServiceClient,
    SasCredential,
    SharedKeyCredential,
)
from aioqueue._endpoint import parse_connection_string
from aioqueue.testing import DEV_KEY
from tests.helpers import FakeCredential

KEY = DEV_KEY


def test_account_name_and_key_default_to_https_core_windows_net():
    s = parse_connection_string(f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY}")
    assert s.account_url == "https://acct.queue.core.windows.net"
    assert isinstance(s.credential, SharedKeyCredential) and s.credential.account_name == "acct"


def test_keys_are_case_insensitive_and_suffix_is_used():
    s = parse_connection_string(
        f"accountname=acct;ACCOUNTKEY={KEY};defaultendpointsprotocol=http;EndpointSuffix=core.chinacloudapi.cn;"
    )
    assert s.account_url == "http://acct.queue.core.chinacloudapi.cn"


def test_queue_endpoint_with_sas():
    s = parse_connection_string("QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=sv=1&sig=abc")
    assert s.account_url == "https://acct.queue.core.windows.net"
    assert isinstance(s.credential, SasCredential) and s.credential.token == "sv=1&sig=abc"


def test_development_storage():
    s = parse_connection_string("UseDevelopmentStorage=true")
    assert s.account_url == "http://127.0.0.1:10001/devstoreaccount1"
    assert isinstance(s.credential, SharedKeyCredential) and s.credential.account_name == "devstoreaccount1"


def test_other_service_endpoints_are_ignored():
    s = parse_connection_string(f"AccountName=acct;AccountKey={KEY};BlobEndpoint=https://x.blob.core.windows.net")
    assert s.account_url == "https://acct.queue.core.windows.net"


@pytest.mark.parametrize(
    ("conn", "words"),
    [
        ("", "empty"),
        ("AccountName=acct;garbage", "segment 2"),
        ("AccountName=acct;AccountKey=!!notbase64!!", "base64"),
        ("AccountKey=" + KEY, "AccountName"),
        ("AccountName=acct;Color=blue", "unknown setting"),
        ("AccountName=acct;AcountKey=x", "segment 2 has an unknown setting (did you mean AccountKey?)"),
        ("AccountName=a;AccountName=b", "twice"),
        ("UseDevelopmentStorage=false", "UseDevelopmentStorage"),
        ("UseDevelopmentStorage=true;AccountName=x", "cannot be combined"),
        ("DefaultEndpointsProtocol=ftp;AccountName=acct", "http or https"),
        ("QueueEndpoint=https://x;SharedAccessSignature=sv=1", "sig"),
        (f"AccountName=a;AccountKey={KEY};SharedAccessSignature=sig=1", "both"),
        (f"AccountName=a;AccountKey={KEY};EndpointSuffix=.", "EndpointSuffix is empty"),
        (f"AccountName=a;AccountKey={KEY};EndpointSuffix=core.windows.net@evil.example", "EndpointSuffix must be"),
        (f"AccountName=a;AccountKey={KEY};EndpointSuffix=evil.example/core.windows.net", "EndpointSuffix must be"),
        (f"AccountName=a;AccountKey={KEY};EndpointSuffix=evil.example:443", "EndpointSuffix must be"),
        (f"AccountName=evil.example/a;AccountKey={KEY}", "AccountName must be"),
        (f"AccountName=a@evil.example;AccountKey={KEY}", "AccountName must be"),
    ],
)
def test_malformed_connection_strings_name_the_problem(conn, words):
    with pytest.raises(ConfigurationError) as info:
        parse_connection_string(conn)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("conn", "words"),
    [
        (f"AccountName=a;AccountKey={KEY};QueueEndpoint=https://a.queue.core.windows.net@evil.example", "user name"),
        ("QueueEndpoint=https://a.queue.core.windows.net?sv=1&sig=secret#rest", "'#'"),
        ("QueueEndpoint=https://a.queue.core.windows.net;SharedAccessSignature=sv=1&sig=secret#rest", "'#'"),
        (
            f"AccountName=a;AccountKey={KEY};QueueEndpoint=https://a.queue.core.windows.net;"
            "QueueSecondaryEndpoint=https://x:y@evil.example",
            "user name",
        ),
        ("UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://u@evil.example", "user name"),
    ],
)
def test_endpoints_that_would_send_requests_elsewhere_are_refused(conn, words):
    """A '#' would silently cut a SAS signature; a user@ would send signed requests to the host after it."""
    with pytest.raises(ConfigurationError) as info:
        QueueServiceClient.from_connection_string(conn)
    assert words in str(info.value)
    assert "secret" not in str(info.value) and "evil" not in str(info.value)


def test_errors_never_echo_the_key():
    secret = "c2VjcmV0LWtleS12YWx1ZQ=="
    for conn in (
        f"AccountKey={secret}",
        f"AccountName=a;AccountKey={secret};Bogus",
        f"AccountName=a;AccountKey={secret}x!",
    ):
        with pytest.raises(ConfigurationError) as info:
            parse_connection_string(conn)
        assert secret not in str(info.value) and secret not in repr(info.value)


def test_clients_from_connection_strings():
    q = QueueClient.from_connection_string("UseDevelopmentStorage=true", "jobs")
    assert q.url == "http://127.0.0.1:10001/devstoreaccount1/jobs"
    assert q.account_name == "devstoreaccount1" and q.queue_name == "jobs"
    s = QueueServiceClient.from_connection_string(f"AccountName=acct;AccountKey={KEY}")
    assert s.url == "https://acct.queue.core.windows.net/" and s.account_name == "acct"
    assert KEY not in repr(s) and KEY not in repr(SharedKeyCredential("a", KEY))


def test_from_queue_url_with_sas():
    q = QueueClient.from_queue_url("https://acct.queue.core.windows.net/jobs?sv=2025-11-05&sig=abc%3D")
    assert q.queue_name == "jobs" and q.account_name == "acct"
    assert q.url == "https://acct.queue.core.windows.net/jobs"  # no signature in the URL attribute
    assert "abc" not in repr(q)


def test_token_credential_refused_on_plain_http_except_loopback():
    with pytest.raises(ConfigurationError, match="https"):
        QueueClient("http://acct.queue.core.windows.net", "jobs", credential=FakeCredential())
    QueueClient("http://127.0.0.1:10001/devstoreaccount1", "jobs", credential=FakeCredential())
    QueueClient("http://localhost:10001/devstoreaccount1", "jobs", credential=FakeCredential())
    QueueClient("https://acct.queue.core.windows.net", "jobs", credential=FakeCredential())


def test_development_storage_through_a_proxy():
    q = QueueClient.from_connection_string(
        "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://devproxy.example/", "jobs"
    )
    assert q.url == "http://devproxy.example:10001/devstoreaccount1/jobs"
    assert q.account_name == "devstoreaccount1"


def test_a_connection_string_without_a_key_or_sas_is_anonymous():
    s = parse_connection_string("AccountName=public")
    assert s.account_url == "https://public.queue.core.windows.net" and s.credential is None


async def test_an_anonymous_client_sends_no_authorization(proxy, queue_client):
    async with QueueClient.from_connection_string(f"QueueEndpoint={proxy.url()}", queue_client.queue_name) as q:
        with pytest.raises(AuthenticationFailed):
            await q.peek_messages()
    assert proxy.seen and all("Authorization" not in r.headers for r in proxy.seen)


def test_a_shared_key_credential_names_the_account_a_url_leaves_out():
    q = QueueClient("http://10.1.2.3:10001", "jobs", credential=SharedKeyCredential("acct", KEY))
    assert q.account_name == "acct" and q.url == "http://10.1.2.3:10001/jobs"


def test_a_key_pasted_where_a_setting_goes_is_never_echoed():
    """A key without its 'AccountKey=' has an '=' inside (its padding): the text before that was echoed
    as the 'setting' (40 characters of the key)."""
    for conn in (f"AccountName=a;{KEY}", f"AccountName=a;{KEY[:20]}=x"):
        with pytest.raises(ConfigurationError, match="segment 2 has an unknown setting") as info:
            parse_connection_string(conn)
        text = str(info.value)
        assert KEY[:8] not in text and KEY[-12:] not in text
