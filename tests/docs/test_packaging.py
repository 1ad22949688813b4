"""Install from source and from a built wheel, as README says, in a clean virtual environment; what the sdist holds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

# builds, checks and installs the package in subprocesses (each bounded at 600 s): 88 s with both cores busy
pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]


def _run(*cmd: str | Path, cwd: Path = ROOT) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed copy only
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result.stdout


def _source_tree(into: Path) -> Path:
    """A copy of the checkout's files (tracked, and untracked but not ignored): what a clone holds."""
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # (a tracked file deleted in the checkout is not)
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def _sdist_members(sdist: Path) -> set[str]:
    """The sdist's files, without its top folder (aioqueue_azure-<version>/)."""
    with tarfile.open(sdist) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


@pytest.mark.slow
def test_the_sdist_and_wheel_build_pass_twine_and_install_cleanly(tmp_path):
    # built from a copy of the checkout, plus a top-level tests/test_*.py: the kind of file setuptools puts
    # in an sdist by default, without the conftest.py, helpers and data it needs (issue #25, item 8)
    source = _source_tree(tmp_path / "source")
    (source / "tests" / "test_canary.py").write_text("def test_canary():\n    pass\n")
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist, source)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    assert "passed" in _run(sys.executable, "-m", "twine", "check", wheel, sdist).lower()
    names = zipfile.ZipFile(wheel).namelist()
    assert "aioqueue/py.typed" in names and "aioqueue/cli.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/", "docs/"))], names
    # the sdist: the package and what builds it, and no test at all (the suite needs the whole checkout:
    # its conftest, helpers, recordings, the docs and examples it checks, Azurite from package-lock.json)
    members = _sdist_members(sdist)
    package = {f"aioqueue/{path.name}" for path in (ROOT / "aioqueue").iterdir() if path.suffix in (".py", ".typed")}
    assert package | {"pyproject.toml", "README.md", "LICENSE"} <= members, sorted(members)
    assert not [n for n in members if n.startswith("tests/")], sorted(members)
    # a clean environment: the wheel, then the source tree (pip install .), each importable and runnable
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python, script = env / "bin" / "python", env / "bin" / "aioqueue"
    for target, how in ((wheel, ()), (ROOT, ("--no-deps",))):
        _run(python, "-m", "pip", "install", "--quiet", "--force-reinstall", *how, target, cwd=tmp_path)
        assert _run(script, "--help").startswith("usage: aioqueue")
        version = _run(
            python, "-c", "import aioqueue, sys; print(aioqueue.__version__, aioqueue.__file__)", cwd=tmp_path
        )
        assert str(env) in version.split()[1], version  # the installed copy, not this checkout


# a user's project that tests its code against the fake: the testing guide's example, and the switch
USER_PROJECT = {
    "pyproject.toml": '[tool.pytest.ini_options]\nasyncio_mode = "auto"\naioqueue_service = "fake"\n',
    "test_order_worker.py": (ROOT / "examples" / "test_order_worker.py").read_text(),
    "test_on_the_switch.py": (
        "import sys\n\nimport aioqueue\n\n\n"
        "async def test_queue_client_on_the_fake(queue_client, aioqueue_service):\n"
        "    assert aioqueue.__file__.startswith(sys.prefix)  # the installed wheel\n"
        "    await queue_client.send_message('no node')\n"
        "    [msg] = await queue_client.receive_messages()\n"
        "    assert msg.content == 'no node'\n"
        "    assert type(aioqueue_service).__name__ == 'FakeQueueService'\n"
    ),
}


@pytest.mark.slow
def test_a_user_test_on_the_fake_needs_only_the_wheel_and_its_testing_extra(tmp_path):
    """Issue #26: a user's tests written against the fake run in a clean virtual environment holding only
    the wheel with ``[testing]``, with no Node.js, npm or Azurite anywhere it could be found."""
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, _source_tree(tmp_path / "source"))
    [wheel] = dist.glob("*.whl")
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", f"{wheel}[testing]", cwd=tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    for name, text in USER_PROJECT.items():
        (project / name).write_text(text)
    # only the environment's own commands: no node or npm (here in /usr/bin), no $AIOQUEUE_AZURITE, no
    # node_modules above the project or the installed package
    bare = {"PATH": str(env / "bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    assert not [tool for tool in ("node", "npm", "azurite-queue") if shutil.which(tool, path=bare["PATH"])]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), *args], cwd=project, env=bare, capture_output=True, text=True, timeout=600)

    no_azurite = run("-c", "from aioqueue.testing import find_azurite; find_azurite()")
    assert no_azurite.returncode != 0 and "Azurite is not installed" in no_azurite.stderr, no_azurite.stderr
    # the plugin is registered by the wheel's entry point: no -p, no conftest
    result = run("-m", "pytest", "-p", "no:cacheprovider", "-v", "--durations=0")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout and "aioqueue: queue fixtures on fake" in result.stdout, result.stdout
