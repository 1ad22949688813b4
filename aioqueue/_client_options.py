"""The client options, written once: :class:`ClientOptions` (the keywords users see and mypy checks)
and :class:`ClientSettings` (their defaults), turned into the connection pool a client and its
children share by :func:`open_pool`, every option checked before any request."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict
from urllib.parse import parse_qs

import aiohttp
from yarl import URL

from ._auth import (
    AsyncTokenCredential,
    Credential,
    SasCredential,
    SharedKeyCredential,
    TokenCache,
    decode_key,
    normalize_sas,
    token_scope,
)
from ._blob_operations import BlobOperations
from ._encoding import MessageEncoding, get_encoding
from ._endpoint import ConnectionSettings, Endpoint, derive_blob_url, parse_account_url, parse_secondary
from ._errors import ConfigurationError
from ._operations import Pool, error_for
from ._payloads import BlobPayloads, PayloadStore
from ._retry import RetryPolicy
from ._telemetry import Telemetry
from ._transport import (
    DEFAULT_API_VERSION,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    Credentials,
    Location,
    RetryingSession,
    check_event_hooks,
)
from ._validation import api_version as check_api_version
from ._validation import positive_int, positive_number
from ._validation import user_agent as check_user_agent

__all__ = ["ClientOptions", "ClientSettings", "open_pool"]


class ClientOptions(TypedDict, total=False):
    """Keyword options every client constructor accepts (defaults in brackets).

    - ``api_version`` ["2025-11-05"]: the x-ms-version sent.
    - ``retry`` [RetryPolicy()]: ``None`` for no retries.
    - ``timeout`` [30.0]: seconds per attempt, from when it holds one of the pool's connections:
      connecting, sending and the whole answer (waiting for a free connection is not counted).
      ``max_connections`` [100]: the pool's size.
    - ``session`` [None]: your own ``aiohttp.ClientSession`` (the client never closes it; size its
      connector yourself: ``max_connections`` is refused with it).
    - ``message_encoding`` ["text"]: "text", "base64", "binary", "json", "base64-json" or a MessageEncoding.
    - ``secondary_hostname`` [derived]: the read-access geo-redundant secondary, as a host name or a URL;
      derived for ``*.queue.core.windows.net``-shaped hosts and path-style emulator URLs.
    - ``location_mode`` ["primary"]: "secondary" sends reads (peek, properties, metadata, ACL, list
      queues, service properties) to the secondary; writes always go to the primary.
    - ``retry_to_secondary`` [False]: retries of reads alternate between primary and secondary.
    - ``user_agent`` [None]: text put before aioqueue's own User-Agent.
    - ``audience`` [None]: token audience, e.g. ``https://<account>.queue.core.windows.net`` (default
      ``https://storage.azure.com``); only with a token credential.
    - ``event_hooks`` [None]: ``{"request": [fn, ...], "response": [fn, ...]}``, each called (or
      awaited) with a :class:`RequestEvent` / :class:`ResponseEvent` for every attempt.
    - ``allow_insecure_http`` [False]: let a SAS or bearer token travel over plain http to a host that
      is not loopback (test setups only: anyone on the path could replay it).
    - ``tracer_provider`` / ``meter_provider`` [the global ones]: OpenTelemetry providers for this
      client's spans and metrics (docs: Observability); nothing is recorded while neither is configured.
    - ``trace_context_field`` [None]: a field name, e.g. ``"traceparent"``: sent JSON-object messages
      carry the send span's W3C trace context in it, and a worker's process span links to the context
      it finds there (opt-in on both sides; other content is sent unchanged).
    - ``large_payloads`` [None]: :class:`BlobPayloads`: content over its threshold goes through a
      block blob and the queue gets a reference to it (docs: Large messages); without it such
      content raises MessageTooLarge.
    """

    api_version: str
    retry: RetryPolicy | None
    timeout: float
    max_connections: int | None
    session: aiohttp.ClientSession | None
    message_encoding: str | MessageEncoding
    secondary_hostname: str | None
    location_mode: Location
    retry_to_secondary: bool
    user_agent: str | None
    audience: str | None
    event_hooks: Mapping[str, Iterable[Callable[..., object]]] | None
    allow_insecure_http: bool
    tracer_provider: Any
    meter_provider: Any
    trace_context_field: str | None
    large_payloads: BlobPayloads | None


@dataclass(frozen=True)
class ClientSettings:
    """The options' defaults, the only ones (a test keeps these fields and :class:`ClientOptions` equal)."""

    api_version: str = DEFAULT_API_VERSION
    retry: RetryPolicy | None = field(default_factory=RetryPolicy)
    timeout: float = DEFAULT_TIMEOUT
    max_connections: int | None = None
    session: aiohttp.ClientSession | None = None
    message_encoding: str | MessageEncoding = "text"
    secondary_hostname: str | None = None
    location_mode: Location = "primary"
    retry_to_secondary: bool = False
    user_agent: str | None = None
    audience: str | None = None
    event_hooks: Mapping[str, Iterable[Callable[..., object]]] | None = None
    allow_insecure_http: bool = False
    tracer_provider: Any = None
    meter_provider: Any = None
    trace_context_field: str | None = None
    large_payloads: BlobPayloads | None = None

    @classmethod
    def build(cls, options: Mapping[str, Any], connection: ConnectionSettings | None = None) -> ClientSettings:
        """The settings from keyword options (a misspelt one is a TypeError, as for any function), plus
        what a connection string adds (its secondary endpoint)."""
        unknown = sorted(set(options) - _NAMES)
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r} (client options: {', '.join(sorted(_NAMES))})")
        merged = dict(options)
        if connection is not None and connection.secondary_url is not None:
            given = merged.get("secondary_hostname")
            if given is not None and given != connection.secondary_url:
                raise ConfigurationError(
                    "secondary_hostname= and the connection string's QueueSecondaryEndpoint differ"
                )
            merged["secondary_hostname"] = connection.secondary_url
        return cls(**merged)


