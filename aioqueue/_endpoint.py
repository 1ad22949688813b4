"""Where requests go: account URLs and connection strings, parsed into an :class:`Endpoint`.

Azure's host shapes (``https://<account>.queue.core.windows.net`` and the other clouds' suffixes) name
the account in the first label, which may carry ``-secondary`` (the read-access geo-redundant
secondary), ``-ipv6`` or ``-dualstack``. Shared Key always signs with the *primary* account's name, so
these suffixes are not part of the account name. Custom domains (``https://queues.example.com``) do
not name the account at all: it then comes from the credential or the connection string. Path-style
URLs (the emulator, an IP address) name it in the first path segment; on a host name only a path of
one segment that is an account's name does (``http://azurite:10001/devstoreaccount1``).

Errors name the problem and never echo a secret.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from ._auth import SasCredential, SharedKeyCredential, normalize_sas
from ._errors import ConfigurationError

__all__ = [
    "DEV_ACCOUNT",
    "DEV_KEY",
    "ConnectionSettings",
    "Endpoint",
    "derive_blob_url",
    "parse_account_url",
    "parse_connection_string",
    "parse_secondary",
]

# Azurite's well-known development account (public, the same in every emulator).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_QUEUE_ENDPOINT = "http://127.0.0.1:10001/devstoreaccount1"
DEV_BLOB_ENDPOINT = "http://127.0.0.1:10000/devstoreaccount1"  # Azurite's blob service (large payloads)

# <account>[-secondary][-ipv6|-dualstack]: the first label of an Azure host name
_AZURE_LABEL = re.compile(r"(?P<account>[a-z0-9]+)(?P<secondary>-secondary)?(?P<network>-ipv6|-dualstack)?")
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")  # a storage account's name
_DNS_ZONE = re.compile(r"z[0-9]{2}")  # Azure DNS zone endpoints: <account>.z01.queue.storage.azure.net


@dataclass(frozen=True)
class Endpoint:
    """A parsed account URL: where requests go and how they are signed."""

    origin: str  # scheme://host[:port]
    path_prefix: str  # "" or "/account" for path-style (emulator, IP address) URLs
    account_name: str | None  # None: the URL does not name it (a custom domain)
    secure: bool
    loopback: bool
    sas: str | None = field(repr=False)  # a SAS token carried in the URL (a secret: not in the repr)
    secondary_origin: str | None = None  # the read-only geo-redundant secondary, when known
    secondary_prefix: str = ""
    # the Azure host's first label minus the account: "-secondary", "-ipv6", ... (None if not an Azure host)
    azure_label: str | None = None
    # the URL names the account beyond doubt: a *.queue.core.* host, or a path-style URL on an IP address
    account_certain: bool = False

    @property
    def url(self) -> str:
        return self.origin + self.path_prefix

    @property
    def hostname(self) -> str:
        """``host[:port]`` plus the path prefix, as the official SDK's ``primary_hostname``."""
        return self.origin.partition("://")[2] + self.path_prefix

    @property
    def secondary_url(self) -> str | None:
        return None if self.secondary_origin is None else self.secondary_origin + self.secondary_prefix

    @property
    def secondary_hostname(self) -> str | None:
        if self.secondary_origin is None:
            return None
        return self.secondary_origin.partition("://")[2] + self.secondary_prefix

    def with_account(self, account_name: str) -> Endpoint:
        """This endpoint for an account named by a credential or connection string: the URL's guess
        (if any) is dropped, and the secondary derived again."""
        if self.account_name != account_name:
            fresh = replace(
                self, account_name=account_name, azure_label=None, secondary_origin=None, secondary_prefix=""
            )
            return _derive_secondary(fresh)
        return self

    def plain_http_hosts(self) -> list[str]:
        """The origins (primary, secondary) a secret would reach over plain http on the network."""
        found = []
        for origin in (self.origin, self.secondary_origin):
            if origin is not None and origin.startswith("http://"):
                host = urlsplit(origin).hostname or ""
                if not _is_loopback(host):
                    found.append(origin)
        return found

    def with_secondary(self, secondary: Endpoint) -> Endpoint:
        if secondary.secure != self.secure:
            raise ConfigurationError("the secondary endpoint must use the same scheme (http/https) as the primary")
        return replace(self, secondary_origin=secondary.origin, secondary_prefix=secondary.path_prefix)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _azure_host(host: str) -> tuple[str, str, bool] | None:
    """(account, rest of the first label, certain) for ``<label>.queue.<suffix>`` hosts, else None.

    Certain for Azure's own suffixes (``.queue.core.<cloud>``, ``.zNN.queue.storage.azure.net``); for
    another suffix (Azure Stack, a custom domain that happens to have a ``queue`` label) the first
    label is only a guess that a credential or connection string overrides.
    """
    labels = host.split(".")
    if len(labels) >= 3 and labels[1] == "queue":
        certain = labels[2] == "core"
    elif len(labels) >= 4 and _DNS_ZONE.fullmatch(labels[1]) and labels[2] == "queue":
        certain = labels[3:] == ["storage", "azure", "net"]
    else:
        return None
    match = _AZURE_LABEL.fullmatch(labels[0])
    if match is None:
        return None
    return match["account"], labels[0][len(match["account"]) :], certain


