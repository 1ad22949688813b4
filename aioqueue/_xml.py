"""XML in and out of the Queue service: defusedxml parsing and body building. No I/O here.

Every response body goes through :func:`parse`, which refuses DTDs, entities and external
references, so an XML bomb or an external-entity trick is a typed error, not a hang or a leak.
The messages list (Get, Peek, Put Messages) and the message body have their own home,
:mod:`._message_list`, which reads an answer the checked way through :func:`parse`; the other
documents (queue lists, access policies, service properties and stats, the user delegation key,
an error body) are read and written here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Callable, Mapping
from itertools import accumulate, repeat
from typing import ParamSpec, TypeVar
from weakref import WeakKeyDictionary
from xml.etree.ElementTree import Element, ParseError, XMLParser
from xml.etree.ElementTree import fromstring as _fast_fromstring
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ._dates import format_iso8601_fraction, parse_iso8601, parse_rfc1123
from ._errors import MalformedResponse
from ._models import (
    AccessPolicy,
    CorsRule,
    GeoReplication,
    Metrics,
    QueueAnalyticsLogging,
    QueueItem,
    RetentionPolicy,
    ServiceProperties,
    ServiceStats,
    UserDelegationKey,
)

P = ParamSpec("P")
T = TypeVar("T")
_BOM = b"\xef\xbb\xbf"  # UTF-8's byte-order mark
# What may start an element name (ASCII letters, '_', ':', and any non-ASCII UTF-8 byte).
_NAME_START = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_:") | frozenset(range(0x80, 0x100))


def _root_comes_first(body: bytes) -> bool:
    """True when the root element follows at once (after an optional UTF-8 byte-order mark, an
    optional XML declaration and spaces).

    XML declares entities (the root of billion-laughs and external-entity attacks) only in a
    document type declaration, and that may only stand before the root element. When nothing stands
    there, the document cannot declare any: expat rejects a declaration after the root as malformed,
    and an undeclared entity reference is a plain parse error. Azure puts a byte-order mark before
    every answer; it declares nothing.
    """
    start = 3 if body.startswith(_BOM) else 0
    if body.startswith(b"<?xml", start):
        start = body.find(b"?>", start) + 2
        if start == 1:
            return False
    while body[start : start + 1] in (b" ", b"\n", b"\r", b"\t"):
        start += 1
    head = body[start : start + 2]
    return len(head) == 2 and head[0] == 0x3C and head[1] in _NAME_START  # '<' and a name's first byte


# What an answer may cost to parse: the service's documents are at most 4 levels deep and their
# element counts follow from its limits (32 messages, 5 policies, a page of queues...), so each
# parse is given the most its document can legally hold. Counting '<' and '</' bounds the start and
# end tags at no Python cost per tag; depth is checked by a scan only for bodies over DEPTH_SCAN_BYTES
# (a smaller one cannot be deep enough to cost anything to parse).
MAX_DEPTH = 32
DEPTH_SCAN_BYTES = 64 * 1024
DEFAULT_MAX_ELEMENTS = 4096
# A tag, and what it does to the depth by what it captures (one group, so findall makes no tuples): a
# start tag nothing (+1), an end tag '/' (-1), a declaration, comment or empty-element tag a character (0).
_TAG = re.compile(rb"<(/|[?!]|(?=[^<>]*/>)[^<>])?[^<>]*>")
_DEPTH_STEP = {b"": 1, b"/": -1}
# The scan runs in C a slice at a time (each ends before a '<': no tag spans two), and expat is fed a
# big body in slices: off_loop's thread then gives the event loop the GIL back between slices.
_SCAN_SLICE, _FEED_SLICE = 64 * 1024, 128 * 1024


def _too_deep(body: bytes) -> bool:
    depth, start, size = 0, 0, len(body)
    while start < size:
        end = body.find(b"<", start + _SCAN_SLICE)
        end = size if end == -1 else end
        steps = map(_DEPTH_STEP.get, _TAG.findall(body, start, end), repeat(0))
        depths = list(accumulate(steps, initial=depth))
        if max(depths) > MAX_DEPTH:
            return True
        depth, start = depths[-1], end
    return False


def _fast_parse(body: bytes) -> Element:
    """The C-accelerated parser's tree of ``body``, fed to it in slices when it is big."""
    if len(body) <= _FEED_SLICE:
        return _fast_fromstring(body)
    parser = XMLParser()
    view = memoryview(body)
    for start in range(0, len(body), _FEED_SLICE):
        parser.feed(view[start : start + _FEED_SLICE])
    root: Element = parser.close()
    return root


