"""OpenTelemetry traces and metrics, following the messaging semantic conventions.

Optional: with ``opentelemetry-api`` missing (``pip install aioqueue-azure[otel]`` adds it), or
installed but with no tracer or meter provider configured (neither set globally nor passed as
``tracer_provider=`` / ``meter_provider=``), every operation gets :data:`OFF`, whose methods do
nothing: the hot path pays two module-global reads, a no-op ``with`` block (about 0.3 us per
operation in all) and one attribute test per attempt; benchmarks/run.py --instructions shows it.

What is recorded (the docs' "Observability" page has the full tables):

- a span per operation, named ``"<operation> <queue>"`` (``send``, ``receive``, ``peek``, ``delete``,
  ``update``, ``create_queue``, ...): PRODUCER for send, CLIENT otherwise, with the HTTP outcome
  (status, request id, resends) and one ``retry`` event per failed attempt;
- a CONSUMER ``process`` span per message a worker handles, linked to the producer's span when
  the message carries its trace context (``trace_context_field``), with its settle spans
  (``delete``, ``release``, ``renew``, ``poison``) as children;
- the conventions' metrics (``messaging.client.operation.duration``, ``messaging.client.sent.messages``,
  ``messaging.client.consumed.messages``, ``messaging.process.duration``, ``http.client.request.duration``)
  and aioqueue's own (``aioqueue.consumer.messages`` by outcome, ``aioqueue.queue.lag``,
  ``aioqueue.client.retries``).

No attribute ever holds a secret: no URL (a SAS is a query string), no header but the request id,
and error descriptions are the redacted messages aioqueue's errors carry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._dates import parse_rfc1123
from ._errors import ServiceError, redact

if TYPE_CHECKING:
    from ._messages import RawMessage
    from ._models import QueueMessage

try:
    import opentelemetry.metrics._internal as otel_metrics_internal
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised by a test that hides opentelemetry in a subprocess
    otel_trace = None  # type: ignore[assignment]

__all__ = ["OFF", "SYSTEM", "Operation", "Telemetry"]

SYSTEM = "azure_queue_storage"
"""``messaging.system``: the conventions list no value for Azure Queue Storage; this one follows
their spelling of the others (``aws_sqs``, ``gcp_pubsub``, ``servicebus``)."""

DEQUEUE_COUNT = f"messaging.{SYSTEM}.message.dequeue_count"
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_LAG_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)

# operation name -> (messaging.operation.type, span kind name)
_KINDS: dict[str, tuple[str | None, str]] = {
    "send": ("send", "PRODUCER"),
    "receive": ("receive", "CLIENT"),
    "delete": ("settle", "CLIENT"),
    "release": ("settle", "CLIENT"),
    "renew": ("settle", "CLIENT"),
    "poison": ("settle", "CLIENT"),
    "process": ("process", "CONSUMER"),
}


def _unconfigured(provider: object) -> bool:
    """The API's stand-ins, before an SDK provider is set (or when the no-op one is set on purpose)."""
    return type(provider).__name__ in (
        "ProxyTracerProvider",
        "NoOpTracerProvider",
        "_ProxyMeterProvider",
        "NoOpMeterProvider",
    )


class _Instruments:
    __slots__ = (
        "consumed",
        "lag",
        "operation_duration",
        "outcomes",
        "process_duration",
        "request_duration",
        "retries",
        "sent",
    )

    def __init__(self, meter: Any) -> None:
        self.operation_duration = meter.create_histogram(
            "messaging.client.operation.duration",
            unit="s",
            description="Duration of each queue operation, retries included",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.sent = meter.create_counter(
            "messaging.client.sent.messages", unit="{message}", description="Messages the client attempted to send"
        )
        self.consumed = meter.create_counter(
            "messaging.client.consumed.messages", unit="{message}", description="Messages received from the queue"
        )
        self.process_duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Duration of a worker's handler per message",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.request_duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of each HTTP attempt",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.retries = meter.create_counter(
            "aioqueue.client.retries", unit="{retry}", description="Attempts that failed and were tried again"
        )
        self.outcomes = meter.create_counter(
            "aioqueue.consumer.messages",
            unit="{message}",
            description=(
                "What became of each received message: processed, failed, poisoned, lease_lost, undecodable, "
                "delete_failed, rescheduled"
            ),
        )
        self.lag = meter.create_histogram(
            "aioqueue.queue.lag",
            unit="s",
            description="Time from a message's insertion to its receipt",
            explicit_bucket_boundaries_advisory=_LAG_BUCKETS,
        )


