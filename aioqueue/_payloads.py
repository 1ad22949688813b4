"""Large payloads (claim-check): content over the threshold goes to a block blob, and the queue gets a
small JSON reference to it. :class:`BlobPayloads` is the option; :class:`PayloadStore` uploads,
resolves (download, SHA-256 check, decode) and deletes, through :mod:`._blob_operations`.

The reference, the whole message text (plain JSON, whatever the client's message encoding)::

    {"aioqueue_payload":1,"container":"payloads","blob":"<queue>/<uuid>","size":1048576,
     "sha256":"<64 hex digits>","content_encoding":"binary","message_encoding":"binary"}

``content_encoding`` says what the blob's bytes are: "binary" (the content's bytes), "utf-8" (the
content's text) or "message-text" (the sender's encoded message text, in UTF-8, decoded with
``message_encoding``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ._blob_operations import BlobOperations, check_container
from ._encoding import MAX_MESSAGE_BYTES, Base64Encoding, BinaryEncoding, MessageEncoding, TextEncoding, check_text
from ._errors import AioQueueError, ConfigurationError, MessageEncodingError, ServiceError

__all__ = ["REFERENCE_PREFIX", "BlobPayloads", "PayloadError", "PayloadStore", "PayloadUnavailable", "Reference"]

REFERENCE_PREFIX = '{"aioqueue_payload":1,'
_EXPIRES = "aioqueue_expires"  # blob metadata: when (Unix seconds) its message has surely expired, or "never"
_DEFAULT_TTL = 7 * 24 * 3600  # the service's default time to live
_SHA256 = re.compile(r"[0-9a-f]{64}")


class PayloadUnavailable(MessageEncodingError):
    """A message's large payload is missing, or its bytes do not match the reference's size or SHA-256.
    The message's failure (poisoned with this reason when poisoning is on), never an empty message."""


class PayloadError(AioQueueError):
    """Uploading a large message's payload failed, so no message was sent (the cause: ``__cause__``)."""


