"""Install from source and from a built wheel, as README says, in a clean virtual environment."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.mark.slow
def test_the_sdist_and_wheel_build_pass_twine_and_install_cleanly(tmp_path):
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    assert "passed" in _run(sys.executable, "-m", "twine", "check", wheel, sdist).lower()
    names = zipfile.ZipFile(wheel).namelist()
    assert "aioqueue/py.typed" in names and "aioqueue/cli.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/", "docs/"))], names
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
