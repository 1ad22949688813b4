"""XML and dates on the wire: message bodies, message lists, queue lists, access policies, service
properties, error bodies, RFC 1123 dates; entities and bombs refused. Pure logic, no network."""

from datetime import datetime, timedelta, timezone

import pytest

from aioqueue import (
    AccessPolicy,
    CorsRule,
    MalformedResponse,
    Metrics,
    QueueAnalyticsLogging,
    RetentionPolicy,
    ServiceProperties,
)
from aioqueue._dates import format_rfc1123 as rfc1123
from aioqueue._dates import parse_rfc1123
from aioqueue._message_list import message_body, parse_messages
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