def _path_style(segments: list[str], address: bool) -> bool:
    """Whether the first path segment names the account: always on an IP address or loopback (the
    emulator); on a host name (``http://azurite:10001/devstoreaccount1`` in docker compose) only when
    the path is that one segment and it is an account's name. A deeper path on a host name
    (``http://gateway:8080/custom/account/path``) names no account, as in the official client."""
    if not segments:
        return False
    return address or (len(segments) == 1 and _ACCOUNT_NAME.fullmatch(segments[0]) is not None)


def _derive_secondary(endpoint: Endpoint) -> Endpoint:
    """The secondary of an Azure host (``<account>-secondary``) or of a path-style emulator URL.

    A custom domain maps only the primary; its account's secondary is taken to be in Azure's public
    cloud (``<account>-secondary.queue.core.windows.net``), as the official SDK does. Elsewhere pass
    ``secondary_hostname=``."""
    account = endpoint.account_name
    if not account:
        return endpoint
    scheme, _, netloc = endpoint.origin.partition("://")
    if endpoint.azure_label is not None:
        network = endpoint.azure_label.removeprefix("-secondary")
        _, dot, rest = netloc.partition(".")
        origin = f"{scheme}://{account}-secondary{network}{dot}{rest}"
        return replace(endpoint, secondary_origin=origin, secondary_prefix=endpoint.path_prefix)
    if endpoint.path_prefix:
        segments = endpoint.path_prefix.split("/")  # ["", account, ...]
        if segments[1] == account:
            segments[1] = f"{account}-secondary"
            return replace(endpoint, secondary_origin=endpoint.origin, secondary_prefix="/".join(segments))
    host = urlsplit(endpoint.origin).hostname or ""
    if endpoint.loopback or not host or _is_ip(host):
        return endpoint
    return replace(endpoint, secondary_origin=f"{scheme}://{account}-secondary.queue.core.windows.net")


