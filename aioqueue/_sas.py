"""Shared access signature generation (service SAS for a queue, account SAS for the queue service and,
with ``services``, others: large payloads need the Blob service too)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from ._auth import HmacKey, SharedKeyCredential
from ._dates import format_iso8601
from ._errors import ConfigurationError
from ._models import UserDelegationKey
from ._validation import account_name as check_account_name
from ._validation import api_version as check_api_version
from ._validation import queue_name as check_queue_name
from ._validation import signed_identifier

__all__ = ["generate_account_sas", "generate_queue_sas"]

DEFAULT_SAS_VERSION = "2025-11-05"
# The first service version in which the Queue service hands out user delegation keys (the official
# SDKs added queue user delegation SAS together with it). Used for the key request and as the
# default ``sv`` of a user delegation SAS.
USER_DELEGATION_VERSION = "2026-02-06"
MAX_DELEGATION_KEY_LIFETIME = timedelta(days=7)
QUEUE_PERMISSIONS = "raup"
ACCOUNT_PERMISSIONS = "rwdlacup"
RESOURCE_TYPES = "sco"
SERVICES = "bqtf"  # an account SAS's services (ss), in the service's order: blob, queue, table, file
DEFAULT_SERVICES = "q"


def normalize_letters(value: str, allowed: str, what: str) -> str:
    """Check permission-like letters and put them in the service's order."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a str of letters from {allowed!r}")
    bad = sorted(set(value) - set(allowed))
    if bad:
        raise ConfigurationError(f"{what} has letters {''.join(bad)!r} outside {allowed!r}")
    return "".join(c for c in allowed if c in value)


