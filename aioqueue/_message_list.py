"""The messages list, bytes to raw records: the Get, Peek and Put Messages answers read into
:class:`~._messages.RawMessage` records (which :mod:`._messages` turns into the public models), and the
Put/Update Message body. No I/O here.

Each answer has two readers that give the same records: a fast path for an answer exactly as the
service writes it, and beside it its checked twin, which reads any well-formed document safely through
:func:`._xml.parse` (no DTD, no entity, bounded size and depth). The fast path declines (None) anything
else, and :mod:`tests.transport.test_fast_paths` holds one property test for each pair:

- :func:`fast_messages` and :func:`checked_messages`: ``test_fast_messages_equals_checked_messages``;
- :func:`fast_put_answer` and :func:`checked_messages`: ``test_fast_put_answer_equals_checked_messages``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import partial
from itertools import product, repeat
from xml.sax.saxutils import escape

from ._errors import MalformedResponse
from ._messages import RawMessage
from ._validation import MESSAGE_ID as _MESSAGE_ID
from ._validation import POP_RECEIPT as _POP_RECEIPT
from ._xml import _BOM, _root

__all__ = [
    "checked_messages",
    "escape_text",
    "fast_messages",
    "fast_put_answer",
    "message_body",
    "parse_messages",
    "parse_put_answer",
]


def message_body(text: str) -> bytes:
    """The Put/Update Message body for already-encoded message text."""
    return b"<QueueMessage><MessageText>" + escape_text(text).encode("utf-8") + b"</MessageText></QueueMessage>"


def escape_text(text: str) -> str:
    """XML-escape text; carriage returns are written as references so parsers do not normalise them."""
    escaped = escape(text)
    return escaped.replace("\r", "&#13;") if "\r" in escaped else escaped


def parse_messages(body: bytes) -> list[RawMessage]:
    """The ``<QueueMessage>`` entries of a Get/Peek/Put Messages answer, as raw records.

    An answer exactly as the service writes it is read by :func:`fast_messages`; anything else
    (other whitespace, an unknown element, a comment, a DTD, an unusual reference...) by the checked
    parser, which refuses what is unsafe or malformed. Both give the same records.
    """
    if len(body) <= _EMPTY_SIZE and body in _EMPTY:  # the length first: hashing a full answer costs
        return []
    fast = fast_messages(body)
    return fast if fast is not None else checked_messages(body)


def checked_messages(body: bytes) -> list[RawMessage]:
    """:func:`parse_messages` through the checked parser: any well-formed document, safely."""
    out: list[RawMessage] = []
    # at most 32 messages of 7 fields each
    for m in _root(body, "QueueMessagesList", 32 * 9 + 8):  # the messages are its children; nothing else is
        if m.tag != "QueueMessage":
            continue
        fields = {child.tag: child.text or "" for child in m}
        get = fields.get
        message_id = get("MessageId")
        if message_id is None:
            raise MalformedResponse("a message in the response has no <MessageId>")
        receipt = get("PopReceipt")
        # an id or receipt the service never issues ("..", "a/b") would reach a URL when it is settled
        if not _MESSAGE_ID.fullmatch(message_id) or (receipt is not None and not _POP_RECEIPT.fullmatch(receipt)):
            raise MalformedResponse("a message in the response has an id or pop receipt the service never issues")
        out.append(
            RawMessage(
                message_id,
                get("InsertionTime"),
                get("ExpirationTime"),
                receipt,
                get("TimeNextVisible"),
                get("DequeueCount"),
                get("MessageText"),
            )
        )
    return out


# The fast path of checked_messages (its twin: the same records, or None to leave the answer to it);
# tests/transport/test_fast_paths.py: test_fast_messages_equals_checked_messages.
def fast_messages(body: bytes) -> list[RawMessage] | None:
    """The entries of an answer that is exactly the service's shape (see ``_FAST_HEAD``), or None for the
    checked parser to read; it never reads a document differently from it. In three steps: the head,
    the entries cut into columns (:func:`_fast_columns`), the columns checked into records
    (:func:`_fast_records`)."""
    doc = _utf8(body)
    head = None if doc is None else _FAST_HEAD.match(doc)
    if doc is None or head is None:
        return None
    pos = head.end()
    if head.group(1):  # <QueueMessagesList/>, or Azure's <QueueMessagesList />
        return [] if pos == len(doc) else None
    first = doc.find("</QueueMessage>", pos)
    if first == -1:  # no entry
        return [] if len(doc) == pos + len(_FAST_END) and doc.endswith(_FAST_END) else None
    received = doc.find("<PopReceipt>", pos, first) != -1
    text = doc.find("<MessageText>", pos, first) != -1
    columns = _fast_columns(doc, pos, received, text)
    return None if columns is None else _fast_records(columns, received, text)


# The fast path of the Put Message answer, whose twin is checked_messages too (parse_put_answer goes
# the general way otherwise); tests/transport/test_fast_paths.py: test_fast_put_answer_equals_checked_messages.
def fast_put_answer(body: bytes) -> list[RawMessage] | None:
    """The one entry of a Put Message answer in exactly the service's shape (``_FAST_PUT``), or None."""
    doc = _utf8(body)
    m = None if doc is None else _FAST_PUT.fullmatch(doc)
    if m is None:
        return None
    return [_make_raw((*m.groups(), None, None))]  # RawMessage's order: no count, no text


