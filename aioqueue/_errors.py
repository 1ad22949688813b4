"""The one exception tree a user catches.

    AioQueueError
    ├── ConfigurationError (also ValueError)     bad argument, name, range or connection string; before I/O
    ├── MessageEncodingError (also ValueError)   content the chosen encoding cannot carry (or decode)
    │   ├── MessageTooLarge                       over 64 KiB after encoding (also from the service's code)
    │   └── PayloadUnavailable                    a large payload's blob missing or not matching (_payloads.py)
    ├── PayloadError                             a large payload's upload failed: no message sent (_payloads.py)
    ├── MessageSettled (also RuntimeError)       a received message settled (deleted/released) twice
    ├── LeaseLost                                a held message's renewals stopped (kept, never raised)
    ├── SendMessagesError                        send_messages stopped part-way; .receipts, .error
    ├── RedriveError                             a redrive stopped part-way; .result, .error (_redrive.py)
    ├── MalformedResponse                        an answer that cannot be understood (bad XML, field, date)
    ├── TransportError (also OSError)            connection failures once retries are spent
    │   └── RequestTimeout (also TimeoutError)
    └── ServiceError                             .status, .error_code, .request_id, .message, .details, .headers,
        │                                         .maybe_applied
        ├── AuthenticationFailed                  the authentication and authorization codes (AUTH_CODES), or a 401/403
        ├── QueueNotFound, QueueAlreadyExists, QueueBeingDeleted
        ├── MessageNotFound, PopReceiptMismatch
        └── ServerBusy                            503, after retries

No text, repr or attribute of these errors holds an account key, a SAS signature or a bearer token:
service errors keep only response headers and the error body's text, with anything that looks like a
secret redacted (:func:`redact_text`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AioQueueError",
    "AuthenticationFailed",
    "ConfigurationError",
    "LeaseLost",
    "MalformedResponse",
    "MessageEncodingError",
    "MessageNotFound",
    "MessageSettled",
    "MessageTooLarge",
    "PopReceiptMismatch",
    "QueueAlreadyExists",
    "QueueBeingDeleted",
    "QueueNotFound",
    "RequestTimeout",
    "SendMessagesError",
    "ServerBusy",
    "ServiceError",
    "TransportError",
]

# sig= in a URL, and URL-encoded inside another URL (a copy source: sig%3D..., up to its encoded &)
_SIG_RE = re.compile(r"(?i)(sig=)[^&\s\"']*|(sig%3D)(?:(?!%26)[^&\s\"'])*")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-ms-copy-source-authorization"})
# What else a service's error text can echo (a 403's <AuthenticationErrorDetail> quotes the request's
# MAC signature and the string to sign, x-ms-* headers included): the value of a credential header
# ("name:value", as in a string to sign, or "name: value"), an Authorization scheme's credentials, a
# JWT, and a base64 run as long as an HMAC-SHA256 signature (44 characters) or an account key (88).
_SECRET_TEXT_RES = (
    (
        re.compile(r"(?im)\b((?:proxy-)?authorization|x-ms-copy-source-authorization)(\s*[:=]\s*)[^\r\n'\"]*"),
        r"\1\2REDACTED",
    ),
    # a scheme's credentials: a word holding a digit or punctuation ("Bearer is supported" is no token)
    (
        re.compile(r"(?i)\b(Bearer|SharedKey|SharedKeyLite|Basic)(\s+)(?=[^\s'\",]*[0-9.:_~+/=-])[^\s'\",]+"),
        r"\1\2REDACTED",
    ),
    # a SAS's signature quoted as a field ('"sig": "..."', "sig: ...", "'sig'='...'")
    (re.compile(r"""(?i)(?<![\w-])(["']?sig["']?\s*[:=]\s*["']?)[^"'&\s,;}]+"""), r"\1REDACTED"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*"), "REDACTED"),
    (re.compile(r"[A-Za-z0-9+/]{42,}={1,2}"), "REDACTED"),
)


def redact(text: str) -> str:
    """Hide SAS signatures in a URL, header value or message."""
    return _SIG_RE.sub(r"\1\2REDACTED", text)


def redact_text(text: str) -> str:
    """Hide what may be a secret in text the service wrote (an error's message or details): SAS
    signatures, credential headers' values, Authorization credentials, tokens, signatures and keys."""
    text = redact(text)
    for pattern, replacement in _SECRET_TEXT_RES:
        text = pattern.sub(replacement, text)
    return text


# The error body's elements that name a header or query parameter, and the ones echoing its value.
_ECHOED = (("HeaderName", "HeaderValue"), ("QueryParameterName", "QueryParameterValue"))
_SECRET_NAMES = _SECRET_HEADERS | {"sig"}
_DETAIL_SHOWN = 300  # characters of each detail in an error's text (all of it in .details)


