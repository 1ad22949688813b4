"""Replay recorded Azure Queue Storage traffic: a recording loader and a local server answering each request
with what real Azure answered to the same request.

The recordings (``tests/data/azure-recordings``, provenance in the README there) are the .NET and Python
SDKs' public test-proxy recordings. :class:`ReplayServer` takes the recorded Queue entries in order (sign-in
traffic to login.microsoftonline.com is not Queue traffic and is left out); each incoming request must match
the next entry's method, path and the query parameters that matter (:data:`QUERY_THAT_MATTERS`), and gets
the recorded status, headers and body, byte for byte. What was sent is kept in :attr:`ReplayServer.sent`,
for comparing with the recorded requests (:func:`request_differences`). Nothing is invented: a request that
does not match the next entry gets a 418 with the error code ``ReplayMismatch``, and the test fails.

Clients reach it with a path-style URL, ``http://127.0.0.1:PORT/<account>``: the first path segment is the
account (``<account>-secondary`` for the read-only secondary), the rest is the recorded path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

from aiohttp import web
from aiohttp.test_utils import TestServer

RECORDINGS = Path(__file__).parent / "data" / "azure-recordings"

# The query parameters that select an operation or carry its arguments. SAS fields (sv, sig, se, ...),
# timeout= and the api-version of sign-in traffic are left out.
QUERY_THAT_MATTERS = (
    "comp",
    "restype",
    "numofmessages",
    "peekonly",
    "popreceipt",
    "visibilitytimeout",
    "messagettl",
    "include",
    "prefix",
    "marker",
    "maxresults",
)
# What the service assumes when a parameter is left out (REST reference): sent or not, the same request.
QUERY_DEFAULTS = {"numofmessages": "1"}
# Response headers the replay does not copy: aiohttp computes the framing itself.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
SIGN_IN_HOST = "login.microsoftonline.com"


def _text(body: Any) -> str | None:
    """A recorded body: a string, a list of strings (one recorded body split in lines), or null."""
    if body is None:
        return None
    if isinstance(body, list):
        return "".join(body)
    if isinstance(body, str):
        return body
    return json.dumps(body)


@dataclass(frozen=True)
class Entry:
    """One recorded request and its answer."""

    method: str
    host: str
    path: str
    query: dict[str, str]
    request_headers: dict[str, str]
    request_body: str | None
    status: int
    response_headers: dict[str, str]
    response_body: str | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Entry:
        url = urlsplit(raw["RequestUri"])
        return cls(
            method=raw["RequestMethod"],
            host=url.hostname or "",
            path=url.path or "/",
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            request_headers={k.lower(): _header(v) for k, v in raw["RequestHeaders"].items()},
            request_body=_text(raw.get("RequestBody")),
            status=int(raw["StatusCode"]),
            response_headers={k: _header(v) for k, v in raw["ResponseHeaders"].items()},
            response_body=_text(raw.get("ResponseBody")),
        )

    @property
    def account(self) -> str:
        return self.host.split(".")[0]

    @property
    def secondary(self) -> bool:
        return self.account.endswith("-secondary")

    @property
    def queue(self) -> str | None:
        parts = [p for p in self.path.split("/") if p]
        return parts[0] if parts else None

    @property
    def message_id(self) -> str | None:
        parts = [p for p in self.path.split("/") if p]
        return parts[2] if len(parts) > 2 else None

    def header(self, name: str) -> str | None:
        """A response header, case-insensitively."""
        for key, value in self.response_headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def error_code(self) -> str | None:
        return self.header("x-ms-error-code")

    @property
    def request_id(self) -> str | None:
        return self.header("x-ms-request-id")

    def matters(self) -> dict[str, str]:
        return query_that_matters(self.query)


def _header(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


def query_that_matters(query: dict[str, str]) -> dict[str, str]:
    out = {k.lower(): v for k, v in query.items() if k.lower() in QUERY_THAT_MATTERS}
    for key, default in QUERY_DEFAULTS.items():
        if out.get(key) == default:
            del out[key]
    return out


@dataclass(frozen=True)
class Recording:
    name: str  # "net/QueueClientTests.SendMessageAsync", the test id
    entries: list[Entry]  # the Queue traffic, in order
    sign_in: int  # entries to the Entra ID sign-in host, left out
    raw: dict[str, Any] = field(repr=False)

    @property
    def version(self) -> str | None:
        for e in self.entries:
            if "x-ms-version" in e.request_headers:
                return e.request_headers["x-ms-version"]
        return None

    @property
    def account(self) -> str:
        """A lower-case account name for the path-style URL (some recordings say ``Sanitized``)."""
        for e in self.entries:
            if not e.secondary:
                return e.account.lower()
        return "sanitized"


def load(path: Path) -> Recording:
    raw = json.loads(path.read_text(encoding="utf-8-sig"))
    entries = [Entry.from_json(e) for e in raw["Entries"]]
    queue = [e for e in entries if e.host != SIGN_IN_HOST]
    name = f"{path.parent.name}/{path.stem}"
    return Recording(name=name, entries=queue, sign_in=len(entries) - len(queue), raw=raw)


def all_recordings() -> Iterator[Path]:
    yield from sorted(RECORDINGS.glob("*/*.json"))


@dataclass(frozen=True)
class Sent:
    """One request the client sent to the replay server."""

    method: str
    account: str  # the first path segment
    path: str  # the rest: the recorded path
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


class ReplayServer:
    """Answers the recording's entries in order; ``async with ReplayServer(rec) as server:`` gives
    ``server.url(account)``, and afterwards ``server.sent`` and ``server.mismatches``."""

    def __init__(self, recording: Recording, expected_query: Callable[[Entry], dict[str, str]] | None = None) -> None:
        self.recording = recording
        self.expected_query = expected_query or Entry.matters
        self.sent: list[Sent] = []
        self.mismatches: list[str] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> ReplayServer:
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.close()

    def url(self, account: str) -> str:
        return f"http://127.0.0.1:{self._server.port}/{account}"

    @property
    def remaining(self) -> list[Entry]:
        return self.recording.entries[len(self.sent) :]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        _, account, rest = _split(request.path)
        sent = Sent(
            method=request.method,
            account=account,
            path=rest,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        index = len(self.sent)
        self.sent.append(sent)
        entries = self.recording.entries
        if index >= len(entries):
            problem = "no recorded entry left"
        else:
            problem = _mismatch(entries[index], sent, self.expected_query(entries[index]))
        if problem:
            self.mismatches.append(f"request {index + 1} ({sent.method} {sent.path} {sent.query}): {problem}")
            return web.Response(status=418, headers={"x-ms-error-code": "ReplayMismatch"}, text=problem)
        return answer(entries[index])


def _split(path: str) -> tuple[str, str, str]:
    """``/account/queue/messages`` -> ("", "account", "/queue/messages")."""
    segments = path.split("/", 2)
    account = segments[1] if len(segments) > 1 else ""
    rest = "/" + segments[2] if len(segments) > 2 else "/"
    return "", account, rest


def _mismatch(entry: Entry, sent: Sent, query: dict[str, str] | None = None) -> str:
    if sent.method != entry.method:
        return f"method {sent.method}, recorded {entry.method}"
    if sent.path.rstrip("/") != entry.path.rstrip("/"):
        return f"path {sent.path}, recorded {entry.path}"
    expected = entry.matters() if query is None else query
    if query_that_matters(sent.query) != expected:
        return f"query {query_that_matters(sent.query)}, expected {expected}"
    if entry.secondary != sent.account.endswith("-secondary"):
        return f"account {sent.account}, recorded host {entry.host}"
    return ""


def answer(entry: Entry) -> web.Response:
    """The recorded answer: status, headers (less framing) and body, encoded as UTF-8 exactly (the byte-order
    mark Azure puts before XML included); aiohttp computes Content-Length."""
    headers = {k: v for k, v in entry.response_headers.items() if k.lower() not in _FRAMING}
    body = entry.response_body.encode("utf-8") if entry.response_body is not None else b""
    response = web.Response(status=entry.status, body=body)
    response.headers.clear()
    response.headers.update(headers)
    return response


# ---- comparing what was sent with what was recorded ------------------------------------------------

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$")


def iso_time(text: str) -> datetime:
    """An ISO 8601 UTC time with 0 to 7 fractional digits, to the microsecond (truncated)."""
    m = _TIME.match(text)
    assert m, text
    whole = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return whole.replace(microsecond=int((m.group(2) or "0")[:6].ljust(6, "0")))


def xml_tree(text: str | bytes) -> ElementTree.Element:
    """Recorded data only (trusted): the standard library's parser, the byte-order mark dropped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return ElementTree.fromstring(text.lstrip("\ufeff").encode("utf-8"))


