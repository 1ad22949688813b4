"""XML, encodings, validation and retry arithmetic: pure logic, no network."""

import base64
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aioqueue import (
    AccessPolicy,
    AuthenticationFailed,
    ConfigurationError,
    CorsRule,
    MalformedResponse,
    MessageEncodingError,
    MessageTooLarge,
    Metrics,
    QueueAnalyticsLogging,
    RetentionPolicy,
    RetryPolicy,
    ServiceProperties,
)
from aioqueue._dates import format_rfc1123 as rfc1123
from aioqueue._dates import parse_rfc1123
from aioqueue._encoding import encode_message, get_encoding
from aioqueue._message_list import message_body, parse_messages
from aioqueue._retry import retry_after_seconds
from aioqueue._validation import message_count, metadata_headers, queue_name, seconds
from aioqueue._xml import (
    parse,
    parse_error,
    parse_queue_list,
    parse_service_properties,
    parse_signed_identifiers,
    service_properties_body,
    signed_identifiers_body,
)

UTC = timezone.utc


def test_rfc1123_round_trip():
    when = datetime(2009, 10, 9, 21, 4, 30, tzinfo=UTC)
    assert rfc1123(when) == "Fri, 09 Oct 2009 21:04:30 GMT"
    assert parse_rfc1123("Fri, 09 Oct 2009 21:04:30 GMT") == when
    with pytest.raises(MalformedResponse):
        parse_rfc1123("yesterday")


def test_message_body_escapes_markup_and_carriage_returns():
    body = message_body('a<b>&"c\r\n')
    assert body == b'<QueueMessage><MessageText>a&lt;b&gt;&amp;"c&#13;\n</MessageText></QueueMessage>'
    assert parse(body).findtext("MessageText") == 'a<b>&"c\r\n'


def test_parse_messages():
    body = (
        b"<?xml version='1.0' encoding='utf-8'?><QueueMessagesList><QueueMessage><MessageId>id1</MessageId>"
        b"<InsertionTime>Fri, 09 Oct 2009 21:04:30 GMT</InsertionTime><PopReceipt>r1</PopReceipt>"
        b"<MessageText>x &amp; y</MessageText><DequeueCount>2</DequeueCount></QueueMessage></QueueMessagesList>"
    )
    [m] = parse_messages(body)
    assert m.id == "id1" and m.text == "x & y" and m.dequeue_count == "2" and m.pop_receipt == "r1"
    assert m.next_visible_on is None  # a field the answer lacks is None, never a default


def test_xml_bombs_and_entities_are_refused():
    bomb = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>
    <QueueMessagesList><QueueMessage><MessageId>&lol2;</MessageId></QueueMessage></QueueMessagesList>"""
    with pytest.raises(MalformedResponse, match="unsafe"):
        parse_messages(bomb)
    external = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Error>&e;</Error>"""
    with pytest.raises(MalformedResponse):
        parse(external)
    with pytest.raises(MalformedResponse, match="malformed"):
        parse(b"<QueueMessagesList><QueueMessage>")


_DTD = b'<!DOCTYPE x [<!ENTITY e "expanded">]>'


@pytest.mark.parametrize(
    "body",
    [
        _DTD + b"<x>&e;</x>",
        b"<?xml version='1.0'?>" + _DTD + b"<x>&e;</x>",
        b"<?xml version='1.0'?><!-- a comment first -->" + _DTD + b"<x>&e;</x>",
        b"<?pi <y/> ?>" + _DTD + b"<x>&e;</x>",  # a '<' + name inside a processing instruction
        b"\xef\xbb\xbf" + _DTD + b"<x>&e;</x>",  # behind a byte-order mark
        b"<?xml version='1.0'?>\r\n\t " + _DTD + b"<x>&e;</x>",
        b"<x/>" + _DTD,  # after the root: not allowed by XML
        b"<x>" + _DTD + b"<y>&e;</y></x>",
        b"<x>&e;</x>",  # never declared
    ],
)
def test_an_entity_is_never_expanded_wherever_the_declaration_hides(body):
    """Only a body whose root element comes first reaches the C parser; a DTD can only stand before
    the root, so every way of placing one ends refused or malformed, never expanded."""
    with pytest.raises(MalformedResponse):
        parse(body)


def test_markup_after_the_root_still_parses():
    root = parse(b"<?xml version='1.0'?>\n<x><![CDATA[<!DOCTYPE is text here]]><!-- c --></x>")
    assert root.text == "<!DOCTYPE is text here"


def test_queue_list_and_marker():
    body = (
        b"<EnumerationResults><Queues><Queue><Name>a</Name><Metadata><k>v</k></Metadata></Queue>"
        b"<Queue><Name>b</Name></Queue></Queues><NextMarker>/acct/c</NextMarker></EnumerationResults>"
    )
    items, marker = parse_queue_list(body)
    assert [(i.name, i.metadata) for i in items] == [("a", {"k": "v"}), ("b", {})]
    assert marker == "/acct/c"
    assert parse_queue_list(b"<EnumerationResults><Queues/><NextMarker/></EnumerationResults>") == ([], None)