def parse_account_url(url: str, what: str = "account URL") -> Endpoint:
    """An account URL as an Endpoint; a URL without a scheme is taken as https (as Azure's SDKs do)."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"the {what} must be a non-empty str such as https://<account>.queue.core.windows.net")
    text = url.strip()
    if "#" in text:  # never echo the URL: the '#' may sit in a SAS signature
        raise ConfigurationError(
            f"the {what} holds a '#': what follows it would be dropped, never sent (a '#' in a SAS "
            "signature must be URL-encoded as %23; pass the URL exactly as issued)"
        )
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise ConfigurationError(
            f"the {what} must not carry a user name or password (user@host): requests would go to the "
            "host after the '@'; give the host alone and the key or SAS as the credential"
        )
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(
            f"the {what} must start with https:// (or http://) and name a host, "
            "such as https://<account>.queue.core.windows.net"
        )
    segments = [s for s in parts.path.split("/") if s]
    prefix = "/" + "/".join(segments) if segments else ""
    loopback = _is_loopback(host)
    ip = _is_ip(host)
    azure = None if ip else _azure_host(host)
    certain = False
    if azure is not None:
        account: str | None = azure[0]
        certain = azure[2]
    elif _path_style(segments, loopback or ip):  # http://127.0.0.1:10001/devstoreaccount1, http://azurite:10001/...
        account = segments[0]
        certain = loopback or ip
    else:  # a custom domain or gateway: the account comes from the credential or the connection string
        account = None
    endpoint = Endpoint(
        origin=f"{parts.scheme}://{parts.netloc}",
        path_prefix=prefix,
        account_name=account,
        secure=parts.scheme == "https",
        loopback=loopback,
        sas=normalize_sas(parts.query) if parts.query else None,
        azure_label=azure[1] if azure is not None else None,
        account_certain=certain,
    )
    return _derive_secondary(endpoint)


def parse_secondary(value: str, scheme: str = "https") -> Endpoint:
    """A secondary given as a host name (``myaccount-secondary.queue.core.windows.net``; the primary's
    scheme is used) or a URL."""
    if isinstance(value, str) and value.strip() and "://" not in value:
        value = f"{scheme}://{value.strip()}"
    endpoint = parse_account_url(value, "secondary endpoint")
    if endpoint.sas is not None:
        raise ConfigurationError("the secondary endpoint must not carry a SAS token; give it to the primary")
    return endpoint


@dataclass(frozen=True)
class ConnectionSettings:
    account_url: str
    credential: SharedKeyCredential | SasCredential | None
    account_name: str | None = None
    secondary_url: str | None = None
    blob_url: str | None = None  # BlobEndpoint, or derived from the account (large payloads' container)


_KNOWN_KEYS = {
    "accountname": "AccountName",
    "accountkey": "AccountKey",
    "sharedaccesssignature": "SharedAccessSignature",
    "queueendpoint": "QueueEndpoint",
    "queuesecondaryendpoint": "QueueSecondaryEndpoint",
    "blobendpoint": "BlobEndpoint",
    "defaultendpointsprotocol": "DefaultEndpointsProtocol",
    "endpointsuffix": "EndpointSuffix",
    "usedevelopmentstorage": "UseDevelopmentStorage",
    "developmentstorageproxyuri": "DevelopmentStorageProxyUri",
}
_IGNORED_KEYS = {
    "tableendpoint",
    "fileendpoint",
    "blobsecondaryendpoint",
    "tablesecondaryendpoint",
    "filesecondaryendpoint",
}


_HOST_NAME = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_ACCOUNT_LABEL = re.compile(r"[A-Za-z0-9]+")


def _azure_endpoint(settings: dict[str, str], name: str | None, service: str = "queue") -> str:
    """``<protocol>://<AccountName>.<service>.<EndpointSuffix>``: both parts checked to be host names, so
    neither can move the host (``core.windows.net@evil.example``, ``evil.example/``)."""
    if not name:
        raise ConfigurationError("connection string needs QueueEndpoint or AccountName")
    protocol = settings.get("defaultendpointsprotocol", "https").lower()
    if protocol not in ("http", "https"):
        raise ConfigurationError("DefaultEndpointsProtocol must be http or https")
    suffix = settings.get("endpointsuffix", "core.windows.net").strip(".")
    if not suffix:
        raise ConfigurationError("EndpointSuffix is empty")
    if not _HOST_NAME.fullmatch(suffix):
        raise ConfigurationError(
            "EndpointSuffix must be a host name (letters, digits, hyphens and dots), such as core.windows.net"
        )
    if not _ACCOUNT_LABEL.fullmatch(name):
        raise ConfigurationError("AccountName must be letters and digits when it builds the host name")
    return f"{protocol}://{name}.{service}.{suffix}"


def _read_settings(conn_str: str) -> dict[str, str]:
    """The known settings by lower-case name (the other services' endpoints dropped)."""
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
            # never echo it: a pasted key's text would land in the error (and the CLI's output)
            near = difflib.get_close_matches(setting, list(_KNOWN_KEYS) + list(_IGNORED_KEYS), n=1, cutoff=0.8)
            hint = f" (did you mean {_KNOWN_KEYS.get(near[0], near[0])}?)" if near else ""
            raise ConfigurationError(f"connection string segment {index} has an unknown setting{hint}")
        if setting in settings:
            raise ConfigurationError(f"connection string sets {_KNOWN_KEYS[setting]} twice")
        settings[setting] = value.strip()
    return settings


def parse_connection_string(conn_str: str) -> ConnectionSettings:
    """Parse every form Azure documents; errors name the problem and never echo a secret."""
    settings = _read_settings(conn_str)
    if settings.get("usedevelopmentstorage", "").lower() == "true":
        extra = set(settings) - {"usedevelopmentstorage", "developmentstorageproxyuri", "blobendpoint"}
        if extra:
            raise ConfigurationError(
                "UseDevelopmentStorage=true cannot be combined with " + ", ".join(sorted(_KNOWN_KEYS[k] for k in extra))
            )
        endpoint, blob = DEV_QUEUE_ENDPOINT, DEV_BLOB_ENDPOINT
        proxy = settings.get("developmentstorageproxyuri")
        if proxy:
            endpoint = proxy.rstrip("/") + ":10001/" + DEV_ACCOUNT
            blob = proxy.rstrip("/") + ":10000/" + DEV_ACCOUNT
        blob = settings.get("blobendpoint") or blob  # it was ignored before large payloads read it
        return ConnectionSettings(endpoint, SharedKeyCredential(DEV_ACCOUNT, DEV_KEY), DEV_ACCOUNT, None, blob)
    if "usedevelopmentstorage" in settings:
        raise ConfigurationError("UseDevelopmentStorage must be 'true' when present")

    name = settings.get("accountname") or None
    key = settings.get("accountkey")
    sas = settings.get("sharedaccesssignature")
    if key and sas:
        raise ConfigurationError("connection string has both AccountKey and SharedAccessSignature; keep one")
    if key is not None and not name:
        raise ConfigurationError("connection string has AccountKey but no AccountName")
    account_url = settings.get("queueendpoint")
    secondary_url = settings.get("queuesecondaryendpoint") or None
    if secondary_url and not account_url:
        raise ConfigurationError(
            "connection string has only a secondary endpoint (QueueSecondaryEndpoint); "
            "add QueueEndpoint for the primary, which every write goes to"
        )
    blob_url = settings.get("blobendpoint") or None
    if not account_url:
        account_url = _azure_endpoint(settings, name)
        blob_url = blob_url or _azure_endpoint(settings, name, "blob")
    credential: SharedKeyCredential | SasCredential | None = None
    if key is not None and name:
        credential = SharedKeyCredential(name, key)
    elif sas is not None:
        credential = SasCredential(sas)
    return ConnectionSettings(account_url, credential, name, secondary_url, blob_url)


def derive_blob_url(queue: Endpoint) -> str | None:
    """The account's Blob endpoint beside its Queue endpoint: ``<account>.blob.<suffix>`` for an Azure
    host, port 10000 for an emulator's path-style URL on port 10001 (Azurite's defaults); else None."""
    scheme, _, netloc = queue.origin.partition("://")
    if queue.azure_label is not None:
        first, _, rest = netloc.partition(".")
        return f"{scheme}://{first}.{rest.replace('queue.', 'blob.', 1)}{queue.path_prefix}"
    parts = urlsplit(queue.origin)
    if queue.path_prefix and parts.port == 10001:
        return f"{scheme}://{parts.hostname}:10000{queue.path_prefix}"
    return None
