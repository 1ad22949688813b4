"""Message encodings: how content becomes the message text the service stores, and back.

``text``    str, XML-escaped on the wire; characters XML 1.0 cannot carry are refused.
``base64``  str, UTF-8 then base64 (what Azure Functions and the official SDK's text base64 policy use).
``binary``  bytes, base64 on the wire (the official SDK's binary base64 policy).
``json``    any JSON value, serialised compactly as text.
``base64-json``  any JSON value, as base64 of its UTF-8 JSON: what Azure Functions' queue trigger reads
            and its output binding writes (and the official SDK with ``BinaryBase64EncodePolicy`` over
            JSON bytes), so a worker and a Functions app can share a queue both ways.

The service limit is 64 KiB of message text after encoding; base64 leaves about 48 KiB of raw bytes.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Protocol, runtime_checkable

from ._errors import ConfigurationError, MessageEncodingError, MessageTooLarge

__all__ = ["MAX_MESSAGE_BYTES", "MessageEncoding", "get_encoding"]

MAX_MESSAGE_BYTES = 64 * 1024
# Characters outside XML 1.0's Char production (plus lone surrogates).
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@runtime_checkable
class MessageEncoding(Protocol):
    """Turns content into message text and back. Implement both methods to bring your own."""

    def encode(self, content: Any) -> str:
        """Message text for the content (at most 64 KiB of UTF-8 once encoded; XML 1.0 characters only)."""
        ...

    def decode(self, text: str) -> Any:
        """The content back from message text; raise MessageEncodingError when it does not decode."""
        ...


def check_text(text: str) -> str:
    """Refuse text that XML 1.0 cannot carry, and text over the 64 KiB limit."""
    # every character XML 1.0 cannot carry is non-printable; most text is printable, and that test is cheap
    bad = None if text.isprintable() else _INVALID_XML.search(text)
    if bad is not None:
        raise MessageEncodingError(
            f"message text has character U+{ord(bad.group()):04X} at index {bad.start()}, which XML 1.0 "
            "cannot carry; use message_encoding='base64' or 'binary'"
        )
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"message is {size} bytes after encoding; the service limit is 65536 (64 KiB) "
            "(large_payloads=BlobPayloads(container=...) sends larger content through a blob)"
        )
    return text


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 for it
        raise MessageEncodingError(
            f"message content has character U+{ord(exc.object[exc.start]):04X} at index {exc.start}, "
            "which UTF-8 cannot carry"
        ) from None


class TextEncoding:
    """``str`` content sent as XML-escaped text."""

    name = "text"

    def encode(self, content: Any) -> str:
        if not isinstance(content, str):
            raise MessageEncodingError(
                f"message_encoding='text' takes str content, not {type(content).__name__}; "
                "use 'binary' for bytes or 'json' for other values"
            )
        return content

    def decode(self, text: str) -> Any:
        return text


class Base64Encoding:
    """``str`` content sent as base64 of its UTF-8 bytes."""

    name = "base64"

    def encode(self, content: Any) -> str:
        if not isinstance(content, str):
            raise MessageEncodingError(
                f"message_encoding='base64' takes str content, not {type(content).__name__}; use 'binary' for bytes"
            )
        return base64.b64encode(_utf8(content)).decode("ascii")

    def decode(self, text: str) -> Any:
        try:
            return base64.b64decode(text, validate=True).decode("utf-8")
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError, or non-ASCII text
            raise MessageEncodingError(f"message text is not base64 of UTF-8 text: {exc}") from None


class BinaryEncoding:
    """``bytes`` content sent as base64."""

    name = "binary"

    def encode(self, content: Any) -> str:
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise MessageEncodingError(f"message_encoding='binary' takes bytes content, not {type(content).__name__}")
        return base64.b64encode(content).decode("ascii")

    def decode(self, text: str) -> Any:
        try:
            return base64.b64decode(text, validate=True)
        except ValueError as exc:  # binascii.Error, or non-ASCII text
            raise MessageEncodingError(f"message text is not base64: {exc}") from None


class JsonEncoding:
    """Any JSON-serialisable value, sent as compact JSON text."""

    name = "json"

    def encode(self, content: Any) -> str:
        try:
            return json.dumps(content, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise MessageEncodingError(f"message content is not JSON-serialisable: {exc}") from None

    def decode(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise MessageEncodingError(f"message text is not JSON: {exc}") from None


class Base64JsonEncoding:
    """Any JSON value, sent as base64 of its UTF-8 JSON (Azure Functions' queue message format).

    Decoding also takes plain JSON text that is not base64 (Functions' trigger does the same when a
    message is not base64), so messages written by a plain ``json`` producer are read too.
    """

    name = "base64-json"

    def encode(self, content: Any) -> str:
        return base64.b64encode(_utf8(JsonEncoding().encode(content))).decode("ascii")

    def decode(self, text: str) -> Any:
        try:
            data = base64.b64decode(text, validate=True).decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError, or non-ASCII text
            data = text  # not base64: plain JSON text
        try:
            return json.loads(data)
        except ValueError as exc:
            raise MessageEncodingError(f"message text is neither base64 of JSON nor JSON: {exc}") from None


_BUILTIN: dict[str, MessageEncoding] = {
    "text": TextEncoding(),
    "base64": Base64Encoding(),
    "binary": BinaryEncoding(),
    "json": JsonEncoding(),
    "base64-json": Base64JsonEncoding(),
}


def get_encoding(value: str | MessageEncoding) -> MessageEncoding:
    """Resolve the ``message_encoding`` option."""
    if isinstance(value, str):
        try:
            return _BUILTIN[value]
        except KeyError:
            raise ConfigurationError(
                f"message_encoding must be one of {sorted(_BUILTIN)} or an object with encode/decode, not {value!r}"
            ) from None
    if isinstance(value, MessageEncoding):
        return value
    raise ConfigurationError(
        f"message_encoding must be one of {sorted(_BUILTIN)} or an object with encode/decode methods"
    )


def encode_message(encoding: MessageEncoding, content: Any) -> str:
    """Encode content and check it against XML 1.0 and the 64 KiB limit."""
    text = encoding.encode(content)
    if not isinstance(text, str):
        raise MessageEncodingError(f"the message encoding returned {type(text).__name__}, not str")
    return check_text(text)
