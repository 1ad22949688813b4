"""The Dockerfile and the Kubernetes and KEDA manifests of docs/guide/production.md: the image builds from this
checkout's wheel where Docker can build (skipped otherwise); each YAML block parses,
uses only fields KEDA's documentation names, and follows the rules the page states: the worker's flags
parse, the grace period is ``--shutdown-timeout`` + 10, ``queueLength`` is processes x concurrency,
``all`` for a Deployment and ``visibleonly`` for a ScaledJob, and the latency recipe queries the metric
the worker exports."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from aioqueue import __version__, _runner
from aioqueue._consumer import FETCH_GRACE_ON_STOP
from aioqueue.cli import build_parser
from tests.docs.test_packaging import _run, _source_tree
from tests.worker.test_worker_metrics import AGE  # the name a scrape shows (that test reads it from /metrics)

yaml = pytest.importorskip("yaml", reason="PyYAML comes with the docs extra (mkdocs), which ./dev test installs")
ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "guide" / "production.md"
BLOCK = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```$', re.MULTILINE | re.DOTALL)
GRACE_MARGIN = 10  # the page's formula: terminationGracePeriodSeconds = --shutdown-timeout + 10

# The fields KEDA's documentation names (keda.sh/docs/latest: reference/scaledobject-spec,
# reference/scaledjob-spec, scalers/azure-storage-queue, scalers/prometheus).
SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
    "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}  # fmt: skip
SCALED_JOB_SPEC = {
    "jobTargetRef", "pollingInterval", "successfulJobsHistoryLimit", "failedJobsHistoryLimit",
    "envSourceContainerName", "minReplicaCount", "maxReplicaCount", "rollout", "scalingStrategy", "triggers",
}  # fmt: skip
TRIGGER = {"type", "name", "metadata", "metricType", "authenticationRef", "useCachedMetrics"}
METADATA = {
    "azure-queue": {
        "queueName", "queueLength", "queueLengthStrategy", "activationQueueLength", "connectionFromEnv",
        "accountName", "cloud", "endpointSuffix",
    },
    "prometheus": {
        "serverAddress", "query", "queryParameters", "threshold", "activationThreshold", "namespace",
        "customHeaders", "ignoreNullValues", "unsafeSsl",
    },
}  # fmt: skip


def blocks() -> dict[str, tuple[str, str]]:
    """The page's titled code blocks: title -> (language, text)."""
    found = {title: (lang, body) for lang, title, body in BLOCK.findall(PAGE.read_text()) if title}
    assert {"Dockerfile", "deployment.yaml", "scaledobject.yaml", "scaledjob.yaml"} <= set(found), sorted(found)
    return found


def manifest(title: str) -> dict[str, Any]:
    lang, body = blocks()[title]
    assert lang == "yaml", title
    [document] = list(yaml.safe_load_all(body))
    assert isinstance(document, dict) and {"apiVersion", "kind", "metadata", "spec"} <= set(document), title
    return document


def worker_args(argv: list[str]) -> argparse.Namespace:
    """The container's command line, parsed by ``aioqueue worker``'s own parser (bad flags: SystemExit)."""
    assert argv[:2] == ["aioqueue", "worker"], argv
    args = build_parser().parse_args(argv[1:])
    assert args.command == "worker"
    return args


def keda_triggers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The triggers, each with only the fields KEDA documents (for its type's metadata too)."""
    for trigger in spec["triggers"]:
        assert set(trigger) <= TRIGGER, set(trigger) - TRIGGER
        assert set(trigger["metadata"]) <= METADATA[trigger["type"]], set(trigger["metadata"])
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), "KEDA's metadata values are strings"
    return list(spec["triggers"])


def azure_queue(trigger: dict[str, Any], args: argparse.Namespace, env: set[str], strategy: str) -> None:
    """The page's rules for an azure-queue trigger over the worker that ``args`` runs."""
    metadata = trigger["metadata"]
    assert metadata["queueName"] == args.queue
    assert int(metadata["queueLength"]) == args.processes * args.concurrency  # processes x concurrency
    assert metadata["queueLengthStrategy"] == strategy
    assert metadata["connectionFromEnv"] in env  # an environment variable of the worker's container


def the_deployment() -> tuple[dict[str, Any], argparse.Namespace, dict[str, Any]]:
    deployment = manifest("deployment.yaml")
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    return deployment, worker_args(container["args"]), pod


def grace_follows_the_shutdown_timeout(pod: dict[str, Any], args: argparse.Namespace) -> None:
    grace = pod["terminationGracePeriodSeconds"]
    assert grace == args.shutdown_timeout + GRACE_MARGIN
    assert args.shutdown_timeout + FETCH_GRACE_ON_STOP < grace  # the receive under way fits in the margin


def test_every_code_block_fits_80_columns():
    wide = [
        f"{title or lang}: {line!r}"
        for lang, title, body in BLOCK.findall(PAGE.read_text())
        for line in body.splitlines()
        if len(line) > 80
    ]
    assert wide == []


def test_the_dockerfile_runs_the_worker_itself_in_exec_form():
    lang, body = blocks()["Dockerfile"]
    assert lang == "dockerfile"
    text = body.replace("\\\n", " ")  # continuation lines joined
    [cmd] = [line for line in text.splitlines() if line.startswith("CMD ")]
    args = worker_args(json.loads(cmd[4:]))  # the exec form: a JSON list, so the worker is PID 1
    [expose] = [line for line in text.splitlines() if line.startswith("EXPOSE ")]
    assert args.metrics_port == int(expose.split()[1])
    assert any(line.startswith("USER ") and "root" not in line for line in text.splitlines())


