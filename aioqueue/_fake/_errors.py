"""The fake service's error answers: one exception, :class:`Refusal`, and the service's own texts.

Each code's status and message are the Azure Storage REST reference's ("Common REST API error codes",
https://learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes; "Queue Storage error
codes", .../queue-service-error-codes; "Shared access signature error codes", .../sas-error-codes), or,
where the reference is silent, what real Azure answered in the recordings of
``tests/data/azure-recordings`` (named beside the code).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["CODES", "Refusal", "bad_query", "out_of_range"]

# code -> (HTTP status, the service's message)
CODES: dict[str, tuple[int, str]] = {
    # Queue Storage error codes
    "MessageNotFound": (404, "The specified message does not exist."),
    "MessageTooLarge": (400, "The message exceeds the maximum allowed size."),
    "PopReceiptMismatch": (400, "The specified pop receipt did not match the pop receipt for a dequeued message."),
    "QueueAlreadyExists": (409, "The specified queue already exists."),
    "QueueBeingDeleted": (409, "The specified queue is being deleted."),
    "QueueNotFound": (404, "The specified queue does not exist."),
    # common REST API error codes
    "InvalidQueryParameterValue": (
        400,
        "Value for one of the query parameters specified in the request URI is invalid.",
    ),
    "OutOfRangeQueryParameterValue": (
        400,
        "One of the query parameters specified in the request URI is outside the permissible range.",
    ),
    "MissingRequiredQueryParameter": (400, "A required query parameter was not specified for this request."),
    "MissingRequiredHeader": (400, "An HTTP header that's mandatory for this request is not specified."),
    "InvalidHeaderValue": (400, "The value for one of the HTTP headers is not in the correct format."),
    "InvalidXmlDocument": (400, "XML specified is not syntactically valid."),
    "InvalidXmlNodeValue": (400, "The value for one of the XML nodes is not in the correct format."),
    "InvalidResourceName": (400, "The specified resource name contains invalid characters."),
    # the length of a queue name (Azurite's text; the reference gives OutOfRangeInput for it)
    "OutOfRangeInput": (400, "The specified resource name length is not within the permissible limits."),
    "InvalidMetadata": (400, "The metadata specified is invalid. It has characters that are not permitted."),
    "MetadataTooLarge": (400, "The size of the specified metadata exceeds the maximum size permitted."),
    "InvalidUri": (400, "The requested URI does not represent any resource on the server."),
    "UnsupportedHttpVerb": (405, "The resource doesn't support specified Http Verb."),
    "RequestBodyTooLarge": (413, "The request body is too large and exceeds the maximum permissible limit."),
    "ResourceNotFound": (404, "The specified resource does not exist."),
    "InternalError": (500, "The server encountered an internal error. Please retry the request."),
    "OperationTimedOut": (500, "The operation could not be completed within the permitted time."),
    "ServerBusy": (503, "The server is currently unable to receive requests. Please retry your request."),
    # authentication (the 401 texts: recordings QueueClientTests.CreateIfNotExistsAsync_Error and
    # test_queue.pyTestStorageQueuetest_bad_audience_queue_client)
    "AuthenticationFailed": (
        403,
        "Server failed to authenticate the request. Make sure the value of Authorization header is formed "
        "correctly including the signature.",
    ),
    "NoAuthenticationInformation": (
        401,
        "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
    ),
    "InvalidAuthenticationInfo": (
        400,
        "Authentication information is not given in the correct format. Check the value of Authorization header.",
    ),
    # SAS error codes (status 403 since version 2015-04-05)
    "AuthorizationFailure": (403, "This request is not authorized to perform this operation."),
    "AuthorizationPermissionMismatch": (
        403,
        "This request is not authorized to perform this operation using this permission.",
    ),
    "AuthorizationResourceTypeMismatch": (
        403,
        "This request is not authorized to perform this operation using this resource type.",
    ),
    "AuthorizationServiceMismatch": (
        403,
        "This request is not authorized to perform this operation using this service.",
    ),
    "AuthorizationProtocolMismatch": (
        403,
        "This request is not authorized to perform this operation using this protocol.",
    ),
    "AuthorizationSourceIPMismatch": (
        403,
        "This request is not authorized to perform this operation using this source IP {SourceIP}.",
    ),
    # what the fake leaves out, said plainly
    "NotImplemented": (501, "The fake queue service does not implement this operation."),
}


class Refusal(Exception):
    """An error answer: its HTTP status, error code, message and the body's extra elements (in order).

    ``status`` and ``message`` default to the code's own (``CODES``); ``headers`` are added to the answer."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        details: Mapping[str, str] | None = None,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        known_status, known_message = CODES.get(code, (500, code))
        self.code = code
        self.status = known_status if status is None else status
        self.message = known_message if message is None else message
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        super().__init__(f"{self.status} {code}: {self.message}")


def bad_query(name: str, value: str, reason: str | None = None) -> Refusal:
    """400 InvalidQueryParameterValue naming the parameter (and why, when there is more to say)."""
    details = {"QueryParameterName": name, "QueryParameterValue": value}
    if reason is not None:
        details["Reason"] = reason
    return Refusal("InvalidQueryParameterValue", details=details)


def out_of_range(name: str, value: str, low: int, high: int) -> Refusal:
    """400 OutOfRangeQueryParameterValue with the range Azure allows."""
    return Refusal(
        "OutOfRangeQueryParameterValue",
        details={
            "QueryParameterName": name,
            "QueryParameterValue": value,
            "MinimumAllowed": str(low),
            "MaximumAllowed": str(high),
        },
    )