_NAMES = frozenset(ClientOptions.__annotations__)


def open_pool(
    account_url: str, credential: Credential, options: Mapping[str, Any], connection: ConnectionSettings | None = None
) -> tuple[Pool, MessageEncoding]:
    """The connection pool (session, credential, telemetry) a client and its children share, and the
    client's message encoding: every option checked now, before any request. ``connection``: what a
    connection string said besides the URL and credential (the account's name, its secondary)."""
    settings = ClientSettings.build(options, connection)
    encoding = get_encoding(settings.message_encoding)
    account_name = connection.account_name if connection is not None else None
    endpoint, cred = _resolve_credential(parse_account_url(account_url), credential, account_name, settings.audience)
    if settings.secondary_hostname is not None:
        scheme = "https" if endpoint.secure else "http"
        endpoint = endpoint.with_secondary(parse_secondary(settings.secondary_hostname, scheme))
    _refuse_secrets_over_http(endpoint, cred, settings.allow_insecure_http)
    mode = _location_mode(settings.location_mode, settings.retry_to_secondary, endpoint)
    if settings.retry is not None and not isinstance(settings.retry, RetryPolicy):
        raise ConfigurationError("retry must be a RetryPolicy or None (no retries)")
    session = settings.session
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise ConfigurationError("session must be an aiohttp.ClientSession or None")
    http = RetryingSession(
        endpoint,
        cred,
        api_version=check_api_version(settings.api_version),
        retry=settings.retry,
        timeout=positive_number(settings.timeout, "timeout"),
        max_connections=_pool_size(settings.max_connections, session),
        session=session,
        map_error=error_for,
        location_mode=mode,
        retry_to_secondary=settings.retry_to_secondary,
        user_agent=check_user_agent(settings.user_agent),
        hooks=check_event_hooks(settings.event_hooks),
    )
    telemetry = _make_telemetry(
        endpoint, settings.tracer_provider, settings.meter_provider, settings.trace_context_field
    )
    payloads = _payload_store(settings.large_payloads, http, connection, settings.allow_insecure_http)
    return Pool(http, telemetry, payloads), encoding


