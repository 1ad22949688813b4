"""The messages list's fast paths (issue #16) against the checked parser, by example: what the services
send is read by the fast path, anything else is left to the checked parser; and the models built from
the records. The property tests of each fast path against its twin are in test_fast_paths.py; the
helpers here (entry, document...) serve both. Pure logic, no network."""

from __future__ import annotations

import codecs
import dataclasses
from datetime import datetime, timezone

import pytest

from aioqueue import MalformedResponse, PeekedMessage, QueueMessage, SendReceipt
from aioqueue._message_list import (
    _EMPTY,
    checked_messages,
    fast_messages,
    fast_put_answer,
    parse_messages,
)
from aioqueue._messages import (
    RawMessage,
    answered,
    peeked_message,
    peeked_messages,
    received_message,
    received_messages,
    send_receipt,
    text_of,
)

AZURITE = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
AZURE = codecs.BOM_UTF8 + b'<?xml version="1.0" encoding="utf-8"?>'
ID = "0a1b2c3d-0000-4000-8000-000000000001"
DATE = "Fri, 27 Nov 2026 00:00:00 GMT"
RECEIPT = "AgAAAAMAAAAAAAAAq4Dj0Gsy2wE="


def entry(
    text: str | None = "hello",
    *,
    message_id: str = ID,
    receipt: str | None = RECEIPT,
    count: str | None = "1",
    date: str = DATE,
) -> str:
    """One <QueueMessage> as the service writes it (``text`` already escaped)."""
    parts = [f"<QueueMessage><MessageId>{message_id}</MessageId>"]
    parts.append(f"<InsertionTime>{date}</InsertionTime><ExpirationTime>{date}</ExpirationTime>")
    if receipt is not None:
        parts.append(f"<PopReceipt>{receipt}</PopReceipt><TimeNextVisible>{date}</TimeNextVisible>")
    if count is not None:
        parts.append(f"<DequeueCount>{count}</DequeueCount>")
    if text is not None:
        parts.append(f"<MessageText>{text}</MessageText>")
    return "".join(parts) + "</QueueMessage>"


def document(*entries: str, declaration: bytes = AZURITE) -> bytes:
    return declaration + b"<QueueMessagesList>" + "".join(entries).encode("utf-8") + b"</QueueMessagesList>"


def agree(body: bytes) -> list[RawMessage] | None:
    """The fast path's answer, after checking the checked parser agrees with it."""
    put = fast_put_answer(body)  # the Put Message answer's own fast path: the same records, or None
    if put is not None:
        assert checked_messages(body) == put
        assert len(put) == 1 and put[0].pop_receipt is not None and put[0].text is None
    fast = fast_messages(body)
    if fast is not None:
        assert checked_messages(body) == fast
    return fast


# ---- what the services send is read by the fast path -------------------------------------------


@pytest.mark.parametrize("declaration", [AZURITE, AZURE, b"", b'<?xml version="1.0" encoding="utf-8"?>'])
def test_service_shaped_answers_take_the_fast_path(declaration):
    peeked = entry(receipt=None)
    put = entry(None, count=None)
    for body in (
        document(*[entry(f"m{i}") for i in range(32)], declaration=declaration),
        document(peeked, declaration=declaration),
        document(put, declaration=declaration),
        declaration + b"<QueueMessagesList/>",
        document(declaration=declaration),
    ):
        assert agree(body) is not None, body


def test_the_five_predefined_entities_and_character_references_are_resolved():
    text = "a &amp; b &lt; c &gt; d &quot;q&quot; &apos;s&apos; &#13;&#xD;&#10;&#x1F600;&#233;&#xe9;"
    fast = agree(document(entry(text)))
    assert fast is not None
    [raw] = fast
    assert raw.text == "a & b < c > d \"q\" 's' \r\r\n\U0001f600\xe9\xe9"


