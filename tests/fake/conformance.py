"""The conformance suite's machinery (tests/fake/test_conformance.py): a :class:`Target` (Azurite or the
fake) that a scenario sends its requests to, each answer normalized into a step's fields, and the
comparison of the two targets' steps, which allows only the :class:`Difference` a scenario declares.

A step's fields are what the two services must agree on: the answer (status and error code), the
headers that matter (the version and the client request id echoed, a request id and a date present,
Content-Type, the message count, an update's pop receipt and next visibility, the metadata) and the
body's shape: one line per element and attribute, in document order, each value as it is when it is a
fact (a count, a name, a text sent), or as its format when it is the service's own choice (an id, a
receipt, a time: ``<uuid>``, ``<receipt>``, ``<rfc1123>``). An error's ``<Message>`` and
``<AuthenticationErrorDetail>`` are human text: only their presence and the ``<Message>``'s shape
(text, ``RequestId:``, ``Time:``) count.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from xml.etree.ElementTree import Element, ParseError, fromstring

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from aioqueue import QueueClient
from aioqueue._auth import SharedKeyCredential
from aioqueue._events import ResponseEvent
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY

VERSION = "2025-11-05"
BOM = b"\xef\xbb\xbf"
CLIENT_REQUEST_ID = "conformance-client-request-id"
# the headers compared, besides x-ms-meta-*
HEADERS = (
    "x-ms-version",
    "x-ms-request-id",
    "x-ms-client-request-id",
    "content-type",
    "x-ms-approximate-messages-count",
    "x-ms-popreceipt",
    "x-ms-time-next-visible",
    "date",
)
_DAY = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_RFC1123 = re.compile(rf"{_DAY}, \d{{2}} {_MONTH} \d{{4}} \d{{2}}:\d{{2}}:\d{{2}} GMT")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MESSAGE = re.compile(r"(?s).+\nRequestId:\S+\nTime:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
NEVER = "Fri, 31 Dec 9999 23:59:59 GMT"  # a message put with messagettl=-1 expires then
BYTE_ORDER_MARK = "<byte-order mark>"  # the body's first line when it starts with one
ANY_STEP = "*"  # a Difference's step: wherever it shows
ANY_ERROR = "* error answers"  # a Difference's step: wherever it shows in an error answer (4xx, 5xx)

Fields = dict[str, str]


@dataclass(frozen=True)
class Difference:
    """Where Azurite answers otherwise than Azure, and the fake follows Azure.

    ``step`` names the scenario's step where it shows (or ``ANY_STEP``, ``ANY_ERROR``); ``field`` the step's field:
    ``"answer"`` (status and error code; the rest of that step, which follows from them, is then not
    compared), a header (``"header x-ms-version"``), a fact a scenario noted, or ``"body"``: then
    ``azure`` and ``azurite`` are one line of each body's shape ("" for none). ``azure`` is what the
    fake answers (Azure's answer, from ``source``), ``azurite`` what Azurite answers. A difference a
    scenario declares must show in it, exactly as declared: one that goes away fails the scenario."""

    what: str
    step: str
    azure: str
    azurite: str
    source: str
    field: str = "answer"


@dataclass(frozen=True)
class Known:
    """A difference between Azurite and Azure (one row of docs/guide/fake-differences.md) and its source;
    :meth:`at` declares where a scenario shows it."""

    what: str
    source: str

    def at(self, step: str, azure: str, azurite: str, field: str = "answer") -> Difference:
        return Difference(self.what, step, azure, azurite, self.source, field)


@dataclass
class Target:
    """One service under test: ``kind`` "fake" or "azurite", its account URL (path-style)."""

    kind: str
    url: str
    connection_string: str
    steps: dict[str, Fields] = field(default_factory=dict)
    stem: str = field(default_factory=lambda: f"cf{uuid.uuid4().hex[:10]}")  # every queue's name starts with it
    _queues: set[str] = field(default_factory=set)

    # ---- names ---------------------------------------------------------------------------------

    def queue(self, symbol: str = "q") -> str:
        """The real name of the scenario's queue ``symbol`` (lowercase letters): the target's stem and
        the symbol, unique on this target (Azurite is shared by the session's tests), written back as
        ``<symbol>`` in the normalized answers (the stem alone as ``<stem>``)."""
        name = f"{self.stem}{symbol}"
        self._queues.add(name)
        return name

    def client(self, symbol: str = "q", **options: Any) -> QueueClient:
        """A real QueueClient on queue ``symbol``; each of its answers is recorded as a step
        ``client <n> <method>`` (status and headers: an event hook sees no body)."""
        hooks = {"response": [self._record_event]}
        return QueueClient.from_connection_string(
            self.connection_string, self.queue(symbol), event_hooks=hooks, **options
        )

    def _record_event(self, event: ResponseEvent) -> None:
        assert event.status is not None, event.error
        fields = self._fields(event.status, event.headers)
        self.steps[f"client {len(self.steps)} {event.method}"] = fields

    async def delete_queues(self) -> None:
        """Delete every queue the scenario named (whether it made it or not), unrecorded."""
        for name in sorted(self._queues):
            await self.send(None, "DELETE", f"/{name}")

    # ---- requests ------------------------------------------------------------------------------

    async def send(
        self,
        step: str | None,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = DEV_KEY,
        sas: str | None = None,
        unknown: Iterable[str] = (),
    ) -> Answer:
        """``method`` on the account URL + ``path``, signed with ``key`` (None: not signed), or with the
        ``sas`` token's query added; its answer recorded as ``step`` (None: not recorded), less the
        fields named in ``unknown`` (where Azure's answer is not known, so neither is right).
        ``headers`` are added to the defaults (x-ms-version, x-ms-date, x-ms-client-request-id); a
        header given as "" is left out."""
        account_url = URL(self.url)
        full_path = f"{account_url.path}{path}"
        sent = {
            "x-ms-version": VERSION,
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-client-request-id": CLIENT_REQUEST_ID,
        }
        if body is not None:
            sent["Content-Type"] = "application/xml"
        sent.update(headers or {})
        sent = {k: v for k, v in sent.items() if v != ""}
        params = dict(query or {})
        if key is not None:
            credential = SharedKeyCredential(DEV_ACCOUNT, key)
            sent["Authorization"] = credential.authorization(method, full_path, params, sent, len(body or b""))
        url = account_url.with_path(full_path).with_query(params)
        if sas is not None:
            url = url.update_query(sas)
        data = None if body is None else io.BytesIO(body)
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, data=data, headers=sent, skip_auto_headers=("Content-Type",)) as resp,
        ):
            answer = Answer(resp.status, resp.headers, await resp.read())
        if step is not None:
            assert step not in self.steps, f"step {step!r} twice"
            fields = self._fields(answer.status, answer.headers)
            fields["body"] = self._names("\n".join(body_shape(answer.body)))
            for name in unknown:
                del fields[name]
            self.steps[step] = fields
        return answer

    def note(self, step: str, **facts: object) -> None:
        """Facts a scenario derives itself (a dequeue count, an element order), as a step."""
        assert step not in self.steps, f"step {step!r} twice"
        self.steps[step] = {name: self._names(str(value)) for name, value in facts.items()}

    # ---- normalization -------------------------------------------------------------------------

    def _names(self, text: str) -> str:
        text = text.replace(self.url, "<account-url>")
        return re.sub(rf"{self.stem}([a-z]*)", lambda m: f"<{m.group(1) or 'stem'}>", text)

    def _fields(self, status: int, headers: Mapping[str, str]) -> Fields:
        code = headers.get("x-ms-error-code")
        fields: Fields = {"answer": f"{status} {code}" if code else str(status)}
        for name in HEADERS:
            fields[f"header {name}"] = _header(name, headers.get(name))
        for name in sorted({k for k in headers if k.lower().startswith("x-ms-meta-")}, key=str.lower):
            fields[f"header {name}"] = headers[name]
        return fields


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def root(self) -> Element:
        return fromstring(self.body.removeprefix(BOM))

    def text(self, tag: str) -> str:
        """The text of the body's first ``tag`` element."""
        found = self.root().find(f".//{tag}")
        assert found is not None, (tag, self.body)
        return found.text or ""


def _header(name: str, value: str | None) -> str:
    if value is None:
        return "<absent>"
    if name in ("x-ms-request-id", "x-ms-popreceipt"):
        return "<present>" if value else "<empty>"
    if name in ("date", "x-ms-time-next-visible"):
        return _value(value)
    return value


def _value(text: str) -> str:
    """A value as it is, or as its format when it is the service's own choice."""
    if _RFC1123.fullmatch(text):
        return text if text == NEVER else "<rfc1123>"
    if _UUID.fullmatch(text):
        return "<uuid>"
    return text


def body_shape(body: bytes) -> list[str]:
    """One line per element (``path: 'value'`` or ``path:`` for one with children) and attribute
    (``path@name: value``), in document order, after a first line for the byte-order mark."""
    if not body:
        return ["<empty>"]
    lines = [BYTE_ORDER_MARK] if body.startswith(BOM) else []
    try:
        root = fromstring(body.removeprefix(BOM))
    except ParseError:
        return [*lines, f"<not XML> {body[:80]!r}"]
    _walk(root, root.tag, lines)
    return lines


def _walk(element: Element, path: str, lines: list[str]) -> None:
    for name, value in element.attrib.items():
        lines.append(f"{path}@{name}: {_value(value)}")
    children = list(element)
    if children:
        lines.append(f"{path}:")
        for child in children:
            _walk(child, f"{path}/{child.tag}", lines)
        return
    text = element.text or ""
    if element.tag == "PopReceipt":
        value = "<receipt>" if text else ""
    elif element.tag == "Message" and _MESSAGE.fullmatch(text):
        value = "<text>\nRequestId:<id>\nTime:<ISO 8601>"
    elif element.tag == "AuthenticationErrorDetail" and text:
        value = "<text>"
    elif element.tag in ("Marker", "NextMarker") and text.isdigit():
        value = "<index>"  # Azurite's markers: an index into its own list
    else:
        value = _value(text)
    lines.append(f"{path}: {value!r}")


Scenario = Callable[[Target], Awaitable[None]]


def compare(
    fake: Target, azurite: Target, differences: Iterable[Difference], lenient: Iterable[Difference] = ()
) -> list[str]:
    """Every disagreement that no difference explains, and every one of ``differences`` (a scenario's
    own) that did not show. ``lenient`` ones (the whole suite's) explain what they match, if anything."""
    strict = tuple(differences)
    every = strict + tuple(lenient)
    problems: list[str] = []
    if list(fake.steps) != list(azurite.steps):
        problems.append(f"steps: fake {list(fake.steps)} vs azurite {list(azurite.steps)}")
    shown: set[Difference] = set()
    for step in fake.steps:
        if step in azurite.steps:
            ours = fake.steps[step]
            error = ours.get("answer", "")[:1] in ("4", "5")
            applying = [d for d in every if d.step in (step, ANY_STEP) or (error and d.step == ANY_ERROR)]
            problems += _compare_step(step, ours, azurite.steps[step], applying, shown)
    for difference in strict:
        if difference not in shown:
            problems.append(f"declared difference did not show: {difference}")
    return problems


def _compare_step(
    step: str, ours: Fields, theirs: Fields, applying: list[Difference], shown: set[Difference]
) -> list[str]:
    answers = (ours["answer"], theirs["answer"]) if "answer" in ours and "answer" in theirs else None
    for difference in applying:
        if difference.field == "answer" and answers == (difference.azure, difference.azurite):
            shown.add(difference)
            return []  # the rest of the answer follows from it
    problems = []
    for name in sorted(ours.keys() | theirs.keys(), key=_order):
        mine, other = ours.get(name, "<absent>"), theirs.get(name, "<absent>")
        if name == "body":
            mine, other = _explain_lines(mine, other, [d for d in applying if d.field == "body"], shown)
        else:
            for difference in applying:
                if difference.field == name and (mine, other) == (difference.azure, difference.azurite):
                    shown.add(difference)
                    mine = other
        if mine != other:
            problems.append(f"{step} / {name}:\n  fake:    {_indent(mine)}\n  azurite: {_indent(other)}")
    return problems


def _explain_lines(mine: str, other: str, applying: list[Difference], shown: set[Difference]) -> tuple[str, str]:
    """The two bodies' shapes, less the lines that declared differences explain."""
    ours, theirs = mine.split("\n"), other.split("\n")
    for difference in applying:
        present = (not difference.azure or difference.azure in ours) and (
            not difference.azurite or difference.azurite in theirs
        )
        if present and (difference.azure or difference.azurite):
            shown.add(difference)
            ours = [line for line in ours if line != difference.azure]
            theirs = [line for line in theirs if line != difference.azurite]
    return "\n".join(ours), "\n".join(theirs)


def _indent(text: str) -> str:
    return text.replace("\n", "\n           ")


def _order(name: str) -> tuple[int, str]:
    return (0 if name == "answer" else 2 if name == "body" else 1, name)