def redact_details(details: Mapping[str, str]) -> dict[str, str]:
    """An error body's extra elements, each redacted; an echoed credential header's or ``sig``'s value hidden."""
    out = {str(k): redact_text(str(v)) for k, v in details.items()}
    for name, value in _ECHOED:
        if out.get(name, "").strip().lower() in _SECRET_NAMES and value in out:
            out[value] = "REDACTED"
    return out


def redact_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Headers safe to show: credentials' values REDACTED, SAS signatures in the others hidden."""
    return [(k, "REDACTED" if k.lower() in _SECRET_HEADERS else redact(v)) for k, v in headers.items()]


class AioQueueError(Exception):
    """Base of every error aioqueue raises."""


class ConfigurationError(AioQueueError, ValueError):
    """A bad argument, name, range, URL, credential or connection string; raised before any request."""


class MessageEncodingError(AioQueueError, ValueError):
    """Content that the client's message encoding cannot carry (or cannot decode)."""


class MessageTooLarge(MessageEncodingError):
    """Message content over 64 KiB after encoding.

    Raised before any request when aioqueue can tell, and also mapped from the service's
    ``MessageTooLarge`` / ``RequestBodyTooLarge`` answers; then ``status`` and ``error_code`` are set.
    """

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class MessageSettled(AioQueueError, RuntimeError):
    """The message was already deleted or released; it can be settled (or renewed) only once."""


class LeaseLost(AioQueueError):
    """A received message's renewals stopped before it was settled (``max_renewal`` reached, or the lease
    lapsed or was taken while renewing): it may be delivered again while its handler still runs. Kept in
    the message's ``renewal_error`` and passed to ``on_lease_lost``; never raised into a handler."""


class MalformedResponse(AioQueueError):
    """The service's answer could not be understood (bad XML, a missing field, a bad date)."""


class SendMessagesError(AioQueueError):
    """``send_messages`` stopped part-way: ``error`` is the first failure (also ``__cause__``) and
    ``receipts`` a list in input order holding a :class:`SendReceipt` for each message stored and
    ``None`` for each that was not, so a caller can resend exactly the missing ones."""

    def __init__(self, error: BaseException, receipts: list[Any]) -> None:
        sent = sum(r is not None for r in receipts)
        super().__init__(f"{sent} of {len(receipts)} messages were sent before a send failed: {error}")
        self.error = error
        self.receipts = receipts


class TransportError(AioQueueError, OSError):
    """The connection failed (refused, reset, closed mid-response) and retries are spent.

    ``unsent`` is True when the last attempt failed before anything was sent (no connection could be
    made), so that attempt cannot have done the work.
    """

    unsent: bool = False


class RequestTimeout(TransportError, TimeoutError):
    """An attempt took longer than the client's per-attempt ``timeout`` and retries are spent."""


class ServiceError(AioQueueError):
    """The service answered with an error status.

    Attributes: ``status`` (HTTP status), ``error_code`` (``x-ms-error-code``, e.g. ``QueueNotFound``),
    ``request_id`` (``x-ms-request-id``, quote it to Azure support), ``message`` (the service's text),
    ``details`` (the error body's other elements by name, e.g. Azure's ``AuthenticationErrorDetail``
    saying why a request was refused; empty when there are none), ``headers`` (response headers) and
    ``maybe_applied``: True when an earlier
    attempt of this call got no answer (or an inconclusive 408/500/502/504), so the operation may have
    been applied although this answer is an error. An ``update_message`` retried after a lost answer,
    for instance, finds its pop receipt already spent (``PopReceiptMismatch``/``MessageNotFound``)
    because the lost attempt did the update. ``message``, ``details`` and ``headers`` are redacted: no
    SAS signature, key, request signature or token the service echoes survives in them.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_code: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        maybe_applied: bool = False,
        details: Mapping[str, str] | None = None,
    ) -> None:
        self.message = redact_text(message)  # a server may echo the request's URL, SAS signature included
        self.status = status
        self.error_code = error_code
        self.request_id = request_id
        self.headers: dict[str, str] = dict(redact_headers(headers or {}))
        self.maybe_applied = maybe_applied
        self.details: dict[str, str] = redact_details(details or {})
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.error_code and self.message:
            text = f"{self.error_code} (HTTP {self.status}): {self.message}"
        elif self.error_code or self.message:
            text = f"{self.error_code or self.message} (HTTP {self.status})"
        else:
            text = f"HTTP {self.status}, with no error code or message in the answer"
        for name, value in self.details.items():  # e.g. why Azure refused the request
            shown = value if len(value) <= _DETAIL_SHOWN else value[:_DETAIL_SHOWN] + "..."
            text += f"; {name}: {shown!r}" if "\n" in shown else f"; {name}: {shown}"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        if self.maybe_applied:
            text += "; the request may have been applied: an earlier attempt's answer was lost"
        return redact_text(text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, error_code={self.error_code!r})"


class AuthenticationFailed(ServiceError):
    """The signature, SAS or token was refused (or missing), or lacks the permission for this operation:
    one of Azure Storage's authentication and authorization codes (``NoAuthenticationInformation``,
    ``InvalidAuthenticationInfo``, ``AuthenticationFailed``, ``AuthorizationFailure``, the
    ``Authorization...Mismatch`` codes, ``InsufficientAccountPermissions``,
    ``KeyBasedAuthenticationNotPermitted``) whatever the status (Azure answers a malformed Authorization
    header with 400 ``InvalidAuthenticationInfo``), or a 401 or 403 with another code or none.
    ``details`` holds Azure's ``AuthenticationErrorDetail`` when it says why."""


