"""The differences between Azurite and Azure that the conformance suite (test_conformance.py) allows:
each one row of docs/guide/fake-differences.md, with its source; Azure's answer is the fake's."""

from __future__ import annotations

from tests.fake.conformance import ANY_ERROR, ANY_STEP, BYTE_ORDER_MARK, CLIENT_REQUEST_ID, Known

REC = "tests/data/azure-recordings/net"  # the real service's answers (README.md there)

STALE = Known(
    "Stale pop receipt",
    "REST reference, Delete Message (remarks): “If a message with a matching pop receipt isn't found, the "
    "service returns error code 404 (Not Found)”, as for a message that does not exist "
    f"({REC}/QueueClientTests.UpdateMessageAsync_Error.json, DeleteMessagAsync_Error.json)",
)
SKEW = Known(
    "Request dated more than 15 minutes ago",
    "REST reference, “Authorize with Shared Key”: the request's date “must be no older than 15 minutes by the "
    "time it reaches the service”",
)
METADATA = Known(
    "Queue metadata rules",
    "REST reference, “Naming Queues and Metadata”: names follow the rules for C# identifiers; “Setting and "
    "retrieving properties and metadata”: 8 KiB in all; “Common REST API error codes”: InvalidMetadata, "
    "MetadataTooLarge",
)
NO_CREDENTIALS = Known(
    "Request without credentials",
    f"{REC}/QueueClientTests.ExistsAsync_Error.json and four more: 401 NoAuthenticationInformation with a "
    "WWW-Authenticate challenge",
)
DETAILS = Known(
    "Error details",
    f"{REC}/ServiceClientTests.GetUserDelegationKey_Error.json (AuthenticationErrorDetail); Azure SDK for "
    "JavaScript docs, “InvalidHeaderValue error message when using beta version of SDK” (HeaderName, HeaderValue)",
)
MISSING_VERSION = Known(
    "Request without x-ms-version",
    "REST reference, every Queue operation: x-ms-version is “required for all authorized requests”; "
    "“Common REST API error codes”: MissingRequiredHeader",
)
VERSION = Known(
    "x-ms-version of an answer",
    "REST reference: x-ms-version “indicates the version of Queue Storage used to execute the request”; "
    f"{REC}: requests at 2018-11-09 are answered 2018-11-09; the JavaScript docs' InvalidHeaderValue answer "
    "(above) has none",
)
SCHEMA = Known(
    "Request outside Azurite's schema",
    "REST reference, “Status and error codes”: an error answer carries x-ms-error-code and an <Error> body; the "
    "codes from “Common REST API error codes” and each operation's parameters (Azurite's generated request "
    "parser refuses these before its handlers, with a bare 400)",
)
LISTING = Known(
    "List Queues' pages",
    f"{REC}/ServiceClientTests.GetQueuesAsync*.json (ServiceEndpoint “https://…/”, MaxResults only when given, "
    "NextMarker “/<account>/<queue>”, 400 OutOfRangeInput for marker=garbage); REST reference, List Queues: "
    "<Marker> echoes the request's",
)
ACL_TIMES = Known(
    "Access policy times",
    f"{REC}/QueueClientTests.GetAccessPolicyAsync.json; Azurite's own source, src/blob/handlers/ContainerHandler.ts: "
    "“Correct responds: …<Start>2019-04-30T16:00:00.0000000Z</Start>…”",
)
PROPERTIES = Known(
    "Service properties",
    f"{REC}/ServiceClientTests.SetPropertiesAsync_ExistingProperties.json (set in the reference's order, got "
    "back in Azure's); REST reference, Set Queue Service Properties: more than five CorsRule elements fail "
    "with 400 (Bad Request)",
)
BOM = Known("Byte-order mark", f"{REC}: every XML answer (README.md)")
ECHO = Known(
    "x-ms-client-request-id in error answers",
    f"{REC}: 21 of the 23 error answers to a request that sent one echo it",
)

# allowed wherever they show (test_conformance.py's suite_wide_differences declares each where it shows)
SUITE = (
    BOM.at(ANY_STEP, BYTE_ORDER_MARK, "", "body"),
    ECHO.at(ANY_ERROR, CLIENT_REQUEST_ID, "<absent>", "header x-ms-client-request-id"),
    LISTING.at(
        ANY_STEP,
        "EnumerationResults@ServiceEndpoint: <account-url>/",
        "EnumerationResults@ServiceEndpoint: <account-url>",
        "body",
    ),
)