def parse_put_answer(body: bytes) -> list[RawMessage]:
    """:func:`parse_messages` for a Put Message answer: its one entry in one match, when it is exactly
    the service's shape; anything else goes the general way (the same records either way)."""
    fast = fast_put_answer(body)
    return fast if fast is not None else parse_messages(body)


# ---- the fast paths' steps and tables ------------------------------------------------------------


def _fast_columns(doc: str, pos: int, received: bool, text: bool) -> list[list[str]] | None:
    """The entries after the head (which ends at ``pos``) cut into columns, a field's values each, when
    every entry has the first one's shape and nothing stands between them or after the last; else None."""
    shape = _FAST_SHAPES.get((received, text))
    if shape is None:
        return None
    entry, slices = shape
    # a 33rd entry (more than any answer holds) is left uncut in the last part, so declined below
    parts = entry.split(doc, 32)
    width = len(slices) + 1  # an entry's fields and what follows the entry
    # the head, then entries with nothing between them, then the end and nothing after it
    if len(parts[0]) != pos or parts[-1] != _FAST_END or any(parts[width:-1:width]):
        return None
    return list(map(parts.__getitem__, slices))


def _fast_records(columns: list[list[str]], received: bool, text: bool) -> list[RawMessage] | None:
    """The records of an answer's columns (see ``_FAST_HEAD``), each column checked as a whole, or None
    when a field holds what the fast path leaves to the checked parser."""
    ids, inserted, expires = columns[:3]
    times = inserted + expires
    receipts: Iterable[str | None] = repeat(None)
    visible: Iterable[str | None] = repeat(None)
    counts: Iterable[str | None] = repeat(None)
    texts: Iterable[str | None] = repeat(None)
    if received:
        receipts, visible = columns[3:5]
        if not _only(receipts, _RECEIPT_CHARS):
            return None
        times += visible
    if text:
        counts, raw_texts = columns[-2:]
        if not "".join(counts).encode().isdigit():
            return None
        resolved = _fast_texts(raw_texts)
        if resolved is None:
            return None
        texts = resolved
    if not (_only(ids, _ID_CHARS) and _only(set(times), _TIME_CHARS)):  # a few distinct times
        return None
    # the absent fields repeat None for as long as the columns run
    return list(map(_make_raw, zip(ids, inserted, expires, receipts, visible, counts, texts, strict=False)))


# The empty answers the fast path reads (an answer of nothing, as when a queue is polled empty):
# with or without Azure's byte-order mark, each declaration its head allows, each form of an empty root
# (Azure writes '<QueueMessagesList />', with a space, Azurite '<QueueMessagesList/>').
_EMPTY = frozenset(
    bom + (b'<?xml version="1.0"' + encoding + standalone + b"?>" if declared else b"") + root
    for bom, declared, encoding, standalone, root in product(
        (b"", _BOM),
        (True, False),
        (b"", b' encoding="UTF-8"', b' encoding="utf-8"'),
        (b"", b' standalone="yes"', b' standalone="no"'),
        (b"<QueueMessagesList/>", b"<QueueMessagesList />", b"<QueueMessagesList></QueueMessagesList>"),
    )
)
_EMPTY_SIZE = max(map(len, _EMPTY))

