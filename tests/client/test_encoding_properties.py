"""Property tests (hypothesis) of the message encodings: round trips, lone surrogates refused with a typed
error, any text decoded or refused with a typed error."""

import contextlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioqueue import MessageEncodingError
from aioqueue._encoding import get_encoding

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


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


@pytest.mark.parametrize("encoding", ["text", "base64", "binary", "json", "base64-json"])
@given(st.text(max_size=200))
def test_decoding_any_text_returns_or_raises_a_typed_error(encoding, text):
    """Whatever a producer wrote, a decoder answers with content or MessageEncodingError, never another
    exception (non-ASCII text once leaked ValueError out of the base64 decoders)."""
    with contextlib.suppress(MessageEncodingError):
        get_encoding(encoding).decode(text)
