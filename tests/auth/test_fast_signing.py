"""Shared Key signing's kept headers and the query values' escaping (issue #16), by example. The property
tests of these fast paths against their twins (hmac.new, the documented string to sign, authorization,
quote()) are in tests/transport/test_fast_paths.py."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from aioqueue import SharedKeyCredential
from aioqueue._transport import escape_query_value
from aioqueue.testing import DEV_KEY


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