def _docker() -> str:
    """The docker command, when a daemon answers; otherwise the test is skipped, saying why."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker command on this machine: the image build is checked where Docker runs")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=120)
    if info.returncode != 0:
        pytest.skip(f"docker is installed but no daemon answers (`docker info`: {info.stderr.strip()[:200]})")
    return docker


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_dockerfile_builds_the_worker_image_from_the_wheel(tmp_path):
    """Issue #28's proof: the page's Dockerfile, as it is, builds an image from a wheel of this checkout in
    wheels/; the image's aioqueue is that wheel, its worker command runs and it loads the page's handler
    (skipped, with the reason, where Docker cannot build)."""
    docker = _docker()
    context = tmp_path / "context"
    (context / "myapp").mkdir(parents=True)
    (context / "myapp" / "__init__.py").write_text("")
    (context / "myapp" / "tasks.py").write_text(blocks()["myapp/tasks.py"][1])
    (context / "Dockerfile").write_text(blocks()["Dockerfile"][1])
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", context / "wheels", _source_tree(tmp_path / "src"))
    tag = f"aioqueue-docs-worker:{uuid.uuid4().hex[:12]}"
    try:
        _run(docker, "build", "--quiet", "--tag", tag, context)
        shown = _run(docker, "run", "--rm", "--entrypoint", "aioqueue", tag, "--version")
        assert f"aioqueue-azure {__version__}" in shown, shown
        check = "import prometheus_client, aioqueue._runner as r; r.load_handler('myapp.tasks:handle')"
        _run(docker, "run", "--rm", "--entrypoint", "python", tag, "-c", check)
        assert "--metrics-port" in _run(docker, "run", "--rm", tag, "aioqueue", "worker", "--help")
    finally:
        subprocess.run([docker, "image", "rm", "--force", tag], capture_output=True, timeout=300)


def test_the_deployment_s_grace_period_is_the_shutdown_timeout_plus_10_and_its_probes_are_served():
    """A startupProbe too: the port opens only once the handler's module is imported, and without one a
    liveness probe restarts a pod whose import takes over 30 s (Kubernetes' defaults), again and again."""
    _, args, pod = the_deployment()
    grace_follows_the_shutdown_timeout(pod, args)
    [container] = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    served = inspect.getsource(_runner._serve_metrics)
    probes = (
        ("startupProbe", "/healthz/live"),
        ("livenessProbe", "/healthz/live"),
        ("readinessProbe", "/healthz/ready"),
    )
    for probe, path in probes:
        get = container[probe]["httpGet"]
        assert get["path"] == path and f'add_get("{path}"' in served
        assert ports[get["port"]] == args.metrics_port


def test_the_scaled_object_asks_for_processes_times_concurrency_counting_hidden_messages():
    deployment, args, pod = the_deployment()
    env = {variable["name"] for variable in pod["containers"][0]["env"]}
    scaled = manifest("scaledobject.yaml")
    assert scaled["kind"] == "ScaledObject" and set(scaled["spec"]) <= SCALED_OBJECT_SPEC
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    [trigger] = keda_triggers(scaled["spec"])
    assert trigger["type"] == "azure-queue"
    azure_queue(trigger, args, env, "all")


def test_the_scaled_job_counts_only_visible_messages_and_its_jobs_end():
    scaled = manifest("scaledjob.yaml")
    assert scaled["kind"] == "ScaledJob" and set(scaled["spec"]) <= SCALED_JOB_SPEC
    pod = scaled["spec"]["jobTargetRef"]["template"]["spec"]
    [container] = pod["containers"]
    args = worker_args(container["args"])
    assert pod["restartPolicy"] == "Never"
    assert args.idle_timeout is not None or args.max_messages is not None, "a Job's worker must end"
    grace_follows_the_shutdown_timeout(pod, args)
    [trigger] = keda_triggers(scaled["spec"])
    azure_queue(trigger, args, {variable["name"] for variable in container["env"]}, "visibleonly")


def test_the_latency_recipe_scales_on_the_age_the_worker_exports():
    deployment, args, pod = the_deployment()
    scaled = manifest("scaledobject-latency.yaml")
    assert scaled["kind"] == "ScaledObject" and set(scaled["spec"]) <= SCALED_OBJECT_SPEC
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1  # no worker, no age
    by_type = {trigger["type"]: trigger for trigger in keda_triggers(scaled["spec"])}
    prometheus = by_type["prometheus"]
    assert prometheus["metricType"] == "Value"  # replicas x age / threshold, not the age per replica
    query = " ".join(prometheus["metadata"]["query"].split())
    assert query.startswith(f"max({AGE}{{") and f'messaging_destination_name="{args.queue}"' in query
    assert float(prometheus["metadata"]["threshold"]) > 0
    azure_queue(by_type["azure-queue"], args, {v["name"] for v in pod["containers"][0]["env"]}, "all")


@pytest.mark.parametrize("title", ["scaledobject.yaml", "scaledjob.yaml", "scaledobject-latency.yaml"])
def test_keda_manifests_use_keda_s_api_version(title):
    assert manifest(title)["apiVersion"] == "keda.sh/v1alpha1"
