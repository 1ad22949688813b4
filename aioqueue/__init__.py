"""aioqueue: a small, fast, asyncio-native client for Azure Queue Storage.

Everything public is importable from here; the underscored modules are private.
"""

from ._auth import AsyncTokenCredential, SasCredential, SharedKeyCredential
from ._client import QueueClient, QueueServiceClient
from ._consumer import BatchStream, MessageBatch, MessageSettled, MessageStream, ReceivedMessage
from ._encoding import MessageEncoding
from ._errors import (
    AioQueueError,
    AuthenticationFailed,
    ConfigurationError,
    MessageEncodingError,
    MessageNotFound,
    MessageTooLarge,
    PopReceiptMismatch,
    QueueAlreadyExists,
    QueueBeingDeleted,
    QueueNotFound,
    RequestTimeout,
    ServerBusy,
    ServiceError,
    TransportError,
)
from ._models import (
    AccessPolicy,
    CorsRule,
    GeoReplication,
    Metrics,
    PeekedMessage,
    ProcessStats,
    QueueAnalyticsLogging,
    QueueItem,
    QueueMessage,
    QueueProperties,
    RetentionPolicy,
    SendReceipt,
    ServiceProperties,
    ServiceStats,
    UpdateReceipt,
)
from ._retry import RetryPolicy
from ._sas import generate_account_sas, generate_queue_sas
from ._version import __version__
from ._xml import MalformedResponse

__all__ = [
    "AccessPolicy",
    "AioQueueError",
    "AsyncTokenCredential",
    "AuthenticationFailed",
    "BatchStream",
    "ConfigurationError",
    "CorsRule",
    "GeoReplication",
    "MalformedResponse",
    "MessageBatch",
    "MessageEncoding",
    "MessageEncodingError",
    "MessageNotFound",
    "MessageSettled",
    "MessageStream",
    "MessageTooLarge",
    "Metrics",
    "PeekedMessage",
    "PopReceiptMismatch",
    "ProcessStats",
    "QueueAlreadyExists",
    "QueueAnalyticsLogging",
    "QueueBeingDeleted",
    "QueueClient",
    "QueueItem",
    "QueueMessage",
    "QueueNotFound",
    "QueueProperties",
    "QueueServiceClient",
    "ReceivedMessage",
    "RequestTimeout",
    "RetentionPolicy",
    "RetryPolicy",
    "SasCredential",
    "SendReceipt",
    "ServerBusy",
    "ServiceError",
    "ServiceProperties",
    "ServiceStats",
    "SharedKeyCredential",
    "TransportError",
    "UpdateReceipt",
    "__version__",
    "generate_account_sas",
    "generate_queue_sas",
]
