"""The wire half of the few Blob REST operations large payloads need, through the same transport,
signing and retries as the queue's (a sibling :class:`._transport.RetryingSession` on the account's
Blob endpoint, sharing the queue client's connection pool).

Put Blob (a block blob in one request), Put Block and Put Block List (above the single-shot size),
Get Blob in ranges (one range in memory at a time), Get Blob Properties, Set Blob Metadata, Delete
Blob, List Blobs (prefix, metadata, marker) and Create Container. One method per operation, called with checked values.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote
from xml.sax.saxutils import escape

from ._errors import ConfigurationError, MalformedResponse, ServiceError
from ._transport import Response, RetryingSession
from ._validation import metadata_headers
from ._xml import _opt, _root, _text

__all__ = ["BlobItem", "BlobOperations", "check_container"]

_CONTAINER = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")  # the same rule as a queue's name
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_OCTETS: Final = {"x-ms-blob-content-type": "application/octet-stream"}
_LIST_PAGE = 1000  # blobs a List Blobs page asks for
_LIST_ENTRY_BYTES = 6 * 8192 + 4096  # a blob's entry: its name, properties and up to 8 KiB of metadata, escaped
_NO_BODY_CAP = 1 << 62  # Get Blob Properties (HEAD): its Content-Length is the blob's, no body comes


def check_container(name: object) -> str:
    """3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric."""
    if not isinstance(name, str) or not _CONTAINER.fullmatch(name):
        raise ConfigurationError(
            f"invalid container name {str(name)[:80]!r}: use 3-63 lowercase letters, digits and single "
            "hyphens, starting and ending with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class BlobItem:
    """A blob as Get Blob Properties or List Blobs shows it."""

    name: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)


def _block_id(index: int) -> str:
    """Block ids of one blob must all be as long: the index, zero-padded, base64 (url-safe in a query)."""
    return base64.b64encode(f"{index:08d}".encode()).decode("ascii")


def _metadata(headers: Mapping[str, str]) -> dict[str, str]:
    return {k[10:].lower(): v for k, v in headers.items() if k[:10].lower() == "x-ms-meta-"}


def _not_found(response: Response) -> bool:
    return response.status == 404


def _code(response: Response) -> str | None:
    return response.headers.get("x-ms-error-code")


def parse_blob_list(body: bytes) -> tuple[list[BlobItem], str | None]:
    """One List Blobs page and its continuation marker (None at the end)."""
    root = _root(body, "EnumerationResults", _LIST_PAGE * 200 + 64)
    items: list[BlobItem] = []
    blobs = root.find("Blobs")
    if blobs is not None:
        for blob in blobs.iter("Blob"):
            size = _opt(blob.find("Properties"), "Content-Length") or "0"
            if not size.isdigit():
                raise MalformedResponse("List Blobs answered a Content-Length that is not a number")
            meta_el = blob.find("Metadata")
            meta = {c.tag.lower(): c.text or "" for c in meta_el} if meta_el is not None else {}
            items.append(BlobItem(_text(blob, "Name"), int(size), meta))
    return items, (_opt(root, "NextMarker") or None)


class BlobOperations:
    """One container's blobs, through ``http`` (the account's Blob endpoint)."""

    __slots__ = ("container", "http", "path")

    def __init__(self, http: RetryingSession, container: str) -> None:
        self.http = http
        self.container = check_container(container)
        self.path = f"/{container}"

    def _blob_path(self, name: str) -> str:
        return f"{self.path}/{quote(name, safe='/-_.~')}"

    async def create_container(self) -> bool:
        """Create Container: True when created, False when it was there (or a lost attempt made it)."""
        response = await self.http.request(
            "PUT", self.path, {"restype": "container"}, None, None, "primary",
            lambda r: r.status == 409 and _code(r) == "ContainerAlreadyExists",
        )  # fmt: skip
        return response.status == 201 and not response.after_lost_answer

    async def put_blob(self, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        """Put Blob: a block blob of ``data`` in one request (replacing any blob of that name)."""
        headers = {"x-ms-blob-type": "BlockBlob", **_OCTETS, **metadata_headers(metadata)}
        await self.http.request("PUT", self._blob_path(name), None, data, headers)

    async def put_block(self, name: str, index: int, data: bytes) -> str:
        """Put Block: block ``index`` of an uncommitted blob; its block id."""
        block = _block_id(index)
        await self.http.request("PUT", self._blob_path(name), {"comp": "block", "blockid": block}, data)
        return block

    async def put_block_list(self, name: str, blocks: list[str], metadata: Mapping[str, str] | None = None) -> None:
        """Put Block List: commit ``blocks`` in order as the blob's content."""
        body = "".join(f"<Latest>{escape(b)}</Latest>" for b in blocks)
        xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{body}</BlockList>'.encode()
        headers = {**_OCTETS, **metadata_headers(metadata)}
        await self.http.request("PUT", self._blob_path(name), {"comp": "blocklist"}, xml, headers)

    async def upload(
        self,
        name: str,
        data: memoryview,
        *,
        block_size: int,
        single_shot: int,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """``data`` as blob ``name``: one Put Blob up to ``single_shot`` bytes, else blocks of
        ``block_size`` (one in memory beside ``data`` at a time) and Put Block List."""
        if len(data) <= single_shot:
            await self.put_blob(name, bytes(data), metadata)
            return
        blocks = []
        for index, start in enumerate(range(0, len(data), block_size)):
            blocks.append(await self.put_block(name, index, bytes(data[start : start + block_size])))
        await self.put_block_list(name, blocks, metadata)

    async def download(
        self,
        name: str,
        sink: Callable[[bytes], object],
        *,
        chunk_size: int,
        sized: Callable[[int], object] | None = None,
    ) -> BlobItem:
        """Get Blob in ranges of ``chunk_size``: each range handed to ``sink`` as it comes (one in
        memory at a time); the blob's size and metadata (from the first answer). ``sized`` gets the
        blob's size (from the first answer) before ``sink`` gets any range."""
        start, total = 0, None
        metadata: dict[str, str] = {}
        while total is None or start < total:
            end = start + chunk_size - 1
            response = await self.http.request(
                "GET", self._blob_path(name), None, None, {"x-ms-range": f"bytes={start}-{end}"}, "primary",
                None, chunk_size,
            )  # fmt: skip
            if total is None:
                total = _total_size(response)
                metadata = _metadata(response.headers)
                if sized is not None:
                    sized(total)
            body = response.body
            if not body and start < total:
                raise MalformedResponse(f"Get Blob answered no bytes at offset {start} of {total}")
            sink(body)
            start += len(body)
            del body, response  # not held while the next range is read: one range in memory at a time
        return BlobItem(name, total, metadata)

    async def get_properties(self, name: str) -> BlobItem:
        """Get Blob Properties: the blob's size and metadata."""
        response = await self.http.request(
            "HEAD", self._blob_path(name), None, None, None, "primary", None, _NO_BODY_CAP
        )
        length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise MalformedResponse("Get Blob Properties answered without a valid Content-Length")
        return BlobItem(name, int(length), _metadata(response.headers))

    async def delete_blob(self, name: str, *, missing_ok: bool = False) -> bool:
        """Delete Blob: True when deleted. A "not found" after a lost answer is done (the lost attempt
        deleted it); otherwise it is False with ``missing_ok``, else a ServiceError."""
        try:
            response = await self.http.request(
                "DELETE", self._blob_path(name), None, None, None, "primary",
                lambda r: r.after_lost_answer and _not_found(r),
            )  # fmt: skip
        except ServiceError as exc:
            if missing_ok and exc.status == 404:
                return False
            raise
        return response.status < 300 or response.after_lost_answer

    async def set_metadata(self, name: str, metadata: Mapping[str, str]) -> None:
        """Set Blob Metadata: replace all of the blob's metadata."""
        await self.http.request("PUT", self._blob_path(name), {"comp": "metadata"}, None, metadata_headers(metadata))

    async def list_blobs(
        self, *, prefix: str | None = None, marker: str | None = None, page_size: int = _LIST_PAGE
    ) -> tuple[list[BlobItem], str | None]:
        """One List Blobs page (with metadata) and the next page's marker (None after the last)."""
        query = {"restype": "container", "comp": "list", "include": "metadata", "maxresults": str(page_size)}
        if prefix:
            query["prefix"] = prefix
        if marker:
            query["marker"] = marker
        max_bytes = page_size * _LIST_ENTRY_BYTES + 8192
        response = await self.http.request("GET", self.path, query, None, None, "primary", None, max_bytes)
        return parse_blob_list(response.body)


def _total_size(response: Response) -> int:
    """The blob's whole size from a ranged Get Blob's Content-Range (or, for a 200, its length)."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
    if match is not None:
        return int(match[3])
    if response.status == 200:
        return len(response.body)
    raise MalformedResponse("Get Blob answered a range without a valid Content-Range")