@dataclass(frozen=True)
class BlobPayloads:
    """Send content over ``threshold`` bytes (encoded; default 65536, the service's limit) through a
    block blob in ``container`` (created on first use), up to ``max_size`` bytes, uploaded and
    downloaded ``block_size`` bytes at a time (single-shot Put Blob up to one block). ``endpoint``:
    the account's Blob endpoint, when the connection string or queue URL does not give it.
    ``grace``: seconds past a message's time to live after which its blob counts as an orphan."""

    container: str
    threshold: int | None = None
    max_size: int = 256 * 1024 * 1024
    block_size: int = 4 * 1024 * 1024
    endpoint: str | None = None
    grace: float = 24 * 3600

    def __post_init__(self) -> None:
        check_container(self.container)
        threshold = self.threshold
        if threshold is not None and (type(threshold) is not int or not 1024 <= threshold <= MAX_MESSAGE_BYTES):
            raise ConfigurationError(f"threshold must be an int from 1024 to {MAX_MESSAGE_BYTES} (the service's limit)")
        for name in ("max_size", "block_size"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigurationError(f"{name} must be a positive int (bytes)")
        if self.block_size > 4000 * 1024 * 1024:
            raise ConfigurationError("block_size must be at most 4000 MiB (the service's largest block)")
        if self.max_size > 50_000 * self.block_size:
            raise ConfigurationError("max_size must fit in 50,000 blocks of block_size")
        if not isinstance(self.grace, (int, float)) or not 0 <= self.grace < math.inf:
            raise ConfigurationError("grace must be a non-negative number of seconds")
        if self.endpoint is not None and not isinstance(self.endpoint, str):
            raise ConfigurationError("endpoint must be the Blob endpoint's URL (a str)")

    @property
    def limit(self) -> int:
        return MAX_MESSAGE_BYTES if self.threshold is None else self.threshold


@dataclass(frozen=True)
class Reference:
    container: str
    blob: str
    size: int
    sha256: str
    content_encoding: str
    message_encoding: str

    def text(self) -> str:
        fields = {k: v for k, v in self.__dict__.items()}
        return REFERENCE_PREFIX + json.dumps(fields, separators=(",", ":"))[1:]

    @classmethod
    def parse(cls, text: str) -> Reference | None:
        """The reference a message's text is, or None for any other text."""
        if not text.startswith(REFERENCE_PREFIX):
            return None
        try:
            fields = json.loads(text)
            ref = cls(**{k: fields[k] for k in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None
        strs = ("container", "blob", "sha256", "content_encoding", "message_encoding")
        ok = (
            type(ref.size) is int  # not a bool, not a float
            and ref.size >= 0
            and all(type(getattr(ref, k)) is str for k in strs)
            and _SHA256.fullmatch(ref.sha256) is not None
        )
        return ref if ok else None


_BLOB_NAME = re.compile(r"([a-z0-9-]{3,63})/[0-9a-f]{32}")  # <queue>/<uuid hex>: the only name offload writes


def payload_queue(blob: str) -> str | None:
    """The queue a payload blob's name says it is for (``<queue>/<32 hex digits>``, the name a send
    writes); None for a name of any other shape (never read, never deleted)."""
    match = _BLOB_NAME.fullmatch(blob)
    return match.group(1) if match else None


def _split(encoding: MessageEncoding, content: Any, limit: int) -> tuple[str | None, memoryview | None, str]:
    """(message text, None) for content that fits; (None, the bytes to upload, content_encoding) for
    content over ``limit``. Bytes and text are sized before any encoding: a 100 MiB payload is never
    base64-encoded just to learn that it is too big."""
    kind = type(encoding)
    if kind is BinaryEncoding and isinstance(content, (bytes, bytearray, memoryview)):
        view = memoryview(content).cast("B")
        if 4 * math.ceil(len(view) / 3) > limit:
            return None, view, "binary"
    elif kind in (TextEncoding, Base64Encoding) and isinstance(content, str) and len(content) > limit:
        return None, memoryview(_utf8(content)), "utf-8"
    text = encoding.encode(content)
    if not isinstance(text, str):
        raise MessageEncodingError(f"the message encoding returned {type(text).__name__}, not str")
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size <= limit:
        return check_text(text), None, ""
    if kind is BinaryEncoding:
        return None, memoryview(content).cast("B"), "binary"
    if kind in (TextEncoding, Base64Encoding):
        return None, memoryview(_utf8(content)), "utf-8"
    return None, memoryview(_utf8(text)), "message-text"


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MessageEncodingError(f"message content has a character UTF-8 cannot carry at index {exc.start}") from None


class PayloadStore:
    """One client's large payloads: the option and the container's Blob operations."""

    __slots__ = ("blobs", "created", "options", "orphans")

    def __init__(self, options: BlobPayloads, blobs: BlobOperations) -> None:
        self.options = options
        self.blobs = blobs
        self.created = False
        self.orphans = 0  # payload blobs this client left behind (logged each time) for the sweep

    def _prepare(
        self, encoding: MessageEncoding, content: Any, limit: int | None = None
    ) -> tuple[str | None, memoryview | None, str]:
        """``_split`` for this option's threshold (or ``limit``), with a payload over ``max_size`` refused."""
        text, data, content_encoding = _split(encoding, content, self.options.limit if limit is None else limit)
        if data is not None and len(data) > self.options.max_size:
            raise MessageEncodingError(
                f"message payload is {len(data)} bytes, over large_payloads' max_size of {self.options.max_size}"
            )
        return text, data, content_encoding

    def check(self, encoding: MessageEncoding, content: Any) -> str | None:
        """The message text of content that fits in a message; None for content to offload (checked
        against ``max_size``, nothing uploaded)."""
        return self._prepare(encoding, content)[0]

    async def _ensure_container(self) -> None:
        if not self.created:
            await self.blobs.create_container()
            self.created = True

    async def offload(
        self, encoding: MessageEncoding, content: Any, queue_name: str, ttl: int | None, limit: int | None = None
    ) -> tuple[str, str | None]:
        """(the message text, the uploaded blob's name or None when the content fits in a message);
        ``limit``: the threshold for this message (0: any content but an empty one is uploaded)."""
        text, data, content_encoding = self._prepare(encoding, content, limit)
        if data is None:
            assert text is not None
            return text, None
        digest = hashlib.sha256(data).hexdigest()
        name = f"{queue_name}/{uuid.uuid4().hex}"
        ttl = _DEFAULT_TTL if ttl is None else ttl
        expires = "never" if ttl == -1 else str(int(time.time() + ttl + self.options.grace))
        await self._ensure_container()
        block = self.options.block_size
        await self.blobs.upload(name, data, block_size=block, single_shot=block, metadata={_EXPIRES: expires})
        encoding_name = str(getattr(encoding, "name", type(encoding).__name__))
        ref = Reference(self.blobs.container, name, len(data), digest, content_encoding, encoding_name)
        return ref.text(), name

    async def resolve(self, ref: Reference, encoding: MessageEncoding) -> Any:
        """The content a reference points at: downloaded a block at a time, its size and SHA-256
        checked, decoded. PayloadUnavailable when missing, not matching or not decoding; a transport
        or other service failure is raised as it is (the message is then released for another try)."""
        if ref.container != self.blobs.container:
            raise PayloadUnavailable(f"its payload is in container {ref.container!r}, not this client's")
        if payload_queue(ref.blob) is None:
            raise PayloadUnavailable(f"its reference's blob {ref.blob[:80]!r} is not a payload blob name")
        if not 0 <= ref.size <= self.options.max_size:
            raise PayloadUnavailable(f"its payload's size {ref.size} is over large_payloads' max_size")
        sink = io.BytesIO()  # its getvalue() hands over its buffer: no second copy
        hasher = hashlib.sha256()

        def sized(total: int) -> None:  # the blob's real size, before any buffer is sized from ref.size
            if total != ref.size:
                than = "larger" if total > ref.size else "smaller"
                where = f"{ref.container}/{ref.blob}"
                raise PayloadUnavailable(
                    f"its payload blob {where} does not match its reference: "
                    f"{total} bytes, {than} than its reference's {ref.size}"
                )
            if total > 1:  # sized once, exactly: no growth by an eighth, no copies
                sink.seek(total - 1)
                sink.write(b"\0")
                sink.seek(0)

        def take(chunk: bytes) -> None:
            if sink.tell() + len(chunk) > ref.size:
                raise PayloadUnavailable(f"its payload blob {ref.container}/{ref.blob} is larger than its reference")
            hasher.update(chunk)
            sink.write(chunk)

        try:
            await self.blobs.download(ref.blob, take, chunk_size=self.options.block_size, sized=sized)
        except ServiceError as exc:
            if exc.status == 404:
                raise PayloadUnavailable(f"its payload blob {ref.container}/{ref.blob} is missing") from None
            raise
        if sink.tell() != ref.size or hasher.hexdigest() != ref.sha256:
            raise PayloadUnavailable(
                f"its payload blob {ref.container}/{ref.blob} does not match its reference (size or SHA-256)"
            )
        return _decode(sink.getvalue(), ref, encoding)

    async def delete(self, name: str) -> bool:
        """Delete a payload blob; True when it was there."""
        return await self.blobs.delete_blob(name, missing_ok=True)


def _decode(data: bytes, ref: Reference, encoding: MessageEncoding) -> Any:
    """The content of a payload's bytes; any failure to decode them is PayloadUnavailable (the
    message's failure, whatever the encoding raised: a MessageEncodingError, a custom one's bug)."""
    try:
        return _decode_as(data, ref, encoding)
    except PayloadUnavailable:
        raise
    except Exception as exc:
        raise PayloadUnavailable(f"its payload does not decode: {type(exc).__name__}: {str(exc)[:200]}") from None


def _decode_as(data: bytes, ref: Reference, encoding: MessageEncoding) -> Any:
    if ref.content_encoding == "binary":
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadUnavailable("its payload is not UTF-8 text") from None
    if ref.content_encoding == "utf-8":
        return text
    if ref.content_encoding == "message-text":
        return encoding.decode(text)
    raise PayloadUnavailable(f"its payload's content_encoding {ref.content_encoding[:40]!r} is unknown")


def expired(metadata: dict[str, str], now: float) -> bool:
    """Whether a payload blob's recorded expiry (``aioqueue_expires``) has passed at ``now`` (Unix
    seconds). ``never``, a missing or an unreadable value: not expired (such a blob is never swept)."""
    value = metadata.get(_EXPIRES, "")
    return value.isascii() and value.isdigit() and int(value) < now


async def sweep(store: PayloadStore, queue_name: str, *, dry_run: bool = False, now: float | None = None) -> int:
    """Delete the payload blobs of ``queue_name`` (named ``<queue>/...``) whose recorded expiry has
    passed; how many were deleted (with ``dry_run``, how many would be, nothing deleted). A blob
    gone meanwhile (another sweep, its message's delete) is not counted; a missing container is 0."""
    when = time.time() if now is None else now
    removed = 0
    marker: str | None = None
    while True:
        try:
            items, marker = await store.blobs.list_blobs(prefix=f"{queue_name}/", marker=marker)
        except ServiceError as exc:
            if exc.status == 404 and exc.error_code == "ContainerNotFound":
                return removed
            raise
        for item in items:
            if expired(item.metadata, when) and (dry_run or await store.delete(item.name)):
                removed += 1
        if marker is None:
            return removed


async def keep_forever(store: PayloadStore, ref: Reference) -> None:
    """Record ``never`` as a payload's expiry (its message's poison copy never expires): a sweep keeps
    it. A payload already missing is left so (its message is poisoned for that)."""
    if ref.container != store.blobs.container or payload_queue(ref.blob) is None:
        return
    try:
        await store.blobs.set_metadata(ref.blob, {_EXPIRES: "never"})
    except ServiceError as exc:
        if exc.status != 404:
            raise
