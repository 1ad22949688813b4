"""Answers that are incomplete, unexpected or partial: each is read as far as the service allows or
refused as a MalformedResponse, never a KeyError or a silently wrong value. Pure logic, no network."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioqueue import MalformedResponse, Metrics, RetentionPolicy, ServiceProperties
from aioqueue._message_list import parse_messages
from aioqueue._xml import (
    MAX_DEPTH,
    _too_deep,
    parse,
    parse_queue_list,
    parse_service_properties,
    parse_service_stats,
    parse_signed_identifiers,
    service_properties_body,
)


def test_an_unterminated_xml_declaration_is_malformed():
    with pytest.raises(MalformedResponse, match="malformed"):
        parse(b"<?xml version='1.0' <QueueMessagesList/>")


def test_elements_a_newer_service_adds_to_a_message_list_are_ignored():
    body = (
        b"<QueueMessagesList><Unknown>x</Unknown><QueueMessage><MessageId>id1</MessageId>"
        b"<MessageText>hi</MessageText><NewField>y</NewField></QueueMessage></QueueMessagesList>"
    )
    [m] = parse_messages(body)
    assert (m.id, m.text) == ("id1", "hi")


def test_a_message_without_an_id_is_malformed():
    with pytest.raises(MalformedResponse, match="MessageId"):
        parse_messages(
            b"<QueueMessagesList><QueueMessage><MessageText>hi</MessageText></QueueMessage></QueueMessagesList>"
        )


def test_a_queue_list_without_queues_is_an_empty_page_and_a_nameless_queue_is_malformed():
    assert parse_queue_list(b"<EnumerationResults><NextMarker>/a/q</NextMarker></EnumerationResults>") == ([], "/a/q")
    with pytest.raises(MalformedResponse, match="<Name>"):
        parse_queue_list(b"<EnumerationResults><Queues><Queue><Metadata/></Queue></Queues></EnumerationResults>")


@pytest.mark.parametrize("body", [b"", b" \r\n"])
def test_an_empty_access_policy_answer_means_no_policies(body):
    assert parse_signed_identifiers(body) == {}


def test_service_properties_leave_out_what_the_answer_leaves_out():
    assert parse_service_properties(b"<StorageServiceProperties/>") == ServiceProperties()
    props = parse_service_properties(
        b"<StorageServiceProperties><HourMetrics><Version>1.0</Version><Enabled>false</Enabled></HourMetrics>"
        b"</StorageServiceProperties>"
    )
    # a metrics element without a retention policy means retention off, not a missing field
    assert props == ServiceProperties(hour_metrics=Metrics(enabled=False, retention_policy=RetentionPolicy()))


@pytest.mark.parametrize(
    "inner",
    [
        b"<Cors><CorsRule><AllowedOrigins>*</AllowedOrigins><MaxAgeInSeconds>soon</MaxAgeInSeconds></CorsRule></Cors>",
        b"<HourMetrics><Enabled>true</Enabled><RetentionPolicy><Enabled>true</Enabled><Days>x</Days>"
        b"</RetentionPolicy></HourMetrics>",
    ],
)
def test_a_bad_number_in_the_service_properties_is_malformed(inner):
    with pytest.raises(MalformedResponse, match="bad number"):
        parse_service_properties(b"<StorageServiceProperties>" + inner + b"</StorageServiceProperties>")


def test_service_properties_body_holds_only_the_parts_given():
    body = service_properties_body(ServiceProperties(minute_metrics=Metrics(enabled=False)))
    root = parse(body)
    assert [child.tag for child in root] == ["MinuteMetrics"]  # the service leaves the rest as it is
    assert parse_service_properties(body) == ServiceProperties(minute_metrics=Metrics(enabled=False))


def test_service_stats_without_geo_replication_are_malformed():
    with pytest.raises(MalformedResponse, match="GeoReplication"):
        parse_service_stats(b"<StorageServiceStats/>")


# ---- issue 22: the depth scan in C, a slice at a time --------------------------------------------

_OLD_TAG = re.compile(rb"<(/?)[^<>]*?(/?)>")


def _too_deep_by_a_python_loop(body: bytes) -> bool:
    """The scan as it was (a Python step a tag: 1.5 s on the event loop for 12 MB of end tags)."""
    depth = 0
    for match in _OLD_TAG.finditer(body):
        closing, empty = match.groups()
        first = body[match.start() + 1 : match.start() + 2]
        if closing:
            depth -= 1
        elif not empty and first not in (b"?", b"!"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
    return False


TAG_PIECES = [b"<a>", b"</a>", b"<a/>", b"<a />", b"<a/b>", b"<a//>", b"</a/>", b"<>", b"</>", b"<?x?>", b"<?x/>"]
TAG_PIECES += [b"<!-- c -->", b"<!-- a > b -->", b"<![CDATA[<a>]]>", b"<", b">", b"/>", b"/", b"x", b"\n"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(TAG_PIECES), st.sampled_from([b"y" * 40_000, b"<a>" * 30])), max_size=60))
def test_the_depth_scan_finds_what_a_python_loop_over_the_tags_finds(pieces):
    body = b"".join(pieces)  # up to megabytes: the scan's 64 KiB slices end anywhere between tags
    assert _too_deep(body) == _too_deep_by_a_python_loop(body)


def test_a_flood_of_end_tags_is_refused_by_their_count():
    """Only start tags were counted: 12 MB of end tags went to the depth scan (1.5 s), then to expat."""
    with pytest.raises(MalformedResponse, match="more than the 296 elements"):
        parse(b"<QueueMessagesList>" + b"</a>" * 3_000_000, 296)
    assert parse(b"<QueueMessagesList>" + b"<a></a>" * 295 + b"</QueueMessagesList>", 296).tag == "QueueMessagesList"