def _same_text(sent: str, recorded: str) -> str:
    if _TIME.match(recorded):
        if not _TIME.match(sent) or iso_time(sent) != iso_time(recorded):
            return f"time {sent!r}, recorded {recorded!r}"
        fraction = _TIME.match(recorded).group(2)  # type: ignore[union-attr]
        if fraction is not None and len(fraction) == 7 and len(_TIME.match(sent).group(2) or "") != 7:  # type: ignore[union-attr]
            return f"time {sent!r} without the service's 7 fractional digits, recorded {recorded!r}"
        return ""
    return "" if sent == recorded else f"text {sent!r}, recorded {recorded!r}"


def _children(el: ElementTree.Element) -> list[ElementTree.Element]:
    """Children in order; those of a record (each tag once, as in a CorsRule) by tag: their order carries
    no meaning, and the REST reference's own examples order them differently from the SDKs."""
    children = list(el)
    tags = [c.tag for c in children]
    return sorted(children, key=lambda c: c.tag) if len(set(tags)) == len(tags) else children


def xml_differences(
    sent: ElementTree.Element, recorded: ElementTree.Element, where: str = "", optional: frozenset[str] = frozenset()
) -> list[str]:
    """Semantic XML comparison: tags, attributes, texts (times by value), children (in order where
    repeated). ``optional``: tags the client may send where the recording has none."""
    here = f"{where}/{recorded.tag}"
    if sent.tag != recorded.tag:
        return [f"{here}: element {sent.tag}"]
    out = []
    if sent.attrib != recorded.attrib:
        out.append(f"{here}: attributes {sent.attrib}, recorded {recorded.attrib}")
    problem = _same_text((sent.text or "").strip(), (recorded.text or "").strip())
    if problem:
        out.append(f"{here}: {problem}")
    recorded_tags = {c.tag for c in recorded}
    sent_children = [c for c in _children(sent) if c.tag in recorded_tags or c.tag not in optional]
    recorded_children = _children(recorded)
    if [c.tag for c in sent_children] != [c.tag for c in recorded_children]:
        out.append(f"{here}: children {[c.tag for c in sent_children]}, recorded {[c.tag for c in recorded_children]}")
        return out
    for s, r in zip(sent_children, recorded_children, strict=True):
        out.extend(xml_differences(s, r, here, optional))
    return out


