"""The fake service checks credentials as Azure does: Shared Key (with the 15-minute freshness rule),
account and queue SAS (signature, time window, address, protocol, service, resource type, permission,
stored access policies) and bearer tokens. Its signer is its own: it reproduces the official SDK's
pinned signatures (tests/auth/test_signing.py), so a signer bug in aioqueue would show here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from urllib.parse import urlencode

import pytest

from aioqueue import (
    AccessPolicy,
    AuthenticationFailed,
    QueueClient,
    QueueServiceClient,
    ServiceError,
    generate_account_sas,
    generate_queue_sas,
)
from aioqueue._auth import SharedKeyCredential
from aioqueue._fake._auth import Authenticator, Incoming
from aioqueue._fake._errors import Refusal
from aioqueue._fake._state import Clock
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY, FakeQueueService
from tests.fake.rawhttp import send
from tests.helpers import FakeCredential

OTHER_KEY = base64.b64encode(b"not the account's key, 32 bytes!").decode()
PINNED_DATE = "Fri, 27 Nov 2026 03:46:05 GMT"
EXPIRY = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _authenticator() -> Authenticator:
    return Authenticator(DEV_ACCOUNT, DEV_KEY, Clock("frozen", START + timedelta(days=1)), lambda queue: ())


def _incoming(method, path, query, headers, length=0, queue=None, operation="peek_messages") -> Incoming:
    return Incoming(method, path, list(query.items()), headers, length, "127.0.0.1", queue, operation)


# ---- the fake's own signer against the official SDK's signatures --------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "extra", "length", "expected"),
    [
        # three of tests/auth/test_signing.py's vectors (azure-storage-queue 12.18.1's signatures)
        ("PUT", "/devstoreaccount1/myqueue", {}, {"x-ms-meta-Color": "blue"}, 0,
         "26jRW/crf+XrvogcGPgPSX4gNsEs7lcFrYDo06rNXP8="),
        ("POST", "/myqueue/messages", {"messagettl": "-1"}, {"Content-Type": "application/xml; charset=utf-8"}, 58,
         "JRlCCZ30RHPxFl8f0cAXbmipfSpq+4E9T7R6w1gOOXk="),
        ("DELETE", "/myqueue/messages/abc", {"popreceipt": "AgAAAAMAAAAAAAAA+x/="}, {}, 0,
         "JmP1SSi0JV3Hx6kUbPlRZlDzuk+RCmCP2vsXw9EPAdA="),
    ],
)  # fmt: skip
def test_the_fakes_shared_key_reproduces_the_official_sdks(method, path, query, extra, length, expected):
    headers = {"x-ms-date": PINNED_DATE, "x-ms-version": "2025-11-05", **extra}
    auth = _authenticator()
    signature = auth._sign(auth.string_to_sign(_incoming(method, path, query, headers, length)))
    assert signature == expected


def test_the_fakes_sas_checks_accept_the_official_sdks_signatures():
    """Signatures of tests/auth/test_signing.py (azure-storage-queue 12.18.1): a queue SAS and an account SAS."""
    auth = _authenticator()
    queue_sas = {"sv": "2025-11-05", "st": "2026-01-01T00:00:00Z", "se": "2030-01-02T03:04:05Z", "sp": "raup"}
    queue_sas["sig"] = "cX5hZSjiDPXfxNn/KNsofrEQ4vTqFuRZvmGKAlz4m28="
    auth.check(_incoming("GET", "/devstoreaccount1/myqueue/messages", queue_sas, {}, queue="myqueue"))
    account_sas = {"sv": "2025-11-05", "ss": "q", "srt": "sco", "sp": "rwdlacup"}
    account_sas |= {"st": "2026-01-01T00:00:00Z", "se": "2030-01-02T03:04:05Z"}
    account_sas["sig"] = "8Vaf4fiql3POdHsnLiBnR3pAAsB+4oB+N4i3AKzuoQI="
    auth.check(_incoming("GET", "/devstoreaccount1/", account_sas, {}, operation="list_queues"))
    with pytest.raises(Refusal) as info:  # one letter less: another signature
        auth.check(
            _incoming("GET", "/devstoreaccount1/", {**account_sas, "sp": "rwdlacu"}, {}, operation="list_queues")
        )
    assert info.value.details["AuthenticationErrorDetail"].startswith("Signature did not match.")


# ---- Shared Key --------------------------------------------------------------------------------


async def test_a_wrong_key_is_403_with_the_string_the_service_signed(fake: FakeQueueService, queue_name: str):
    connection = fake.connection_string.replace(DEV_KEY, OTHER_KEY)
    async with QueueClient.from_connection_string(connection, queue_name) as queue:
        with pytest.raises(AuthenticationFailed) as info:
            await queue.create_queue()
    assert (info.value.status, info.value.error_code) == (403, "AuthenticationFailed")
    detail = info.value.details["AuthenticationErrorDetail"]
    assert "is not the same as any computed signature. Server used following string to sign: 'PUT\n" in detail
    assert f"/devstoreaccount1/devstoreaccount1/{queue_name}'." in detail  # path-style: the account twice
    assert queue_name not in fake.queues


async def test_a_signature_over_the_wrong_resource_is_refused(fake: FakeQueueService):
    """A signer that left the account out of a path-style URL's canonical resource is caught."""
    headers = {"x-ms-version": "2025-11-05", "x-ms-date": formatdate(usegmt=True)}
    wrong = SharedKeyCredential(DEV_ACCOUNT, DEV_KEY).authorization("GET", "/", {"comp": "list"}, headers, 0)
    answer = await send(fake, "GET", "/", query={"comp": "list"}, key=None, headers={**headers, "Authorization": wrong})
    assert (answer.status, answer.code) == (403, "AuthenticationFailed")
    assert "\n/devstoreaccount1/devstoreaccount1/\ncomp:list'." in answer.error["AuthenticationErrorDetail"]


