"""User delegation SAS: signatures equal to the official SDK's, the key's XML, and the key request.

The signature vectors are computed here, at test time, by azure-storage-queue 12.18.1 for the same
inputs. Azurite 3.35.0 does not serve Get User Delegation Key for the queue service (its queue
dispatcher has no such operation: it answers 400 with an empty body) and validates queue SAS
signatures with the account keys only, so the key request is checked against a local stub that
asserts what the REST reference specifies.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs
from xml.etree.ElementTree import ParseError, fromstring

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from azure.storage.queue import UserDelegationKey as OfficialKey
from azure.storage.queue import generate_queue_sas as official_generate_queue_sas
from azure.storage.queue._shared.constants import X_MS_VERSION as OFFICIAL_VERSION
from azure.storage.queue._shared_access_signature import QueueSharedAccessSignature

from aioqueue import (
    AuthenticationFailed,
    ConfigurationError,
    MalformedResponse,
    QueueServiceClient,
    SasCredential,
    SharedKeyCredential,
    generate_queue_sas,
)
from aioqueue._models import UserDelegationKey
from aioqueue._sas import USER_DELEGATION_VERSION, delegation_key_window
from aioqueue._xml import parse_user_delegation_key, user_delegation_key_body
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY
from tests.helpers import TENANT, FakeCredential

ACCOUNT = "myaccount"
EXPIRY = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
START = datetime(2029, 12, 31, 23, 0, tzinfo=timezone.utc)
KEY_VALUE = base64.b64encode(bytes(range(32))).decode()
OID = "6a1e7e52-9a5a-4bd4-9b0e-3b6f1c8f0a11"
DELEGATED_OID = "0b8f3c1e-2222-4f4f-8a8a-123456789abc"


def _key(**changes: Any) -> UserDelegationKey:
    fields: dict[str, Any] = {
        "signed_oid": OID,
        "signed_tid": TENANT,
        "signed_start": "2029-12-31T00:00:00Z",
        "signed_expiry": "2030-01-06T00:00:00Z",
        "signed_service": "q",
        "signed_version": "2026-02-06",
        "value": KEY_VALUE,
    }
    fields.update(changes)
    return UserDelegationKey(**fields)


def _official_key(key: UserDelegationKey) -> OfficialKey:
    theirs = OfficialKey()
    for name in (
        "signed_oid",
        "signed_tid",
        "signed_start",
        "signed_expiry",
        "signed_service",
        "signed_version",
        "signed_delegated_user_tid",
        "value",
    ):
        setattr(theirs, name, getattr(key, name))
    return theirs


def _fields(token: str) -> dict[str, list[str]]:
    """A token's parameters: equal dicts mean equal tokens up to parameter order (and '/' escaping)."""
    assert not token.startswith("?")
    return parse_qs(token, keep_blank_values=True, strict_parsing=True)


# ---- signatures equal to the official SDK's ----------------------------------------------------

# (our permission letters, the same letters in the service's order for the official SDK, options)
CASES = [
    pytest.param("raup", "raup", {"start": START}, _key(), id="all-permissions-with-start"),
    pytest.param("r", "r", {}, _key(), id="read-no-start"),
    pytest.param("pa", "ap", {"ip": "10.0.0.1", "protocol": "https"}, _key(), id="ip-and-https"),
    pytest.param(
        "u",
        "u",
        {"start": START, "ip": "10.0.0.1-10.0.0.9", "protocol": "https,http"},
        _key(signed_service="q", signed_version="2026-04-06"),
        id="ip-range-and-both-protocols",
    ),
    pytest.param(
        "rp",
        "rp",
        {"user_delegation_oid": DELEGATED_OID},
        _key(signed_delegated_user_tid=TENANT),
        id="bound-to-a-delegated-user",
    ),
    pytest.param("ap", "ap", {"start": START}, _key(value=base64.b64encode(b"k" * 64).decode()), id="other-key"),
]


