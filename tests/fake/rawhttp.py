"""Requests to the fake service below the client: any method, path, query, header or body, signed with
Shared Key (or not), and the answer's status, headers and parsed ``<Error>``."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from xml.etree.ElementTree import fromstring

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from aioqueue._auth import SharedKeyCredential
from aioqueue.testing import DEV_ACCOUNT, DEV_KEY, FakeQueueService

VERSION = "2025-11-05"
BOM = b"\xef\xbb\xbf"


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    error: dict[str, str] = field(default_factory=dict)  # <Error>'s children: Code, Message, details

    @property
    def code(self) -> str | None:
        return self.error.get("Code")


async def send(
    service: FakeQueueService,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    key: str | None = DEV_KEY,
    account: str = DEV_ACCOUNT,
    date: str | None = None,
) -> Answer:
    """``method`` on ``/<account><path>``; signed with ``key`` (None: anonymous). ``headers`` replace the
    defaults (x-ms-version, x-ms-date); a header given as "" is left out."""
    full_path = f"/{account}{path}"
    sent = {"x-ms-version": VERSION, "x-ms-date": date or formatdate(usegmt=True)}
    if body is not None:
        sent["Content-Type"] = "application/xml"
    sent.update(headers or {})
    sent = {k: v for k, v in sent.items() if v != ""}
    if key is not None:
        credential = SharedKeyCredential(DEV_ACCOUNT, key)
        sent["Authorization"] = credential.authorization(method, full_path, dict(query or {}), sent, len(body or b""))
    url = URL(f"http://{service.host}:{service.port}{full_path}").with_query(dict(query or {}))
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            url,
            data=None if body is None else io.BytesIO(body),
            headers=sent,
            skip_auto_headers=("Content-Type",),
        ) as resp,
    ):
        data = await resp.read()
        answer = Answer(resp.status, resp.headers, data)
    if resp.headers.get("x-ms-error-code") and data:
        root = fromstring(data[len(BOM) :] if data.startswith(BOM) else data)
        assert root.tag == "Error", data
        answer.error = {child.tag: child.text or "" for child in root}
    return answer
