"""Every fast path against its checked twin: one hypothesis property test a pair, named for both.

A fast path gives its twin's answer on every input hypothesis builds, or (for a parser) declines with
None and leaves the input to its twin; never anything else. The pairs:

- ``_message_list.fast_messages`` and ``checked_messages``: the messages list as the service writes it;
- ``_message_list.fast_put_answer`` and ``checked_messages``: a Put Message answer in one match;
- ``_messages.peeked_messages`` and ``peeked_message``; ``received_messages`` and ``received_message``:
  a whole answer's models a column at a time (the text encoding's content straight from the column);
- ``_auth.HmacKey.sign`` and ``hmac.new``; ``SharedKeyCredential.authorization`` (one pass over the
  headers) and the string to sign as the service documents it; ``plain_authorization`` (the transport's
  own headers, one format, its header kept for the second) and ``authorization``;
- ``_transport.escape_query_value`` and ``urllib.parse.quote(value, safe="")``.

Examples of each (what takes the fast path, what is left to the twin) are in test_fast_parse.py and
tests/auth/test_fast_signing.py. Pure logic, no network.
"""

from __future__ import annotations

import base64
import codecs
import functools
import hashlib
import hmac
import re
import string
from collections.abc import Callable, Mapping
from typing import NamedTuple
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioqueue import QueueMessage, SharedKeyCredential
from aioqueue._auth import HmacKey
from aioqueue._message_list import checked_messages, escape_text, fast_messages, fast_put_answer
from aioqueue._messages import (
    RawMessage,
    peeked_message,
    peeked_messages,
    received_messages,
    text_of,
)
from aioqueue._transport import escape_query_value
from aioqueue.testing import DEV_KEY
from tests.transport.test_fast_parse import (
    AZURE,
    AZURITE,
    DATE,
    ID,
    RECEIPT,
    Refusing,
    Subclass,
    document,
    entry,
    outcome,
    received_one_by_one,
    records,
)

# CPU-bound (hypothesis draws thousands of documents): with coverage's tracer and both cores busy, one test
# took 128 s, past the suite's 120 s hang guard; the bound here is for a hang, not for speed
pytestmark = pytest.mark.timeout(600)

# ---- the messages list: what a case is ------------------------------------------------------------


class Case(NamedTuple):
    """A body, and what the fast path must make of it when it is what the services write: read it
    (``must_read``), into these texts (``texts``, when known)."""

    body: bytes
    must_read: bool = False
    texts: list[str] | None = None


