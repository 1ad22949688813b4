"""Credentials: Shared Key signing, SAS tokens, bearer-token caching. No I/O but the token fetch.

Secrets live only in these objects; their reprs hide them, and nothing here puts them in an error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import inspect
import re
import time
from binascii import b2a_base64
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from ._errors import ConfigurationError, RequestTimeout

__all__ = [
    "AsyncTokenCredential",
    "Credential",
    "SasCredential",
    "SharedKeyCredential",
]

STORAGE_SCOPE = "https://storage.azure.com/.default"
TOKEN_REFRESH_MARGIN = 300.0  # refresh a token this many seconds before it expires


def decode_key(account_key: str) -> bytes:
    try:
        key = base64.b64decode(account_key, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ConfigurationError("the account key is not valid base64 (it is shown in the portal under Access keys)")
    return key


class HmacKey:
    """A decoded key ready to sign with: base64 HMAC-SHA256 of UTF-8 text.

    HMAC (RFC 2104) is two SHA-256 hashes: of the padded key XOR ipad then the text, and of the padded
    key XOR opad then the first digest. Both keyed states are hashed once here; each signature copies
    them (hmac.HMAC's own copy, update and digest add a Python object and calls per signature).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def __repr__(self) -> str:
        return "HmacKey(<hidden>)"

    # The fast path of hmac.new(key, text, sha256) (its twin); tests/transport/test_fast_paths.py:
    # test_hmac_key_sign_equals_hmac_new.
    def sign(self, text: str) -> str:
        inner = self._inner.copy()
        inner.update(text.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return b2a_base64(outer.digest(), newline=False).decode("ascii")


_BLOCK = 64  # SHA-256's block size in bytes
_RECENT = 64  # Authorization headers a Shared Key credential keeps for the current second
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class SharedKeyCredential:
    """An account name and key; every request is signed with HMAC-SHA256 (Shared Key).

    Rotate the key in place with :meth:`update` (or by assigning ``account_key``): the next attempt,
    a retry of a request already under way included, is signed with the new key.
    """

    __slots__ = ("_account_key", "_key", "_recent", "_recent_date", "account_name")

    def __init__(self, account_name: str, account_key: str) -> None:
        if not account_name or not isinstance(account_name, str):
            raise ConfigurationError("SharedKeyCredential needs a non-empty account name")
        self.account_name = account_name
        self._recent: dict[str, str] = {}  # this second's signed texts -> their Authorization header
        self._recent_date = ""
        self.update(account_key)

    def update(self, account_key: str) -> None:
        """Replace the account key (base64, checked as the constructor does); the next attempt, a retry
        of a request already under way included, is signed with it."""
        if not isinstance(account_key, str):
            raise ConfigurationError("SharedKeyCredential needs the account key as a base64 str")
        key = HmacKey(decode_key(account_key))
        self._account_key = account_key
        self._key = key
        self._recent.clear()  # signed with the old key

    @property
    def account_key(self) -> str:
        """The account key (base64); assigning it is :meth:`update`."""
        return self._account_key

    @account_key.setter
    def account_key(self, account_key: str) -> None:
        self.update(account_key)

    def __repr__(self) -> str:
        return f"SharedKeyCredential(account_name={self.account_name!r}, account_key=<hidden>)"

    def sign(self, string_to_sign: str) -> str:
        """Base64 HMAC-SHA256 of the UTF-8 string with the decoded account key."""
        return self._key.sign(string_to_sign)

    def authorization(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        content_length: int,
    ) -> str:
        """The ``Authorization`` header value for one request (``path`` as sent, already encoded).

        One pass over the headers: each standard header signed by name goes to its line (looked up
        by the spelling the transport and _validation.user_headers send), each ``x-ms-`` one (any case)
        to the canonical headers."""
        lines = ["", "", "", str(content_length) if content_length else "", "", "", "", "", "", "", "", ""]
        x_ms = []
        line = _SIGNED_LINES.get
        for k, v in headers.items():
            at = line(k)
            if at is not None:
                lines[at] = v
            elif k[:5].lower() == "x-ms-":
                x_ms.append((k.lower(), v.strip()))
        lines[0] = method
        if x_ms:
            x_ms.sort()
            lines += [f"{k}:{v}" for k, v in x_ms]
        resource = f"/{self.account_name}{path}"
        if query:
            resource += "".join([f"\n{k}:{v}" for k, v in sorted([(k.lower(), v) for k, v in query.items()])])
        lines.append(resource)
        string_to_sign = "\n".join(lines)
        return f"SharedKey {self.account_name}:{self._key.sign(string_to_sign)}"

    # The fast path of authorization (its twin: the same header for the transport's own headers);
    # tests/transport/test_fast_paths.py: test_plain_authorization_equals_authorization.
    def plain_authorization(
        self, method: str, path: str, query: Mapping[str, str], version: str, date: str, content_type: str, length: int
    ) -> str:
        """:meth:`authorization` for a request that carries only the transport's own headers (x-ms-version,
        x-ms-date, Content-Type with a body; User-Agent and Accept-Encoding are not signed): one format
        instead of a pass over the headers, a third of the signature's cost."""
        resource = f"/{self.account_name}{path}"
        if query:
            resource += "".join([f"\n{k}:{v}" for k, v in sorted([(k.lower(), v) for k, v in query.items()])])
        string_to_sign = (
            f"{method}\n\n\n{length or ''}\n\n{content_type}\n\n\n\n\n\n\n"
            f"x-ms-date:{date.strip()}\nx-ms-version:{version.strip()}\n{resource}"
        )
        # The same request in the same second (a poll of an empty queue, sends of one size) signs the
        # same text: its header is kept until the date moves on (at most _RECENT of them).
        recent = self._recent
        if date != self._recent_date or len(recent) >= _RECENT:
            recent.clear()
            self._recent_date = date
        found = recent.get(string_to_sign)
        if found is None:
            found = recent[string_to_sign] = f"SharedKey {self.account_name}:{self._key.sign(string_to_sign)}"
        return found


# The string to sign: the verb, then one line per standard header (empty when not sent), the
# canonical x-ms- headers and the resource. Line 3, Content-Length, comes from the body's length.
_SIGNED_LINES = {
    name: at
    for at, name in enumerate(
        (
            "",
            "Content-Encoding",
            "Content-Language",
            "",
            "Content-MD5",
            "Content-Type",
            "Date",
            "If-Modified-Since",
            "If-Match",
            "If-None-Match",
            "If-Unmodified-Since",
            "Range",
        )
    )
    if name
}


# RFC 3986 query characters, with '%' only as a %XX escape
_QUERY = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})+")


