"""The fake service's error answers, on the wire: status, ``x-ms-error-code``, and the ``<Error>`` body
with its Message lines and detail elements, as Azure writes them; and the headers every answer has."""

from __future__ import annotations

import re

import pytest

from aioqueue import AuthenticationFailed, QueueClient
from aioqueue.testing import FakeQueueService
from tests.fake.rawhttp import BOM, send

pytestmark = pytest.mark.usefixtures("fake_queue")


@pytest.fixture
def messages(fake_queue: QueueClient) -> str:
    return f"/{fake_queue.queue_name}/messages"


async def test_an_error_answer_is_shaped_as_azures(fake: FakeQueueService, messages: str):
    answer = await send(fake, "GET", messages, query={"numofmessages": "0"}, headers={"x-ms-client-request-id": "c-1"})
    assert answer.status == 400
    assert answer.headers["x-ms-error-code"] == "OutOfRangeQueryParameterValue"
    assert answer.headers["Content-Type"] == "application/xml"
    assert answer.headers["x-ms-version"] == "2025-11-05"
    assert answer.headers["x-ms-client-request-id"] == "c-1"
    assert answer.body.startswith(BOM + b'<?xml version="1.0" encoding="utf-8"?><Error><Code>')
    request_id = answer.headers["x-ms-request-id"]
    message = answer.error["Message"].split("\n")
    assert message[0] == "One of the query parameters specified in the request URI is outside the permissible range."
    assert message[1] == f"RequestId:{request_id}"
    assert re.fullmatch(r"Time:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", message[2])
    assert answer.error == {
        "Code": "OutOfRangeQueryParameterValue",
        "Message": answer.error["Message"],
        "QueryParameterName": "numofmessages",
        "QueryParameterValue": "0",
        "MinimumAllowed": "1",
        "MaximumAllowed": "32",
    }


@pytest.mark.parametrize(
    ("method", "query", "name", "low", "high"),
    [
        ("GET", {"numofmessages": "33"}, "numofmessages", "1", "32"),
        ("GET", {"visibilitytimeout": "0"}, "visibilitytimeout", "1", "604800"),
        ("GET", {"visibilitytimeout": "604801"}, "visibilitytimeout", "1", "604800"),
        ("GET", {"peekonly": "true", "numofmessages": "0"}, "numofmessages", "1", "32"),
        ("POST", {"visibilitytimeout": "604801"}, "visibilitytimeout", "0", "604800"),
        ("POST", {"visibilitytimeout": "-1"}, "visibilitytimeout", "0", "604800"),
    ],
)
async def test_out_of_range_values_name_the_range(fake, messages, method, query, name, low, high):
    body = b"<QueueMessage><MessageText>x</MessageText></QueueMessage>" if method == "POST" else None
    answer = await send(fake, method, messages, query=query, body=body)
    assert (answer.status, answer.code) == (400, "OutOfRangeQueryParameterValue")
    details = (answer.error["QueryParameterName"], answer.error["MinimumAllowed"], answer.error["MaximumAllowed"])
    assert details == (name, low, high)


TTL_REASON = "Value must be greater than or equal to 1, or -1 to indicate an infinite TTL."  # Azurite's words
VISIBILITY_REASON = "messagettl must be greater than visibilitytimeout."


@pytest.mark.parametrize(
    ("query", "name", "reason"),
    [
        ({"numofmessages": "many"}, "numofmessages", None),
        ({"messagettl": "0"}, "messagettl", TTL_REASON),
        ({"messagettl": "-2"}, "messagettl", TTL_REASON),
        ({"messagettl": "60", "visibilitytimeout": "60"}, "visibilitytimeout", VISIBILITY_REASON),
        ({"visibilitytimeout": "604800"}, "visibilitytimeout", VISIBILITY_REASON),  # the default TTL is 7 days
    ],
)
async def test_invalid_values_name_the_parameter_and_why(fake, messages, query, name, reason):
    method = "GET" if "numofmessages" in query else "POST"
    body = None if method == "GET" else b"<QueueMessage><MessageText>x</MessageText></QueueMessage>"
    answer = await send(fake, method, messages, query=query, body=body)
    assert (answer.status, answer.code) == (400, "InvalidQueryParameterValue")
    assert (answer.error["QueryParameterName"], answer.error.get("Reason")) == (name, reason)


