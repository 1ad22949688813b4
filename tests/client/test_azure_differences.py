"""What real Azure answers and Azurite does not (issue #24): the recorded answers in
tests/data/azure-recordings/ (their provenance: the README there), served byte-exact through the fault
proxy's "canned" fault, and what aioqueue makes of them.

- a 400 InvalidAuthenticationInfo is an AuthenticationFailed (the error code decides, not the status);
- Azure's <AuthenticationErrorDetail> is kept (``ServiceError.details``, and the error's text), redacted;
- access-policy times keep their fraction when written back (Azure stores 7 digits);
- Azure's empty messages list (``<QueueMessagesList />``, after a byte-order mark) takes the fast path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aioqueue import (
    AccessPolicy,
    AuthenticationFailed,
    QueueClient,
    QueueServiceClient,
    ServiceError,
    generate_queue_sas,
)
from aioqueue._dates import parse_iso8601
from aioqueue._errors import service_error
from aioqueue._message_list import checked_messages, fast_messages, parse_messages
from aioqueue._xml import signed_identifiers_body
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY
from tests.faults import Fault
from tests.helpers import FakeCredential

RECORDINGS = Path(__file__).parent.parent / "data" / "azure-recordings"
# what the client's own transport sets: the proxy's web.Response sets these for the canned body
_TRANSPORT_HEADERS = {"content-length", "transfer-encoding", "server", "date"}


def recorded(name: str, status: int, method: str = "GET") -> tuple[dict[str, str], bytes]:
    """The first answer with ``status`` to a ``method`` request in a recording: its headers (those a
    proxy can send as they are) and its body, byte-exact (UTF-8, Azure's byte-order mark included)."""
    entries: list[dict[str, Any]] = json.loads((RECORDINGS / name).read_text(encoding="utf-8"))["Entries"]
    for e in entries:
        if e["StatusCode"] == status and e["RequestMethod"] == method:
            body = e["ResponseBody"]
            text = "".join(body) if isinstance(body, list) else body or ""
            headers = {
                k: v
                for k, v in e["ResponseHeaders"].items()
                if isinstance(v, str) and k.lower() not in _TRANSPORT_HEADERS
            }
            raw = text.encode("utf-8")
            length = e["ResponseHeaders"].get("Content-Length")
            assert length is None or int(length) == len(raw)  # the recording is the exact answer
            return headers, raw
    raise LookupError(f"no {status} answer to {method} in {name}")


def canned(name: str, status: int, method: str = "GET") -> Fault:
    headers, body = recorded(name, status, method)
    return Fault("canned", status=status, headers=headers, body=body)


# ---- 1. the error code decides what is an authentication failure ---------------------------------


async def test_azure_s_400_invalid_authentication_info_is_an_authentication_failure(proxy, queue_name):
    """Azure answers a malformed Authorization header with 400 InvalidAuthenticationInfo (recorded);
    it was a plain ServiceError, since only 401 and 403 were mapped."""
    async with QueueClient(proxy.url(), queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script(canned("net/QueueClientTests.Ctor_AudienceError.json", 400))
        with pytest.raises(AuthenticationFailed) as caught:
            await q.get_queue_properties()
    error = caught.value
    assert (error.status, error.error_code) == (400, "InvalidAuthenticationInfo")
    assert error.request_id == "a66b41d2-a003-008e-0585-e64734000000"
    assert error.message.startswith("Authentication information is not given in the correct format")


# Azure Storage's authentication and authorization codes (the common REST API error codes and the SAS
# error codes), whatever the status they come with.
AUTH_CODES = [
    "NoAuthenticationInformation",
    "InvalidAuthenticationInfo",
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "AuthorizationProtocolMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch",
    "AuthorizationSourceIPMismatch",
    "InsufficientAccountPermissions",
    "KeyBasedAuthenticationNotPermitted",
]


@pytest.mark.parametrize("code", AUTH_CODES)
@pytest.mark.parametrize("status", [400, 401, 403])
def test_every_authentication_code_is_an_authentication_failure_whatever_the_status(code, status):
    error = service_error(status, code, "refused", "rid", {})
    assert type(error) is AuthenticationFailed and (error.status, error.error_code) == (status, code)


@pytest.mark.parametrize(
    ("status", "code"), [(400, "OutOfRangeInput"), (400, "InvalidQueryParameterValue"), (400, None), (409, None)]
)
def test_other_codes_stay_plain_service_errors(status, code):
    error = service_error(status, code, "no", "rid", {})
    assert type(error) is ServiceError


@pytest.mark.parametrize("status", [401, 403])
def test_a_401_or_403_without_a_known_code_is_still_an_authentication_failure(status):
    assert type(service_error(status, None, "", None, {})) is AuthenticationFailed
    assert type(service_error(status, "SomethingNew", "", None, {})) is AuthenticationFailed


# ---- 2. the reason Azure gives for an authentication failure is kept ------------------------------


async def test_the_audience_failure_s_detail_is_kept(proxy, queue_name):
    """Azure's 401 for a token of the wrong audience (recorded) says why in <AuthenticationErrorDetail>:
    that was in neither the error's text nor an attribute."""
    async with QueueClient(proxy.url(), queue_name, credential=FakeCredential(), retry=None) as q:
        recorded = canned("python/test_queue.pyTestStorageQueuetest_bad_audience_queue_client.json", 401)
        proxy.script(recorded, recorded)  # the 401 carries a Bearer challenge: its one resend is refused too
        with pytest.raises(AuthenticationFailed) as caught:
            await q.get_queue_properties()
    error = caught.value
    assert error.details == {"AuthenticationErrorDetail": "Audience validation failed. Audience did not match."}
    assert "Audience validation failed. Audience did not match." in str(error)
    assert error.error_code == "InvalidAuthenticationInfo" and error.status == 401


async def test_the_bearer_only_detail_of_get_user_delegation_key_is_kept(proxy):
    """Get User Delegation Key signed with a key: Azure's 403 (recorded) says only Bearer is supported."""
    async with QueueServiceClient(proxy.url(), credential=FakeCredential(), retry=None) as service:
        proxy.script(canned("net/ServiceClientTests.GetUserDelegationKey_Error.json", 403, "POST"))
        with pytest.raises(AuthenticationFailed) as caught:
            await service.get_user_delegation_key(expiry=timedelta(hours=1))
    assert caught.value.details == {"AuthenticationErrorDetail": "Only authentication scheme Bearer is supported"}
    assert "Only authentication scheme Bearer is supported" in str(caught.value)


async def test_an_error_without_extra_elements_has_no_details(proxy, queue_name):
    async with QueueClient(proxy.url(), queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script(canned("net/QueueClientTests.CreateAsync_WithQueueServiceSas.json", 403, "PUT"))
        with pytest.raises(AuthenticationFailed) as caught:
            await q.create_queue()
    assert caught.value.details == {} and caught.value.error_code == "AuthorizationFailure"


def _mac(string_to_sign: str) -> str:
    return base64.b64encode(
        hmac.new(base64.b64decode(DEV_KEY), string_to_sign.encode(), hashlib.sha256).digest()
    ).decode()


def _error_body(code: str, message: str, **details: str) -> bytes:
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in details.items())
    head = '\ufeff<?xml version="1.0" encoding="utf-8"?>'
    return f"{head}<Error><Code>{code}</Code><Message>{message}</Message>{extra}</Error>".encode()


STRING_TO_SIGN = (
    "GET\n\n\n\n\n\n\n\n\n\n\n\n"
    "x-ms-copy-source-authorization:Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\n"
    f"x-ms-date:Fri, 27 Nov 2026 03:46:05 GMT\nx-ms-version:2025-11-05\n/{DEV_ACCOUNT}/q\ncomp:metadata"
)
SIGNATURE = _mac(STRING_TO_SIGN)
SECRETS = [
    SIGNATURE,
    DEV_KEY,
    "eyJhbGciOiJIUzI1NiJ9",
    "c2lnbmF0dXJl",
    "SECRETSIG",
    "S3cr3tT0k3n",
]


async def test_a_403_s_detail_never_holds_the_signature_the_key_or_a_token(proxy, queue_name):
    """A Shared Key 403 echoes the request's MAC signature and the string to sign (its x-ms-* headers,
    which may hold a token) in <AuthenticationErrorDetail>: none of it reaches the error."""
    detail = (
        f"The MAC signature found in the HTTP request '{SIGNATURE}' is not the same as any computed signature. "
        f"Server used following string to sign: '{STRING_TO_SIGN}'. Key {DEV_KEY}; url /q?sv=1&amp;sig=SECRETSIG; "
        f"Authorization: Bearer S3cr3tT0k3n"
    )
    body = _error_body(
        "AuthenticationFailed", "Server failed to authenticate the request.", AuthenticationErrorDetail=detail
    )
    headers = {"Content-Type": "application/xml", "x-ms-error-code": "AuthenticationFailed"}
    async with QueueClient(proxy.url(), queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script(Fault("canned", status=403, headers=headers, body=body))
        with pytest.raises(AuthenticationFailed) as caught:
            await q.get_queue_properties()
    error = caught.value
    shown = [str(error), repr(error), error.message, json.dumps(error.details), json.dumps(error.headers)]
    for secret in SECRETS:
        assert not any(secret in text for text in shown), secret
    kept = error.details["AuthenticationErrorDetail"]  # what is not secret stays readable
    assert "is not the same as any computed signature" in kept and f"/{DEV_ACCOUNT}/q" in kept
    assert "x-ms-version:2025-11-05" in kept


def test_a_header_or_query_value_the_service_echoes_is_redacted_when_it_is_a_credential():
    """InvalidHeaderValue and InvalidQueryParameterValue name the header or parameter and echo its value."""
    header = service_error(
        400,
        "InvalidHeaderValue",
        "bad",
        None,
        {},
        details={"HeaderName": "Authorization", "HeaderValue": "SharedKey a:S3cr3tT0k3n"},
    )
    query = service_error(
        403,
        "AuthenticationFailed",
        "bad",
        None,
        {},
        details={"QueryParameterName": "sig", "QueryParameterValue": "SECRETSIG"},
    )
    assert isinstance(header, ServiceError) and isinstance(query, ServiceError)
    for error in (header, query):
        assert not any(s in json.dumps(error.details) + str(error) for s in SECRETS)
    assert header.details["HeaderName"] == "Authorization" and query.details["QueryParameterName"] == "sig"


# ---- 3. sub-second access-policy times are written as Azure stores them ----------------------------


AZURE_START = "2024-06-06T20:40:45.1173310Z"  # recorded: Azure stores and returns 7 fraction digits
AZURE_EXPIRY = "2024-06-06T22:40:45.1173310Z"


def test_access_policy_times_keep_their_fraction_when_written():
    """The .NET SDK's Set Queue ACL body (recorded) is what aioqueue writes for the same policy: it wrote
    '...:45Z', moving the policy by up to a second on every read-modify-write."""
    entries = json.loads((RECORDINGS / "net/QueueClientTests.SetAccessPolicyAsync.json").read_text(encoding="utf-8"))
    sent = next(e["RequestBody"] for e in entries["Entries"] if "comp=acl" in e["RequestUri"])
    policy = AccessPolicy("raup", parse_iso8601(AZURE_START), parse_iso8601(AZURE_EXPIRY))
    ours = signed_identifiers_body({"nagutcaahwimggxwoaiv": policy})
    assert ours.split(b"?>", 1)[1] == sent.lstrip("\ufeff").encode()


def test_whole_second_times_are_written_without_a_fraction():
    when = datetime(2026, 11, 27, 3, 46, 5, tzinfo=timezone.utc)
    body = signed_identifiers_body({"p": AccessPolicy("r", when, when + timedelta(microseconds=1))})
    assert b"<Start>2026-11-27T03:46:05Z</Start>" in body
    assert b"<Expiry>2026-11-27T03:46:05.0000010Z</Expiry>" in body


def test_sas_times_stay_whole_seconds():
    """A SAS's st and se are whole seconds by the SAS spec, whatever the datetime's fraction."""
    start = parse_iso8601(AZURE_START)
    sas = generate_queue_sas(
        DEV_ACCOUNT, "queue", DEV_KEY, permission="r", start=start, expiry=start + timedelta(hours=1)
    )
    assert "st=2024-06-06T20%3A40%3A45Z" in sas and "se=2024-06-06T21%3A40%3A45Z" in sas


async def test_a_read_modify_write_of_access_policies_moves_no_time(queue_client):
    start, expiry = parse_iso8601(AZURE_START), parse_iso8601(AZURE_EXPIRY)
    await queue_client.set_queue_access_policy({"p": AccessPolicy("raup", start, expiry)})
    policies = await queue_client.get_queue_access_policy()
    await queue_client.set_queue_access_policy(policies)  # read, modify nothing, write back
    assert await queue_client.get_queue_access_policy() == {"p": AccessPolicy("raup", start, expiry)}


# ---- 4. Azure's empty messages list takes the fast path ---------------------------------------------


def test_azure_s_empty_messages_list_takes_the_fast_path():
    """Azure's empty answer (recorded) is '<QueueMessagesList />' after a byte-order mark: the fast path
    knew only Azurite's '<QueueMessagesList/>', so every idle poll of real Azure took the checked parser."""
    _, body = recorded("net/QueueClientTests.DeleteMessageAsync_DeletePeek.json", 200)
    assert body == b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><QueueMessagesList />'
    assert fast_messages(body) == [] == checked_messages(body) == parse_messages(body)


async def test_azure_s_empty_answer_to_a_peek_is_no_messages(proxy, queue_name):
    async with QueueClient(proxy.url(), queue_name, credential=DEV_KEY, retry=None) as q:
        proxy.script(canned("net/QueueClientTests.DeleteMessageAsync_DeletePeek.json", 200))
        assert await q.peek_messages(max_messages=32) == []