def weighted(*choices: tuple[int, st.SearchStrategy[Case]]) -> st.SearchStrategy[Case]:
    """One of the strategies, each drawn about as often as its weight says."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(pool) - 1).flatmap(pool.__getitem__)


# ---- the messages list: any document, junk anywhere ------------------------------------------------

any_text = st.text(st.characters(codec="utf-8"), max_size=40)  # anything UTF-8 can carry, control characters too
xml_text = st.text(
    st.characters(codec="utf-8", exclude_characters="".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32)]))),
    max_size=60,
).filter(lambda t: "\ufffe" not in t and "\uffff" not in t)
junk = st.sampled_from(
    [
        "",
        " ",
        "\n",
        "\r\n",
        "\t",
        "<!-- c -->",
        "<?pi x?>",
        "<![CDATA[<&>]]>",
        "<Unknown>u</Unknown>",
        "<Unknown/>",
        "&amp;",
        "&lt;",
        "&gt;",
        "&quot;",
        "&apos;",
        "&#65;",
        "&#x41;",
        "&#x1F600;",
        "&#0;",
        "&#xFFFF;",
        "&#1114112;",
        "&#X41;",
        "&nbsp;",
        "&lol;",
        "&",
        "<",
        ">",
        "]]>",
        "\r",
        "\x00",
        "\x7f",
        "\u0085",
        "\u2028",
        "\ufeff",
        "\ufffe",
        "\U0001f600",
        "é",
        "a='1'",
        "/",
        '"',
    ]
)
declarations = st.sampled_from(
    [
        b"",
        AZURITE,
        AZURE,
        codecs.BOM_UTF8,
        b'<?xml version="1.0"?>',
        b'<?xml version="1.0" encoding="utf-8"?>',
        b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        b"<?xml version='1.0' encoding='utf-8'?>",
        b'<?xml version="1.0" encoding="latin-1"?>',
        b'<?xml version="1.0" encoding="utf-16"?>',
        b'<?xml version="1.0" encoding="x-nope"?>',
        b'<?xml version="1.1"?>',
        b'<!DOCTYPE QueueMessagesList [<!ENTITY lol "lol">]>',
        b'<?xml version="1.0"?><!DOCTYPE QueueMessagesList [<!ENTITY lol "&#65;">]>',
        b'<!DOCTYPE QueueMessagesList SYSTEM "http://127.0.0.1:1/x.dtd">',
        b"<!-- c -->",
        b"\n",
    ]
)
# the empty root as the services write it: both forms, and Azure's with a space ('<QueueMessagesList />')
empty_roots = st.sampled_from(
    [b"<QueueMessagesList></QueueMessagesList>", b"<QueueMessagesList/>", b"<QueueMessagesList />"]
)
ids = st.one_of(st.just(ID), st.text("abcXYZ019-_", min_size=1, max_size=8), any_text)
receipts = st.one_of(st.none(), st.just(RECEIPT), st.text("abcXYZ019+/=-_", min_size=1, max_size=8), any_text)
counts = st.one_of(st.none(), st.just("1"), st.integers(0, 10**12).map(str), any_text)
dates = st.one_of(st.just(DATE), st.text("Fri, 27Nov:0GMT", max_size=40), any_text)


@st.composite
def texts(draw: st.DrawFn) -> str | None:
    kind = draw(st.sampled_from(["none", "escaped", "raw", "junk"]))
    if kind == "none":
        return None
    if kind == "escaped":
        return escape_text(draw(xml_text))
    if kind == "raw":
        return draw(any_text)
    pieces = draw(st.lists(st.one_of(junk, xml_text.map(escape_text)), max_size=6))
    return "".join(pieces)


@st.composite
def entries(draw: st.DrawFn) -> str:
    text = draw(texts())
    if draw(st.booleans()):  # the service's shape, but for the text
        return entry(text)
    return entry(text, message_id=draw(ids), receipt=draw(receipts), count=draw(counts), date=draw(dates))


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(entries(), max_size=4))
    if draw(st.integers(0, 9)) == 0:  # now and then a huge count of messages
        items = items[:1] * draw(st.integers(30, 40))
    body = document(*items, declaration=draw(declarations))
    if not items and draw(st.booleans()):  # the empty root's other forms
        body = body.replace(b"<QueueMessagesList></QueueMessagesList>", draw(empty_roots))
    for _ in range(draw(st.integers(0, 3))):  # junk anywhere: whitespace, attributes, markup, references
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(junk).encode("utf-8", "surrogatepass") + body[at:]
    return body


@st.composite
def damaged(draw: st.DrawFn, bodies: st.SearchStrategy[bytes]) -> bytes:
    """A body with one to three bytes inserted, deleted or replaced."""
    body = draw(bodies)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = bytes([draw(st.integers(0, 255))])
        if op == "insert":
            body = body[:at] + byte + body[at:]
        elif op == "delete":
            body = body[:at] + body[at + 1 :]
        else:
            body = body[:at] + byte + body[at + 1 :]
    return body


@st.composite
def client_texts(draw: st.DrawFn) -> Case:
    """Any text the client can send, escaped as the service escapes it (every character XML carries,
    references for '\\r'): the fast path reads it back."""
    sent = draw(st.lists(xml_text, max_size=32))
    peeked = draw(st.booleans())
    escaped = [escape_text(t).replace("\r", "&#xD;") for t in sent]
    declaration = draw(st.sampled_from([AZURITE, AZURE, b""]))
    body = document(*[entry(e, receipt=None if peeked else RECEIPT) for e in escaped], declaration=declaration)
    if not sent:  # an empty answer, in each form the services write
        body = body.replace(b"<QueueMessagesList></QueueMessagesList>", draw(empty_roots))
    return Case(body, must_read=True, texts=sent)


# ---- the messages list: answers heavy with references ----------------------------------------------

# what a text may be made of: the references the services write, others, and what is no reference at all
COMMON_PIECES = ["&#xD;", "&#13;", "&#xA;", "&#10;", "&#x9;", "&#9;", "&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
COMMON_PIECES += ["x", "é", "\n", " ", "#", ";", "\U0001f600"]
OTHER_PIECES = [
    *("&#233;", "&#xe9;", "&#xd;", "&#x0D;", "&#013;", "&#x1F600;", "&#65;"),  # other references
    *("&amp;#13;", "&amp;lt;", "&amp;amp;", "&#38;", "&#38;#13;", "&#x26;lt;"),  # an '&' that starts none
    *("&#0;", "&#xFFFE;", "&#X41;", "&bogus;", "&amp", "&"),  # malformed
]


@st.composite
def reference_heavy_texts(draw: st.DrawFn) -> str:
    """Mostly what the services write; now and then other references, many or few."""
    pieces = st.sampled_from(COMMON_PIECES if draw(st.integers(0, 3)) else COMMON_PIECES + OTHER_PIECES)
    return "".join(draw(st.lists(pieces, min_size=1, max_size=8))) * draw(st.sampled_from([1, 2, 40, 300, 3000]))


@st.composite
def reference_heavy(draw: st.DrawFn) -> Case:
    """fast_messages resolves the references the services write a text at a time in C, and leaves an
    answer with many others to checked_messages; what the services write it reads, however much."""
    written = draw(st.lists(reference_heavy_texts(), min_size=1, max_size=6))
    declaration, peeked = draw(st.sampled_from([AZURITE, AZURE])), draw(st.booleans())
    body = document(
        *[entry(t, message_id=f"id{i}", receipt=None if peeked else RECEIPT) for i, t in enumerate(written)],
        declaration=declaration,
    )
    common = all(piece in COMMON_PIECES for t in written for piece in re.findall(r"&[^&;]*;|.", t, re.S))
    return Case(body, must_read=common)


# The four kinds of answer, each drawn as often as its own test drew it before they were one test
# (1500, 500, 500 and 300 examples).
messages_cases = weighted(
    (15, documents().map(Case)),
    (5, damaged(documents()).map(Case)),
    (5, client_texts()),
    (3, reference_heavy()),
)


@pytest.mark.slow
@settings(max_examples=2800, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages_cases)
def test_fast_messages_equals_checked_messages(case: Case) -> None:
    """On every answer, fast_messages gives checked_messages' records or declines (None, also where
    checked_messages refuses the answer); it reads what the services write."""
    fast = fast_messages(case.body)
    if fast is not None:
        assert checked_messages(case.body) == fast  # never a record the checked parser would not give
    elif case.must_read:
        raise AssertionError(f"the fast path declined what the services write: {case.body[:200]!r}")
    if case.texts is not None:
        assert fast is not None and [raw.text for raw in fast] == case.texts


# ---- the Put Message answer ------------------------------------------------------------------------


@st.composite
def put_answers(draw: st.DrawFn) -> Case:
    """Put Message answers: the service's own (which the fast path must read), and ones with other
    fields, other declarations, a second entry or junk anywhere (which it may decline)."""
    declaration = draw(st.one_of(st.sampled_from([AZURITE, AZURE, b""]), declarations))
    if draw(st.booleans()):
        items = [entry(None, count=None)]
    else:
        put = st.builds(entry, st.none(), message_id=ids, receipt=receipts, count=st.none(), date=dates)
        items = draw(st.lists(st.one_of(put, entries()), min_size=0, max_size=2))
    service = document(*items, declaration=declaration)
    body = service
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(junk).encode("utf-8", "surrogatepass") + body[at:]
    clean = items == [entry(None, count=None)] and declaration in (AZURITE, AZURE, b"") and body == service
    return Case(body, must_read=clean)


put_cases = weighted(
    (3, put_answers()),
    (1, damaged(put_answers().map(lambda case: case.body)).map(Case)),
    (1, documents().map(Case)),
)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(put_cases)
def test_fast_put_answer_equals_checked_messages(case: Case) -> None:
    """fast_put_answer gives checked_messages' one record of a Put Message answer, or declines."""
    put = fast_put_answer(case.body)
    if put is not None:
        assert checked_messages(case.body) == put
        assert len(put) == 1 and put[0].pop_receipt is not None and put[0].text is None
    elif case.must_read:
        raise AssertionError(f"the fast path declined a Put Message answer: {case.body[:200]!r}")


