"""Property tests (hypothesis) of Shared Key canonicalisation: query and header order and header case do not
matter, any query value does."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from aioqueue import SharedKeyCredential
from aioqueue.testing import DEV_KEY

CRED = SharedKeyCredential("acct", DEV_KEY)


query_names = st.text(string.ascii_lowercase, min_size=1, max_size=8)


@settings(max_examples=50)
@given(st.dictionaries(query_names, st.text(string.printable, max_size=10), max_size=5), st.randoms())
def test_shared_key_ignores_query_and_header_order_and_header_case(query, rnd):
    headers = {"x-ms-date": "Fri, 27 Nov 2026 03:46:05 GMT", "x-ms-version": "2025-11-05", "x-ms-meta-a": "1"}
    base = CRED.authorization("GET", "/acct/q", query, headers, 0)
    items = list(query.items())
    rnd.shuffle(items)
    h_items = list(headers.items())
    rnd.shuffle(h_items)
    shuffled_headers = {(k.upper() if rnd.random() < 0.5 else k): v for k, v in h_items}
    assert CRED.authorization("GET", "/acct/q", dict(items), shuffled_headers, 0) == base


@settings(max_examples=50)
@given(st.text(string.ascii_lowercase, min_size=1, max_size=5), st.text(string.printable, max_size=10))
def test_shared_key_changes_with_any_query_value(name, value):
    headers = {"x-ms-date": "d", "x-ms-version": "v"}
    a = CRED.authorization("GET", "/acct/q", {name: value}, headers, 0)
    b = CRED.authorization("GET", "/acct/q", {name: value + "x"}, headers, 0)
    assert a != b