def _when(value: datetime | timedelta | None, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return format_iso8601(datetime.now(timezone.utc) + value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigurationError(f"{what} must be an aware datetime (with tzinfo) or a timedelta from now")
        return format_iso8601(value)
    raise ConfigurationError(f"{what} must be a datetime or a timedelta, not {type(value).__name__}")


def _aware(value: datetime | timedelta, what: str, now: datetime) -> datetime:
    if isinstance(value, timedelta):
        return now + value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigurationError(f"{what} must be an aware datetime (with tzinfo) or a timedelta from now")
        return value
    raise ConfigurationError(f"{what} must be a datetime or a timedelta, not {type(value).__name__}")


def delegation_key_window(start: datetime | timedelta, expiry: datetime | timedelta) -> tuple[str, str]:
    """Check and format the ``start`` and ``expiry`` of a user delegation key request.

    Both are aware datetimes or timedeltas from now. The service allows a key to live at most seven
    days from now, so a later expiry (or one not after ``start``) is refused before any request.
    """
    now = datetime.now(timezone.utc)
    begin, end = _aware(start, "start", now), _aware(expiry, "expiry", now)
    if end <= begin:
        raise ConfigurationError("expiry must be later than start")
    if end - now > MAX_DELEGATION_KEY_LIFETIME:
        raise ConfigurationError("a user delegation key expires at most 7 days from now")
    return format_iso8601(begin), format_iso8601(end)


def _delegation_signer(key: UserDelegationKey) -> HmacKey:
    if not isinstance(key, UserDelegationKey):
        raise ConfigurationError(
            f"user_delegation_key must be a UserDelegationKey (from get_user_delegation_key), not {type(key).__name__}"
        )
    try:
        secret = base64.b64decode(key.value, validate=True) if isinstance(key.value, str) else b""
    except (binascii.Error, ValueError):
        secret = b""
    if not secret:
        raise ConfigurationError("the user delegation key's value is not valid base64")
    return HmacKey(secret)


def _ip(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        for part in ip.split("-", 1):
            ipaddress.ip_address(part.strip())
    except ValueError:
        raise ConfigurationError(f"ip must be an IP address or a range 'a.b.c.d-e.f.g.h', not {ip!r}") from None
    return ip


def _protocol(protocol: str | None) -> str | None:
    if protocol is None:
        return None
    if protocol not in ("https", "https,http"):
        raise ConfigurationError("protocol must be 'https' or 'https,http'")
    return protocol


def _token(fields: list[tuple[str, str | None]], signature: str) -> str:
    pairs = [(k, v) for k, v in fields if v]
    pairs.append(("sig", signature))
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)


def _queue_signer(
    account_name: str,
    account_key: str | None,
    policy_id: str | None,
    user_delegation_key: UserDelegationKey | None,
    user_delegation_oid: str | None,
) -> SharedKeyCredential | HmacKey:
    """What signs a queue SAS: the account key, or else the user delegation key (exactly one is given)."""
    if user_delegation_key is None:
        if account_key is None:
            raise ConfigurationError("a queue SAS needs an account_key or a user_delegation_key")
        if user_delegation_oid is not None:
            raise ConfigurationError("user_delegation_oid only applies with a user_delegation_key")
        return SharedKeyCredential(account_name, account_key)
    if account_key is not None:
        raise ConfigurationError("give either account_key or user_delegation_key, not both")
    if policy_id is not None:
        raise ConfigurationError("a user delegation SAS cannot use a stored access policy (policy_id)")
    if user_delegation_oid is not None:
        signed_identifier(user_delegation_oid, "user_delegation_oid (an Entra ID object id)")
    return _delegation_signer(user_delegation_key)


def generate_queue_sas(
    account_name: str,
    queue_name: str,
    account_key: str | None = None,
    *,
    permission: str = "",
    expiry: datetime | timedelta | None = None,
    start: datetime | timedelta | None = None,
    policy_id: str | None = None,
    ip: str | None = None,
    protocol: str | None = None,
    version: str | None = None,
    user_delegation_key: UserDelegationKey | None = None,
    user_delegation_oid: str | None = None,
) -> str:
    """A service SAS for one queue, without a leading ``?``.

    ``permission`` letters from ``raup`` (read/peek, add, update, process = get + delete) in any order;
    ``expiry``/``start`` are aware datetimes or timedeltas from now. Either give ``permission`` and
    ``expiry`` or name a stored access policy with ``policy_id`` that supplies them.

    Sign with the ``account_key``, or instead (``account_key=None``) with a ``user_delegation_key``
    from ``QueueServiceClient.get_user_delegation_key``: a user delegation SAS. That kind cannot use
    a stored access policy. ``user_delegation_oid`` (only with a delegation key) limits the SAS to
    the Entra ID user with that object id, who must also send a bearer token: give the SAS in the URL
    and that user's token credential as ``credential=``. The delegated user's tenant (``skdutid``) is
    the key's, asked for with ``get_user_delegation_key(delegated_user_tid=...)``.

    ``version`` is the SAS's ``sv``: by default 2025-11-05 for an account key and 2026-02-06 for a
    user delegation key.
    """
    # every field below feeds a newline-separated string to sign and the token's query: a newline,
    # '/' or '&' in one would sign (or send) something else than was meant
    account_name = check_account_name(account_name)
    if not isinstance(queue_name, str):
        raise ConfigurationError("queue_name must be a str")
    queue_name = check_queue_name(queue_name.lower())
    if policy_id is not None:
        signed_identifier(policy_id, "policy_id")
    if version is not None:
        check_api_version(version)
    signer = _queue_signer(account_name, account_key, policy_id, user_delegation_key, user_delegation_oid)
    if version is None:
        version = DEFAULT_SAS_VERSION if user_delegation_key is None else USER_DELEGATION_VERSION
    sp = normalize_letters(permission, QUEUE_PERMISSIONS, "permission") if permission else ""
    se = _when(expiry, "expiry") or ""
    st = _when(start, "start") or ""
    if policy_id is None and (not sp or not se):
        raise ConfigurationError("a queue SAS needs permission and expiry, or a policy_id naming a stored policy")
    sip, spr = _ip(ip) or "", _protocol(protocol) or ""
    resource = f"/queue/{account_name}/{queue_name}"
    if isinstance(signer, SharedKeyCredential):
        string_to_sign = "\n".join([sp, st, se, resource, policy_id or "", sip, spr, version])
        return _token(
            [("sv", version), ("st", st), ("se", se), ("sp", sp), ("sip", sip), ("spr", spr), ("si", policy_id)],
            signer.sign(string_to_sign),
        )
    key = user_delegation_key
    assert key is not None
    delegation = [
        ("skoid", key.signed_oid),
        ("sktid", key.signed_tid),
        ("skt", key.signed_start),
        ("ske", key.signed_expiry),
        ("sks", key.signed_service),
        ("skv", key.signed_version),
        ("skdutid", key.signed_delegated_user_tid or ""),
        ("sduoid", user_delegation_oid or ""),
    ]
    # the key's fields and the delegated user stand where an account-key SAS has the policy id
    string_to_sign = "\n".join([sp, st, se, resource, *(v for _, v in delegation), sip, spr, version])
    return _token(
        [("sv", version), ("st", st), ("se", se), ("sp", sp), ("sip", sip), ("spr", spr), *delegation],
        signer.sign(string_to_sign),
    )


def generate_account_sas(
    account_name: str,
    account_key: str,
    *,
    resource_types: str,
    permission: str,
    expiry: datetime | timedelta,
    start: datetime | timedelta | None = None,
    ip: str | None = None,
    protocol: str | None = None,
    version: str = DEFAULT_SAS_VERSION,
    services: str = DEFAULT_SERVICES,
) -> str:
    """An account SAS, without a leading ``?``: for the queue service, or the ``services`` named.

    ``resource_types`` from ``sco`` (service, container = queue, object = message); ``permission`` from
    ``rwdlacup``; ``services`` from ``bqtf`` (blob, queue, table, file; default ``q``): ``bq`` signs
    for the Blob service too, as large payloads (``BlobPayloads``) need. All in any order.
    """
    credential = SharedKeyCredential(check_account_name(account_name), account_key)
    check_api_version(version)
    ss = normalize_letters(services, SERVICES, "services")
    srt = normalize_letters(resource_types, RESOURCE_TYPES, "resource_types")
    sp = normalize_letters(permission, ACCOUNT_PERMISSIONS, "permission")
    if not ss:
        raise ConfigurationError("an account SAS needs at least one service in services (q: the queue service)")
    if not srt or not sp:
        raise ConfigurationError("an account SAS needs at least one resource type and one permission")
    se = _when(expiry, "expiry")
    if se is None:
        raise ConfigurationError("an account SAS needs an expiry")
    st = _when(start, "start") or ""
    sip, spr = _ip(ip) or "", _protocol(protocol) or ""
    # Since version 2020-12-06 the string to sign ends with the (empty) encryption scope and a newline.
    fields = [account_name, sp, ss, srt, st, se, sip, spr, version]
    string_to_sign = "\n".join(fields) + "\n" + ("\n" if version >= "2020-12-06" else "")
    return _token(
        [("sv", version), ("ss", ss), ("srt", srt), ("sp", sp), ("st", st), ("se", se), ("sip", sip), ("spr", spr)],
        credential.sign(string_to_sign),
    )