@pytest.mark.parametrize(("ours", "theirs", "options", "key"), CASES)
def test_delegation_sas_equals_official_sdk(ours, theirs, options, key):
    token = generate_queue_sas(
        ACCOUNT,
        "myqueue",
        permission=ours,
        expiry=EXPIRY,
        user_delegation_key=key,
        version=OFFICIAL_VERSION,
        **options,
    )
    official = official_generate_queue_sas(
        ACCOUNT,
        "myqueue",
        permission=theirs,
        expiry=EXPIRY,
        user_delegation_key=_official_key(key),
        **options,
    )
    assert _fields(token) == _fields(official)
    assert "si" not in _fields(token) and _fields(token)["skoid"] == [key.signed_oid]


@pytest.mark.parametrize(("ours", "theirs", "options", "key"), CASES)
def test_delegation_sas_default_version_equals_official_sdk(ours, theirs, options, key):
    """Our default ``sv`` for a delegation SAS; the official SDK made to sign that version too."""
    token = generate_queue_sas(
        ACCOUNT, "myqueue", None, permission=ours, expiry=EXPIRY, user_delegation_key=key, **options
    )
    signer = QueueSharedAccessSignature(ACCOUNT, user_delegation_key=_official_key(key))
    signer.x_ms_version = USER_DELEGATION_VERSION
    official = signer.generate_queue(
        "myqueue",
        permission=theirs,
        expiry=EXPIRY,
        start=options.get("start"),
        ip=options.get("ip"),
        protocol=options.get("protocol"),
        user_delegation_oid=options.get("user_delegation_oid"),
    )
    assert _fields(token) == _fields(official)
    assert _fields(token)["sv"] == [USER_DELEGATION_VERSION]