# ---- the models, a column at a time ----------------------------------------------------------------

received_shapes = st.lists(
    st.builds(
        entry,
        st.sampled_from(["hi", "", None]),
        message_id=st.just(ID),
        receipt=st.sampled_from([RECEIPT, None]),
        count=st.sampled_from(["1", "0", None, "x", "+2"]),
        date=st.sampled_from([DATE, "Sat, 28 Nov 2026 01:02:03 GMT", "not a date"]),
    ),
    max_size=5,
)
decoders = st.sampled_from(["text encoding", "a decoder", "failing"])


def decoder(kind: str, raws: list[RawMessage]):
    """The text encoding's (text_of: its content comes straight from the text column), another, and
    one that fails on the second message (as the one-message loop fails, so must the list builder)."""
    return {
        "text encoding": text_of,
        "a decoder": lambda raw: (raw.text or "") + "!",
        "failing": lambda raw: 1 / (raws.index(raw) - 1),
    }[kind]


@settings(max_examples=300, deadline=None)
@given(received_shapes, decoders)
def test_peeked_messages_equals_peeked_message(entries, kind):
    """The same models, or the same exception, as peeked_message one message at a time."""
    raws = records(*entries)
    decode = decoder(kind, raws)
    expected = outcome(lambda: [peeked_message(r, decode(r)) for r in raws])
    assert outcome(lambda: peeked_messages(raws, decode)) == expected


