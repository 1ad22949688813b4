"""OpenTelemetry: one order traced from the web request that sends it to the
worker that handles it.

    pip install 'aioqueue-azure[otel]' opentelemetry-sdk
    python examples/tracing.py                  # the spans as two trees
    python examples/tracing.py --svg trace.svg  # and as a waterfall

The producer and the worker both set trace_context_field="traceparent": the
message carries the send span's trace context, and the worker's process span
links to it. A real service would export to an OpenTelemetry collector (OTLP),
Jaeger or Zipkin instead of keeping the spans in memory. The waterfall is the
picture on the Observability page.
"""

import asyncio
import sys
from html import escape

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from aioqueue import QueueClient, ReceivedMessage
from aioqueue.testing import local_connection_string

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("shop")


async def handle(msg: ReceivedMessage) -> None:
    # the handler's own work: a child of the "process" span
    with tracer.start_as_current_span("charge card"):
        await asyncio.sleep(0.02)


async def main() -> None:
    options = {
        "message_encoding": "json",
        "trace_context_field": "traceparent",
        "tracer_provider": provider,
    }
    async with (
        local_connection_string() as conn_str,
        QueueClient.from_connection_string(conn_str, "orders", **options) as q,
    ):
        await q.create_queue(exist_ok=True)
        # what a web framework's instrumentation makes
        with tracer.start_as_current_span("POST /orders"):
            await q.send_message({"order": 42})
        await q.process(handle, max_messages=1, idle_timeout=10)
        await q.delete_queue()


def duration_ms(span: ReadableSpan) -> float:
    return ((span.end_time or 0) - (span.start_time or 0)) / 1e6


def trees(spans: list[ReadableSpan]) -> list[str]:
    """The spans as indented trees, one per trace root, with durations and
    links."""
    names = {s.context.span_id: s.name for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for s in sorted(spans, key=lambda s: s.start_time or 0):
        parent = s.parent.span_id if s.parent else None
        children.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        links = "".join(
            f"  (linked to: {names.get(link.context.span_id, '?')})"
            for link in span.links
        )
        kind, ms = span.kind.name, duration_ms(span)
        lines.append(f"{'  ' * depth}{span.name} [{kind}] {ms:.1f} ms{links}")
        for child in children.get(span.context.span_id, []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    return lines


COLOURS = {
    "PRODUCER": "#4c78a8",
    "CONSUMER": "#f58518",
    "CLIENT": "#54a24b",
    "INTERNAL": "#9d9d9d",
}


def svg(spans: list[ReadableSpan]) -> str:
    """A waterfall: a row per span (indented by depth), its bar at its place in
    time; links as arrows."""
    ordered = sorted(spans, key=lambda s: s.start_time or 0)
    by_id = {s.context.span_id: s for s in ordered}

    def depth(s: ReadableSpan) -> int:
        if s.parent is None or s.parent.span_id not in by_id:
            return 0
        return 1 + depth(by_id[s.parent.span_id])

    rows: list[ReadableSpan] = []

    def add(s: ReadableSpan) -> None:
        rows.append(s)
        for c in ordered:
            if c.parent is not None and c.parent.span_id == s.context.span_id:
                add(c)

    for root in (s for s in ordered if s.parent is None):
        add(root)
    t0 = min(s.start_time or 0 for s in rows)
    t1 = max(s.end_time or 0 for s in rows)
    label_w, bar_w, row_h = 260, 560, 24
    scale = bar_w / max(t1 - t0, 1)
    width, height = label_w + bar_w + 80, row_h * (len(rows) + 2)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    y_of = {}
    for i, s in enumerate(rows):
        y = row_h * (i + 1)
        y_of[s.context.span_id] = y
        x = label_w + ((s.start_time or 0) - t0) * scale
        w = max(((s.end_time or 0) - (s.start_time or 0)) * scale, 2)
        indent = 8 + 14 * depth(s)
        colour = COLOURS[s.kind.name]
        out += [
            f'<text x="{indent}" y="{y + 15}">{escape(s.name)}</text>',
            f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="14" '
            f'fill="{colour}"/>',
            f'<text x="{x + w + 4:.1f}" y="{y + 15}" fill="#555">'
            f"{duration_ms(s):.1f} ms</text>",
        ]
    for s in rows:
        for link in s.links:
            source = by_id.get(link.context.span_id)
            if source is not None:
                x1 = label_w + ((source.start_time or 0) - t0) * scale
                x2 = label_w + ((s.start_time or 0) - t0) * scale
                y1 = y_of[source.context.span_id] + 18
                y2 = y_of[s.context.span_id] + 11
                out.append(
                    f'<path d="M {x1:.1f} {y1} C {x1:.1f} {y2} '
                    f'{x2 - 40:.1f} {y2} {x2:.1f} {y2}" '
                    'fill="none" stroke="#888" stroke-dasharray="4 3"/>'
                )
    legend = "  ".join(COLOURS)
    out.append(
        f'<text x="8" y="{row_h * (len(rows) + 1) + 16}" fill="#555">'
        f"span kinds: {legend} (colours); "
        "dashed: the process span's link to the send span</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


if __name__ == "__main__":
    asyncio.run(main())
    finished = list(exporter.get_finished_spans())
    print("\n".join(trees(finished)))
    if "--svg" in sys.argv:
        path = sys.argv[sys.argv.index("--svg") + 1]
        with open(path, "w") as f:
            f.write(svg(finished))
        print(f"drawn: {path}")