def test_account_key_sas_is_unchanged_by_the_new_keywords():
    """The account-key path still signs as before (the vector in tests/auth/test_signing.py)."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    token = generate_queue_sas(DEV_ACCOUNT, "myqueue", DEV_KEY, permission="upar", expiry=EXPIRY, start=start)
    assert _fields(token)["sig"] == ["cX5hZSjiDPXfxNn/KNsofrEQ4vTqFuRZvmGKAlz4m28="]
    assert _fields(token)["sv"] == ["2025-11-05"] and "skoid" not in _fields(token)


def test_delegation_sas_changes_with_the_key_and_the_bound_user():
    base = generate_queue_sas(ACCOUNT, "q1x", permission="r", expiry=EXPIRY, user_delegation_key=_key())
    other_key = _key(value=base64.b64encode(b"x" * 32).decode())
    assert generate_queue_sas(ACCOUNT, "q1x", permission="r", expiry=EXPIRY, user_delegation_key=other_key) != base
    bound = generate_queue_sas(
        ACCOUNT, "q1x", permission="r", expiry=EXPIRY, user_delegation_key=_key(), user_delegation_oid=DELEGATED_OID
    )
    assert _fields(bound)["sig"] != _fields(base)["sig"] and _fields(bound)["sduoid"] == [DELEGATED_OID]


def test_delegation_key_repr_hides_the_secret():
    key = _key()
    assert KEY_VALUE not in repr(key) and KEY_VALUE not in str(key) and "<hidden>" in repr(key)
    assert OID in repr(key)
    with pytest.raises(AttributeError):
        key.value = "other"  # type: ignore[misc]


# ---- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        ((DEV_KEY,), {"user_delegation_key": _key()}, "not both"),
        ((), {}, "account_key or a user_delegation_key"),
        ((None,), {}, "account_key or a user_delegation_key"),
        ((), {"user_delegation_key": _key(), "policy_id": "pol1"}, "stored access policy"),
        ((DEV_KEY,), {"user_delegation_oid": DELEGATED_OID}, "user_delegation_key"),
        ((), {"user_delegation_key": _key(), "user_delegation_oid": ""}, "user_delegation_oid"),
        ((), {"user_delegation_key": _key(value="not base64!!")}, "base64"),
        ((), {"user_delegation_key": _key(value="")}, "base64"),
        ((), {"user_delegation_key": SimpleNamespace(value=KEY_VALUE)}, "UserDelegationKey"),
    ],
)
def test_delegation_sas_refuses_bad_combinations(args, kwargs, words):
    with pytest.raises(ConfigurationError, match=words) as info:
        generate_queue_sas(ACCOUNT, "myqueue", *args, permission="r", expiry=EXPIRY, **kwargs)
    assert "not base64!!" not in str(info.value) and KEY_VALUE not in str(info.value)


def test_policy_id_with_a_delegation_key_is_refused_even_without_permission():
    with pytest.raises(ConfigurationError, match="stored access policy"):
        generate_queue_sas(ACCOUNT, "myqueue", policy_id="pol1", user_delegation_key=_key())


@pytest.mark.parametrize("kwargs", [{"permission": "r"}, {"expiry": EXPIRY}, {"permission": "rx", "expiry": EXPIRY}])
def test_delegation_sas_still_needs_permission_and_expiry(kwargs):
    with pytest.raises(ConfigurationError):
        generate_queue_sas(ACCOUNT, "myqueue", user_delegation_key=_key(), **kwargs)


def test_delegation_key_window_accepts_datetimes_and_timedeltas():
    now = datetime.now(timezone.utc)
    st, se = delegation_key_window(timedelta(minutes=-15), timedelta(days=7))
    assert st.endswith("Z") and se.endswith("Z") and st < se
    start = now.replace(microsecond=0) + timedelta(hours=1)
    assert delegation_key_window(start, start + timedelta(hours=2))[0] == start.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("start", "expiry"),
    [
        (timedelta(hours=2), timedelta(hours=1)),  # expiry before start
        (timedelta(0), timedelta(days=7, minutes=5)),  # more than 7 days from now
        (datetime(2030, 1, 1), timedelta(hours=1)),  # naive datetime
        (timedelta(0), "2030-01-01T00:00:00Z"),  # a string is not a time here
    ],
)
def test_delegation_key_window_refuses_bad_times(start, expiry):
    with pytest.raises(ConfigurationError):
        delegation_key_window(start, expiry)


# ---- the XML --------------------------------------------------------------------------------------

RESPONSE = (
    '\ufeff<?xml version="1.0" encoding="utf-8"?><UserDelegationKey>'
    f"<SignedOid>{OID}</SignedOid><SignedTid>{TENANT}</SignedTid>"
    "<SignedStart>2029-12-31T00:00:00Z</SignedStart><SignedExpiry>2030-01-06T00:00:00Z</SignedExpiry>"
    "<SignedService>q</SignedService><SignedVersion>2026-02-06</SignedVersion>"
    f"<Value>{KEY_VALUE}</Value></UserDelegationKey>"
).encode()


def test_key_request_body_is_key_info():
    root = fromstring(user_delegation_key_body("2029-12-31T00:00:00Z", "2030-01-06T00:00:00Z"))
    assert root.tag == "KeyInfo" and [c.tag for c in root] == ["Start", "Expiry"]
    assert root.findtext("Start") == "2029-12-31T00:00:00Z" and root.findtext("Expiry") == "2030-01-06T00:00:00Z"
    with_tid = fromstring(user_delegation_key_body("a", "b", TENANT))
    assert [c.tag for c in with_tid] == ["Start", "Expiry", "DelegatedUserTid"]
    assert with_tid.findtext("DelegatedUserTid") == TENANT


def test_parse_user_delegation_key():
    assert parse_user_delegation_key(RESPONSE) == _key()
    with_tid = RESPONSE.replace(
        b"<Value>", f"<SignedDelegatedUserTid>{TENANT}</SignedDelegatedUserTid><Value>".encode()
    )
    assert parse_user_delegation_key(with_tid) == _key(signed_delegated_user_tid=TENANT)
    spaced = RESPONSE.replace(b"><", b">\n  <")  # pretty-printed: whitespace between elements only
    assert parse_user_delegation_key(spaced) == _key()


@pytest.mark.parametrize(
    "body",
    [
        RESPONSE.replace(f"<Value>{KEY_VALUE}</Value>".encode(), b""),  # no key
        RESPONSE.replace(KEY_VALUE.encode(), b""),  # empty key
        RESPONSE.replace(KEY_VALUE.encode(), b"not base64!!"),
        RESPONSE.replace(f"<SignedOid>{OID}</SignedOid>".encode(), b""),
        RESPONSE.replace(b"<SignedVersion>2026-02-06</SignedVersion>", b"<SignedVersion/>"),
        RESPONSE.replace(b"<SignedService>q</SignedService>", b""),
        RESPONSE.replace(b"UserDelegationKey>", b"Error>"),  # another document
        RESPONSE[: len(RESPONSE) // 2],  # cut off
        b"",
        b"<html><body>proxy error</body></html>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><UserDelegationKey>&a;</UserDelegationKey>',
    ],
)
def test_parse_user_delegation_key_refuses_malformed(body):
    with pytest.raises(MalformedResponse) as info:
        parse_user_delegation_key(body)
    assert KEY_VALUE not in str(info.value)


# ---- the key request, against a stub that checks what the REST reference specifies -------------


class KeyService:
    """Answers ``POST /<account>/?restype=service&comp=userdelegationkey`` like the service does,
    after asserting the request is shaped as the Get User Delegation Key reference says."""

    def __init__(self) -> None:
        self.requests: list[SimpleNamespace] = []
        self.problems: list[str] = []
        self.answer: tuple[int, dict[str, str], bytes] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            SimpleNamespace(method=request.method, path=request.path, headers=request.headers, body=body)
        )
        self._check(request, body)
        if self.answer is not None:
            status, headers, payload = self.answer
            return web.Response(status=status, headers=headers, body=payload)
        return web.Response(
            status=200,
            body=RESPONSE,
            headers={"Content-Type": "application/xml", "x-ms-request-id": "r-1", "x-ms-version": "2026-02-06"},
        )

    def _check(self, request: web.Request, body: bytes) -> None:
        def expect(ok: bool, what: str) -> None:
            if not ok:
                self.problems.append(what)

        headers = request.headers
        expect(request.method == "POST", f"method {request.method}")
        expect(request.path == f"/{DEV_ACCOUNT}/", f"path {request.path}")
        query = dict(request.query)
        query.pop("timeout", None)
        expect(query == {"restype": "service", "comp": "userdelegationkey"}, f"query {dict(request.query)}")
        expect(
            headers.get("x-ms-version", "") >= USER_DELEGATION_VERSION, f"x-ms-version {headers.get('x-ms-version')}"
        )
        expect("x-ms-date" in headers, "no x-ms-date")
        expect(headers.get("Authorization", "").startswith("Bearer ey"), "no bearer token")
        expect(
            headers.get("Content-Type", "").startswith("application/xml"), f"Content-Type {headers.get('Content-Type')}"
        )
        expect(headers.get("Content-Length") == str(len(body)), "Content-Length")
        try:
            root = fromstring(body)
        except ParseError as exc:
            self.problems.append(f"body is not XML: {exc}")
            return
        expect(root.tag == "KeyInfo", f"root <{root.tag}>")
        expect([c.tag for c in root][:2] == ["Start", "Expiry"], f"children {[c.tag for c in root]}")
        for tag in ("Start", "Expiry"):
            text = root.findtext(tag) or ""
            try:
                datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                self.problems.append(f"<{tag}> {text!r} is not ISO 8601 UTC")


@pytest_asyncio.fixture
async def key_service() -> AsyncIterator[SimpleNamespace]:
    service = KeyService()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", service.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield SimpleNamespace(
            state=service, url=f"http://127.0.0.1:{server.port}/{DEV_ACCOUNT}", requests=service.requests
        )


async def test_get_user_delegation_key_sends_the_documented_request(key_service):
    credential = FakeCredential()
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=15)
    expiry = start + timedelta(days=1)
    async with QueueServiceClient(key_service.url, credential=credential) as service:
        key = await service.get_user_delegation_key(start, expiry)
    assert key_service.state.problems == []
    assert len(key_service.requests) == 1 and credential.calls == 1
    sent = fromstring(key_service.requests[0].body)
    assert sent.findtext("Start") == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sent.findtext("Expiry") == expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert key == _key() and KEY_VALUE not in repr(key)
    # the key signs a SAS the official SDK agrees with
    token = generate_queue_sas(DEV_ACCOUNT, "jobs", permission="ap", expiry=EXPIRY, user_delegation_key=key)
    official = QueueSharedAccessSignature(DEV_ACCOUNT, user_delegation_key=_official_key(key))
    official.x_ms_version = USER_DELEGATION_VERSION
    assert _fields(token) == _fields(official.generate_queue("jobs", permission="ap", expiry=EXPIRY))


async def test_get_user_delegation_key_with_timedeltas(key_service):
    async with QueueServiceClient(key_service.url, credential=FakeCredential()) as service:
        await service.get_user_delegation_key(timedelta(minutes=-5), timedelta(hours=1))
    assert key_service.state.problems == []
    sent = fromstring(key_service.requests[0].body)
    expiry = datetime.strptime(sent.findtext("Expiry") or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(expiry - datetime.now(timezone.utc) - timedelta(hours=1)) < timedelta(seconds=10)


async def test_get_user_delegation_key_as_the_official_sdk_calls_it(key_service):
    """``get_user_delegation_key(expiry=...)``: start defaults to now; expiry is required."""
    async with QueueServiceClient(key_service.url, credential=FakeCredential()) as service:
        with pytest.raises(ConfigurationError, match="expiry"):
            await service.get_user_delegation_key()
        assert key_service.requests == []
        await service.get_user_delegation_key(expiry=timedelta(hours=1))
    sent = fromstring(key_service.requests[0].body)
    start = datetime.strptime(sent.findtext("Start") or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(start - datetime.now(timezone.utc)) < timedelta(seconds=10)


@pytest.mark.parametrize(
    "credential",
    [
        None,
        DEV_KEY,
        SharedKeyCredential(DEV_ACCOUNT, DEV_KEY),
        SasCredential("sv=2025-11-05&sp=r&sig=abc"),
    ],
    ids=["none", "key-str", "shared-key", "sas"],
)
async def test_get_user_delegation_key_needs_a_token_credential(key_service, credential):
    async with QueueServiceClient(key_service.url, credential=credential) as service:
        with pytest.raises(ConfigurationError, match="token credential"):
            await service.get_user_delegation_key(timedelta(0), timedelta(hours=1))
    assert key_service.requests == []


async def test_get_user_delegation_key_checks_times_before_any_request(key_service):
    credential = FakeCredential()
    async with QueueServiceClient(key_service.url, credential=credential) as service:
        with pytest.raises(ConfigurationError):
            await service.get_user_delegation_key(timedelta(0), timedelta(days=8))
        with pytest.raises(ConfigurationError):
            await service.get_user_delegation_key(timedelta(hours=2), timedelta(hours=1))
    assert key_service.requests == [] and credential.calls == 0


async def test_get_user_delegation_key_refusal_is_authentication_failed(key_service):
    key_service.state.answer = (
        403,
        {"x-ms-error-code": "AuthorizationPermissionMismatch", "Content-Type": "application/xml"},
        b"<?xml version='1.0' encoding='utf-8'?><Error><Code>AuthorizationPermissionMismatch</Code>"
        b"<Message>This request is not authorized to perform this operation using this permission.</Message></Error>",
    )
    async with QueueServiceClient(key_service.url, credential=FakeCredential(), retry=None) as service:
        with pytest.raises(AuthenticationFailed) as info:
            await service.get_user_delegation_key(timedelta(0), timedelta(hours=1))
    assert info.value.status == 403 and "Bearer" not in str(info.value)


async def test_get_user_delegation_key_malformed_answer(key_service):
    key_service.state.answer = (
        200,
        {"Content-Type": "application/xml"},
        RESPONSE.replace(f"<SignedTid>{TENANT}</SignedTid>".encode(), b""),
    )
    async with QueueServiceClient(key_service.url, credential=FakeCredential()) as service:
        with pytest.raises(MalformedResponse):
            await service.get_user_delegation_key(timedelta(0), timedelta(hours=1))


async def test_get_user_delegation_key_for_a_delegated_tenant(key_service):
    async with QueueServiceClient(key_service.url, credential=FakeCredential()) as service:
        await service.get_user_delegation_key(timedelta(0), timedelta(hours=1), delegated_user_tid=TENANT)
    assert key_service.state.problems == []
    assert fromstring(key_service.requests[0].body).findtext("DelegatedUserTid") == TENANT