@pytest.mark.parametrize(
    ("age", "status"),
    [(20 * 60, 403), (16 * 60, 403), (14 * 60, 200), (-3600, 200)],  # ahead of the service: accepted, as Azure
)
async def test_a_request_dated_more_than_15_minutes_ago_is_refused(fake: FakeQueueService, age, status):
    date = formatdate(time.time() - age, usegmt=True)
    answer = await send(fake, "GET", "/", query={"comp": "list"}, date=date)
    assert answer.status == status
    if status == 403:
        assert answer.code == "AuthenticationFailed"
        assert answer.error["AuthenticationErrorDetail"] == f"Request date header too old: '{date}'"


async def test_a_client_whose_clock_is_20_minutes_slow_is_refused(fake: FakeQueueService, queue_name: str, monkeypatch):
    """Through the real client: its x-ms-date is checked against the real time."""
    real = time.time
    monkeypatch.setattr("aioqueue._dates.time.time", lambda: real() - 20 * 60)
    async with QueueClient.from_connection_string(fake.connection_string, queue_name) as queue:
        with pytest.raises(AuthenticationFailed) as info:
            await queue.create_queue()
    assert info.value.details["AuthenticationErrorDetail"].startswith("Request date header too old: ")


# ---- SAS ---------------------------------------------------------------------------------------


async def _queue_with(fake: FakeQueueService, name: str, token: str) -> QueueClient:
    return QueueClient(fake.url, name, credential=token)


async def test_a_queue_sas_grants_its_permissions_and_nothing_else(fake: FakeQueueService, fake_queue: QueueClient):
    name = fake_queue.queue_name
    everything = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="raup", expiry=timedelta(hours=1))
    async with await _queue_with(fake, name, everything) as queue:
        await queue.send_message("x")
        [message] = await queue.receive_messages()
        await queue.update_message(message, visibility_timeout=0)
        assert (await queue.get_queue_properties()).approximate_message_count == 1
        [message] = await queue.receive_messages()
        await queue.delete_message(message)
        for denied in (queue.create_queue(), queue.clear_messages(), queue.get_queue_access_policy()):
            with pytest.raises(AuthenticationFailed) as info:
                await denied
            assert info.value.error_code == "AuthorizationFailure"  # recording ...CreateAsync_WithQueueServiceSas
    read_only = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(hours=1))
    async with await _queue_with(fake, name, read_only) as queue:
        assert await queue.peek_messages() == []
        with pytest.raises(AuthenticationFailed) as info:
            await queue.send_message("x")
        assert (info.value.status, info.value.error_code) == (403, "AuthorizationPermissionMismatch")
    async with await _queue_with(fake, "anotherqueue", everything) as other:
        with pytest.raises(AuthenticationFailed) as info:
            await other.peek_messages()  # signed for another queue
        assert "Signature did not match" in info.value.details["AuthenticationErrorDetail"]


