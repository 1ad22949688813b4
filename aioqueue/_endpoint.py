"""Where requests go: account URLs and connection strings, parsed into an :class:`Endpoint`.

Errors name the problem and never echo a secret.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._auth import SasCredential, SharedKeyCredential, normalize_sas
from ._errors import ConfigurationError

__all__ = ["DEV_ACCOUNT", "DEV_KEY", "ConnectionSettings", "Endpoint", "parse_account_url", "parse_connection_string"]

# Azurite's well-known development account (public, the same in every emulator).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_QUEUE_ENDPOINT = "http://127.0.0.1:10001/devstoreaccount1"


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

    def secondary(self) -> tuple[str, str]:
        """Origin and path prefix of a geo-redundant account's secondary (``<account>-secondary``)."""
        account = self.account_name
        if self.path_prefix:
            return self.origin, f"/{account}-secondary"
        scheme, _, netloc = self.origin.partition("://")
        return f"{scheme}://{netloc.replace(account + '.', account + '-secondary.', 1)}", ""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_account_url(url: str) -> Endpoint:
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(
            "the account URL must be a non-empty str such as https://<account>.queue.core.windows.net"
        )
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
_IGNORED_KEYS = {
    "blobendpoint",
    "tableendpoint",
    "fileendpoint",
    "blobsecondaryendpoint",
    "tablesecondaryendpoint",
    "filesecondaryendpoint",
}


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
                "UseDevelopmentStorage=true cannot be combined with " + ", ".join(sorted(_KNOWN_KEYS[k] for k in extra))
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