class Telemetry:
    """A client pool's tracer and instruments, from the providers it was given or the global ones.

    The global providers are looked up per operation (two function calls), so an application that
    configures OpenTelemetry after making its clients is still seen; what they yield is cached.
    """

    __slots__ = ("_instruments", "_meter_from", "_mp", "_tp", "_tracer", "_tracer_from", "server", "trace_field")

    def __init__(
        self,
        tracer_provider: object = None,
        meter_provider: object = None,
        *,
        server: tuple[str, int] | None = None,
        trace_field: str | None = None,
    ) -> None:
        self._tp = tracer_provider
        self._mp = meter_provider
        self._tracer_from: object = None
        self._tracer: Any = None
        self._meter_from: object = None
        self._instruments: _Instruments | None = None
        self.server = server
        self.trace_field = trace_field

    def tracer(self) -> Any:
        if otel_trace is None or (self._tp is None and _no_global("tracer")):
            return None
        provider = self._tp if self._tp is not None else otel_trace.get_tracer_provider()
        if provider is not self._tracer_from:
            self._tracer_from = provider
            self._tracer = (
                None if _unconfigured(provider) else provider.get_tracer("aioqueue", _version())  # type: ignore[attr-defined]
            )
        return self._tracer

    def instruments(self) -> _Instruments | None:
        if otel_trace is None or (self._mp is None and _no_global("meter")):
            return None
        provider = self._mp if self._mp is not None else otel_metrics.get_meter_provider()
        if provider is not self._meter_from:
            self._meter_from = provider
            self._instruments = (
                None if _unconfigured(provider) else _Instruments(provider.get_meter("aioqueue", _version()))  # type: ignore[attr-defined]
            )
        return self._instruments

    def operation(self, name: str, queue: str | None, message: QueueMessage | None = None) -> Operation | _Off:
        """The recorder of one operation: :data:`OFF` when neither traces nor metrics are wanted."""
        if otel_trace is None:
            return OFF
        if (
            self._tp is None
            and self._mp is None
            and not _PROVIDERS_FROM_ENV  # _no_global("both"), inline: this runs for every operation
            and getattr(otel_trace, "_TRACER_PROVIDER", _UNKNOWN) is None
            and getattr(otel_metrics_internal, "_METER_PROVIDER", _UNKNOWN) is None
        ):
            return OFF
        tracer = self.tracer()
        instruments = self.instruments()
        if tracer is None and instruments is None:
            return OFF
        return Operation(self, tracer, instruments, name, queue, message)

    def inject(self, content: Any, span: Any) -> Any:
        """``content`` with the trace context of ``span`` in ``trace_field``, when content is a JSON
        object (a dict) and the field is configured; anything else unchanged. The caller's dict is
        never modified."""
        field = self.trace_field
        if field is None or span is None or not isinstance(content, dict):
            return content
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=otel_trace.set_span_in_context(span))
        if "traceparent" not in carrier:
            return content
        enriched = dict(content)
        enriched[field] = carrier["traceparent"]
        if carrier.get("tracestate"):
            enriched[_state_field(field)] = carrier["tracestate"]
        else:  # a forwarded event's old state must not stand beside the new parent
            enriched.pop(_state_field(field), None)
        return enriched

    def creation_link(self, content: Any) -> list[Any]:
        """A link to the producer's span, from ``trace_field`` of a JSON-object message; nothing when
        the field is not configured, missing or not a valid W3C ``traceparent``."""
        field = self.trace_field
        if field is None or not isinstance(content, dict):
            return []
        parent = content.get(field)
        if not isinstance(parent, str) or len(parent) > 128:
            return []
        carrier = {"traceparent": parent}
        state = content.get(_state_field(field))
        if isinstance(state, str) and len(state) <= 512:
            carrier["tracestate"] = state
        span_context = otel_trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
        return [Link(span_context)] if span_context.is_valid else []


_UNKNOWN = object()
# Providers named by environment variables are loaded by the API's getters on first use
_PROVIDERS_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ or "OTEL_PYTHON_METER_PROVIDER" in os.environ