async def test_an_account_sas_checks_resource_types_and_permissions(fake: FakeQueueService, fake_queue):
    name = fake_queue.queue_name
    objects = generate_account_sas(DEV_ACCOUNT, DEV_KEY, resource_types="o", permission="ap", expiry=timedelta(hours=1))
    async with QueueServiceClient(fake.url, credential=objects) as service:
        await service.get_queue_client(name).send_message("x")
        with pytest.raises(AuthenticationFailed) as info:
            await service.create_queue("newqueue")
        assert info.value.error_code == "AuthorizationResourceTypeMismatch"
    reader = generate_account_sas(
        DEV_ACCOUNT, DEV_KEY, resource_types="sco", permission="rl", expiry=timedelta(hours=1)
    )
    async with QueueServiceClient(fake.url, credential=reader) as service:
        assert [q.name async for q in service.list_queues()] == [name]
        queue = service.get_queue_client(name)
        assert len(await queue.peek_messages()) == 1
        with pytest.raises(AuthenticationFailed) as info:
            await queue.receive_messages()
        assert info.value.error_code == "AuthorizationPermissionMismatch"
        with pytest.raises(AuthenticationFailed) as info:
            await queue.set_queue_access_policy({})  # no SAS may
        assert info.value.error_code == "AuthorizationFailure"


def _account_sas(ss: str, srt: str, sp: str, se: str, version: str = "2025-11-05") -> str:
    """An account SAS signed by hand, per "Create an account SAS" (for values the generator refuses)."""
    text = "\n".join([DEV_ACCOUNT, sp, ss, srt, "", se, "", "", version, ""]) + "\n"
    sig = base64.b64encode(hmac.new(base64.b64decode(DEV_KEY), text.encode(), hashlib.sha256).digest()).decode()
    return urlencode({"sv": version, "ss": ss, "srt": srt, "sp": sp, "se": se, "sig": sig})


async def test_an_account_sas_for_another_service_is_refused(fake: FakeQueueService):
    se = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with QueueServiceClient(fake.url, credential=_account_sas("bf", "sco", "rwdlacup", se)) as service:
        with pytest.raises(AuthenticationFailed) as info:
            await service.create_queue("blobsonly")
        assert info.value.error_code == "AuthorizationServiceMismatch"
    async with QueueServiceClient(fake.url, credential=_account_sas("q", "sco", "rwdlacup", se)) as service:
        await service.create_queue("queuesok")  # the same, signed by hand for the queue service


async def test_a_sas_expires_with_the_services_clock(fake: FakeQueueService, fake_queue: QueueClient):
    name = fake_queue.queue_name
    token = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(hours=1))
    later = generate_queue_sas(
        DEV_ACCOUNT, name, DEV_KEY, permission="r", start=timedelta(hours=2), expiry=timedelta(hours=3)
    )
    async with await _queue_with(fake, name, token) as queue, await _queue_with(fake, name, later) as early:
        assert await queue.peek_messages() == []
        with pytest.raises(AuthenticationFailed) as info:
            await early.peek_messages()  # not yet valid
        assert info.value.details["AuthenticationErrorDetail"].startswith(
            "Signature not valid in the specified time frame: Start ["
        )
        fake.advance(timedelta(hours=2, minutes=1))
        with pytest.raises(AuthenticationFailed) as info:
            await queue.peek_messages()
        assert "Signature not valid in the specified time frame" in info.value.details["AuthenticationErrorDetail"]
        assert await early.peek_messages() == []


