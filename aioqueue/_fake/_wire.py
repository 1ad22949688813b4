"""The fake service's XML and dates: answers written as Azure writes them, request bodies read strictly.

Shapes follow the real answers in ``tests/data/azure-recordings`` (a UTF-8 byte-order mark and an XML
declaration before every document, ``<QueueMessagesList />`` when empty, ``<NextMarker />`` on the last
page, RFC 1123 dates in messages, seven-digit fractions in access policies). Request bodies are parsed
with defusedxml (no DTD, no entity); anything malformed is 400 InvalidXmlDocument.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from xml.etree.ElementTree import Element, ParseError, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ._errors import Refusal
from ._state import AccessPolicy, Message, Queue

__all__ = [
    "error_body",
    "iso7",
    "message_list",
    "parse_message_text",
    "parse_policies",
    "parse_properties",
    "properties_body",
    "put_answer",
    "queue_list",
    "rfc1123",
    "signed_identifiers",
    "stats_body",
]

UTC = timezone.utc
HEAD = "\ufeff" + '<?xml version="1.0" encoding="utf-8"?>'


def rfc1123(when: datetime) -> str:
    """``Thu, 06 Jun 2024 21:40:43 GMT`` (whole seconds), as in headers and message lists."""
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)


def iso7(when: datetime) -> str:
    """``2024-06-06T20:40:19.1856030Z``: ISO 8601 with seven fraction digits, as Azure writes times in
    access policies and error bodies (recording QueueClientTests.GetAccessPolicyAsync)."""
    when = when.astimezone(UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond:06d}0Z"


def escape(text: str) -> str:
    """Text as element content: ``& < >`` as entities, a carriage return as ``&#xD;`` (a parser would
    turn a raw one into a line feed)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "&#xD;")


def _element(tag: str, text: str | None) -> str:
    return f"<{tag} />" if not text else f"<{tag}>{escape(text)}</{tag}>"


def error_body(code: str, message: str, request_id: str, when: datetime, details: Mapping[str, str]) -> bytes:
    """``<Error><Code/><Message>text\\nRequestId:...\\nTime:...</Message>...details</Error>`` (recordings)."""
    extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in details.items())
    text = escape(f"{message}\nRequestId:{request_id}\nTime:{iso7(when)}")
    return f"{HEAD}<Error><Code>{code}</Code><Message>{text}</Message>{extra}</Error>".encode()


# ---- messages ------------------------------------------------------------------------------------


def put_answer(message: Message) -> bytes:
    """Put Message's answer: the message's id, times and pop receipt (recording ...SendMessageAsync)."""
    return (
        f"{HEAD}<QueueMessagesList><QueueMessage><MessageId>{message.id}</MessageId>"
        f"<InsertionTime>{rfc1123(message.inserted)}</InsertionTime>"
        f"<ExpirationTime>{rfc1123(message.expires)}</ExpirationTime>"
        f"<PopReceipt>{message.receipt}</PopReceipt>"
        f"<TimeNextVisible>{rfc1123(message.visible_at)}</TimeNextVisible>"
        "</QueueMessage></QueueMessagesList>"
    ).encode()


def message_list(messages: Iterable[Message], *, peeked: bool) -> bytes:
    """Get Messages' answer, or Peek Messages' (no PopReceipt, no TimeNextVisible)."""
    parts = []
    for m in messages:
        lease = "" if peeked else (
            f"<PopReceipt>{m.receipt}</PopReceipt><TimeNextVisible>{rfc1123(m.visible_at)}</TimeNextVisible>"
        )  # fmt: skip
        parts.append(
            f"<QueueMessage><MessageId>{m.id}</MessageId><InsertionTime>{rfc1123(m.inserted)}</InsertionTime>"
            f"<ExpirationTime>{rfc1123(m.expires)}</ExpirationTime>{lease}"
            f"<DequeueCount>{m.dequeue_count}</DequeueCount><MessageText>{escape(m.text)}</MessageText>"
            "</QueueMessage>"
        )
    if not parts:
        return f"{HEAD}<QueueMessagesList />".encode()
    return f"{HEAD}<QueueMessagesList>{''.join(parts)}</QueueMessagesList>".encode()