async def test_ttl_minus_one_allows_the_longest_visibility(fake, messages):
    body = b"<QueueMessage><MessageText>x</MessageText></QueueMessage>"
    answer = await send(fake, "POST", messages, query={"messagettl": "-1", "visibilitytimeout": "604800"}, body=body)
    assert answer.status == 201


async def test_required_query_parameters(fake, fake_queue: QueueClient, messages):
    sent = await fake_queue.send_message("x")
    no_receipt = await send(fake, "DELETE", f"{messages}/{sent.id}")
    no_visibility = await send(fake, "PUT", f"{messages}/{sent.id}", query={"popreceipt": sent.pop_receipt})
    assert (no_receipt.status, no_receipt.code) == (400, "MissingRequiredQueryParameter")
    assert no_receipt.error["QueryParameterName"] == "popreceipt"
    assert (no_visibility.code, no_visibility.error["QueryParameterName"]) == (
        "MissingRequiredQueryParameter",
        "visibilitytimeout",
    )


async def test_an_unknown_id_or_receipt_is_404_message_not_found(fake, messages):
    """Azure answers a made-up id and receipt with 404 (recording QueueClientTests.DeleteMessagAsync_Error)."""
    answer = await send(
        fake, "DELETE", f"{messages}/test-message-9a9499fb", query={"popreceipt": "mwhojmtartdffgntginp"}
    )
    assert (answer.status, answer.code) == (404, "MessageNotFound")
    assert answer.error["Message"].startswith("The specified message does not exist.\nRequestId:")


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<QueueMessage><MessageText>x</MessageText>",
        b"<QueueMessage><Text>x</Text></QueueMessage>",
        b"<Message><MessageText>x</MessageText></Message>",
        b"<QueueMessage><MessageText>\x01</MessageText></QueueMessage>",  # not XML 1.0 character data
        b'<!DOCTYPE x [<!ENTITY e "e">]><QueueMessage><MessageText>&e;</MessageText></QueueMessage>',
    ],
)
async def test_a_malformed_message_body_is_invalid_xml_document(fake, messages, body):
    answer = await send(fake, "POST", messages, body=body)
    assert (answer.status, answer.code) == (400, "InvalidXmlDocument")


async def test_x_ms_version_is_required_with_an_authorization_and_checked(fake, messages):
    missing = await send(fake, "GET", messages, headers={"x-ms-version": ""})
    assert (missing.status, missing.code, missing.error["HeaderName"]) == (400, "MissingRequiredHeader", "x-ms-version")
    unknown = await send(fake, "GET", messages, headers={"x-ms-version": "2099-01-01"})
    assert (unknown.status, unknown.code) == (400, "InvalidHeaderValue")
    assert (unknown.error["HeaderName"], unknown.error["HeaderValue"]) == ("x-ms-version", "2099-01-01")
    older = await send(fake, "GET", messages, headers={"x-ms-version": "2019-02-02"})
    assert (older.status, older.headers["x-ms-version"]) == (200, "2019-02-02")


async def test_an_anonymous_request_is_401_with_a_bearer_challenge(fake, messages):
    """Azure's answer to a request without credentials (recording QueueClientTests.CreateIfNotExistsAsync_Error)."""
    answer = await send(fake, "GET", messages, key=None)
    assert (answer.status, answer.code) == (401, "NoAuthenticationInformation")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=https://login.microsoftonline.com/")
    assert "resource_id=https://storage.azure.com" in answer.headers["WWW-Authenticate"]
    async with QueueClient(fake.url, "anyqueue") as anonymous:
        with pytest.raises(AuthenticationFailed):
            await anonymous.peek_messages()