def _no_global(which: str) -> bool:
    """True while no global provider of that kind ("tracer", "meter" or "both") was set: module
    attribute reads, where the API's public getters cost about 0.9 us each (they consult os.environ).
    False (the getters then decide) when a provider is named by environment variable, or should a
    release rename the globals."""
    if _PROVIDERS_FROM_ENV:
        return False
    tracer = which == "meter" or getattr(otel_trace, "_TRACER_PROVIDER", _UNKNOWN) is None
    return tracer and (which == "tracer" or getattr(otel_metrics_internal, "_METER_PROVIDER", _UNKNOWN) is None)


def _state_field(field: str) -> str:
    """Where the W3C ``tracestate`` goes: beside ``traceparent`` as CloudEvents puts them, else ``<field>_state``."""
    return "tracestate" if field == "traceparent" else field + "_state"


def _version() -> str:
    from ._version import __version__

    return __version__


if otel_trace is not None:
    _PROPAGATOR = TraceContextTextMapPropagator()
    _SPAN_KINDS = {"PRODUCER": SpanKind.PRODUCER, "CLIENT": SpanKind.CLIENT, "CONSUMER": SpanKind.CONSUMER}


class _Off:
    """What an operation records when telemetry is off: nothing."""

    __slots__ = ()
    on = False
    span = None

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set(self, key: str, value: Any) -> None:
        return None

    def messages(self, count: int) -> None:
        return None

    def received(self, raws: Sequence[RawMessage]) -> None:
        return None

    def fail(self, error_type: str, what: BaseException | str) -> None:
        return None

    def attempt(self, **_: Any) -> None:
        return None


OFF = _Off()


class Operation:
    """One operation's span (when tracing) and metrics (when metering). A context manager: the span
    is current inside (so an operation inside a process span is its child) and ends on exit; an
    exception leaving it marks the span failed with the error's code or type."""

    __slots__ = (
        "_count",
        "_error",
        "_instruments",
        "_started",
        "_telemetry",
        "_token",
        "attrs",
        "name",
        "span",
    )
    on = True

    def __init__(
        self,
        telemetry: Telemetry,
        tracer: Any,
        instruments: _Instruments | None,
        name: str,
        queue: str | None,
        message: QueueMessage | None,
    ) -> None:
        self._telemetry = telemetry
        self._instruments = instruments
        self.name = name
        self._count: int | None = None
        self._error: str | None = None
        self._token: object = None
        op_type, kind = _KINDS.get(name, (None, "CLIENT"))
        attrs: dict[str, Any] = {"messaging.system": SYSTEM, "messaging.operation.name": name}
        if op_type is not None:
            attrs["messaging.operation.type"] = op_type
        if queue is not None:
            attrs["messaging.destination.name"] = queue
        if telemetry.server is not None:
            attrs["server.address"], attrs["server.port"] = telemetry.server
        self.attrs = attrs  # the metrics' attributes: low cardinality only
        self.span = None
        if tracer is not None:
            span_attrs = dict(attrs)
            links: list[Any] = []
            if message is not None:
                span_attrs["messaging.message.id"] = message.id
                span_attrs[DEQUEUE_COUNT] = message.dequeue_count
                if name == "process":
                    links = telemetry.creation_link(message.content)
            self.span = tracer.start_span(
                f"{name} {queue}" if queue else name,
                kind=_SPAN_KINDS[kind],
                attributes=span_attrs,
                links=links,
            )
        self._started = time.monotonic()

    def __enter__(self) -> Operation:
        if self.span is not None:
            self._token = otel_context.attach(otel_trace.set_span_in_context(self.span))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if exc is not None and self._error is None:
                self.fail(error_type(exc), exc)
        finally:  # whatever happened above, the span ends and the context is restored
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]
            if self.span is not None:
                self.span.end()
        instruments = self._instruments
        if instruments is not None:
            attrs = self.attrs if self._error is None else {**self.attrs, "error.type": self._error}
            elapsed = time.monotonic() - self._started
            if self.name == "process":
                instruments.process_duration.record(elapsed, attrs)
            else:
                instruments.operation_duration.record(elapsed, attrs)
            if self.name == "send":
                instruments.sent.add(1, attrs)
            elif self.name == "receive" and self._count:
                instruments.consumed.add(self._count, attrs)

    def set(self, key: str, value: Any) -> None:
        """An attribute on the span (only): ids and sizes, never on metrics."""
        if self.span is not None:
            self.span.set_attribute(key, value)

    def messages(self, count: int) -> None:
        """How many messages this operation delivered (receive and peek)."""
        self._count = count
        if self.span is not None:
            self.span.set_attribute("messaging.batch.message_count", count)

    def received(self, raws: Sequence[RawMessage]) -> None:
        """Get Messages delivered ``raws``: the batch size, and ``aioqueue.queue.lag`` for each."""
        self.messages(len(raws))
        instruments = self._instruments
        if instruments is None:
            return
        now = datetime.now(timezone.utc)
        for raw in raws:
            if raw.inserted_on:
                lag = (now - parse_rfc1123(raw.inserted_on)).total_seconds()
                instruments.lag.record(max(0.0, lag), self.attrs)

    def fail(self, error_type: str, what: BaseException | str) -> None:
        """Mark the operation failed (``error.type`` on span and metrics); ``what`` is the exception
        (recorded on the span as an exception event) or a description."""
        self._error = error_type
        span = self.span
        if span is not None:
            if isinstance(what, BaseException):
                try:
                    span.record_exception(what)
                except Exception:  # the SDK prints it: an exception whose __str__ raises cannot be
                    span.add_event("exception", {"exception.type": type(what).__name__})
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, redact(_describe(what))[:500]))

    def attempt(
        self,
        *,
        attempt: int,
        method: str,
        status: int | None,
        request_id: str | None,
        error: BaseException | None,
        seconds: float,
        retrying: bool,
    ) -> None:
        """One HTTP attempt: ``http.client.request.duration``, and on the span the last status, the
        request id and the resend count; a failed attempt that is tried again is a ``retry`` event."""
        instruments = self._instruments
        # HTTP's convention for error.type is the status; the retry's is the service's error code
        failure = str(status) if status is not None and status >= 400 else None
        reason = error_type(error) if error is not None else failure
        if error is not None and failure is None:
            failure = reason  # no answer: the exception's type
        if instruments is not None:
            attrs: dict[str, Any] = {"http.request.method": method, "messaging.operation.name": self.name}
            if status is not None:
                attrs["http.response.status_code"] = status
            if failure is not None:
                attrs["error.type"] = failure
            if self._telemetry.server is not None:
                attrs["server.address"], attrs["server.port"] = self._telemetry.server
            instruments.request_duration.record(seconds, attrs)
            if retrying:
                instruments.retries.add(1, {**self.attrs, "error.type": reason or "_OTHER"})
        span = self.span
        if span is not None:
            _span_attempt(span, attempt, status, request_id, (reason or "_OTHER") if retrying else None)