def _parse(body: bytes, root: str) -> Element:
    """The body's document element, which must be ``root``; else 400 InvalidXmlDocument."""
    try:
        element: Element = fromstring(body)
    except ParseError as exc:
        line, column = exc.position
        raise Refusal(
            "InvalidXmlDocument", details={"LineNumber": str(line), "LinePosition": str(column), "Reason": str(exc)}
        ) from None
    except (DefusedXmlException, ValueError) as exc:
        raise Refusal("InvalidXmlDocument", details={"Reason": type(exc).__name__}) from None
    if element.tag != root:
        raise Refusal("InvalidXmlDocument", details={"Reason": f"expected <{root}>, got <{element.tag}>"})
    return element


def parse_message_text(body: bytes) -> str:
    """The text of a Put or Update Message body ``<QueueMessage><MessageText>...``."""
    root = _parse(body, "QueueMessage")
    text = root.find("MessageText")
    if text is None:
        raise Refusal("InvalidXmlDocument", details={"Reason": "<QueueMessage> has no <MessageText>"})
    return text.text or ""


# ---- queues -------------------------------------------------------------------------------------


def _metadata(metadata: Mapping[str, str]) -> str:
    """Metadata elements, names in case-insensitive order (recording ServiceClientTests.GetQueuesAsync_Metadata)."""
    if not metadata:
        return "<Metadata />"
    items = sorted(metadata.items(), key=lambda kv: kv[0].lower())
    return "<Metadata>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in items) + "</Metadata>"


def queue_list(
    endpoint: str,
    queues: Iterable[Queue],
    *,
    prefix: str | None,
    marker: str | None,
    max_results: str | None,
    next_marker: str | None,
    metadata: bool,
) -> bytes:
    """List Queues' page (recordings ServiceClientTests.GetQueuesAsync*)."""
    parts = [f'{HEAD}<EnumerationResults ServiceEndpoint="{escape(endpoint)}">']
    if prefix is not None:
        parts.append(_element("Prefix", prefix))
    if marker is not None:
        parts.append(_element("Marker", marker))
    if max_results is not None:
        parts.append(f"<MaxResults>{max_results}</MaxResults>")
    entries = [f"<Queue><Name>{q.name}</Name>{_metadata(q.metadata) if metadata else ''}</Queue>" for q in queues]
    parts.append(f"<Queues>{''.join(entries)}</Queues>" if entries else "<Queues />")
    parts.append(_element("NextMarker", next_marker))
    parts.append("</EnumerationResults>")
    return "".join(parts).encode()


# ---- access policies ----------------------------------------------------------------------------

_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?(Z|[+-]\d{2}:\d{2})?")


def parse_iso(text: str) -> datetime:
    """An ISO 8601 time as the service accepts it (a date, or a date and time, UTC or with an offset);
    ValueError otherwise."""
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not an ISO 8601 time: {text[:40]!r}")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    when = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro, tzinfo=UTC)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        when -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return when


def policy_time(text: str) -> str:
    """An access policy's time as the service writes it back: UTC, with seven fraction digits, all the
    digits given kept (recording QueueClientTests.GetAccessPolicyAsync: ``.1856034Z`` comes back as
    sent); ValueError when it is not an ISO 8601 time."""
    when = parse_iso(text)
    m = _ISO.fullmatch(text.strip())
    assert m is not None  # parse_iso matched it
    return f"{when:%Y-%m-%dT%H:%M:%S}.{(m.group(7) or '').ljust(7, '0')}Z"


def parse_policies(body: bytes) -> list[AccessPolicy]:
    """Set Queue ACL's ``<SignedIdentifiers>`` (an empty body removes every policy)."""
    if not body.strip(b" \r\n\t\xef\xbb\xbf"):
        return []
    policies = []
    for si in _parse(body, "SignedIdentifiers").iter("SignedIdentifier"):
        ident = si.findtext("Id")
        if not ident or len(ident) > 64:
            raise Refusal("InvalidXmlNodeValue", details={"XmlNodeName": "Id", "XmlNodeValue": ident or ""})
        policy = si.find("AccessPolicy")
        times: dict[str, str | None] = {}
        for tag in ("Start", "Expiry"):
            text = policy.findtext(tag) if policy is not None else None
            try:
                times[tag] = policy_time(text) if text else None
            except ValueError:
                raise Refusal("InvalidXmlNodeValue", details={"XmlNodeName": tag, "XmlNodeValue": text or ""}) from None
        permission = policy.findtext("Permission") if policy is not None else None
        if permission and not set(permission) <= set("raup"):
            raise Refusal("InvalidXmlNodeValue", details={"XmlNodeName": "Permission", "XmlNodeValue": permission})
        policies.append(AccessPolicy(ident, times["Start"], times["Expiry"], permission or None))
    return policies


