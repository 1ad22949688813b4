"""A catalogue of bad input: each a typed error before any I/O, its message naming the problem.

The clients point at the fault proxy, which records every request it gets, and retries are off: each
case must raise its error and leave the proxy without a single request.
"""

from datetime import datetime, timedelta

import aiohttp
import pytest

from aioqueue import (
    AccessPolicy,
    ConfigurationError,
    CorsRule,
    MessageEncodingError,
    MessageTooLarge,
    QueueClient,
    QueueServiceClient,
    RetryPolicy,
    SasCredential,
    ServiceProperties,
    SharedKeyCredential,
    generate_account_sas,
    generate_queue_sas,
)
from aioqueue.testing import DEV_KEY
from tests.helpers import FakeCredential


class _BytesEncoding:
    """A custom encoding with a bug: it returns bytes."""

    def encode(self, content: object) -> bytes:
        return str(content).encode()

    def decode(self, text: str) -> str:
        return text


def queue(url, **options):
    return QueueClient(url, "jobs", credential=DEV_KEY, **{"retry": None, **options})


def service(url):
    return QueueServiceClient(url, credential=DEV_KEY, retry=None)


# fmt: off
CALLS = [
    # (case, expected error, words in the message, the call)
    ("queue name too short", ConfigurationError, "queue name", lambda url: service(url).get_queue_client("ab")),
    ("queue name uppercase", ConfigurationError, "queue name", lambda url: QueueClient(url, "Jobs")),
    ("queue name double hyphen", ConfigurationError, "queue name", lambda url: QueueClient(url, "a--b")),
    ("queue name not str", ConfigurationError, "queue name", lambda url: QueueClient(
        url, 42)),  # type: ignore[arg-type]
    ("receive 0", ConfigurationError, "max_messages", lambda url: queue(url).receive_messages(max_messages=0)),
    ("receive 33", ConfigurationError, "1 to 32", lambda url: queue(url).receive_messages(max_messages=33)),
    ("peek 33", ConfigurationError, "1 to 32", lambda url: queue(url).peek_messages(max_messages=33)),
    ("receive visibility 0", ConfigurationError, "visibility_timeout", lambda url: queue(url).receive_messages(
        visibility_timeout=0)),
    ("visibility over 7 days", ConfigurationError, "visibility_timeout", lambda url: queue(url).send_message(
        "x", visibility_timeout=timedelta(days=7, seconds=1))),
    ("negative visibility", ConfigurationError, "visibility_timeout", lambda url: queue(url).update_message(
        "id", "r", visibility_timeout=-1)),
    ("visibility as str", ConfigurationError, "visibility_timeout", lambda url: queue(url).send_message(
        "x", visibility_timeout="30")),
    ("ttl zero", ConfigurationError, "time_to_live", lambda url: queue(url).send_message("x", time_to_live=0)),
    ("ttl -2", ConfigurationError, "time_to_live", lambda url: queue(url).send_message("x", time_to_live=-2)),
    ("visibility not below ttl", ConfigurationError, "shorter", lambda url: queue(url).send_message(
        "x", visibility_timeout=60, time_to_live=60)),
    ("metadata name dash", ConfigurationError, "metadata name", lambda url: queue(url).set_queue_metadata(
        {"a-b": "1"})),
    ("metadata name digit", ConfigurationError, "metadata name", lambda url: queue(url).create_queue(
        metadata={"1a": "x"})),
    ("metadata value non-ascii", ConfigurationError, "ASCII", lambda url: queue(url).set_queue_metadata({"a": "é"})),
    ("metadata value int", ConfigurationError, "must be a str", lambda url: queue(url).set_queue_metadata({"a": 1})),
    ("metadata duplicate case", ConfigurationError, "twice", lambda url: queue(url).set_queue_metadata(
        {"A": "1", "a": "2"})),
    ("six access policies", ConfigurationError, "at most 5", lambda url: queue(url).set_queue_access_policy(
        {f"p{i}": None for i in range(6)})),
    ("policy naive datetime", ConfigurationError, "aware", lambda url: queue(url).set_queue_access_policy(
        {"p": AccessPolicy("r", datetime(2030, 1, 1), None)})),
    ("policy bad letters", ConfigurationError, "raup", lambda url: queue(url).set_queue_access_policy(
        {"p": AccessPolicy("rwx")})),
    # an object for permission (the official SDK's QueueSasPermissions) was a bare TypeError
    ("policy permission object", ConfigurationError, "permission", lambda url: queue(url).set_queue_access_policy(
        {"p": AccessPolicy(object())})),  # type: ignore[arg-type]
    ("six CORS rules", ConfigurationError, "at most 5", lambda url: service(url).set_service_properties(
        ServiceProperties(cors=(CorsRule(("*",), ("GET",)),) * 6))),
    ("message over 64 KiB", MessageTooLarge, "65536", lambda url: queue(url).send_message("x" * 65537)),
    ("binary over 48 KiB", MessageTooLarge, "64 KiB", lambda url: queue(url, message_encoding="binary").send_message(
        b"x" * 49153)),
    ("control char in text", MessageEncodingError, "U+0001", lambda url: queue(url).send_message("a\x01b")),
    ("bytes in text mode", MessageEncodingError, "bytes", lambda url: queue(url).send_message(b"x")),
    ("str in binary mode", MessageEncodingError, "bytes", lambda url: queue(
        url, message_encoding="binary").send_message(
        "x")),
    ("not JSON-serialisable", MessageEncodingError, "JSON", lambda url: queue(
        url, message_encoding="json").send_message(
        object())),
    ("unknown encoding", ConfigurationError, "message_encoding", lambda url: queue(url, message_encoding="xml")),
    ("delete by id without receipt", ConfigurationError, "pop_receipt", lambda url: queue(url).delete_message("id")),
    ("update by id without receipt", ConfigurationError, "pop_receipt", lambda url: queue(url).update_message("id")),
    ("list page size 0", ConfigurationError, "page_size", lambda url: service(url).list_queues(page_size=0).__anext__(
        )),
    ("send_messages of a str", ConfigurationError, "iterable", lambda url: queue(url).send_messages("abc")),
    ("send_messages concurrency 0", ConfigurationError, "concurrency", lambda url: queue(url).send_messages(
        ["a"], concurrency=0)),
    ("receive stream batch 40", ConfigurationError, "max_batch_size", lambda url: queue(url).receive(
        max_batch_size=40)),
    ("process concurrency 0", ConfigurationError, "concurrency", lambda url: queue(url).process(
        _handle, concurrency=0)),
    ("process stop not an Event", TypeError, "asyncio.Event", lambda url: queue(url).process(
        _handle, stop=True)),
    ("url scheme", ConfigurationError, "https://", lambda url: QueueClient("ftp://acct/", "jobs")),
    ("url empty", ConfigurationError, "account URL", lambda url: QueueServiceClient("")),
    ("queue url without queue", ConfigurationError, "queue_url", lambda url: QueueClient.from_queue_url(
        "https://acct.queue.core.windows.net")),
    ("URL SAS and credential", ConfigurationError, "only one", lambda url: QueueClient(
        "https://acct.queue.core.windows.net?sv=1&sig=x", "jobs", credential=DEV_KEY)),
    ("key that is not base64", ConfigurationError, "base64", lambda url: QueueClient(
        "https://acct.queue.core.windows.net", "jobs", credential="not a key!")),
    ("SAS without sig", ConfigurationError, "sig", lambda url: SasCredential("sv=2025-11-05&sp=r")),
    ("shared key without account", ConfigurationError, "account name", lambda url: SharedKeyCredential("", DEV_KEY)),
    ("credential of a wrong type", ConfigurationError, "credential", lambda url: QueueClient(
        "https://acct.queue.core.windows.net", "jobs", credential=3.14)),  # type: ignore[arg-type]
    ("token over http", ConfigurationError, "https", lambda url: QueueClient(
        "http://acct.queue.core.windows.net", "jobs", credential=FakeCredential())),
    ("timeout 0", ConfigurationError, "timeout", lambda url: queue(url, timeout=0)),
    ("max_connections -1", ConfigurationError, "max_connections", lambda url: queue(url, max_connections=-1)),
    ("api_version", ConfigurationError, "api_version", lambda url: queue(url, api_version="v2")),
    ("retry of a wrong type", ConfigurationError, "RetryPolicy", lambda url: queue(url, retry=3)),
    ("retry attempts 0", ConfigurationError, "max_attempts", lambda url: RetryPolicy(max_attempts=0)),
    ("retry a 404", ConfigurationError, "retry_statuses", lambda url: RetryPolicy(retry_statuses=frozenset({404}))),
    ("conn str garbage", ConfigurationError, "segment", lambda url: QueueClient.from_connection_string("garbage", "q")),
    ("conn str no account", ConfigurationError, "AccountName", lambda url: QueueClient.from_connection_string(
        "DefaultEndpointsProtocol=https", "q")),
    ("SAS bad permission", ConfigurationError, "permission", lambda url: generate_queue_sas(
        "a", "jobs", DEV_KEY, permission="rz", expiry=timedelta(hours=1))),
    ("account SAS bad resource type", ConfigurationError, "resource_types", lambda url: generate_account_sas(
        "a", DEV_KEY, resource_types="x", permission="r", expiry=timedelta(hours=1))),
    ("account SAS no resource type", ConfigurationError, "at least one resource type", lambda url: (
        generate_account_sas("a", DEV_KEY, resource_types="", permission="r", expiry=timedelta(hours=1)))),
    ("account SAS bad service", ConfigurationError, "services", lambda url: generate_account_sas(
        "a", DEV_KEY, resource_types="s", permission="r", expiry=timedelta(hours=1), services="qz")),
    ("account SAS no service", ConfigurationError, "at least one service", lambda url: generate_account_sas(
        "a", DEV_KEY, resource_types="s", permission="r", expiry=timedelta(hours=1), services="")),
    ("account SAS no expiry", ConfigurationError, "needs an expiry", lambda url: generate_account_sas(
        "a", DEV_KEY, resource_types="s", permission="r", expiry=None)),  # type: ignore[arg-type]
    ("SAS permission not str", ConfigurationError, "permission must be a str", lambda url: generate_queue_sas(
        "a", "jobs", DEV_KEY, permission=["r"], expiry=timedelta(hours=1))),  # type: ignore[arg-type]
    ("SAS expiry as str", ConfigurationError, "expiry must be a datetime or a timedelta, not str", lambda url: (
        generate_queue_sas("a", "jobs", DEV_KEY, permission="r", expiry="2030-01-01"))),  # type: ignore[arg-type]
    ("SAS empty queue name", ConfigurationError, "queue name", lambda url: generate_queue_sas(
        "a", "", DEV_KEY, permission="r", expiry=timedelta(hours=1))),
    ("shared key of bytes", ConfigurationError, "base64 str", lambda url: SharedKeyCredential(
        "acct", DEV_KEY.encode())),  # type: ignore[arg-type]
    ("SAS of bytes", ConfigurationError, "must be a str", lambda url: SasCredential(
        b"sv=1&sig=x")),  # type: ignore[arg-type]
    ("shared key for another account", ConfigurationError, "for account 'other'", lambda url: QueueClient(
        "https://acct.queue.core.windows.net", "jobs", credential=SharedKeyCredential("other", DEV_KEY))),
    ("key for a URL naming no account", ConfigurationError, "not name the storage account", lambda url: QueueClient(
        "http://127.0.0.1:10001", "jobs", credential=DEV_KEY)),
    ("session of a wrong type", ConfigurationError, "aiohttp.ClientSession", lambda url: queue(
        url, session="a session")),
    ("list prefix not str", ConfigurationError, "prefix", lambda url: service(url).list_queues(
        prefix=3).__anext__()),
    ("service properties of a dict", ConfigurationError, "ServiceProperties", lambda url: service(
        url).set_service_properties({"cors": []})),
    ("queue url not str", ConfigurationError, "queue_url", lambda url: QueueClient.from_queue_url(
        b"https://acct.queue.core.windows.net/jobs")),  # type: ignore[arg-type]
    ("policies of a list", ConfigurationError, "mapping", lambda url: queue(url).set_queue_access_policy(
        [("p", None)])),
    ("policy id too long", ConfigurationError, "1 to 64", lambda url: queue(url).set_queue_access_policy(
        {"p" * 65: None})),
    ("policy of a str", ConfigurationError, "must be an AccessPolicy", lambda url: queue(
        url).set_queue_access_policy({"p": "r"})),
    ("bad policy after an empty one", ConfigurationError, "raup", lambda url: queue(url).set_queue_access_policy(
        {"empty": None, "p": AccessPolicy("rwx")})),
    ("visibility of 7 days, default ttl", ConfigurationError, "7-day", lambda url: queue(url).send_message(
        "x", visibility_timeout=timedelta(days=7))),
    ("message of an int", ConfigurationError, "QueueMessage or a message id", lambda url: queue(
        url).delete_message(42)),
    ("metadata of a list", ConfigurationError, "mapping", lambda url: queue(url).set_queue_metadata(
        [("a", "1")])),
    ("custom encoding returning bytes", MessageEncodingError, "returned bytes, not str", lambda url: queue(
        url, message_encoding=_BytesEncoding()).send_message("x")),
    # issue 13: re.match(...$) let a trailing newline through, and \d took non-ASCII digits
    ("queue name with a trailing newline", ConfigurationError, "queue name", lambda url: QueueClient(url, "abc\n")),
    ("queue name with full-width letters", ConfigurationError, "queue name", lambda url: QueueClient(url, "ａｂｃ")),
    ("metadata name with a trailing newline", ConfigurationError, "metadata name", lambda url: queue(
        url).set_queue_metadata({"foo\n": "x"})),
    ("api_version with a trailing newline", ConfigurationError, "api_version", lambda url: queue(
        url, api_version="2025-11-05\n")),
    ("api_version with full-width digits", ConfigurationError, "api_version", lambda url: queue(
        url, api_version="２０２５-１１-０５")),
    # a dot segment would turn DELETE .../messages/.. into Delete Queue behind a path-normalising hop
    ("message id '..'", ConfigurationError, "message id", lambda url: queue(url).delete_message("..", "AgAAAA==")),
    ("message id '.'", ConfigurationError, "message id", lambda url: queue(url).delete_message(".", "AgAAAA==")),
    ("message id with a slash", ConfigurationError, "message id", lambda url: queue(url).update_message(
        "a/../b", "AgAAAA==")),
    ("message id with a space", ConfigurationError, "message id", lambda url: queue(url).delete_message(
        "a b", "AgAAAA==")),
    ("pop receipt with a newline", ConfigurationError, "pop receipt", lambda url: queue(url).delete_message(
        "0a1b", "AgAA\nAA==")),
    ("pop receipt '..'", ConfigurationError, "pop receipt", lambda url: queue(url).update_message("0a1b", "..")),
    # SAS text: a space or '#' corrupts the request line or cuts the signature
    ("SAS with a space", ConfigurationError, "URL query cannot carry", lambda url: SasCredential(
        "sv=2025-11-05&sig=a b")),
    ("SAS with a hash", ConfigurationError, "URL query cannot carry", lambda url: SasCredential(
        "sv=2025-11-05&sig=ab#cd")),
    ("SAS in a URL with a quote", ConfigurationError, "URL query cannot carry", lambda url: QueueClient(
        url + '?sv=2025-11-05&sig=a"b', "jobs")),
    ("SAS rotated to a bad token", ConfigurationError, "URL query cannot carry", lambda url: SasCredential(
        "sv=1&sig=ab").update("sv=1&sig=a\r\nb")),
    # what feeds a SAS's newline-separated string to sign
    ("SAS queue name with a newline", ConfigurationError, "queue name", lambda url: generate_queue_sas(
        "acct", "jobs\nx", DEV_KEY, permission="r", expiry=timedelta(hours=1))),
    ("SAS queue name with a slash", ConfigurationError, "queue name", lambda url: generate_queue_sas(
        "acct", "jobs/x", DEV_KEY, permission="r", expiry=timedelta(hours=1))),
    ("SAS account name with a slash", ConfigurationError, "account name", lambda url: generate_queue_sas(
        "acct/x", "jobs", DEV_KEY, permission="r", expiry=timedelta(hours=1))),
    ("SAS version with a newline", ConfigurationError, "api_version", lambda url: generate_queue_sas(
        "acct", "jobs", DEV_KEY, permission="r", expiry=timedelta(hours=1), version="2025-11-05\nx")),
    ("SAS policy id with a newline", ConfigurationError, "policy_id", lambda url: generate_queue_sas(
        "acct", "jobs", DEV_KEY, policy_id="p\n1")),
    ("account SAS account name with a newline", ConfigurationError, "account name", lambda url: generate_account_sas(
        "acct\n", DEV_KEY, resource_types="s", permission="r", expiry=timedelta(hours=1))),
    ("account SAS version with a newline", ConfigurationError, "api_version", lambda url: generate_account_sas(
        "acct", DEV_KEY, resource_types="s", permission="r", expiry=timedelta(hours=1), version="2025-11-05\n")),
    # Azurite answered 500 to a NUL, and the call was retried 4 times
    ("access policy id with NUL", ConfigurationError, "control characters", lambda url: queue(
        url).set_queue_access_policy({"a\x00": AccessPolicy("r")})),
    ("access policy id with a newline", ConfigurationError, "control characters", lambda url: queue(
        url).set_queue_access_policy({"a\nb": AccessPolicy("r")})),
    ("access policy id of 65 characters", ConfigurationError, "1 to 64", lambda url: queue(
        url).set_queue_access_policy({"x" * 65: AccessPolicy("r")})),
    # a SAS is a secret like a token: not over plain http to the network
    ("SAS over http to the network", ConfigurationError, "allow_insecure_http", lambda url: QueueClient(
        "http://10.0.0.5:10001/devstoreaccount1", "jobs", credential="sv=2025-11-05&sig=abc")),
    ("SAS in an http URL to the network", ConfigurationError, "allow_insecure_http", lambda url: QueueClient(
        "http://queues.example.com/devstoreaccount1?sv=2025-11-05&sig=abc", "jobs")),
    ("token over http to a network secondary", ConfigurationError, "allow_insecure_http", lambda url: QueueClient(
        "http://127.0.0.1:10001/devstoreaccount1", "jobs", credential=FakeCredential(),
        secondary_hostname="http://10.0.0.5:10001/devstoreaccount1-secondary")),
]
# fmt: on


async def _handle(message: object) -> None:
    raise AssertionError("never called")


@pytest.mark.parametrize(("case", "error", "words", "call"), CALLS, ids=[c[0] for c in CALLS])
async def test_bad_input_fails_before_any_io(proxy, case, error, words, call):
    with pytest.raises(error) as info:
        result = call(proxy.url())
        if hasattr(result, "__await__"):
            await result
    assert words.lower() in str(info.value).lower(), f"{case}: {info.value}"
    assert DEV_KEY not in str(info.value)
    assert proxy.seen == [], f"{case}: a request was made before the error"


async def test_max_connections_with_a_session_of_ones_own_is_refused():
    """aiohttp sizes a caller's session by its connector: a pool size given with it was ignored."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigurationError, match="TCPConnector"):
            QueueClient("http://127.0.0.1:10001/devstoreaccount1", "jobs", session=session, max_connections=5)
        QueueClient("http://127.0.0.1:10001/devstoreaccount1", "jobs", session=session)  # the default is fine
