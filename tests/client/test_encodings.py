"""Message encodings (text, base64, binary, json, base64-json, custom): round trips, what each refuses, the
size limit after encoding. Pure logic, no network."""

import base64

import pytest

from aioqueue import (
    ConfigurationError,
    MessageEncodingError,
    MessageTooLarge,
)
from aioqueue._encoding import encode_message, get_encoding


@pytest.mark.parametrize(
    ("name", "content", "wire"),
    [
        ("text", "héllo <x>", "héllo <x>"),
        ("base64", "héllo", base64.b64encode("héllo".encode()).decode()),
        ("binary", b"\x00\xff", "AP8="),
        ("json", {"a": [1, "é"]}, '{"a":[1,"é"]}'),
    ],
)
def test_encodings_round_trip(name, content, wire):
    enc = get_encoding(name)
    assert encode_message(enc, content) == wire
    assert enc.decode(wire) == content


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("text", b"bytes"),
        ("text", "bad \x01 char"),
        ("text", "\ud800"),
        ("base64", b"x"),
        ("binary", "str"),
        ("json", {1, 2}),
        ("json", float("nan")),
    ],
)
def test_encodings_refuse_what_they_cannot_carry(name, content):
    with pytest.raises(MessageEncodingError):
        encode_message(get_encoding(name), content)


def test_size_limit_is_checked_after_encoding():
    assert len(encode_message(get_encoding("text"), "x" * 65536)) == 65536
    with pytest.raises(MessageTooLarge):
        encode_message(get_encoding("text"), "x" * 65537)
    with pytest.raises(MessageTooLarge):
        encode_message(get_encoding("text"), "é" * 32769)  # 65538 bytes of UTF-8
    with pytest.raises(MessageTooLarge):
        encode_message(get_encoding("binary"), b"x" * 49153)  # base64 grows it past 64 KiB
    encode_message(get_encoding("binary"), b"x" * 49152)


def test_custom_encoding_and_bad_choice():
    class Upper:
        def encode(self, content):
            return content.upper()

        def decode(self, text):
            return text.lower()

    assert encode_message(get_encoding(Upper()), "abc") == "ABC"
    with pytest.raises(ConfigurationError):
        get_encoding("rot13")
    with pytest.raises(ConfigurationError):
        get_encoding(42)  # type: ignore[arg-type]
    with pytest.raises(MessageEncodingError):
        get_encoding("base64").decode("***")


def test_the_printable_shortcut_lets_no_unsendable_character_through():
    """check_text skips its regex for printable text: that is only sound if every character XML 1.0
    cannot carry is non-printable. Checked over all of Unicode."""
    import sys

    from aioqueue._encoding import _INVALID_XML

    leaks = [hex(c) for c in range(sys.maxunicode + 1) if chr(c).isprintable() and _INVALID_XML.match(chr(c))]
    assert leaks == []
    assert _INVALID_XML.match("\x01") and not "\x01".isprintable()  # the premise is not vacuous