def _span_attempt(span: Any, attempt: int, status: int | None, request_id: str | None, retry: str | None) -> None:
    """An attempt on the operation's span: the last status, the request id and the resend count, and
    a ``retry`` event when it is tried again (``retry``: the failure's error.type)."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if request_id:
        span.set_attribute("az.service_request_id", request_id)
    if attempt > 1:
        span.set_attribute("http.request.resend_count", attempt - 1)
    if retry is not None:
        event: dict[str, Any] = {"aioqueue.attempt": attempt, "error.type": retry}
        if status is not None:
            event["http.response.status_code"] = status
        if request_id:
            event["az.service_request_id"] = request_id
        span.add_event("retry", event)


def error_type(exc: BaseException) -> str:
    """The service's error code when aioqueue's error carries one (``QueueNotFound``), else the
    exception's type."""
    code = exc.error_code if isinstance(exc, ServiceError) else None
    return code if isinstance(code, str) and code else type(exc).__name__


def _describe(what: BaseException | str) -> str:
    """``str(what)``, even for an exception whose ``__str__`` raises (a handler's may)."""
    if isinstance(what, str):
        return what
    try:
        return str(what)
    except Exception:
        return f"<{type(what).__name__}: unprintable>"


def count_outcome(telemetry: Telemetry, outcome: str, queue: str) -> None:
    """``aioqueue.consumer.messages`` += 1 with ``aioqueue.outcome``."""
    instruments = telemetry.instruments()
    if instruments is None:
        return
    attrs = {"messaging.system": SYSTEM, "messaging.destination.name": queue, "aioqueue.outcome": outcome}
    instruments.outcomes.add(1, attrs)


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's (trace id, span id) in hex, for log lines; None outside a recording span."""
    if otel_trace is None:
        return None
    context = otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