class QueueNotFound(ServiceError):
    """404 ``QueueNotFound``: the queue does not exist."""


class QueueAlreadyExists(ServiceError):
    """409 ``QueueAlreadyExists`` (or an existing queue where ``exist_ok=False``)."""


class QueueBeingDeleted(ServiceError):
    """409 ``QueueBeingDeleted``: Azure is still deleting a queue of this name (about 40 s)."""


class MessageNotFound(ServiceError):
    """404 ``MessageNotFound``: the message is gone, or (on Azure) the pop receipt is stale."""


class PopReceiptMismatch(ServiceError):
    """400 ``PopReceiptMismatch``: the pop receipt is stale (Azurite's answer where Azure says 404)."""


class ServerBusy(ServiceError):
    """503: the service is throttling, and retries are spent."""


# Azure Storage's authentication and authorization error codes (its common REST API error codes and its
# shared access signature error codes), in one place: each is an AuthenticationFailed, whatever its status.
AUTH_CODES = frozenset(
    {
        "NoAuthenticationInformation",  # 401: no credentials
        "InvalidAuthenticationInfo",  # 401, or 400 for a malformed Authorization header
        "AuthenticationFailed",  # 403: a bad signature, SAS or token
        "AuthorizationFailure",  # 403: not authorized (e.g. the ACL, a network rule)
        "AuthorizationPermissionMismatch",  # 403: the SAS or role lacks the permission
        "AuthorizationProtocolMismatch",  # 403: the SAS is https-only
        "AuthorizationResourceTypeMismatch",  # 403: the account SAS's resource types
        "AuthorizationServiceMismatch",  # 403: the account SAS's services
        "AuthorizationSourceIPMismatch",  # 403: the SAS's IP range
        "InsufficientAccountPermissions",  # 403: the account may not do this (reads or writes disabled)
        "KeyBasedAuthenticationNotPermitted",  # 403: Shared Key is disallowed on the account
    }
)
_BY_CODE: dict[str, type[ServiceError]] = {
    "QueueNotFound": QueueNotFound,
    "QueueAlreadyExists": QueueAlreadyExists,
    "QueueBeingDeleted": QueueBeingDeleted,
    "MessageNotFound": MessageNotFound,
    "PopReceiptMismatch": PopReceiptMismatch,
    "ServerBusy": ServerBusy,
} | dict.fromkeys(AUTH_CODES, AuthenticationFailed)
_TOO_LARGE_CODES = frozenset({"MessageTooLarge", "RequestBodyTooLarge"})


def service_error(
    status: int,
    error_code: str | None,
    message: str,
    request_id: str | None,
    headers: Mapping[str, str],
    maybe_applied: bool = False,
    details: Mapping[str, str] | None = None,
) -> AioQueueError:
    """Map one error response to the most specific exception: by its code first (``AUTH_CODES`` and the
    queue codes), then by its status (401/403, 503)."""
    if error_code in _TOO_LARGE_CODES or status == 413:
        return MessageTooLarge(
            f"{error_code or 'RequestBodyTooLarge'} (HTTP {status}): {message}", status=status, error_code=error_code
        )
    cls = _BY_CODE.get(error_code or "")
    if cls is None:
        if status in (401, 403):
            cls = AuthenticationFailed
        elif status == 503:
            cls = ServerBusy
        else:
            cls = ServiceError
    return cls(
        message,
        status=status,
        error_code=error_code,
        request_id=request_id,
        headers=headers,
        maybe_applied=maybe_applied,
        details=details,
    )
