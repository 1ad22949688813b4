"""Who may do what: Shared Key, account and queue SAS, bearer tokens, checked as Azure checks them.

Written from the Azure Storage REST reference, not from aioqueue's signer, so that a signer bug shows:
"Authorize with Shared Key" (https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key),
"Create an account SAS" (.../create-account-sas), "Create a service SAS" (.../create-service-sas) and
"Shared access signature error codes" (.../sas-error-codes). The texts of ``AuthenticationErrorDetail``
are Azure's where one was seen (each named beside it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime

from ._errors import CODES, Refusal
from ._state import AccessPolicy, Clock
from ._wire import parse_iso, rfc1123

__all__ = ["OPERATIONS", "VERSIONS", "Authenticator", "Incoming"]

# The service versions the fake accepts in x-ms-version and sv (each a released Azure Storage version; the
# newest three are in azure-storage-queue 12.18.1's list of supported versions, 2026-10-06 its default).
# fmt: off
VERSIONS = frozenset(
    [
        "2009-09-19", "2011-08-18", "2012-02-12", "2013-08-15", "2014-02-14", "2015-02-21", "2015-04-05", "2015-07-08",
        "2015-12-11", "2016-05-31", "2017-04-17", "2017-07-29", "2017-11-09", "2018-02-01", "2018-03-28", "2018-11-09",
        "2019-02-02", "2019-07-07", "2019-10-10", "2019-12-12", "2020-02-10", "2020-04-08", "2020-06-12", "2020-08-04",
        "2020-10-02", "2020-12-06", "2021-02-12", "2021-04-10", "2021-06-08", "2021-08-06", "2021-10-04", "2021-12-02",
        "2022-11-02", "2023-01-03", "2023-05-03", "2023-08-03", "2023-11-03", "2024-02-04", "2024-05-04", "2024-08-04",
        "2024-11-04", "2025-01-05", "2025-05-05", "2025-07-05", "2025-11-05", "2026-02-06", "2026-04-06", "2026-06-06",
        "2026-10-06",
    ]
)
# fmt: on
SKEW = timedelta(minutes=15)  # "no older than 15 minutes by the time it reaches the service" (Shared Key)
STORAGE_AUDIENCES = ("https://storage.azure.com", "https://storage.azure.com/")
TENANT = "00000000-0000-0000-0000-000000000000"  # named in the fake's Bearer challenge


@dataclass(frozen=True)
class Rule:
    """What an operation needs from a SAS: the account SAS's resource type (``s``ervice,
    ``c``ontainer, ``o``bject) and one of its permission letters ("" = no account SAS may), and the
    queue SAS's permission letter (None = no queue SAS may: 403 AuthorizationFailure)."""

    resource: str
    account: str
    queue: str | None


# "Create an account SAS", its table of operations; "Create a service SAS", the queue's permissions
# (r: metadata and peek, a: add, u: update, p: get and delete). Neither SAS may read or set an ACL.
# Clear Messages: container and delete, as Azurite (the reference's table leaves it out).
OPERATIONS: dict[str, Rule] = {
    "list_queues": Rule("s", "l", None),
    "get_service_properties": Rule("s", "r", None),
    "set_service_properties": Rule("s", "w", None),
    "get_service_stats": Rule("s", "r", None),
    "create_queue": Rule("c", "wc", None),
    "delete_queue": Rule("c", "d", None),
    "get_queue_metadata": Rule("c", "r", "r"),
    "set_queue_metadata": Rule("c", "w", None),
    "get_queue_acl": Rule("c", "", None),
    "set_queue_acl": Rule("c", "", None),
    "put_message": Rule("o", "a", "a"),
    "get_messages": Rule("o", "p", "p"),
    "peek_messages": Rule("o", "r", "r"),
    "delete_message": Rule("o", "p", "p"),
    "update_message": Rule("o", "u", "u"),
    "clear_messages": Rule("c", "d", None),
}


@dataclass(frozen=True)
class Incoming:
    """What authentication looks at in a request."""

    method: str
    path: str  # as sent, still encoded, without the query
    query: Sequence[tuple[str, str]]  # names and values, decoded, in order
    headers: Mapping[str, str]  # case-insensitive
    length: int  # of the body
    peer: str  # the client's IP address
    queue: str | None  # the queue the request names
    operation: str