# The messages list exactly as Azure and Azurite write it: an optional byte-order mark and XML
# declaration (UTF-8), then the root with its entries and nothing else, all entries of one of the
# three shapes the service writes (Get, Peek, Put Messages; the fields in the service's order). Ids
# and pop receipts are as the service issues them (within the patterns the checked parser holds them
# to), times are ASCII words and digits (their parser checks them), counts ASCII digits. A message
# text holds no markup and no raw '>' (both services write &gt;, so no ']]>' either); its references
# are resolved below. No field holds a control character (so no carriage return, which a parser
# would turn into a line feed) or anything else XML 1.0 cannot carry. No DTD can stand anywhere in
# such a document, so no entity but the five predefined ones.
_FAST_HEAD = re.compile(
    '(?:<\\?xml version="1\\.0"(?: encoding="(?:UTF|utf)-8")?(?: standalone="(?:yes|no)")?\\?>)?'
    "<QueueMessagesList( ?/|)>"
)
_FAST_END = "</QueueMessagesList>"


def _fast_entry(*tags: str) -> tuple[re.Pattern[str], list[slice]]:
    """An entry of one shape: literal tags around groups of anything but '<' (sre's tightest loop), so
    one split cuts a whole answer into its fields; they are checked afterwards, a column at a time. An
    id or pop receipt is 1..1024 characters, as MESSAGE_ID and POP_RECEIPT hold them, a count not empty.
    With it, the slices of the split's list that are its columns (a field, then what follows an entry)."""
    pattern = "".join(f"<{t}>([^<]{_FAST_SIZES.get(t, '*')})</{t}>" for t in tags)
    width = len(tags) + 1
    return re.compile(f"<QueueMessage>{pattern}</QueueMessage>"), [slice(i, None, width) for i in range(1, width)]


_FAST_SIZES = {"MessageId": "{1,1024}", "PopReceipt": "{1,1024}", "DequeueCount": "+"}
_FIRST = ("MessageId", "InsertionTime", "ExpirationTime")
_RECEIPT = ("PopReceipt", "TimeNextVisible")
# (whether the first entry holds <PopReceipt>, whether it holds <MessageText>) -> every entry's shape
_FAST_SHAPES = {
    (True, True): _fast_entry(*_FIRST, *_RECEIPT, "DequeueCount", "MessageText"),  # Get Messages
    (False, True): _fast_entry(*_FIRST, "DequeueCount", "MessageText"),  # Peek Messages
    (True, False): _fast_entry(*_FIRST, *_RECEIPT),  # Put Message
}
# what no message text holds: control characters (a raw '\r' included) and U+FFFE, U+FFFF (a
# surrogate cannot come out of a strict UTF-8 decode); each is looked for with one memchr-fast scan
_FAST_REFUSED = tuple(map(chr, [*range(0, 9), *range(11, 32), 0xFFFE, 0xFFFF]))
_REFERENCE = re.compile("&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,7})|#x([0-9A-Fa-f]{1,6}));")
_PREDEFINED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_make_raw = partial(tuple.__new__, RawMessage)  # RawMessage._make without its length check: rows come from zip


class _Decline(Exception):
    """The fast path leaves this answer to the checked parser."""


def _resolve(match: re.Match[str]) -> str:
    name, decimal, hexadecimal = match.groups()
    if name is not None:
        return _PREDEFINED[name]
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    # XML 1.0's Char: a reference to anything else is malformed, and that is the checked parser's to say
    if not (0x20 <= code <= 0xD7FF or code in (0x9, 0xA, 0xD) or 0xE000 <= code <= 0xFFFD or 0xFFFF < code <= 0x10FFFF):
        raise _Decline
    return chr(code)


def _resolve_references(text: str) -> str | None:
    """The text with its references resolved, a Python call each; None if any '&' starts something else."""
    try:
        resolved, count = _REFERENCE.subn(_resolve, text)
    except _Decline:
        return None
    return resolved if count == text.count("&") else None