def normalize_sas(token: str) -> str:
    if not isinstance(token, str):
        raise ConfigurationError("a SAS token must be a str")
    token = token.strip().lstrip("?")
    if not _QUERY.fullmatch(token):
        raise ConfigurationError(
            "the SAS token holds characters a URL query cannot carry (a space, '#', a quote, a line break or "
            "non-ASCII text); pass it exactly as issued (URL-encoded)"
        )
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
        """Replace the token; the next attempt uses the new one (a retry of a request already under way
        included)."""
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


def token_scope(audience: str | None) -> str:
    """The scope a token is asked for: ``<audience>/.default`` (default audience: all of Azure Storage)."""
    if audience is None:
        return STORAGE_SCOPE
    if not isinstance(audience, str) or not audience.startswith("https://") or not urlsplit(audience).hostname:
        raise ConfigurationError(
            "audience must be an https URL such as https://<account>.queue.core.windows.net "
            "(or https://storage.azure.com)"
        )
    audience = audience.rstrip("/")
    return audience if audience.endswith("/.default") else audience + "/.default"


def _wall() -> float:
    return time.time()


def _monotonic() -> float:
    return time.monotonic()


class BearerChallenge(NamedTuple):
    """What a 401's ``WWW-Authenticate: Bearer`` challenge asks for: a token for ``scope`` from ``tenant``."""

    scope: str
    tenant: str


# name=value or name="value", separated by spaces or commas (Azure sends the first form, RFC 7235 the second)
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"([^"]*)"|([^\s,"]+))')
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,254}")  # a tenant GUID or domain name
STORAGE_RESOURCE_HOST = "storage.azure.com"


def parse_bearer_challenge(header: str, host: str, scope: str) -> BearerChallenge | None:
    """The tenant and scope of a Bearer challenge such as Azure Storage's ``Bearer
    authorization_uri=https://login.microsoftonline.com/<tenant>/oauth2/authorize resource_id=<resource>``.

    The tenant is the first path segment of ``authorization_uri`` (as both official SDKs read it); the scope
    is ``<resource_id>/.default``, or ``scope`` without a resource_id. None when the header is no Bearer
    challenge, names no tenant, or names a resource other than Azure Storage or the request's own ``host``
    (its token would be sent to this host, which must not collect tokens for other services)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    params = {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _CHALLENGE_PARAM.finditer(rest)}
    try:
        tenant = urlsplit(params.get("authorization_uri", "")).path.lstrip("/").partition("/")[0]
        resource = params.get("resource_id")
        if resource is not None:
            parts = urlsplit(resource)
            if parts.scheme != "https" or (parts.hostname or "") not in (STORAGE_RESOURCE_HOST, host.lower()):
                return None
            scope = resource.rstrip("/") + "/.default"
    except ValueError:  # not a URL
        return None
    return BearerChallenge(scope, tenant) if _TENANT.fullmatch(tenant) else None


def _takes_tenant(get_token: Any) -> bool:
    """Does ``get_token`` accept ``tenant_id=`` (by name, or any keyword)? azure.identity's credentials do."""
    try:
        params = inspect.signature(get_token).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == "tenant_id" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in params
    )