@settings(max_examples=300, deadline=None)
@given(received_shapes, decoders)
def test_received_messages_equals_received_message(entries, kind):
    """The same models, or the same exception, as received_message one message at a time: for
    QueueMessage, a subclass whose __post_init__ must run, and one that refuses a count."""
    raws = records(*entries)
    decode = decoder(kind, raws)
    for cls in (QueueMessage, Subclass, Refusing):
        expected = outcome(functools.partial(received_one_by_one, raws, decode, cls))
        assert outcome(functools.partial(received_messages, raws, decode, cls)) == expected


# ---- signing ---------------------------------------------------------------------------------------

KEY = base64.b64decode(DEV_KEY)


def reference_authorization(
    account: str, key: bytes, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], length: int
) -> str:
    """The Shared Key string to sign as the service documents it, signed with hmac.new."""
    get = headers.get
    x_ms = sorted((k.lower(), v.strip()) for k, v in headers.items() if k[:5].lower() == "x-ms-")
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in x_ms)
    resource = f"/{account}{path}"
    if query:
        resource += "".join(f"\n{k}:{v}" for k, v in sorted((k.lower(), v) for k, v in query.items()))
    string_to_sign = (
        f"{method}\n{get('Content-Encoding', '')}\n{get('Content-Language', '')}\n"
        f"{length or ''}\n{get('Content-MD5', '')}\n{get('Content-Type', '')}\n"
        f"{get('Date', '')}\n{get('If-Modified-Since', '')}\n{get('If-Match', '')}\n"
        f"{get('If-None-Match', '')}\n{get('If-Unmodified-Since', '')}\n{get('Range', '')}\n"
        f"{canonical_headers}{resource}"
    )
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode()}"