def _meta(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ms-meta-")}


def request_differences(
    sent: Sent,
    entry: Entry,
    *,
    version: str | None = None,
    query: dict[str, str] | None = None,
    optional: frozenset[str] = frozenset(),
) -> list[str]:
    """How a sent request differs from the recorded one: method, path, the query that matters (``query``:
    the one expected instead of the recorded), metadata headers, x-ms-version (``version``: likewise), and
    the body (XML by meaning; ``optional``: elements the client may add)."""
    problem = _mismatch(entry, sent, query)
    out = [problem] if problem else []
    if _meta(sent.headers) != _meta(entry.request_headers):
        out.append(f"metadata {_meta(sent.headers)}, recorded {_meta(entry.request_headers)}")
    expected_version = version or entry.request_headers.get("x-ms-version")
    if sent.headers.get("x-ms-version") != expected_version:
        out.append(f"x-ms-version {sent.headers.get('x-ms-version')}, expected {expected_version}")
    recorded_body = (entry.request_body or "").lstrip("\ufeff")
    if recorded_body.strip() and recorded_body.lstrip().startswith("<"):
        if not sent.body.strip():
            out.append("no body, recorded an XML body")
        else:
            out.extend(xml_differences(xml_tree(sent.body), xml_tree(recorded_body), optional=optional))
    elif sent.body.strip() and not _empty_list(sent.body):
        out.append(f"a body {sent.body[:80]!r}, recorded none")
    return out


def _empty_list(body: bytes) -> bool:
    """An XML list with no items (``<SignedIdentifiers/>``): Set Queue ACL with no body and with an empty
    list both remove every policy (the REST reference; Azure answered 204 to the .NET SDK's empty list)."""
    root = xml_tree(body)
    return len(root) == 0 and not (root.text or "").strip()
