"""aioqueue: a small, fast, asyncio-native client for Azure Queue Storage.

Everything public is importable from here; the underscored modules are private.
"""

from ._auth import AsyncTokenCredential, Credential, SasCredential, SharedKeyCredential
from ._client_options import ClientOptions
from ._encoding import MessageEncoding
from ._errors import (
    AioQueueError,
    AuthenticationFailed,
    ConfigurationError,
    LeaseLost,
    MalformedResponse,
    MessageEncodingError,
    MessageNotFound,
    MessageSettled,
    MessageTooLarge,
    PopReceiptMismatch,
    QueueAlreadyExists,
    QueueBeingDeleted,
    QueueNotFound,
    RequestTimeout,
    SendMessagesError,
    ServerBusy,
    ServiceError,
    TransportError,
)
from ._events import RequestEvent, ResponseEvent
from ._models import (
    AccessPolicy,
    CorsRule,
    GeoReplication,
    Metrics,
    PeekedMessage,
    ProcessStats,
    QueueAnalyticsLogging,
    QueueItem,
    QueueLag,
    QueueMessage,
    QueueProperties,
    RetentionPolicy,
    SendReceipt,
    ServiceProperties,
    ServiceStats,
    UpdateReceipt,
    UserDelegationKey,
)
from ._options import ReceiveOptions, RetryDelay
from ._paging import QueueListing, QueuePage
from ._payloads import BlobPayloads, PayloadError, PayloadUnavailable
from ._poison import PoisonFailure, PoisonFormat, PoisonRecord
from ._queue_client import QueueClient
from ._redrive import RedriveError, RedriveResult
from ._retry import RetryPolicy
from ._sas import generate_account_sas, generate_queue_sas
from ._service_client import QueueServiceClient
from ._settle import MessageBatch, ReceivedMessage
from ._streams import BatchStream, MessageStream
from ._validation import Duration
from ._version import __version__
from ._worker import FailureHook, Handler, PoisonHook, ProcessOptions, Worker, WorkerOptions

__all__ = [
    "BlobPayloads",
    "PayloadError",
    "PayloadUnavailable",
    "PoisonFailure",
    "PoisonFormat",
    "PoisonRecord",
    "RedriveError",
    "RedriveResult",
    "ResponseEvent",
    "RequestEvent",
    "QueuePage",
    "QueueListing",
    "ClientOptions",
    "AccessPolicy",
    "AioQueueError",
    "AsyncTokenCredential",
    "AuthenticationFailed",
    "BatchStream",
    "ConfigurationError",
    "CorsRule",
    "Credential",
    "Duration",
    "GeoReplication",
    "FailureHook",
    "Handler",
    "PoisonHook",
    "ProcessOptions",
    "MalformedResponse",
    "MessageBatch",
    "MessageEncoding",
    "MessageEncodingError",
    "MessageNotFound",
    "LeaseLost",
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
    "QueueLag",
    "QueueMessage",
    "QueueNotFound",
    "QueueProperties",
    "QueueServiceClient",
    "ReceiveOptions",
    "ReceivedMessage",
    "RequestTimeout",
    "RetentionPolicy",
    "RetryDelay",
    "RetryPolicy",
    "SasCredential",
    "SendMessagesError",
    "SendReceipt",
    "ServerBusy",
    "ServiceError",
    "ServiceProperties",
    "ServiceStats",
    "SharedKeyCredential",
    "TransportError",
    "UpdateReceipt",
    "UserDelegationKey",
    "Worker",
    "WorkerOptions",
    "__version__",
    "generate_account_sas",
    "generate_queue_sas",
]