def _payload_store(
    option: BlobPayloads | None, http: RetryingSession, connection: ConnectionSettings | None, allow_insecure_http: bool
) -> PayloadStore | None:
    """The large payloads' store: the option's endpoint, else the connection string's BlobEndpoint,
    else the one beside the queue endpoint; the queue's credential (and a SAS in its URL) signs."""
    if option is None:
        return None
    if not isinstance(option, BlobPayloads):
        raise ConfigurationError("large_payloads must be a BlobPayloads(container=...) or None")
    queue = http.endpoint
    url = option.endpoint or (connection.blob_url if connection is not None else None) or derive_blob_url(queue)
    if url is None:
        raise ConfigurationError(
            "large_payloads needs the account's Blob endpoint: pass BlobPayloads(endpoint=...) "
            "(or BlobEndpoint in the connection string)"
        )
    endpoint = parse_account_url(url, "Blob endpoint")
    if queue.sas is not None and endpoint.sas is None:
        endpoint = parse_account_url(f"{url}?{queue.sas}", "Blob endpoint")
    if queue.account_name and endpoint.account_name != queue.account_name:
        endpoint = endpoint.with_account(queue.account_name)
    _refuse_secrets_over_http(endpoint, http.credential, allow_insecure_http)
    return PayloadStore(option, BlobOperations(http.sibling(endpoint, http.credential), option.container))


def _resolve_credential(
    endpoint: Endpoint, credential: Credential, account_name: str | None, audience: str | None
) -> tuple[Endpoint, Credentials]:
    """The endpoint with the account's name settled, and the credential the transport uses.

    The name comes from a Shared Key credential, else the URL, else the connection string's AccountName.
    """
    if credential is not None and endpoint.sas is not None:
        _check_sas_beside(endpoint.sas, credential)
    if audience is not None and not isinstance(credential, AsyncTokenCredential):
        raise ConfigurationError("audience= applies only to a token credential (an Entra ID identity)")
    endpoint = _with_account_name(endpoint, credential, account_name)
    if credential is None or isinstance(credential, (SharedKeyCredential, SasCredential)):
        return endpoint, credential
    if isinstance(credential, str):
        return endpoint, _key_or_sas(endpoint, credential)
    if isinstance(credential, AsyncTokenCredential):
        return endpoint, TokenCache(credential, token_scope(audience))
    raise ConfigurationError(
        "credential must be None, an account key or SAS str, SharedKeyCredential, SasCredential, "
        f"or an async token credential; got {type(credential).__name__}"
    )


def _check_sas_beside(sas: str, credential: Credential) -> None:
    """A SAS in the URL and ``credential=`` too: only a SAS bound to a delegated user (its ``sduoid``)
    with a token credential, as that user's bearer token must come with such a SAS; otherwise refused."""
    bound = any(value for value in parse_qs(sas).get("sduoid", ()))
    if bound and isinstance(credential, AsyncTokenCredential):
        return
    if bound:
        raise ConfigurationError(
            "the URL's SAS is bound to a user (sduoid): its credential= must be that user's token "
            "credential (Microsoft Entra ID), whose bearer token is sent with it"
        )
    raise ConfigurationError("the URL carries a SAS token and credential= is given too; pass only one")


def _with_account_name(endpoint: Endpoint, credential: Credential, account_name: str | None) -> Endpoint:
    """The endpoint naming the account a Shared Key credential or connection string names."""
    given, source = (
        (credential.account_name, "the credential is")
        if isinstance(credential, SharedKeyCredential)
        else (account_name, "the connection string's AccountName is")
    )
    name = endpoint.account_name
    if not given or given == name:
        return endpoint
    if name and endpoint.account_certain and not endpoint.path_prefix:
        raise ConfigurationError(f"{source} for account {given!r} but the URL names {name!r}")
    return endpoint.with_account(given)  # the URL only guessed it (or did not name it)