async def test_a_malformed_authorization_is_400_invalid_authentication_info(fake, messages):
    answer = await send(fake, "GET", messages, key=None, headers={"Authorization": "SharedKey nocolon"})
    assert (answer.status, answer.code) == (400, "InvalidAuthenticationInfo")
    other = await send(fake, "GET", messages, key=None, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert (other.status, other.code) == (400, "InvalidAuthenticationInfo")


async def test_what_names_no_operation(fake, fake_queue: QueueClient):
    name = fake_queue.queue_name
    verb = await send(fake, "POST", f"/{name}")
    assert (verb.status, verb.code) == (405, "UnsupportedHttpVerb")
    deep = await send(fake, "GET", f"/{name}/messages/a/b")
    assert (deep.status, deep.code) == (400, "InvalidUri")
    comp = await send(fake, "GET", f"/{name}", query={"comp": "nonsense"})
    assert (comp.status, comp.code, comp.error["QueryParameterName"]) == (400, "InvalidQueryParameterValue", "comp")
    preflight = await send(fake, "OPTIONS", f"/{name}", key=None)
    assert (preflight.status, preflight.code) == (501, "NotImplemented")
    account = await send(fake, "GET", "/", query={"comp": "list"}, account="otheraccount")
    assert (account.status, account.code) == (404, "ResourceNotFound")


async def test_every_answer_carries_the_services_headers(fake, messages):
    answer = await send(fake, "GET", messages, headers={"x-ms-client-request-id": "mine"})
    assert answer.status == 200
    assert re.fullmatch(r"[0-9a-f-]{36}", answer.headers["x-ms-request-id"])
    assert answer.headers["x-ms-client-request-id"] == "mine"
    assert answer.headers["x-ms-version"] == "2025-11-05"
    assert answer.headers["Server"] == "Windows-Azure-Queue/1.0 Microsoft-HTTPAPI/2.0"
    assert answer.headers["Cache-Control"] == "no-cache"
    assert answer.headers["Date"].endswith(" GMT")


@pytest.mark.parametrize(("timeout", "status"), [("30", 200), ("90", 200), ("0", 200), ("-1", 400), ("soon", 400)])
async def test_the_timeout_parameter_is_whole_seconds(fake, messages, timeout, status):
    answer = await send(fake, "GET", messages, query={"timeout": timeout})
    assert answer.status == status
    if status == 400:
        assert (answer.code, answer.error["QueryParameterName"]) == ("InvalidQueryParameterValue", "timeout")


async def test_a_body_over_what_the_service_reads_is_413(fake, messages):
    answer = await send(fake, "POST", messages, body=b"<QueueMessage><MessageText>" + b"x" * (9 << 20))
    assert (answer.status, answer.code, answer.error["MaxLimit"]) == (413, "RequestBodyTooLarge", str(8 << 20))


async def test_what_the_fake_leaves_out_or_refuses_by_name(fake, fake_queue: QueueClient, messages):
    delegation = await send(
        fake, "POST", "/", query={"restype": "service", "comp": "userdelegationkey"}, body=b"<KeyInfo/>"
    )
    assert (delegation.status, delegation.code) == (501, "NotImplemented")
    service = await send(fake, "GET", "/", query={"restype": "service", "comp": "nonsense"})
    assert (service.status, service.error["QueryParameterName"]) == (400, "comp")
    peek = await send(fake, "GET", messages, query={"peekonly": "maybe"})
    assert (peek.status, peek.error["QueryParameterName"]) == (400, "peekonly")
    include = await send(fake, "GET", "/", query={"comp": "list", "include": "everything"})
    assert (include.status, include.error["QueryParameterName"]) == (400, "include")
    body = b"<QueueMessage><MessageText>x</MessageText></QueueMessage>"
    ttl = await send(fake, "POST", messages, query={"messagettl": "forever"}, body=body)
    assert (ttl.status, ttl.code, ttl.error["QueryParameterName"]) == (400, "InvalidQueryParameterValue", "messagettl")
    huge = await send(fake, "POST", messages, query={"messagettl": str(2**31)}, body=body)
    assert huge.status == 400
    longest = await send(fake, "POST", messages, query={"messagettl": str(2**31 - 1)}, body=body)
    assert longest.status == 201  # about 68 years