async def test_a_sas_naming_a_stored_access_policy(fake: FakeQueueService, fake_queue: QueueClient):
    name = fake_queue.queue_name
    await fake_queue.set_queue_access_policy(
        {"senders": AccessPolicy(permission="a", expiry=datetime.now(timezone.utc) + timedelta(hours=1))}
    )
    token = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, policy_id="senders")
    async with await _queue_with(fake, name, token) as queue:
        await queue.send_message("via the policy")
        with pytest.raises(AuthenticationFailed) as info:
            await queue.peek_messages()  # the policy grants add only
        assert info.value.error_code == "AuthorizationPermissionMismatch"
        fake.advance(timedelta(hours=2))  # the policy's expiry passes
        with pytest.raises(AuthenticationFailed):
            await queue.send_message("too late")
    await fake_queue.set_queue_access_policy({})  # revoked
    token = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, policy_id="senders")
    async with await _queue_with(fake, name, token) as queue:
        with pytest.raises(AuthenticationFailed) as info:
            await queue.send_message("revoked")
        assert info.value.error_code == "AuthorizationFailure"


async def test_a_field_in_both_the_sas_and_its_policy_is_400(fake: FakeQueueService, fake_queue: QueueClient):
    name = fake_queue.queue_name
    await fake_queue.set_queue_access_policy({"p": AccessPolicy(permission="r")})
    token = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(hours=1), policy_id="p")
    async with await _queue_with(fake, name, token) as queue:
        with pytest.raises(ServiceError) as info:
            await queue.peek_messages()
    assert info.value.status == 400 and info.value.details["QueryParameterName"] == "sp"


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"protocol": "https"}, "AuthorizationProtocolMismatch"),
        ({"ip": "10.0.0.1"}, "AuthorizationSourceIPMismatch"),
        ({"ip": "127.0.0.2-127.0.0.9"}, "AuthorizationSourceIPMismatch"),
        ({"ip": "127.0.0.1"}, None),
        ({"ip": "127.0.0.0-127.0.0.255", "protocol": "https,http"}, None),
    ],
)
async def test_a_sas_bound_to_an_address_or_https(fake: FakeQueueService, fake_queue: QueueClient, options, code):
    name = fake_queue.queue_name
    token = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(hours=1), **options)
    async with await _queue_with(fake, name, token) as queue:
        if code is None:
            assert await queue.peek_messages() == []
            return
        with pytest.raises(AuthenticationFailed) as info:
            await queue.peek_messages()
    assert (info.value.status, info.value.error_code) == (403, code)


async def test_a_tampered_sas_is_refused_with_the_string_to_sign(fake: FakeQueueService, fake_queue: QueueClient):
    name = fake_queue.queue_name
    token = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission="r", expiry=timedelta(hours=1))
    async with await _queue_with(fake, name, token.replace("sp=r", "sp=raup")) as queue:
        with pytest.raises(AuthenticationFailed) as info:
            await queue.send_message("x")
    detail = info.value.details["AuthenticationErrorDetail"]
    assert detail.startswith("Signature did not match. String to sign used was raup\n")
    assert f"\n/queue/{DEV_ACCOUNT}/{name}\n" in detail


async def test_the_official_sdk_at_its_own_newest_version_is_served(fake: FakeQueueService, queue_name: str):
    """azure-storage-queue 12.18.1 sends x-ms-version 2026-10-06, its newest, unless told otherwise, and its
    SAS signer puts that version in sv: the fake answered both 400 as unknown versions."""
    from azure.storage.queue._shared.shared_access_signature import SharedAccessSignature
    from azure.storage.queue.aio import QueueClient as OfficialQueueClient

    async with OfficialQueueClient.from_connection_string(fake.connection_string, queue_name) as sdk:
        await sdk.create_queue()
        await sdk.send_message("from the official SDK")
    sas = SharedAccessSignature(DEV_ACCOUNT, DEV_KEY).generate_account("q", "sco", "r", EXPIRY)
    assert "sv=2026-10-06" in sas
    async with QueueClient(fake.url, queue_name, credential=sas) as queue:
        assert [m.content for m in await queue.peek_messages()] == ["from the official SDK"]


# ---- bearer tokens -----------------------------------------------------------------------------


