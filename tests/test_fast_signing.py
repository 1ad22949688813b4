"""Shared Key signing's one-pass canonicalisation and precomputed HMAC, and the query values' escaping
(issue #16), against the straightforward versions they replaced: the same result for every input
hypothesis builds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
from collections.abc import Mapping
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioqueue import SharedKeyCredential
from aioqueue._auth import HmacKey
from aioqueue._transport import escape_query_value
from aioqueue.testing import DEV_KEY

KEY = base64.b64decode(DEV_KEY)


def reference_authorization(
    account: str, key: bytes, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], length: int
) -> str:
    """The Shared Key string to sign as the service documents it, signed with hmac.new."""
    get = headers.get
    x_ms = sorted((k.lower(), v.strip()) for k, v in headers.items() if k[:5].lower() == "x-ms-")
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in x_ms)
    resource = f"/{account}{path}"
    if query:
        resource += "".join(f"\n{k}:{v}" for k, v in sorted((k.lower(), v) for k, v in query.items()))
    string_to_sign = (
        f"{method}\n{get('Content-Encoding', '')}\n{get('Content-Language', '')}\n"
        f"{length or ''}\n{get('Content-MD5', '')}\n{get('Content-Type', '')}\n"
        f"{get('Date', '')}\n{get('If-Modified-Since', '')}\n{get('If-Match', '')}\n"
        f"{get('If-None-Match', '')}\n{get('If-Unmodified-Since', '')}\n{get('Range', '')}\n"
        f"{canonical_headers}{resource}"
    )
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode()}"


@given(st.binary(min_size=1, max_size=200), st.text(max_size=300))
def test_hmac_key_signs_as_hmac_new_does(key, text):
    """Keys shorter than, as long as and longer than SHA-256's 64-byte block."""
    expected = base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode()
    assert HmacKey(key).sign(text) == expected


header_names = st.sampled_from(
    [
        "x-ms-date",
        "x-ms-version",
        "X-MS-Meta-Color",
        "x-ms-meta-a",
        "x-ms-client-request-id",
        "X-Ms-Foo",
        "x-msnot",
        "User-Agent",
        "Content-Type",
        "Content-Encoding",
        "Content-Language",
        "Content-MD5",
        "Content-Length",
        "content-type",
        "Date",
        "If-Modified-Since",
        "If-Match",
        "If-None-Match",
        "If-Unmodified-Since",
        "Range",
        "Host",
    ]
)
values = st.text(string.printable.replace("\n", "").replace("\r", ""), max_size=20)
query_names = st.text(string.ascii_letters, min_size=1, max_size=8)


@settings(max_examples=400)
@given(
    st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]),
    st.sampled_from(["/devstoreaccount1/q/messages", "/q", "/q/messages/abc-1"]),
    st.dictionaries(query_names, values, max_size=4),
    st.dictionaries(header_names, values, max_size=8),
    st.integers(0, 70_000),
)
def test_authorization_signs_what_the_reference_signs(method, path, query, headers, length):
    credential = SharedKeyCredential("devstoreaccount1", DEV_KEY)
    got = credential.authorization(method, path, query, headers, length)
    assert got == reference_authorization("devstoreaccount1", KEY, method, path, query, headers, length)


@given(
    st.sampled_from(["GET", "PUT", "POST", "DELETE"]),
    st.sampled_from(["/devstoreaccount1/q/messages", "/q", "/q/messages/abc-1"]),
    st.dictionaries(query_names, values, max_size=4),
    st.sampled_from(["2025-11-05", " 2025-11-05 "]),
    st.text(string.ascii_letters + string.digits + " ,:", max_size=30),
    st.sampled_from(["", "application/xml; charset=utf-8"]),
    st.integers(0, 70_000),
)
def test_plain_authorization_signs_what_the_reference_signs(method, path, query, version, date, content_type, length):
    """The transport's own headers only: the same signature as the general pass over them, whether
    the credential has just signed that text (and kept its header) or not."""
    headers = {"x-ms-version": version, "User-Agent": "aioqueue/1", "Accept-Encoding": "identity", "x-ms-date": date}
    if content_type:
        headers["Content-Type"] = content_type
    cred = SharedKeyCredential("devstoreaccount1", DEV_KEY)
    plain = cred.plain_authorization(method, path, query, version, date, content_type, length)
    assert plain == cred.plain_authorization(method, path, query, version, date, content_type, length)  # kept
    assert plain == cred.authorization(method, path, query, headers, length)
    assert plain == reference_authorization("devstoreaccount1", KEY, method, path, query, headers, length)


# ---- query values: escaped as quote() escapes them, without its cost ------------------------------


@given(st.text())
def test_a_query_value_is_escaped_exactly_as_quote_escapes_it(value: str) -> None:
    assert escape_query_value(value) == quote(value, safe="")


@given(st.text(alphabet="ABCXYZabcxyz0123456789+/=_-", max_size=200))
def test_a_pop_receipt_like_value_is_escaped_exactly_as_quote_escapes_it(value: str) -> None:
    assert escape_query_value(value) == quote(value, safe="")


@pytest.mark.parametrize(
    "value", ["", "32", "true", "AgAAAAMAAAAAAAAAq4Dj0Gsy2wE=", "a+b/c=d", "a b", "x%2By", "é", "a&b=c", "\u00b2"]
)
def test_query_values_the_client_sends(value: str) -> None:
    assert escape_query_value(value) == quote(value, safe="")


def test_a_kept_authorization_is_for_that_text_and_that_second_only():
    cred = SharedKeyCredential("devstoreaccount1", DEV_KEY)

    def peek(peekonly: str, second: int) -> str:
        date = f"Fri, 27 Nov 2026 00:00:{second:02d} GMT"
        return cred.plain_authorization(
            "GET", "/devstoreaccount1/q/messages", {"peekonly": peekonly}, "2025-11-05", date, "", 0
        )

    first, again, later, other = peek("true", 0), peek("true", 0), peek("true", 1), peek("false", 1)
    assert first == again and len({first, later, other}) == 3
    for n in range(200):  # many texts in one second: the kept ones stay bounded
        cred.plain_authorization(
            "PUT", "/devstoreaccount1/q", {"n": str(n)}, "2025-11-05", "Fri, 27 Nov 2026 00:00:01 GMT", "", 0
        )
    assert len(cred._recent) <= 64