@pytest.mark.parametrize(
    "body",
    [
        # a DTD: entities, billion laughs, external references
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "x">]><QueueMessagesList>'
        + entry("&a;").encode()
        + b"</QueueMessagesList>",
        b'<!DOCTYPE l SYSTEM "file:///etc/passwd"><QueueMessagesList/>',
        document(entry("&lol;")),  # an undeclared entity
        document(entry("&amp")),  # an unterminated reference
        document(entry("&#0;")),  # a reference to a character XML cannot carry
        document(entry("&#xD800;")),
        document(entry("&#xFFFE;")),
        document(entry("&#X41;")),  # 'X' is not a hexadecimal reference
        document(entry("&#99999999;")),
        document(entry("<![CDATA[x]]>")),
        document(entry("a<!-- c -->b")),
        document(entry("a<?pi x?>b")),
        document(entry("a\rb")),  # a parser turns a raw carriage return into a line feed
        document(entry("a]]>b")),
        document(entry("a\x01b")),
        document(entry("a\ufffeb")),
        document(entry("x"), declaration=b'<?xml version="1.0" encoding="latin-1"?>'),
        document(entry("x"), declaration=b"<?xml version='1.0'?>"),
        document(entry("x"), declaration=codecs.BOM_UTF8 + codecs.BOM_UTF8),
        document(entry("x")).replace(b"<QueueMessage>", b"<QueueMessage a='1'>"),
        document(entry("x")).replace(b"<QueueMessage>", b"<QueueMessage >"),
        document(entry("x")).replace(b"<QueueMessage>", b"\n<QueueMessage>"),
        document(entry("x")) + b"\n",
        document(entry("x") + "<Unknown/>"),
        document(entry("x").replace("</MessageId>", "</MessageId><NewField>y</NewField>")),
        document(entry("x").replace("<MessageText>x</MessageText>", "<MessageText/>")),
        document(entry("x", message_id="..")),
        document(entry("x", receipt="a b")),
        document(entry("x", count="+1")),
        document(entry("x", count="\u0661")),  # an Arabic-Indic digit: int() takes it, the service never sends it
        document(entry("x", date="Fri, 27 Nov 2026 00:00:00 GMT\u00a0")),
        document(*[entry(str(i)) for i in range(33)]),  # more than an answer holds
        document(*[entry(str(i), receipt=None) for i in range(33)]),
        document(*[entry(None, count=None) for i in range(33)]),
        # fields the fast path's columns refuse: markup, references, control characters, non-ASCII
        document(entry("x", message_id="a&amp;b")),
        document(entry("x", message_id="a\x01b")),
        document(entry("x", message_id="a" * 1025)),  # longer than the service issues
        document(entry("x", receipt="a" * 1025)),
        document(entry("x", receipt="a&#43;b")),
        document(entry("x", receipt="a\tb")),
        document(entry("x", count="1&#48;")),
        document(entry("x", count="")),
        document(entry("x", count="1\x7f")),
        document(entry("x", date="Fri, 27 Nov 2026 00:00:00 G&#77;T")),
        document(entry("x", date="Fri, 27 Nov 2026\t00:00:00 GMT")),
        document(entry("x", date="Fri, 27 Nov 2026 00:00:00 GMT\x0b")),
        document(entry("x", date="Fri, 27 Nov 2026 00:00:00 GMT<Unknown/>")),
        document(entry(None, receipt=None), entry(None, receipt=None)),  # neither shape: no receipt, no text
        document(entry("x"), entry("x", receipt=None)),  # mixed shapes
        document(entry("x", receipt=None), entry("x")),
        document(entry(None, count=None), entry("x")),
        document(entry("x"), " ", entry("x")),  # anything between entries
        document(entry("x"), "\n", entry("x")),
        document(entry("x"), "<Unknown/>", entry("x")),
        document("\n", entry("x")),
        document(entry("x"), "\n"),
        document(entry("x")).replace(b"x", b"\xff"),  # not UTF-8
        document(entry("x"))[:-1],  # truncated
        b"<QueueMessagesList/>trailing",
        b"<Error><Code>x</Code></Error>",
        b"",
    ],
)
def test_anything_but_the_service_s_shape_is_left_to_the_checked_parser(body):
    assert fast_messages(body) is None
    try:  # and parse_messages answers as the checked parser does
        expected = checked_messages(body)
    except MalformedResponse as exc:
        with pytest.raises(MalformedResponse) as info:
            parse_messages(body)
        assert str(info.value) == str(exc)
    else:
        assert parse_messages(body) == expected


# ---- the models built from the records ----------------------------------------------------------