def test_signed_identifiers_round_trip():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    policies = {"p1": AccessPolicy("raup", start, start + timedelta(days=1)), "p2": None}
    parsed = parse_signed_identifiers(signed_identifiers_body(policies))
    assert parsed == {"p1": policies["p1"], "p2": AccessPolicy()}


def test_service_properties_round_trip():
    props = ServiceProperties(
        analytics_logging=QueueAnalyticsLogging(read=True, retention_policy=RetentionPolicy(True, 5)),
        hour_metrics=Metrics(enabled=True, include_apis=True, retention_policy=RetentionPolicy(True, 7)),
        minute_metrics=Metrics(enabled=False),
        cors=(CorsRule(("https://a.example", "https://b.example"), ("GET", "PUT"), ("x-ms-*",), (), 60),),
    )
    assert parse_service_properties(service_properties_body(props)) == props


def test_error_body_parsing_is_tolerant():
    assert parse_error(b"<Error><Code>QueueNotFound</Code><Message>gone\nRequestId:1</Message></Error>") == (
        "QueueNotFound",
        "gone",
    )
    assert parse_error(b"<html>oops") == (None, "")
    assert parse_error(b"") == (None, "")


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


@pytest.mark.parametrize("name", ["ab", "a" * 64, "Upper", "-abc", "abc-", "a--b", "a_b", "a.b", "", 123])
def test_bad_queue_names(name):
    with pytest.raises(ConfigurationError):
        queue_name(name)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "a-b-c", "0queue9"])
def test_good_queue_names(name):
    assert queue_name(name) == name


def test_durations():
    assert seconds(timedelta(minutes=5), "v", low=0) == 300
    assert seconds(0.2, "v", low=0) == 1
    assert seconds(-1, "ttl", low=1, high=None, allow_never=True) == -1
    for bad in (-1, 7 * 24 * 3600 + 1, "30", True, float("nan"), timedelta(days=8)):
        with pytest.raises(ConfigurationError):
            seconds(bad, "visibility_timeout", low=0)


def test_counts_and_metadata():
    assert message_count(32) == 32
    for bad in (0, 33, 1.5, True, "3"):
        with pytest.raises(ConfigurationError):
            message_count(bad)
    assert metadata_headers({"Color": "blue"}) == {"x-ms-meta-Color": "blue"}
    bad_metadata: list[dict[str, Any]] = [
        {"1abc": "x"},
        {"a-b": "x"},
        {"a": 1},
        {"a": "é"},
        {"a": "x\n"},
        {"A": "1", "a": "2"},
    ]
    for metadata in bad_metadata:
        with pytest.raises(ConfigurationError):
            metadata_headers(metadata)


def test_retry_policy_delays_grow_and_cap():
    policy = RetryPolicy(initial_delay=0.5, max_delay=2.0, jitter=None)
    gen = policy.delays()
    assert [next(gen) for _ in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    jittered = RetryPolicy(initial_delay=0.2).delays()
    first = [next(jittered) for _ in range(3)]
    assert all(0 <= d <= 0.2 * 2**i for i, d in enumerate(first))
    for bad in ({"max_attempts": 0}, {"initial_delay": -1}, {"retry_statuses": frozenset({404})}):
        with pytest.raises(ConfigurationError):
            RetryPolicy(**bad)


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = rfc1123(datetime.now(UTC) + timedelta(seconds=30))
    assert 25 < (retry_after_seconds(later) or 0) <= 30


def test_the_printable_shortcut_lets_no_unsendable_character_through():
    """check_text skips its regex for printable text: that is only sound if every character XML 1.0
    cannot carry is non-printable. Checked over all of Unicode."""
    import sys

    from aioqueue._encoding import _INVALID_XML

    leaks = [hex(c) for c in range(sys.maxunicode + 1) if chr(c).isprintable() and _INVALID_XML.match(chr(c))]
    assert leaks == []
    assert _INVALID_XML.match("\x01") and not "\x01".isprintable()  # the premise is not vacuous


@pytest.mark.parametrize("code", ["InvalidAuthenticationInfo", "NoAuthenticationInformation", None])
def test_a_401_is_an_authentication_failure(code):
    """Azure answers 401 to a missing or expired bearer token (the official SDK raises
    ClientAuthenticationError); it was a plain ServiceError."""
    from aioqueue._errors import service_error

    error = service_error(401, code, "Server failed to authenticate the request.", "rid", {})
    assert isinstance(error, AuthenticationFailed) and error.status == 401 and error.request_id == "rid"