# The references the services write (Azurite: &#xD; for a carriage return, and &amp; &lt; &gt;), each
# resolved with one str.replace over a text (C: no call a reference, so 32 texts of 64 KiB of &#xD;
# cost milliseconds, where a call a reference cost 850 ms). None of them makes an '&' or a ';', and
# each '&' starts one reference, so their order does not matter; &amp; goes last, as it makes '&'.
_COMMON_REFERENCES = {"&#xD;": "\r", "&#13;": "\r", "&#xA;": "\n", "&#10;": "\n", "&#x9;": "\t", "&#9;": "\t"}
_COMMON_REFERENCES |= {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}
# Any other reference costs a Python call: an answer with more is left to the checked parser (expat).
_MOST_OTHER_REFERENCES = 256


def _resolve_common(text: str) -> tuple[str, int]:
    """The text with the common references resolved (when they are all it holds), and how many '&'s it
    holds that start something else (0 when the text is resolved)."""
    for reference, character in _COMMON_REFERENCES.items():
        text = text.replace(reference, character)
    amps = text.count("&amp;")
    others = text.count("&") - amps
    return (text.replace("&amp;", "&") if amps and not others else text), others


def _only(column: Iterable[str], allowed: bytes) -> bool:
    """Whether the column's fields hold nothing but ASCII letters, digits and what ``allowed`` maps to
    a letter: checked on the joined column as bytes, a table lookup a byte (str's checks consult
    Unicode's tables, a pattern's class costs several times that)."""
    joined = "".join(column)
    return joined.isascii() and joined.encode("ascii").translate(allowed).isalnum()


# a table for bytes.translate: these characters to a letter, every other byte to itself
_ID_CHARS = bytes.maketrans(b"-_", b"aa")  # within MESSAGE_ID
_RECEIPT_CHARS = bytes.maketrans(b"+/=_-", b"aaaaa")  # within POP_RECEIPT
_TIME_CHARS = bytes.maketrans(b" ,:", b"aaa")  # Fri, 27 Nov 2026 00:00:00 GMT


def _fast_texts(texts: list[str]) -> list[str] | None:
    """The message texts, references resolved, or None for the checked parser to read them."""
    joined = "".join(texts)
    if ">" in joined:
        return None
    for refused in _FAST_REFUSED:
        if refused in joined:
            return None
    if "&" not in joined:
        return texts
    budget = _MOST_OTHER_REFERENCES
    resolved = []
    for text in texts:
        if "&" in text:
            if text.count("&") <= 8:  # a few: a call each costs less than ten scans of the text
                resolved_text = _resolve_references(text)
            else:  # the general way (from the text as written) only for a few other references an answer
                common, others = _resolve_common(text)
                budget -= others
                resolved_text = common if not others else _resolve_references(text) if budget >= 0 else None
            if resolved_text is None:
                return None
            text = resolved_text
        resolved.append(text)
    return resolved


def _utf8(body: bytes) -> str | None:
    """The answer as text for the fast paths, or None when it is not strict UTF-8. Without Azure's
    byte-order mark: one non-ASCII character would widen every string cut from the text."""
    try:
        return str(memoryview(body)[3:], "utf-8") if body.startswith(_BOM) else body.decode("utf-8")
    except UnicodeDecodeError:
        return None


# A Put Message answer: one entry of the Put shape, every field within the characters its check allows
# (so nothing in it is a reference or markup), in one match. The general fast path's fixed cost (a split
# and a check a column) is for 32 entries; for this one it would double the parse, on every send.
_FAST_PUT = re.compile(
    _FAST_HEAD.pattern.replace("( ?/|)", "", 1) + f"<QueueMessage><MessageId>({_MESSAGE_ID.pattern})</MessageId>"
    "<InsertionTime>([A-Za-z0-9 ,:]*)</InsertionTime><ExpirationTime>([A-Za-z0-9 ,:]*)</ExpirationTime>"
    f"<PopReceipt>({_POP_RECEIPT.pattern})</PopReceipt><TimeNextVisible>([A-Za-z0-9 ,:]*)</TimeNextVisible>"
    "</QueueMessage></QueueMessagesList>"
)