def parse(body: bytes, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Element:
    """Parse a response body safely; every failure is a :class:`MalformedResponse`.

    At most ``max_elements`` elements (start tags: '<' not followed by '/'; as many end tags) and, for a
    large body, ``MAX_DEPTH`` levels; an XML declaration naming an unknown or non-text codec is refused too.

    A body whose root element comes first (what Azure and Azurite always send; Azure after a
    byte-order mark) cannot declare entities, so the C-accelerated parser builds it (defusedxml's
    pure-Python parser costs about 2.5x more per response). Anything else (a DTD, a comment or
    processing instruction before the root) is parsed by defusedxml, which refuses DTDs, entities and
    external references.
    """
    ends = body.count(b"</")
    if body.count(b"<") - ends > max_elements + 2 or ends > max_elements:  # start tags (and a declaration)
        raise MalformedResponse(f"the response holds more than the {max_elements} elements its answer can have")
    if len(body) > DEPTH_SCAN_BYTES and _too_deep(body):
        raise MalformedResponse(f"the response nests elements deeper than {MAX_DEPTH} levels")
    try:
        if not _root_comes_first(body):
            return fromstring(body, forbid_dtd=True)
        return _fast_parse(body)
    except DefusedXmlException as exc:
        raise MalformedResponse(f"refused unsafe XML in the response: {type(exc).__name__}") from None
    except (ParseError, ValueError, LookupError) as exc:  # LookupError: encoding="x-nope", "rot13", "zlib"
        raise MalformedResponse(f"malformed XML in the response: {str(exc)[:200]}") from None


def _root(body: bytes, tag: str, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Element:
    """Parse and check the document element, so an HTML error page or another document is refused."""
    root = parse(body, max_elements)
    if root.tag != tag:
        raise MalformedResponse(f"expected <{tag}> in the response, got <{str(root.tag)[:40]}>")
    return root


def _text(el: Element, tag: str) -> str:
    child = el.find(tag)
    if child is None:
        raise MalformedResponse(f"the response lacks <{tag}> in <{el.tag}>")
    return child.text or ""


def _opt(el: Element | None, tag: str) -> str | None:
    if el is None:
        return None
    child = el.find(tag)
    return None if child is None else (child.text or "")


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() == "true"


# ---- parsing off the loop ----------------------------------------------------------------------


OFF_LOOP_BYTES = 256 * 1024  # parsed on the loop up to this size (a few ms at most), by off_loop over it
_PARSING: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()


async def off_loop(parse: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``parse(*args)`` in a worker thread (the loop's default executor), one at a time per loop: the
    parsers cut their C work on a big answer into slices, and between slices the loop gets the GIL
    back from the one parsing thread (sixteen at once held it from the loop for half a second)."""
    async with _PARSING.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
        return await asyncio.to_thread(parse, *args, **kwargs)


# ---- queues -----------------------------------------------------------------------------------


def parse_queue_list(body: bytes, max_elements: int = DEFAULT_MAX_ELEMENTS) -> tuple[list[QueueItem], str | None]:
    """One List Queues page and its continuation marker (None at the end)."""
    root = _root(body, "EnumerationResults", max_elements)
    items: list[QueueItem] = []
    queues = root.find("Queues")
    if queues is not None:
        for q in queues.iter("Queue"):
            meta_el = q.find("Metadata")
            meta = {c.tag: c.text or "" for c in meta_el} if meta_el is not None else {}
            items.append(QueueItem(name=_text(q, "Name"), metadata=meta))
    marker = _opt(root, "NextMarker")
    return items, (marker or None)


# ---- access policies --------------------------------------------------------------------------


def parse_signed_identifiers(body: bytes) -> dict[str, AccessPolicy]:
    if not body.strip():
        return {}
    root = _root(body, "SignedIdentifiers", 5 * 8 + 8)
    out: dict[str, AccessPolicy] = {}
    for si in root.iter("SignedIdentifier"):
        ap = si.find("AccessPolicy")
        start, expiry = _opt(ap, "Start"), _opt(ap, "Expiry")
        out[_text(si, "Id")] = AccessPolicy(
            permission=_opt(ap, "Permission") or None,
            start=parse_iso8601(start) if start else None,
            expiry=parse_iso8601(expiry) if expiry else None,
        )
    return out


def signed_identifiers_body(policies: Mapping[str, AccessPolicy | None]) -> bytes:
    parts = ["<?xml version='1.0' encoding='utf-8'?><SignedIdentifiers>"]
    for ident, policy in policies.items():
        parts.append(f"<SignedIdentifier><Id>{escape(ident)}</Id>")
        if policy is not None:
            parts.append("<AccessPolicy>")
            if policy.start is not None:
                parts.append(f"<Start>{format_iso8601_fraction(policy.start)}</Start>")
            if policy.expiry is not None:
                parts.append(f"<Expiry>{format_iso8601_fraction(policy.expiry)}</Expiry>")
            if policy.permission is not None:
                parts.append(f"<Permission>{escape(policy.permission)}</Permission>")
            parts.append("</AccessPolicy>")
        parts.append("</SignedIdentifier>")
    parts.append("</SignedIdentifiers>")
    return "".join(parts).encode("utf-8")


# ---- service properties and stats -------------------------------------------------------------


def _retention(el: Element | None) -> RetentionPolicy:
    if el is None:
        return RetentionPolicy()
    days = _opt(el, "Days")
    return RetentionPolicy(enabled=_bool(_opt(el, "Enabled")), days=int(days) if days else None)


def _metrics(el: Element | None) -> Metrics | None:
    if el is None:
        return None
    apis = _opt(el, "IncludeAPIs")
    return Metrics(
        version=_opt(el, "Version") or "1.0",
        enabled=_bool(_opt(el, "Enabled")),
        include_apis=_bool(apis) if apis is not None else None,
        retention_policy=_retention(el.find("RetentionPolicy")),
    )


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def parse_service_properties(body: bytes) -> ServiceProperties:
    try:
        return _service_properties(_root(body, "StorageServiceProperties"))
    except ValueError as exc:
        raise MalformedResponse(f"bad number in the service properties: {exc}") from None


def _service_properties(root: Element) -> ServiceProperties:
    log = root.find("Logging")
    logging = None
    if log is not None:
        logging = QueueAnalyticsLogging(
            version=_opt(log, "Version") or "1.0",
            delete=_bool(_opt(log, "Delete")),
            read=_bool(_opt(log, "Read")),
            write=_bool(_opt(log, "Write")),
            retention_policy=_retention(log.find("RetentionPolicy")),
        )
    cors_el = root.find("Cors")
    cors = None
    if cors_el is not None:
        cors = tuple(
            CorsRule(
                allowed_origins=_split(_opt(r, "AllowedOrigins")),
                allowed_methods=_split(_opt(r, "AllowedMethods")),
                allowed_headers=_split(_opt(r, "AllowedHeaders")),
                exposed_headers=_split(_opt(r, "ExposedHeaders")),
                max_age_in_seconds=int(_opt(r, "MaxAgeInSeconds") or 0),
            )
            for r in cors_el.iter("CorsRule")
        )
    return ServiceProperties(
        analytics_logging=logging,
        hour_metrics=_metrics(root.find("HourMetrics")),
        minute_metrics=_metrics(root.find("MinuteMetrics")),
        cors=cors,
    )


def _b(value: bool) -> str:
    return "true" if value else "false"


def _retention_xml(r: RetentionPolicy) -> str:
    days = f"<Days>{r.days}</Days>" if r.enabled and r.days is not None else ""
    return f"<RetentionPolicy><Enabled>{_b(r.enabled)}</Enabled>{days}</RetentionPolicy>"


def _metrics_xml(tag: str, m: Metrics) -> str:
    apis = f"<IncludeAPIs>{_b(bool(m.include_apis))}</IncludeAPIs>" if m.enabled else ""
    return (
        f"<{tag}><Version>{escape(m.version)}</Version><Enabled>{_b(m.enabled)}</Enabled>{apis}"
        f"{_retention_xml(m.retention_policy)}</{tag}>"
    )


def service_properties_body(props: ServiceProperties) -> bytes:
    parts = ["<?xml version='1.0' encoding='utf-8'?><StorageServiceProperties>"]
    if props.analytics_logging is not None:
        lg = props.analytics_logging
        parts.append(
            f"<Logging><Version>{escape(lg.version)}</Version><Delete>{_b(lg.delete)}</Delete>"
            f"<Read>{_b(lg.read)}</Read><Write>{_b(lg.write)}</Write>"
            f"{_retention_xml(lg.retention_policy)}</Logging>"
        )
    if props.hour_metrics is not None:
        parts.append(_metrics_xml("HourMetrics", props.hour_metrics))
    if props.minute_metrics is not None:
        parts.append(_metrics_xml("MinuteMetrics", props.minute_metrics))
    if props.cors is not None:
        parts.append("<Cors>")
        for rule in props.cors:
            parts.append(
                "<CorsRule>"
                f"<AllowedOrigins>{escape(','.join(rule.allowed_origins))}</AllowedOrigins>"
                f"<AllowedMethods>{escape(','.join(rule.allowed_methods))}</AllowedMethods>"
                f"<MaxAgeInSeconds>{int(rule.max_age_in_seconds)}</MaxAgeInSeconds>"
                f"<ExposedHeaders>{escape(','.join(rule.exposed_headers))}</ExposedHeaders>"
                f"<AllowedHeaders>{escape(','.join(rule.allowed_headers))}</AllowedHeaders>"
                "</CorsRule>"
            )
        parts.append("</Cors>")
    parts.append("</StorageServiceProperties>")
    return "".join(parts).encode("utf-8")


def parse_service_stats(body: bytes) -> ServiceStats:
    root = _root(body, "StorageServiceStats", 16)
    geo = root.find("GeoReplication")
    if geo is None:
        raise MalformedResponse("the response lacks <GeoReplication>")
    last = _opt(geo, "LastSyncTime")
    return ServiceStats(
        GeoReplication(status=_text(geo, "Status"), last_sync_time=parse_rfc1123(last) if last else None)
    )


# ---- user delegation key ----------------------------------------------------------------------


def user_delegation_key_body(start: str, expiry: str, delegated_user_tid: str | None = None) -> bytes:
    """The Get User Delegation Key request body (``<KeyInfo>``); times are ISO 8601 UTC strings.

    ``delegated_user_tid`` is the Entra ID tenant of the user a SAS signed with the key will be
    restricted to (optional).
    """
    tid = f"<DelegatedUserTid>{escape(delegated_user_tid)}</DelegatedUserTid>" if delegated_user_tid else ""
    return (
        "<?xml version='1.0' encoding='utf-8'?>"
        f"<KeyInfo><Start>{escape(start)}</Start><Expiry>{escape(expiry)}</Expiry>{tid}</KeyInfo>"
    ).encode()


def parse_user_delegation_key(body: bytes) -> UserDelegationKey:
    """The ``<UserDelegationKey>`` answer. Every field but ``SignedDelegatedUserTid`` must be present
    and non-empty, and ``Value`` must be base64; the key itself never appears in an error."""
    root = _root(body, "UserDelegationKey", 16)

    def required(tag: str) -> str:
        text = _text(root, tag)
        if not text:
            raise MalformedResponse(f"the response has an empty <{tag}> in <UserDelegationKey>")
        return text

    value = required("Value")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResponse("the <Value> of the user delegation key is not base64") from None
    return UserDelegationKey(
        signed_oid=required("SignedOid"),
        signed_tid=required("SignedTid"),
        signed_start=required("SignedStart"),
        signed_expiry=required("SignedExpiry"),
        signed_service=required("SignedService"),
        signed_version=required("SignedVersion"),
        value=value,
        signed_delegated_user_tid=_opt(root, "SignedDelegatedUserTid") or None,
    )


def parse_error(body: bytes) -> tuple[str | None, str]:
    """(code, message) from an ``<Error>`` body; tolerant, since errors must never raise."""
    return parse_error_body(body)[:2]


def parse_error_body(body: bytes) -> tuple[str | None, str, dict[str, str]]:
    """(code, message, details) from an ``<Error>`` body: ``details`` are its other elements' texts by
    name (Azure's ``AuthenticationErrorDetail``, ``QueryParameterName``...), unredacted; tolerant."""
    if not body:
        return None, "", {}
    try:
        root = parse(body, 16)
    except MalformedResponse:
        return None, "", {}
    code = _opt(root, "Code")
    message = (_opt(root, "Message") or "").split("\n", 1)[0]
    details = {
        str(child.tag): "".join(child.itertext()).strip() for child in root if child.tag not in ("Code", "Message")
    }
    return code, message, details
