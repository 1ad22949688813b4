"""How the ``aioqueue`` command reports an error: an exit code for its kind, and one line on stderr, or
with ``--json`` one JSON object: ``{"error": text, "exit": code, "type": kind}``, plus ``"status"``,
``"code"`` and ``"request_id"`` when the service answered."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TextIO

from ._errors import (
    AioQueueError,
    ConfigurationError,
    MessageEncodingError,
    MessageNotFound,
    PopReceiptMismatch,
    QueueAlreadyExists,
    QueueNotFound,
    SendMessagesError,
    ServiceError,
)
from ._redrive import RedriveError

__all__ = [
    "EXIT_ERROR",
    "EXIT_EXISTS",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "REPORTED",
    "AlreadyExists",
    "Failure",
    "failure",
    "in_flags",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_EXISTS, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class AlreadyExists(Exception):
    """The CLI's own wording of QueueAlreadyExists (exit 4)."""


# what main reports as an error line and an exit code (a --file or handler that cannot be read is a
# ValueError, OSError, ImportError or TypeError); anything else is a bug and keeps its traceback
REPORTED = (AioQueueError, AlreadyExists, ValueError, OSError, ImportError, TypeError)

# the library's parameter names, as the CLI's flags say them (an error names what the user typed)
_FLAGS = {
    "visibility_timeout": "--visibility",
    "time_to_live": "--ttl",
    "max_messages": "--count",
    "policy_id": "--policy-id",
    "resource_types": "--resource-types",
    "permission": "--permission",
    "expiry": "--expiry",
    "start": "--start",
    "protocol": "--protocol",
    "ip": "--ip",
}
_PARAMETER = re.compile(r"\b(" + "|".join(_FLAGS) + r")\b")


def in_flags(text: str) -> str:
    """``text`` with the library's parameter names replaced by the commands' flags."""
    return _PARAMETER.sub(lambda m: _FLAGS[m.group(1)], text)


class Failure:
    """One reported error: its exit code, its text and what the JSON form tells besides."""

    def __init__(self, code: int, text: str, kind: str, answer: ServiceError | None = None) -> None:
        self.code, self.text, self.kind, self.answer = code, text, kind, answer

    def write(self, stream: TextIO, as_json: bool) -> None:
        if not as_json:
            stream.write(f"aioqueue: {self.text}\n")
            return
        entry: dict[str, object] = {"error": self.text, "exit": self.code, "type": self.kind}
        if self.answer is not None:
            entry.update(status=self.answer.status, code=self.answer.error_code, request_id=self.answer.request_id)
        stream.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _code(cause: BaseException) -> int:
    if isinstance(cause, (QueueNotFound, MessageNotFound, PopReceiptMismatch)):
        # a stale pop receipt is 404 MessageNotFound on Azure and 400 PopReceiptMismatch on Azurite
        return EXIT_NOT_FOUND
    if isinstance(cause, (AlreadyExists, QueueAlreadyExists)):
        return EXIT_EXISTS
    if isinstance(cause, (ConfigurationError, MessageEncodingError)):
        return EXIT_USAGE
    if isinstance(cause, AioQueueError):
        return EXIT_ERROR
    return EXIT_USAGE  # a file or handler that cannot be read: nothing was sent


def failure(
    exc: BaseException, *, hints: dict[type[BaseException], str], flags: Callable[[str], str] = in_flags
) -> Failure:
    """The report of one of the REPORTED errors. A SendMessagesError (a RedriveError) is reported with
    the code of the failure that stopped it (a missing queue is exit 3 for send as for peek); ``hints`` adds a few words
    to an error of a kind (the first that matches); ``flags`` puts a usage error in flag names."""
    cause = exc.error if isinstance(exc, (SendMessagesError, RedriveError)) else exc
    code = _code(cause)
    text = flags(str(exc)) if isinstance(exc, (ConfigurationError, MessageEncodingError)) else str(exc)
    text += next((hint for kind, hint in hints.items() if isinstance(cause, kind)), "")
    answer = cause if isinstance(cause, ServiceError) else None
    return Failure(code, text, type(cause).__name__, answer)