def signed_identifiers(policies: Iterable[AccessPolicy]) -> bytes:
    """Get Queue ACL's answer (recordings QueueClientTests.GetAccessPolicyAsync, ...test_set_queue_acl)."""
    parts = []
    for p in policies:
        fields = "".join(
            f"<{tag}>{escape(value)}</{tag}>"
            for tag, value in (("Start", p.start), ("Expiry", p.expiry), ("Permission", p.permission))
            if value
        )
        parts.append(
            f"<SignedIdentifier><Id>{escape(p.id)}</Id><AccessPolicy>{fields}</AccessPolicy></SignedIdentifier>"
        )
    if not parts:
        return f"{HEAD}<SignedIdentifiers />".encode()
    return f"{HEAD}<SignedIdentifiers>{''.join(parts)}</SignedIdentifiers>".encode()


# ---- service properties and stats ---------------------------------------------------------------

# The sections, and each one's children in the order Azure writes them (recording
# ServiceClientTests.GetPropertiesAsync): a section a Set leaves out keeps its value.
_SECTIONS = ("Logging", "HourMetrics", "MinuteMetrics", "Cors")
_ORDER = {
    "Logging": ("Version", "Read", "Write", "Delete", "RetentionPolicy"),
    "HourMetrics": ("Version", "Enabled", "IncludeAPIs", "RetentionPolicy"),
    "MinuteMetrics": ("Version", "Enabled", "IncludeAPIs", "RetentionPolicy"),
    "CorsRule": ("AllowedMethods", "AllowedOrigins", "AllowedHeaders", "ExposedHeaders", "MaxAgeInSeconds"),
}
_RETENTION_OFF = "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy>"
_METRICS_OFF = f"<Version>1.0</Version><Enabled>false</Enabled>{_RETENTION_OFF}"
DEFAULT_PROPERTIES = {
    "Logging": f"<Logging><Version>1.0</Version><Read>false</Read><Write>false</Write><Delete>false</Delete>"
    f"{_RETENTION_OFF}</Logging>",
    "HourMetrics": f"<HourMetrics>{_METRICS_OFF}</HourMetrics>",
    "MinuteMetrics": f"<MinuteMetrics>{_METRICS_OFF}</MinuteMetrics>",
    "Cors": "<Cors />",
}
MAX_CORS_RULES = 5


def _ordered(element: Element) -> Element:
    """The element with its children in Azure's order (unknown ones last), recursively for CORS rules."""
    order = _ORDER.get(element.tag)
    children = list(element)
    if order is not None:
        children.sort(key=lambda c: order.index(c.tag) if c.tag in order else len(order))
    out = Element(element.tag)
    out.text = element.text if not children else None
    out.extend(_ordered(c) for c in children)
    return out


def parse_properties(body: bytes) -> dict[str, str]:
    """Set Queue Service Properties' body: the sections it gives, each as XML in Azure's order."""
    root = _parse(body, "StorageServiceProperties")
    sections: dict[str, str] = {}
    for child in root:
        if child.tag not in _SECTIONS:
            continue
        if child.tag == "Cors" and len(child.findall("CorsRule")) > MAX_CORS_RULES:
            raise Refusal("InvalidXmlNodeValue", details={"XmlNodeName": "Cors", "XmlNodeValue": "more than 5 rules"})
        sections[child.tag] = tostring(_ordered(child), encoding="unicode")
    return sections


def properties_body(sections: Mapping[str, str]) -> bytes:
    body = "".join(sections.get(name, DEFAULT_PROPERTIES[name]) for name in _SECTIONS)
    return f"{HEAD}<StorageServiceProperties>{body}</StorageServiceProperties>".encode()


def stats_body(last_sync: datetime) -> bytes:
    """Get Queue Service Stats' answer: replication live, last synced at ``last_sync``."""
    return (
        f"{HEAD}<StorageServiceStats><GeoReplication><Status>live</Status>"
        f"<LastSyncTime>{rfc1123(last_sync)}</LastSyncTime></GeoReplication></StorageServiceStats>"
    ).encode()