async def test_a_bearer_token_for_azure_storage_is_taken(fake: FakeQueueService, queue_name: str):
    async with QueueClient(fake.url, queue_name, credential=FakeCredential()) as queue:
        await queue.create_queue()
        await queue.send_message("with a token")
    assert len(fake.queues[queue_name].messages) == 1


async def test_an_expired_bearer_token_is_401_with_a_challenge(fake: FakeQueueService, queue_name: str):
    async with QueueClient(fake.url, queue_name, credential=FakeCredential(lifetime=-60)) as queue:
        with pytest.raises(AuthenticationFailed) as info:
            await queue.create_queue()
    assert (info.value.status, info.value.error_code) == (401, "InvalidAuthenticationInfo")
    assert info.value.details["AuthenticationErrorDetail"] == "Lifetime validation failed. The token is expired."


async def test_a_bearer_token_for_another_audience_is_refused(fake: FakeQueueService):
    """Azure's answer (recording test_queue.pyTestStorageQueuetest_bad_audience_queue_client)."""
    claims = base64.urlsafe_b64encode(
        b'{"aud": "https://vault.azure.net", "iss": "https://sts.windows.net/t/", "exp": 9999999999}'
    ).decode()
    answer = await send(
        fake, "GET", "/", query={"comp": "list"}, key=None, headers={"Authorization": f"Bearer e30.{claims}.c2ln"}
    )
    assert (answer.status, answer.code) == (401, "InvalidAuthenticationInfo")
    assert answer.error["AuthenticationErrorDetail"] == "Audience validation failed. Audience did not match."
    assert answer.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


async def test_shared_key_needs_a_date_and_takes_the_date_header(fake: FakeQueueService):
    none = await send(fake, "GET", "/", query={"comp": "list"}, headers={"x-ms-date": ""})
    assert (none.status, none.error["AuthenticationErrorDetail"]) == (403, "Request date header not specified.")
    bad = await send(fake, "GET", "/", query={"comp": "list"}, headers={"x-ms-date": "yesterday"})
    assert (bad.status, bad.code, bad.error["HeaderName"]) == (400, "InvalidHeaderValue", "x-ms-date")
    # without x-ms-date, the Date header is the one checked and signed (its own line of the string to sign)
    dated = await send(
        fake, "GET", "/", query={"comp": "list"}, headers={"x-ms-date": "", "Date": formatdate(usegmt=True)}
    )
    assert dated.status == 200


def _token(claims: str) -> str:
    return "e30." + base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=") + ".c2ln"


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("not-a-jwt", "The token is malformed."),
        (_token("[1, 2]"), "The token is malformed."),
        (_token('{"aud": "https://storage.azure.com", "iss": "https://evil.example/", "exp": 9999999999}'),
         "Issuer validation failed. Issuer did not match."),
        (_token('{"aud": "https://storage.azure.com/", "iss": "https://sts.windows.net/t/", "exp": "soon"}'),
         "The token is malformed."),
        (_token('{"aud": "https://storage.azure.com", "iss": "https://sts.windows.net/t/", "nbf": 9999999998, '
                '"exp": 9999999999}'),
         "Lifetime validation failed. The token is not yet valid."),
    ],
)  # fmt: skip
async def test_bearer_tokens_are_checked_as_azurite_checks_them(fake: FakeQueueService, token, detail):
    answer = await send(
        fake, "GET", "/", query={"comp": "list"}, key=None, headers={"Authorization": f"Bearer {token}"}
    )
    assert (answer.status, answer.code, answer.error["AuthenticationErrorDetail"]) == (
        401,
        "InvalidAuthenticationInfo",
        detail,
    )


async def test_a_token_for_the_accounts_own_audience_and_an_old_version(fake: FakeQueueService):
    audience = "https://devstoreaccount1.queue.core.windows.net"
    claims = f'{{"aud": "{audience}", "iss": "https://sts.windows.net/t/", "exp": 9999999999}}'
    headers = {"Authorization": f"Bearer {_token(claims)}"}
    assert (await send(fake, "GET", "/", query={"comp": "list"}, key=None, headers=headers)).status == 200
    old = await send(
        fake, "GET", "/", query={"comp": "list"}, key=None, headers={**headers, "x-ms-version": "2017-07-29"}
    )
    assert (old.status, old.code) == (400, "InvalidHeaderValue")  # bearer tokens need 2017-11-09 or later