def test_peeked_messages_and_receipts_are_the_objects_their_constructors_make():
    """They are built by setting their slots (a frozen dataclass's __init__ costs twice that)."""
    when = datetime(2026, 11, 27, tzinfo=timezone.utc)
    [peek] = agree(document(entry("hi", receipt=None, count="3"))) or []
    peeked = peeked_message(peek, "hi")
    made = PeekedMessage(ID, "hi", 3, when, when)
    assert type(peeked) is PeekedMessage
    assert peeked == made and hash(peeked) == hash(made) and repr(peeked) == repr(made)
    assert dataclasses.astuple(peeked) == dataclasses.astuple(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        peeked.content = "other"  # type: ignore[misc]
    [put] = agree(document(entry(None, count=None))) or []
    receipt = send_receipt(put)
    made_receipt = SendReceipt(ID, RECEIPT, when, when, when)
    assert type(receipt) is SendReceipt
    assert receipt == made_receipt and hash(receipt) == hash(made_receipt) and repr(receipt) == repr(made_receipt)
    assert dataclasses.replace(receipt, id="x") == SendReceipt("x", RECEIPT, when, when, when)
    with pytest.raises(dataclasses.FrozenInstanceError):
        receipt.id = "x"  # type: ignore[misc]


# ---- the empty answers -----------------------------------------------------------------------------


def test_the_empty_answers_are_the_ones_both_parsers_read_as_empty():
    assert len(_EMPTY) == 60
    for body in _EMPTY:
        assert fast_messages(body) == [] and checked_messages(body) == [] and parse_messages(body) == []
    assert AZURITE + b"<QueueMessagesList/>" in _EMPTY
    assert AZURE + b"<QueueMessagesList></QueueMessagesList>" in _EMPTY
    assert AZURE + b"<QueueMessagesList />" in _EMPTY  # what Azure writes (issue #24)


# ---- the list builders against the one-message builders ------------------------------------------


def records(*entries: str) -> list[RawMessage]:
    return checked_messages(document(*entries))


def outcome(build):
    """What ``build()`` returns (the models' fields), or the type and message of what it raises."""
    try:
        return [(type(m), dataclasses.astuple(m)) for m in build()]
    except Exception as exc:
        return type(exc), str(exc)


def received_one_by_one(raws, decode, cls):
    return [received_message(raw, decode(raw), cls) for raw in raws]


@dataclasses.dataclass(slots=True, eq=False)
class Subclass(QueueMessage):
    """A subclass whose __post_init__ must run."""

    seen: bool = False

    def __post_init__(self) -> None:
        self.seen = True


@dataclasses.dataclass(slots=True, eq=False)
class Refusing(QueueMessage):
    """A subclass that refuses a dequeue count with a ValueError (reported as a bad count)."""

    def __post_init__(self) -> None:
        if self.dequeue_count > 0:
            raise ValueError("no")


def test_the_list_builders_make_the_objects_their_constructors_make():
    when = datetime(2026, 11, 27, tzinfo=timezone.utc)
    raws = records(entry("a"), entry("b", count="2"))
    [first, second] = received_messages(raws, lambda raw: raw.text, QueueMessage)
    assert type(first) is QueueMessage
    assert dataclasses.astuple(second) == dataclasses.astuple(QueueMessage(ID, "b", RECEIPT, 2, when, when, when))
    second.pop_receipt = "new"  # still mutable
    assert [m.seen for m in received_messages(raws, lambda raw: raw.text, Subclass)] == [True, True]
    [peeked, _] = peeked_messages(records(entry("a", receipt=None), entry("b", receipt=None)), lambda raw: raw.text)
    made = PeekedMessage(ID, "a", 1, when, when)
    assert type(peeked) is PeekedMessage and peeked == made and hash(peeked) == hash(made)
    assert peeked_messages([], str) == [] and received_messages([], str, QueueMessage) == []


@pytest.mark.parametrize("declaration", [AZURITE, AZURE, b""])
def test_a_put_message_answer_takes_its_own_fast_path(declaration):
    body = document(entry(None, count=None), declaration=declaration)
    assert agree(body) is not None
    [raw] = fast_put_answer(body) or []
    assert (raw.id, raw.pop_receipt, raw.inserted_on, raw.dequeue_count) == (ID, RECEIPT, DATE, None)
    for other in (
        document(entry(None, count=None), entry(None, count=None)),
        document(entry()),
        document(entry(receipt=None)),
    ):
        assert fast_put_answer(other) is None  # two entries, a received or a peeked one: not a Put answer


def test_a_class_refusing_the_first_message_is_reported_before_the_second_one_s_decoding_fails():
    """The one-message loop builds message 1 before it decodes message 2: so must the list builder."""
    raws = records(entry("a", count="1"), entry("b", count="1"))

    def decode(raw: RawMessage) -> str:
        if raw is raws[1]:
            raise ZeroDivisionError("the second message does not decode")
        return raw.text or ""

    with pytest.raises(MalformedResponse, match="DequeueCount"):
        received_one_by_one(raws, decode, Refusing)
    with pytest.raises(MalformedResponse, match="DequeueCount"):
        received_messages(raws, decode, Refusing)


# ---- issue 22: answers heavy with references ------------------------------------------------------


def test_a_carriage_return_heavy_answer_is_read_by_the_fast_path():
    """Azurite writes each carriage return as &#xD;: 32 messages of 64 KiB of them, 10.5 MB (about
    850 ms as a Python call a reference; the str.replace per reference kind costs milliseconds)."""
    body = document(*[entry("&#xD;" * 65536, message_id=f"id{i}") for i in range(32)])
    assert len(body) > 10_000_000
    fast = fast_messages(body)
    assert fast is not None and fast == checked_messages(body)
    assert {raw.text for raw in fast} == {"\r" * 65536}


def test_an_answer_with_many_uncommon_references_is_left_to_the_checked_parser():
    """A reference the services do not write costs the fast path a Python call; past a few hundred
    in an answer, the checked parser (expat, in C) reads it instead. A few are still read fast."""
    many = document(*[entry("&#233;" * 100, message_id=f"id{i}") for i in range(32)])
    assert fast_messages(many) is None
    assert {raw.text for raw in parse_messages(many)} == {"é" * 100}
    few = document(entry("&#233;&#x1F600;" * 10))
    assert agree(few) is not None


# ---- issue 22: counts the service never writes, more messages than asked for --------------------

BAD_COUNTS = ["-5", "\u0669\u0669", " 1_0 ", "1_0", "+1", "1 ", "\uff11", "0x1", "1e3", ""]


@pytest.mark.parametrize("count", BAD_COUNTS)
@pytest.mark.parametrize("peeked", [True, False], ids=["peek", "receive"])
def test_a_count_the_service_never_writes_is_refused_whichever_parser_reads_it(count, peeked):
    """int() takes ' 1_0 ', '-5' and Arabic-Indic digits; the service writes ASCII digits. The fast
    path declines such a count, and the models built from checked_messages' records refuse it (a
    negative count would slip past max_dequeue_count)."""
    body = document(entry("x", receipt=None if peeked else RECEIPT, count=count))
    assert fast_messages(body) is None
    raws = checked_messages(body)
    assert parse_messages(body) == raws
    words = "without a valid DequeueCount"
    if peeked:
        with pytest.raises(MalformedResponse, match=words):
            peeked_messages(raws, text_of)
        with pytest.raises(MalformedResponse, match=words):
            peeked_message(raws[0], "x")
    else:
        with pytest.raises(MalformedResponse, match=words):
            received_messages(raws, text_of, QueueMessage)
        with pytest.raises(MalformedResponse, match=words):
            received_message(raws[0], "x", QueueMessage)


@pytest.mark.parametrize(
    ("entries", "limit", "words"),
    [
        ([entry(f"m{i}", message_id=f"id{i}") for i in range(5)], 1, "5 messages where at most 1"),
        ([entry(f"m{i}", message_id=f"id{i}") for i in range(33)], 32, "33 messages where at most 32"),
        ([entry("a", message_id="same"), entry("b", message_id="same")], 32, "one message twice"),
        ([entry("a", receipt=None), entry("b", receipt=None)], 2, "one message twice"),
    ],
    ids=["5 for 1", "33 for 32", "an id twice", "an id twice, peeked"],
)
def test_more_messages_than_asked_for_or_one_twice_is_refused_whichever_parser_reads_them(entries, limit, words):
    body = document(*entries)
    for raws in (fast_messages(body), checked_messages(body), parse_messages(body)):
        if raws is not None:  # the fast path declines 33 entries
            with pytest.raises(MalformedResponse, match=words):
                answered(raws, limit, "Get Messages")
    assert answered(checked_messages(document(*entries[:1])), limit, "Get Messages")