class _Slot:
    """One scope and tenant's token, its refresh deadline (monotonic), when it was got, the fetch under way."""

    __slots__ = ("fetch", "got", "refresh_at", "scope", "tenant", "token")

    def __init__(self, scope: str, tenant: str | None) -> None:
        self.scope = scope
        self.tenant = tenant
        self.token = ""
        self.refresh_at = 0.0
        self.got = 0.0  # time.monotonic(), the clock the transport stamps a sent attempt with
        self.fetch: asyncio.Future[str] | None = None


_MAX_SLOTS = 8  # scopes and tenants kept: a server naming a new tenant each time cannot grow the cache


class TokenCache:
    """Caches a bearer token and refreshes it before expiry; concurrent callers share one fetch.

    A token is fetched again 5 minutes before it expires, or, when it lives less than 10 minutes,
    halfway through its life (so a short-lived token is not fetched anew for every request). The
    deadline is kept on the monotonic clock, so a wall-clock jump does not keep an expired token.
    Every caller waits for the one fetch under way at most its request's timeout (then
    :class:`RequestTimeout`, retried like one); a 401 drops the cached token.

    A 401's Bearer challenge (:meth:`challenge`, :meth:`follow`) switches the cache to the scope and
    tenant it names, whose token is kept apart from the first one's: later requests start with it.
    """

    __slots__ = ("_credential", "_refresh_at", "_slot", "_slots", "_takes_tenant", "_token", "refreshes")

    def __init__(self, credential: AsyncTokenCredential, scope: str = STORAGE_SCOPE) -> None:
        self._credential = credential
        self._slot = _Slot(scope, None)  # the scope and tenant requests get tokens for
        self._slots: dict[tuple[str, str | None], _Slot] = {(scope, None): self._slot}
        # the current slot's token and deadline, read first by every request
        self._token = ""
        self._refresh_at = 0.0
        self._takes_tenant: bool | None = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"TokenCache({type(self._credential).__name__})"

    @property
    def credential(self) -> AsyncTokenCredential:
        """The token credential this cache asks."""
        return self._credential

    @property
    def scope(self) -> str:
        """The scope tokens are asked for (the audience's, or since a challenge, the challenge's)."""
        return self._slot.scope

    @property
    def takes_tenant(self) -> bool:
        """Whether the credential's ``get_token`` takes ``tenant_id`` (checked once)."""
        if self._takes_tenant is None:
            self._takes_tenant = _takes_tenant(self._credential.get_token)
        return self._takes_tenant

    def invalidate(self, sent: float | None = None) -> None:
        """Forget the cached token (the service refused it): unless it was got after ``sent``, the
        ``time.monotonic()`` when the refused attempt was sent (then another token was refused)."""
        slot = self._slot
        if sent is None or slot.got <= sent:
            slot.token = self._token = ""

    def challenge(self, header: str | None, host: str) -> BearerChallenge | None:
        """The Bearer challenge in a 401's ``WWW-Authenticate`` (see :func:`parse_bearer_challenge`) to
        follow; None without one, or when the credential cannot be asked for a tenant."""
        if not header or not self.takes_tenant:
            return None
        return parse_bearer_challenge(header, host, self._slot.scope)

    async def follow(self, challenge: BearerChallenge, timeout: float | None = None) -> str:
        """Get tokens for the challenge's scope and tenant from now on; return one."""
        key = (challenge.scope, challenge.tenant)
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) >= _MAX_SLOTS:
                self._slots = {(self._slot.scope, self._slot.tenant): self._slot}
            slot = self._slots[key] = _Slot(challenge.scope, challenge.tenant)
        if slot is not self._slot:
            self._slot = slot
            self._token, self._refresh_at = slot.token, slot.refresh_at
        return await self.token(timeout)

    async def _refresh(self, slot: _Slot) -> str:
        if slot.tenant is None:
            access = await self._credential.get_token(slot.scope)
        else:
            access = await self._credential.get_token(slot.scope, tenant_id=slot.tenant)
        token = str(access.token)
        life = float(access.expires_on) - _wall()
        margin = TOKEN_REFRESH_MARGIN if life >= 2 * TOKEN_REFRESH_MARGIN else life / 2
        slot.token = token
        slot.refresh_at = _monotonic() + life - margin
        slot.got = time.monotonic()
        if slot is self._slot:
            self._token, self._refresh_at = token, slot.refresh_at
        self.refreshes += 1
        return token

    async def token(self, timeout: float | None = None) -> str:
        if self._token and _monotonic() < self._refresh_at:
            return self._token
        slot = self._slot
        fetch = slot.fetch
        if fetch is None or fetch.done():
            fetch = slot.fetch = asyncio.ensure_future(self._refresh(slot))
            # a fetch whose waiters all gave up still ends; its failure is not "never retrieved"
            fetch.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(fetch), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"the token credential gave no token within {timeout} s") from None


Credential = str | SharedKeyCredential | SasCredential | AsyncTokenCredential | None
