"""The test suite on every supported Python found on this machine: ``nox`` (or ``nox -s tests-3.12``).

CI (``.ci/run``) runs ``./dev test`` on the project's own interpreter, then (``./dev pythons``) these
sessions for the others.
Interpreters come from PATH, or from pyenv's versions folder when PATH has only pyenv's shims.
"""

from __future__ import annotations

import glob
import os
import shutil

import nox

SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]

# pyenv's shims answer only for its selected versions: put every installed version's bin on PATH
for folder in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin"))):
    os.environ["PATH"] = os.environ["PATH"] + os.pathsep + folder

FOUND = [v for v in SUPPORTED if shutil.which(f"python{v}")]
# ./dev pythons names the interpreter ./dev test already ran on; plain `nox` runs them all
MAIN = os.environ.get("AIOQUEUE_MAIN_PYTHON")

nox.options.sessions = [f"tests-{v}" for v in FOUND if v != MAIN]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python=FOUND)
def tests(session: nox.Session) -> None:
    """pytest against Azurite, in random order (no lint or coverage: ./dev test does those once)."""
    session.install("-c", "constraints.txt", "-e", ".[dev]")
    # the docs site and the built package do not depend on the interpreter: ./dev test checks them once
    ignored = ("--ignore=tests/test_docs.py", "--ignore=tests/test_packaging.py")
    session.run("pytest", "-q", "-p", "no:cacheprovider", *ignored, *session.posargs)
