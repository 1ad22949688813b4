"""Credentials, Shared Key signing, token caching and connection strings. No I/O but the token fetch.

Secrets live only in these objects; their reprs hide them, and nothing here puts them in an error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from ._errors import ConfigurationError

__all__ = [
    "AsyncTokenCredential",
    "SasCredential",
    "SharedKeyCredential",
]

STORAGE_SCOPE = "https://storage.azure.com/.default"
TOKEN_REFRESH_MARGIN = 300.0  # refresh a token this many seconds before it expires
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_QUEUE_ENDPOINT = "http://127.0.0.1:10001/devstoreaccount1"


def decode_key(account_key: str) -> bytes:
    try:
        key = base64.b64decode(account_key, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ConfigurationError("the account key is not valid base64 (it is shown in the portal under Access keys)")
    return key


class SharedKeyCredential:
    """An account name and key; every request is signed with HMAC-SHA256 (Shared Key)."""

    __slots__ = ("_keyed", "account_key", "account_name")

    def __init__(self, account_name: str, account_key: str) -> None:
        if not account_name or not isinstance(account_name, str):
            raise ConfigurationError("SharedKeyCredential needs a non-empty account name")
        if not isinstance(account_key, str):
            raise ConfigurationError("SharedKeyCredential needs the account key as a base64 str")
        self.account_name = account_name
        self.account_key = account_key
        # the key's HMAC state (padded key hashed in) is made once; each signature copies it
        self._keyed = hmac.new(decode_key(account_key), digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return f"SharedKeyCredential(account_name={self.account_name!r}, account_key=<hidden>)"

    def sign(self, string_to_sign: str) -> str:
        """Base64 HMAC-SHA256 of the UTF-8 string with the decoded account key."""
        mac = self._keyed.copy()
        mac.update(string_to_sign.encode("utf-8"))
        return base64.b64encode(mac.digest()).decode("ascii")

    def authorization(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        content_length: int,
    ) -> str:
        """The ``Authorization`` header value for one request (``path`` as sent, already encoded)."""
        get = headers.get
        x_ms = sorted((k.lower(), v.strip()) for k, v in headers.items() if k[:5].lower() == "x-ms-")
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in x_ms)
        resource = f"/{self.account_name}{path}"
        if query:
            resource += "".join(f"\n{k}:{v}" for k, v in sorted((k.lower(), v) for k, v in query.items()))
        string_to_sign = (
            f"{method}\n{get('Content-Encoding', '')}\n{get('Content-Language', '')}\n"
            f"{content_length or ''}\n{get('Content-MD5', '')}\n{get('Content-Type', '')}\n"
            f"{get('Date', '')}\n{get('If-Modified-Since', '')}\n{get('If-Match', '')}\n"
            f"{get('If-None-Match', '')}\n{get('If-Unmodified-Since', '')}\n{get('Range', '')}\n"
            f"{canonical_headers}{resource}"
        )
        return f"SharedKey {self.account_name}:{self.sign(string_to_sign)}"


def normalize_sas(token: str) -> str:
    if not isinstance(token, str):
        raise ConfigurationError("a SAS token must be a str")
    token = token.strip().lstrip("?")
    names = {k.lower() for k, _ in parse_qsl(token, keep_blank_values=True)}
    if "sig" not in names:
        raise ConfigurationError("the SAS token has no 'sig' parameter; pass the whole query string it came as")
    return token


class SasCredential:
    """A shared access signature token; rotate it in place with :meth:`update`."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        self._token = normalize_sas(token)

    @property
    def token(self) -> str:
        """The current token, without a leading ``?``."""
        return self._token

    def update(self, token: str) -> None:
        """Replace the token; the next request (and every retry after) uses the new one."""
        self._token = normalize_sas(token)

    def __repr__(self) -> str:
        return "SasCredential(<hidden>)"