def _key_or_sas(endpoint: Endpoint, credential: str) -> SasCredential | SharedKeyCredential:
    """A str credential: a SAS token, or an account key (which needs the account's name)."""
    if "sig=" in credential:
        return SasCredential(normalize_sas(credential))
    decode_key(credential)
    if not endpoint.account_name:
        raise ConfigurationError(
            f"the URL {endpoint.hostname!r} does not name the storage account (a custom domain?), so an "
            "account key cannot sign for it: pass SharedKeyCredential(account_name, key), or a connection "
            "string with AccountName"
        )
    return SharedKeyCredential(endpoint.account_name, credential)


def _refuse_secrets_over_http(endpoint: Endpoint, credential: Credentials, allowed: object) -> None:
    """Bearer tokens and SAS tokens are secrets anyone on the path could replay: https only, except to
    loopback, or with ``allow_insecure_http=True`` for a test setup (an emulator in docker compose)."""
    if not isinstance(allowed, bool):
        raise ConfigurationError("allow_insecure_http must be True or False")
    if isinstance(credential, TokenCache):
        secret = "a token credential"
    elif isinstance(credential, SasCredential) or endpoint.sas is not None:
        secret = "a SAS token"
    else:
        return
    hosts = endpoint.plain_http_hosts()
    if hosts and not allowed:
        raise ConfigurationError(
            f"{secret} needs an https:// URL: it would travel in clear to {hosts[0]} "
            "(for a test setup on a private network, pass allow_insecure_http=True; --allow-insecure-http in the CLI)"
        )


def _pool_size(max_connections: int | None, session: aiohttp.ClientSession | None) -> int:
    if max_connections is None:
        return DEFAULT_MAX_CONNECTIONS
    if session is not None:
        raise ConfigurationError(
            "max_connections sizes aioqueue's own pool; with session= size your session's connector "
            "(aiohttp.TCPConnector(limit=...)) instead"
        )
    return positive_int(max_connections, "max_connections")


def _location_mode(value: object, retry_to_secondary: object, endpoint: Endpoint) -> Location:
    if value not in ("primary", "secondary"):
        raise ConfigurationError(f"location_mode must be 'primary' or 'secondary'; got {value!r}")
    if not isinstance(retry_to_secondary, bool):
        raise ConfigurationError("retry_to_secondary must be True or False")
    if (value == "secondary" or retry_to_secondary) and endpoint.secondary_origin is None:
        raise ConfigurationError(
            f"{'location_mode=secondary' if value == 'secondary' else 'retry_to_secondary'} needs the "
            "account's secondary endpoint, which this URL does not show: pass secondary_hostname="
        )
    return "primary" if value == "primary" else "secondary"


def _make_telemetry(endpoint: Endpoint, tracer_provider: Any, meter_provider: Any, trace_field: object) -> Telemetry:
    """The pool's telemetry: options checked, and the server address and port its metrics name."""
    for name, provider, method in (
        ("tracer_provider", tracer_provider, "get_tracer"),
        ("meter_provider", meter_provider, "get_meter"),
    ):
        if provider is not None and not callable(getattr(provider, method, None)):
            raise ConfigurationError(f"{name} must be an OpenTelemetry {name.replace('_', ' ')} (with .{method}())")
    if trace_field is not None and (not isinstance(trace_field, str) or not _FIELD.fullmatch(trace_field)):
        raise ConfigurationError("trace_context_field must be a JSON field name of letters, digits, '_', '-' or '.'")
    url = URL(endpoint.origin)
    server = (url.host, url.port) if url.host is not None and url.port is not None else None
    return Telemetry(tracer_provider, meter_provider, server=server, trace_field=trace_field)


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
