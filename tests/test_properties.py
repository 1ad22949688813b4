"""Property tests (hypothesis): XML building and parsing, encodings, Shared Key canonicalisation."""

import contextlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioqueue import MessageEncodingError, SharedKeyCredential
from aioqueue._encoding import check_text, get_encoding
from aioqueue._message_list import message_body, parse_messages
from aioqueue._xml import parse
from aioqueue.testing import DEV_KEY

# characters XML 1.0 can carry
xml_chars = st.characters(
    codec="utf-8",  # no lone surrogates
    exclude_characters="".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32), 0xFFFE, 0xFFFF])),
)
xml_text = st.text(xml_chars, max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CRED = SharedKeyCredential("acct", DEV_KEY)


@given(xml_text)
def test_message_body_round_trips_any_xml_text(text):
    check_text(text)
    assert (parse(message_body(text)).findtext("MessageText") or "") == text


@given(xml_text)
def test_message_lists_round_trip(text):
    escaped = message_body(text).decode()[len("<QueueMessage><MessageText>") : -len("</MessageText></QueueMessage>")]
    entry = f"<QueueMessage><MessageId>id</MessageId><MessageText>{escaped}</MessageText></QueueMessage>"
    [parsed] = parse_messages(f"<QueueMessagesList>{entry}</QueueMessagesList>".encode())
    assert parsed.text == text


@given(st.text(max_size=200))  # any text but lone surrogates (hypothesis leaves those out of st.text)
def test_base64_text_round_trips(text):
    enc = get_encoding("base64")
    wire = enc.encode(text)
    assert set(wire) <= set(string.ascii_letters + string.digits + "+/=")
    assert enc.decode(wire) == text


@pytest.mark.parametrize("encoding", ["base64", "base64-json"])
@given(st.text(max_size=20), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), st.text(max_size=20))
def test_base64_refuses_lone_surrogates_with_a_typed_error(encoding, before, surrogate, after):
    with pytest.raises(MessageEncodingError, match="UTF-8"):
        get_encoding(encoding).encode(before + surrogate + after)


@given(st.binary(max_size=500))
def test_binary_round_trips(data):
    enc = get_encoding("binary")
    assert enc.decode(enc.encode(data)) == data


@given(json_values)
def test_json_round_trips(value):
    enc = get_encoding("json")
    assert enc.decode(enc.encode(value)) == value


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


@pytest.mark.parametrize("encoding", ["text", "base64", "binary", "json", "base64-json"])
@given(st.text(max_size=200))
def test_decoding_any_text_returns_or_raises_a_typed_error(encoding, text):
    """Whatever a producer wrote, a decoder answers with content or MessageEncodingError, never another
    exception (non-ASCII text once leaked ValueError out of the base64 decoders)."""
    with contextlib.suppress(MessageEncodingError):
        get_encoding(encoding).decode(text)