def _sign(text: str) -> str:
    return base64.b64encode(hmac.new(base64.b64decode(DEV_KEY), text.encode(), hashlib.sha256).digest()).decode()


async def test_older_sas_versions_sign_fewer_fields(fake: FakeQueueService, fake_queue: QueueClient):
    name = fake_queue.queue_name
    se = "2099-01-01T00:00:00Z"
    # an account SAS before 2020-12-06: no encryption scope line
    text = "\n".join([DEV_ACCOUNT, "r", "q", "sco", "", se, "", "", "2019-02-02"]) + "\n"
    account = {"sv": "2019-02-02", "ss": "q", "srt": "sco", "sp": "r", "se": se, "sig": _sign(text)}
    assert (await send(fake, "GET", f"/{name}/messages", query={**account, "peekonly": "true"}, key=None)).status == 200
    # a queue SAS before 2015-04-05: no sip and spr lines
    text = "\n".join(["r", "", se, f"/queue/{DEV_ACCOUNT}/{name}", "", "2015-02-21"])
    queue = {"sv": "2015-02-21", "sp": "r", "se": se, "sig": _sign(text)}
    assert (await send(fake, "GET", f"/{name}/messages", query={**queue, "peekonly": "true"}, key=None)).status == 200


@pytest.mark.parametrize(
    ("fields", "status", "code", "detail"),
    [
        ({"sp": "r", "se": "2099-01-01T00:00:00Z", "skoid": "x"}, 403, "AuthenticationFailed",
         "User delegation SAS is not implemented by the fake queue service."),
        ({"sp": "r", "se": "2099-01-01T00:00:00Z", "sv": "2099-01-01"}, 400, "InvalidQueryParameterValue", None),
        ({"se": "2099-01-01T00:00:00Z"}, 403, "AuthenticationFailed", "sp is mandatory. Cannot be empty"),
        ({"sp": "r"}, 403, "AuthenticationFailed", "se is mandatory. Cannot be empty"),
        ({"sp": "r", "se": "next year"}, 403, "AuthenticationFailed", "not an ISO 8601 time: 'next year'"),
        ({"sp": "r", "st": "2099-01-02", "se": "2099-01-01T00:00+01:00"}, 403, "AuthenticationFailed",
         "Signed expiry time [Wed, 31 Dec 2098 23:00:00 GMT] must be after signed start time "
         "[Fri, 02 Jan 2099 00:00:00 GMT]"),
        ({"sp": "r", "se": "2099-01-01T00:00:00Z", "sip": "not-an-address"}, 403, "AuthorizationSourceIPMismatch",
         None),
    ],
)  # fmt: skip
async def test_a_queue_sas_is_checked_field_by_field(
    fake: FakeQueueService, fake_queue: QueueClient, fields, status, code, detail
):
    name = fake_queue.queue_name
    sas = {"sv": "2025-11-05", **fields}
    text = "\n".join(
        [
            sas.get("sp", ""),
            sas.get("st", ""),
            sas.get("se", ""),
            f"/queue/{DEV_ACCOUNT}/{name}",
            "",
            sas.get("sip", ""),
            "",
            sas["sv"],
        ]
    )
    sas["sig"] = _sign(text)
    answer = await send(fake, "GET", f"/{name}/messages", query={**sas, "peekonly": "true"}, key=None)
    assert (answer.status, answer.code) == (status, code)
    if detail is not None:
        assert answer.error["AuthenticationErrorDetail"] == detail


async def test_a_queue_sas_names_no_service_operation(fake: FakeQueueService, fake_queue: QueueClient):
    token = generate_queue_sas(
        DEV_ACCOUNT, fake_queue.queue_name, DEV_KEY, permission="raup", expiry=timedelta(hours=1)
    )
    async with QueueServiceClient(fake.url, credential=token) as service:
        with pytest.raises(AuthenticationFailed) as info:
            await service.get_service_properties()
    assert info.value.error_code == "AuthorizationFailure"
