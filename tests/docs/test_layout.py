"""The package's shape, checked from its source: imports run one way (no circle), the transport
knows HTTP but not queues, and the consumer never sees the client."""

from __future__ import annotations

import ast
from pathlib import Path

import aioqueue
from aioqueue._options import _DEFAULTS, ReceiveOptions

PACKAGE = Path(aioqueue.__file__).parent


def imports_of(source: str) -> set[str]:
    """The aioqueue modules a module's source imports (relative or absolute, TYPE_CHECKING included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("aioqueue."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("aioqueue."))
    return found


def package_graph() -> dict[str, set[str]]:
    return {path.stem: imports_of(path.read_text()) for path in PACKAGE.glob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path of module names, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    assert imports_of("from ._client import X\nif TYPE_CHECKING:\n    from ._streams import Y") == {
        "_client",
        "_streams",
    }
    assert imports_of("from . import _xml\nimport aioqueue._dates\nfrom aioqueue._errors import E") == {
        "_xml",
        "_dates",
        "_errors",
    }


def test_the_package_has_no_import_circle():
    graph = package_graph()
    assert {"_queue_client", "_operations", "_transport", "_streams", "_worker"} <= set(graph)
    assert find_cycle(graph) is None


def test_the_transport_imports_nothing_queue_specific():
    allowed = {"_auth", "_dates", "_endpoint", "_errors", "_events", "_retry", "_version"}
    assert package_graph()["_transport"] <= allowed
    tree = ast.parse((PACKAGE / "_transport.py").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.arg for n in ast.walk(tree) if isinstance(n, (ast.arg, ast.keyword)) and n.arg}
    forbidden = {
        "MessageNotFound",
        "PopReceiptMismatch",
        "QueueNotFound",
        "consumers",
        "queue_name",
        "resent",
        "delete_is_idempotent",
        "sleep_hook",
    }
    assert not names & forbidden
    assert "sleep" in {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}  # asyncio.sleep, no seam


CLIENTS = {"_queue_client", "_service_client", "_client_base", "_client_options"}
CONSUMER = ("_link", "_options", "_settle", "_consumer", "_streams", "_worker", "_worker_options")


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_layers_run_clients_then_operations_then_transport():
    """Clients -> operations -> transport: the operations never reach a client, the transport neither."""
    graph = package_graph()
    assert "_operations" in graph["_queue_client"] and "_operations" in graph["_service_client"]
    assert "_transport" in graph["_operations"]
    assert not reaches(graph, "_operations") & CLIENTS
    assert not reaches(graph, "_transport") & (CLIENTS | {"_operations"})
    assert "_client" not in graph, "_client.py was split into the modules above"
    # the Blob operations (large payloads) are the operations' layer too: through the same transport
    assert "_transport" in graph["_blob_operations"]
    assert not reaches(graph, "_blob_operations") & (CLIENTS | {"_operations"} | set(CONSUMER))


def test_the_consumer_never_reaches_a_client_or_the_operations():
    """The consumer sees a queue only through the QueueLink protocol: its fetch no longer climbs up."""
    graph = package_graph()
    for module in CONSUMER:
        assert not reaches(graph, module) & (CLIENTS | {"_operations"}), module


def test_no_module_is_over_700_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert max(sizes.values()) <= 700, {name: n for name, n in sizes.items() if n > 700}


def test_receive_options_are_defined_once():
    """The TypedDict users see and the settings' defaults name exactly the same options."""
    assert set(ReceiveOptions.__annotations__) == set(_DEFAULTS)


def test_client_options_are_defined_once():
    """The constructors take exactly ClientOptions' keywords (besides the URL, name and credential),
    whose defaults are ClientSettings'."""
    import dataclasses
    import inspect

    from aioqueue import ClientOptions, QueueClient, QueueServiceClient
    from aioqueue._client_options import ClientSettings

    assert set(ClientOptions.__annotations__) == {f.name for f in dataclasses.fields(ClientSettings)}
    constructors = (QueueClient, QueueServiceClient, QueueClient.from_connection_string, QueueClient.from_queue_url)
    for constructor in constructors:
        kinds = {p.kind for p in inspect.signature(constructor).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD in kinds, constructor  # **options: Unpack[ClientOptions]


def test_worker_options_are_defined_once():
    """worker() and process() take ProcessOptions: the worker's options (WorkerSettings' defaults) and the
    receive options; `aioqueue worker`'s flags set options of exactly those names."""
    import dataclasses

    from aioqueue import ProcessOptions, WorkerOptions
    from aioqueue._runner import _OPTION_FLAGS
    from aioqueue._worker_options import WorkerSettings

    assert set(WorkerOptions.__annotations__) == {f.name for f in dataclasses.fields(WorkerSettings)}
    assert set(ProcessOptions.__annotations__) == set(WorkerOptions.__annotations__) | set(_DEFAULTS)
    flags = [option for _, option, _, _ in _OPTION_FLAGS]
    assert len(flags) == len(set(flags)) and set(flags) <= set(ProcessOptions.__annotations__)


def test_the_messages_list_has_one_home():
    """The messages list's parsers live in _message_list (bytes -> RawMessage), the models in _messages
    (RawMessage -> models); _xml holds the safe generic parser and the other documents, and knows neither."""
    graph = package_graph()
    assert graph["_xml"].isdisjoint({"_messages", "_message_list"})
    assert {"_messages", "_xml"} <= graph["_message_list"]
    assert "_message_list" not in graph["_messages"]