@given(
    st.one_of(
        st.binary(min_size=1, max_size=63), st.binary(min_size=64, max_size=64), st.binary(min_size=65, max_size=200)
    ),
    st.text(max_size=300),
)
def test_hmac_key_sign_equals_hmac_new(key, text):
    """Keys shorter than, as long as and longer than SHA-256's 64-byte block (each drawn often)."""
    expected = base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode()
    assert HmacKey(key).sign(text) == expected


header_names = st.sampled_from(
    [
        "x-ms-date",
        "x-ms-version",
        "X-MS-Meta-Color",
        "x-ms-meta-a",
        "x-ms-client-request-id",
        "X-Ms-Foo",
        "x-msnot",
        "User-Agent",
        "Content-Type",
        "Content-Encoding",
        "Content-Language",
        "Content-MD5",
        "Content-Length",
        "content-type",
        "Date",
        "If-Modified-Since",
        "If-Match",
        "If-None-Match",
        "If-Unmodified-Since",
        "Range",
        "Host",
    ]
)
values = st.text(string.printable.replace("\n", "").replace("\r", ""), max_size=20)
query_names = st.text(string.ascii_letters, min_size=1, max_size=8)


@settings(max_examples=400)
@given(
    st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]),
    st.sampled_from(["/devstoreaccount1/q/messages", "/q", "/q/messages/abc-1"]),
    st.dictionaries(query_names, values, max_size=4),
    st.dictionaries(header_names, values, max_size=8),
    st.integers(0, 70_000),
)
def test_authorization_equals_the_documented_string_to_sign(method, path, query, headers, length):
    """authorization's one pass over the headers signs what the documented string to sign is."""
    credential = SharedKeyCredential("devstoreaccount1", DEV_KEY)
    got = credential.authorization(method, path, query, headers, length)
    assert got == reference_authorization("devstoreaccount1", KEY, method, path, query, headers, length)


@given(
    st.sampled_from(["GET", "PUT", "POST", "DELETE"]),
    st.sampled_from(["/devstoreaccount1/q/messages", "/q", "/q/messages/abc-1"]),
    st.dictionaries(query_names, values, max_size=4),
    st.sampled_from(["2025-11-05", " 2025-11-05 "]),
    st.text(string.ascii_letters + string.digits + " ,:", max_size=30),
    st.sampled_from(["", "application/xml; charset=utf-8"]),
    st.integers(0, 70_000),
)
def test_plain_authorization_equals_authorization(method, path, query, version, date, content_type, length):
    """The transport's own headers only: the same signature as the general pass over them, whether
    the credential has just signed that text (and kept its header) or not."""
    headers = {"x-ms-version": version, "User-Agent": "aioqueue/1", "Accept-Encoding": "identity", "x-ms-date": date}
    if content_type:
        headers["Content-Type"] = content_type
    cred = SharedKeyCredential("devstoreaccount1", DEV_KEY)
    plain = cred.plain_authorization(method, path, query, version, date, content_type, length)
    assert plain == cred.plain_authorization(method, path, query, version, date, content_type, length)  # kept
    assert plain == cred.authorization(method, path, query, headers, length)
    assert plain == reference_authorization("devstoreaccount1", KEY, method, path, query, headers, length)


# ---- query values ------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(),
        st.text(alphabet="ABCXYZabcxyz0123456789+/=_-", max_size=200),
        st.text(st.one_of(st.sampled_from("aZ9+/=_-"), st.characters()), max_size=50),
    )
)
def test_escape_query_value_equals_quote(value: str) -> None:
    """Any text, the pop-receipt-like ones (base64) its shortcut takes, and base64 with anything else;
    text with a lone surrogate (which UTF-8 cannot carry) is refused by both alike."""
    assert _outcome(escape_query_value, value) == _outcome(lambda v: quote(v, safe=""), value)


def _outcome(escape: Callable[[str], str], value: str) -> tuple[str, str]:
    try:
        return ("escaped", escape(value))
    except UnicodeEncodeError as exc:
        return ("refused", f"{exc.reason} at {exc.start}")