@runtime_checkable
class AsyncTokenCredential(Protocol):
    """Anything with ``async get_token(*scopes)`` returning ``.token`` and ``.expires_on``
    (``azure.identity.aio`` credentials are)."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """An access token for the scopes: an object with ``.token`` (str) and ``.expires_on`` (epoch s)."""
        ...


class TokenCache:
    """Caches a bearer token and refreshes it before expiry; concurrent callers share one refresh."""

    __slots__ = ("_credential", "_expires_on", "_lock", "_token", "refreshes")

    def __init__(self, credential: AsyncTokenCredential) -> None:
        self._credential = credential
        self._token = ""
        self._expires_on = 0.0
        self._lock: asyncio.Lock | None = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"TokenCache({type(self._credential).__name__})"

    def _fresh(self) -> bool:
        return bool(self._token) and self._expires_on - time.time() > TOKEN_REFRESH_MARGIN

    async def token(self) -> str:
        if self._fresh():
            return self._token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._fresh():
                access = await self._credential.get_token(STORAGE_SCOPE)
                self._token = str(access.token)
                self._expires_on = float(access.expires_on)
                self.refreshes += 1
        return self._token


Credential = str | SharedKeyCredential | SasCredential | AsyncTokenCredential | None


@dataclass(frozen=True)
class Endpoint:
    """A parsed account URL: where requests go and how they are signed."""

    origin: str  # scheme://host[:port]
    path_prefix: str  # "" or "/account" for path-style (emulator, IP address) URLs
    account_name: str
    secure: bool
    loopback: bool
    sas: str | None  # a SAS token carried in the URL

    @property
    def url(self) -> str:
        return self.origin + self.path_prefix


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_account_url(url: str) -> Endpoint:
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("the account URL must be a non-empty str such as https://<account>.queue.core.windows.net")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            "the account URL must start with https:// (or http://) and name a host, "
            "such as https://<account>.queue.core.windows.net"
        )
    host = parts.hostname
    segments = [s for s in parts.path.split("/") if s]
    loopback = _is_loopback(host)
    if segments:  # path-style: http://127.0.0.1:10001/devstoreaccount1
        account = segments[0]
        prefix = "/" + "/".join(segments)
    else:  # https://<account>.queue.core.windows.net
        account = "" if loopback or _is_ip(host) else host.split(".", 1)[0]
        prefix = ""
    netloc = parts.netloc.rsplit("@", 1)[-1]
    sas = normalize_sas(parts.query) if parts.query else None
    return Endpoint(
        origin=f"{parts.scheme}://{netloc}",
        path_prefix=prefix,
        account_name=account,
        secure=parts.scheme == "https",
        loopback=loopback,
        sas=sas,
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ConnectionSettings:
    account_url: str
    credential: SharedKeyCredential | SasCredential | None


_KNOWN_KEYS = {
    "accountname": "AccountName",
    "accountkey": "AccountKey",
    "sharedaccesssignature": "SharedAccessSignature",
    "queueendpoint": "QueueEndpoint",
    "queuesecondaryendpoint": "QueueSecondaryEndpoint",
    "defaultendpointsprotocol": "DefaultEndpointsProtocol",
    "endpointsuffix": "EndpointSuffix",
    "usedevelopmentstorage": "UseDevelopmentStorage",
    "developmentstorageproxyuri": "DevelopmentStorageProxyUri",
}
_IGNORED_KEYS = {"blobendpoint", "tableendpoint", "fileendpoint", "blobsecondaryendpoint",
                 "tablesecondaryendpoint", "filesecondaryendpoint"}


def parse_connection_string(conn_str: str) -> ConnectionSettings:
    """Parse every form Azure documents; errors name the problem and never echo a secret."""
    if not isinstance(conn_str, str) or not conn_str.strip():
        raise ConfigurationError("the connection string is empty")
    settings: dict[str, str] = {}
    for index, segment in enumerate(conn_str.strip().split(";"), 1):
        segment = segment.strip()
        if not segment:
            continue
        label, sep, value = segment.partition("=")
        setting = label.strip().lower()
        if not sep or not setting:
            raise ConfigurationError(f"connection string segment {index} is not of the form Name=value")
        if setting in _IGNORED_KEYS:
            continue
        if setting not in _KNOWN_KEYS:
            raise ConfigurationError(f"connection string has an unknown setting {label.strip()[:40]!r}")
        if setting in settings:
            raise ConfigurationError(f"connection string sets {_KNOWN_KEYS[setting]} twice")
        settings[setting] = value.strip()

    if settings.get("usedevelopmentstorage", "").lower() == "true":
        extra = set(settings) - {"usedevelopmentstorage", "developmentstorageproxyuri"}
        if extra:
            raise ConfigurationError(
                "UseDevelopmentStorage=true cannot be combined with "
                + ", ".join(sorted(_KNOWN_KEYS[k] for k in extra))
            )
        endpoint = DEV_QUEUE_ENDPOINT
        proxy = settings.get("developmentstorageproxyuri")
        if proxy:
            endpoint = proxy.rstrip("/") + ":10001/" + DEV_ACCOUNT
        return ConnectionSettings(endpoint, SharedKeyCredential(DEV_ACCOUNT, DEV_KEY))
    if "usedevelopmentstorage" in settings:
        raise ConfigurationError("UseDevelopmentStorage must be 'true' when present")

    name = settings.get("accountname")
    key = settings.get("accountkey")
    sas = settings.get("sharedaccesssignature")
    if key and sas:
        raise ConfigurationError("connection string has both AccountKey and SharedAccessSignature; keep one")
    if key is not None and not name:
        raise ConfigurationError("connection string has AccountKey but no AccountName")
    account_url = settings.get("queueendpoint")
    if not account_url:
        if not name:
            raise ConfigurationError("connection string needs QueueEndpoint or AccountName")
        protocol = settings.get("defaultendpointsprotocol", "https").lower()
        if protocol not in ("http", "https"):
            raise ConfigurationError("DefaultEndpointsProtocol must be http or https")
        suffix = settings.get("endpointsuffix", "core.windows.net").strip(".")
        if not suffix:
            raise ConfigurationError("EndpointSuffix is empty")
        account_url = f"{protocol}://{name}.queue.{suffix}"
    credential: SharedKeyCredential | SasCredential | None = None
    if key is not None and name:
        credential = SharedKeyCredential(name, key)
    elif sas is not None:
        credential = SasCredential(sas)
    return ConnectionSettings(account_url, credential)