def _failed(detail: str) -> Refusal:
    return Refusal("AuthenticationFailed", details={"AuthenticationErrorDetail": detail})


def _param(query: Sequence[tuple[str, str]], name: str) -> str:
    return next((v for k, v in query if k == name), "")


class Authenticator:
    """The account's credentials and the checks of every request against them."""

    def __init__(
        self, account: str, key: str, clock: Clock, policies: Callable[[str], tuple[AccessPolicy, ...]]
    ) -> None:
        self.account = account
        self._key = base64.b64decode(key)
        self.clock = clock
        self._policies = policies  # a queue's stored access policies (empty when it has none)

    def _sign(self, text: str) -> str:
        return base64.b64encode(hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).digest()).decode()

    def check(self, req: Incoming) -> None:
        """Return if the request may go on; else raise the Refusal Azure answers."""
        authorization = req.headers.get("Authorization")
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme == "SharedKey":
                return self._shared_key(req, credentials.strip())
            if scheme == "Bearer":
                return self._bearer(credentials.strip())
            raise Refusal("InvalidAuthenticationInfo")
        if any(k == "sig" for k, _ in req.query):
            return self._sas(req)
        # no credentials: 401 with a Bearer challenge (recording QueueClientTests.CreateIfNotExistsAsync_Error)
        raise Refusal("NoAuthenticationInformation", headers=self.challenge())

    def challenge(self) -> dict[str, str]:
        uri = f"https://login.microsoftonline.com/{TENANT}/oauth2/authorize"
        return {"WWW-Authenticate": f"Bearer authorization_uri={uri} resource_id=https://storage.azure.com"}

    # ---- Shared Key ----------------------------------------------------------------------------

    def string_to_sign(self, req: Incoming) -> str:
        """Shared Key's string to sign (version 2015-02-21 and later: Content-Length empty when 0)."""
        h = req.headers
        date = "" if "x-ms-date" in h else h.get("Date", "")
        lines = [
            req.method,
            h.get("Content-Encoding", ""),
            h.get("Content-Language", ""),
            str(req.length) if req.length else "",
            h.get("Content-MD5", ""),
            h.get("Content-Type", ""),
            date,
            h.get("If-Modified-Since", ""),
            h.get("If-Match", ""),
            h.get("If-None-Match", ""),
            h.get("If-Unmodified-Since", ""),
            h.get("Range", ""),
        ]
        lines += [f"{name}:{value}" for name, value in self._x_ms_headers(h)]
        return "\n".join(lines) + "\n" + self.canonical_resource(req)

    @staticmethod
    def _x_ms_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
        """The ``x-ms-`` headers: names lowercased and sorted, values trimmed (several of one name joined by ',')."""
        found: dict[str, list[str]] = {}
        items = headers.items()
        for name, value in items:
            if name.lower().startswith("x-ms-"):
                found.setdefault(name.lower(), []).append(value.strip())
        return sorted((name, ",".join(values)) for name, values in found.items())

    def canonical_resource(self, req: Incoming) -> str:
        """``/<account><path>``, then ``\\nname:value[,value...]`` per query parameter, names lowercased and
        sorted, values decoded and sorted (a path-style URL names the account twice)."""
        params: dict[str, list[str]] = {}
        for name, value in req.query:
            params.setdefault(name.lower(), []).append(value)
        resource = f"/{self.account}{req.path}"
        for name in sorted(params):
            resource += f"\n{name}:{','.join(sorted(params[name]))}"
        return resource

    def _shared_key(self, req: Incoming, credentials: str) -> None:
        account, colon, signature = credentials.partition(":")
        if not colon or not account or not signature:
            raise Refusal("InvalidAuthenticationInfo")
        self._fresh(req.headers)
        expected = self._sign(self.string_to_sign(req))
        if account != self.account or not hmac.compare_digest(expected.encode(), signature.encode()):
            # Azure's detail (e.g. github.com/Azure/azure-sdk-for-net/issues/4078)
            raise _failed(
                f"The MAC signature found in the HTTP request '{signature}' is not the same as any computed "
                f"signature. Server used following string to sign: '{self.string_to_sign(req)}'."
            )

    def _fresh(self, headers: Mapping[str, str]) -> None:
        """The request's date (x-ms-date, else Date) is no more than 15 minutes before the real time.
        A date ahead of it is accepted, as Azure does (github.com/Azure/azure-sdk-for-java/issues/34081)."""
        name = "x-ms-date" if "x-ms-date" in headers else "Date"
        text = headers.get(name)
        if text is None:
            raise _failed("Request date header not specified.")
        try:
            sent = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            sent = None
        if sent is None or sent.tzinfo is None:
            raise Refusal("InvalidHeaderValue", details={"HeaderName": name, "HeaderValue": text})
        if self.clock.wall() - sent > SKEW:
            # Azure's detail (github.com/Azure/azure-sdk-for-js/issues/5433)
            raise _failed(f"Request date header too old: '{text}'")

    # ---- bearer tokens ---------------------------------------------------------------------------

    def _bearer(self, token: str) -> None:
        """A JWT for Azure Storage, as Azurite takes it: its iss, aud, nbf and exp are checked (against
        the real time: the token's issuer dated it), its signature is not."""
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError, binascii.Error):
            claims = None
        if not isinstance(claims, dict):
            raise self._token_refused("The token is malformed.")
        issuer = str(claims.get("iss", ""))
        if not issuer.startswith(("https://sts.windows.net/", "https://login.microsoftonline.com/")):
            raise self._token_refused("Issuer validation failed. Issuer did not match.")
        if str(claims.get("aud", "")) not in (*STORAGE_AUDIENCES, *self._account_audiences()):
            # Azure's detail (recording test_queue.pyTestStorageQueuetest_bad_audience_queue_client)
            raise self._token_refused("Audience validation failed. Audience did not match.")
        now = self.clock.wall().timestamp()
        try:
            not_before, expires = float(claims.get("nbf", 0)), float(claims.get("exp", 0))
        except (TypeError, ValueError):
            raise self._token_refused("The token is malformed.") from None
        if now < not_before:
            raise self._token_refused("Lifetime validation failed. The token is not yet valid.")
        if now >= expires:
            raise self._token_refused("Lifetime validation failed. The token is expired.")

    def _account_audiences(self) -> tuple[str, ...]:
        host = f"https://{self.account}.queue.core.windows.net"
        return (host, host + "/")

    def _token_refused(self, detail: str) -> Refusal:
        return Refusal(
            "InvalidAuthenticationInfo",
            CODES["NoAuthenticationInformation"][1],  # the 401 text
            {"AuthenticationErrorDetail": detail},
            status=401,
            headers=self.challenge(),
        )

    # ---- shared access signatures ------------------------------------------------------------------

    def _sas(self, req: Incoming) -> None:
        query = req.query
        rule = OPERATIONS[req.operation]
        if _param(query, "skoid"):
            raise _failed("User delegation SAS is not implemented by the fake queue service.")
        version = _param(query, "sv")
        if version not in VERSIONS:
            raise Refusal(
                "InvalidQueryParameterValue", details={"QueryParameterName": "sv", "QueryParameterValue": version}
            )
        account_sas = any(k in ("ss", "srt") for k, _ in query)
        if account_sas:
            permissions, start, expiry = self._account_signature(query, version)
        else:
            permissions, start, expiry = self._queue_signature(req, version)
        self._window(start, expiry)
        self._where(req)
        if account_sas:
            self._account_grants(query, permissions, rule)
        elif rule.queue is None:
            raise Refusal("AuthorizationFailure")
        elif rule.queue not in permissions:
            raise Refusal("AuthorizationPermissionMismatch")

    def _signed(self, string_to_sign: str, signature: str) -> None:
        if not hmac.compare_digest(self._sign(string_to_sign).encode(), signature.encode()):
            # Azure's detail (e.g. github.com/Azure/azure-storage-java/issues/515)
            raise _failed(f"Signature did not match. String to sign used was {string_to_sign}")

    def _account_signature(self, query: Sequence[tuple[str, str]], version: str) -> tuple[str, str, str]:
        """Account SAS (version 2020-12-06 and later add the encryption scope, ``ses``, and a last newline)."""
        sp, st, se = (_param(query, n) for n in ("sp", "st", "se"))
        fields = [self.account, sp, _param(query, "ss"), _param(query, "srt"), st, se]
        fields += [_param(query, "sip"), _param(query, "spr"), version]
        if version >= "2020-12-06":
            fields.append(_param(query, "ses"))
        self._signed("\n".join(fields) + "\n", _param(query, "sig"))
        return sp, st, se

    def _queue_signature(self, req: Incoming, version: str) -> tuple[str, str, str]:
        """Queue (service) SAS: ``sp st se /queue/<account>/<queue> si sip spr sv`` (sip and spr since
        2015-04-05), with what a stored access policy (``si``) gives."""
        query = req.query
        if req.queue is None:
            raise Refusal("AuthorizationFailure")
        sp, st, se, si = (_param(query, n) for n in ("sp", "st", "se", "si"))
        fields = [sp, st, se, f"/queue/{self.account}/{req.queue}", si]
        if version >= "2015-04-05":
            fields += [_param(query, "sip"), _param(query, "spr")]
        self._signed("\n".join([*fields, version]), _param(query, "sig"))
        if si:
            policy = next((p for p in self._policies(req.queue) if p.id == si), None)
            if policy is None:
                raise Refusal("AuthorizationFailure")
            sp, st, se = self._with_policy(policy, sp, st, se)
        if not sp:
            raise _failed("sp is mandatory. Cannot be empty")
        return sp, st, se

    @staticmethod
    def _with_policy(policy: AccessPolicy, sp: str, st: str, se: str) -> tuple[str, str, str]:
        """A field is given by the SAS or by its stored policy, never both: both is 400 ("Define a stored
        access policy")."""
        merged = []
        for name, own, stored in (("sp", sp, policy.permission), ("st", st, policy.start), ("se", se, policy.expiry)):
            if own and stored:
                raise Refusal(
                    "InvalidQueryParameterValue",
                    details={
                        "QueryParameterName": name,
                        "QueryParameterValue": own,
                        "Reason": "The stored access policy specifies it too.",
                    },
                )
            merged.append(own or stored or "")
        return merged[0], merged[1], merged[2]

    def _window(self, start: str, expiry: str) -> None:
        """The SAS's validity, checked against the service's clock (advance() can expire a SAS)."""
        if not expiry:
            raise _failed("se is mandatory. Cannot be empty")
        try:
            end = parse_iso(expiry)
            begin = parse_iso(start) if start else None
        except ValueError as exc:
            raise _failed(str(exc)) from None
        now = self.clock.now()
        if begin is not None and end <= begin:
            # Azure's detail (github.com/elastic/elasticsearch/issues/107617)
            raise _failed(f"Signed expiry time [{rfc1123(end)}] must be after signed start time [{rfc1123(begin)}]")
        if now > end or (begin is not None and now < begin):
            # Azure's detail (github.com/microsoft/AzureStorageExplorer/issues/1614)
            shown = rfc1123(begin) if begin is not None else ""
            raise _failed(
                f"Signature not valid in the specified time frame: Start [{shown}] - Expiry [{rfc1123(end)}]"
                f" - Current [{rfc1123(now)}]"
            )

    def _where(self, req: Incoming) -> None:
        """``sip`` (an address or a range) must hold the client's address; ``spr`` must allow http (the
        fake serves http only)."""
        sip = _param(req.query, "sip")
        if sip and not _in_range(req.peer, sip):
            message = f"This request is not authorized to perform this operation using this source IP {req.peer}."
            raise Refusal("AuthorizationSourceIPMismatch", message)
        spr = _param(req.query, "spr")
        if spr and "http" not in spr.split(","):
            raise Refusal("AuthorizationProtocolMismatch")

    @staticmethod
    def _account_grants(query: Sequence[tuple[str, str]], permissions: str, rule: Rule) -> None:
        if "q" not in _param(query, "ss"):
            raise Refusal("AuthorizationServiceMismatch")
        if rule.resource not in _param(query, "srt"):
            raise Refusal("AuthorizationResourceTypeMismatch")
        if not rule.account:
            raise Refusal("AuthorizationFailure")
        if not set(rule.account) & set(permissions):
            raise Refusal("AuthorizationPermissionMismatch")


def _in_range(peer: str, sip: str) -> bool:
    low, _, high = sip.partition("-")
    try:
        address = ipaddress.ip_address(peer)
        first = ipaddress.ip_address(low)
        last = ipaddress.ip_address(high) if high else first
        return bool(first <= address <= last)  # type: ignore[operator]
    except (TypeError, ValueError):
        return False
