"""The test suite's version-sensitive part on every supported Python found here: ``nox`` (or ``nox -s tests-3.12``).

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


# What the other Pythons run. ./dev test runs everything once, on the project's interpreter, with coverage.
# Here each other version runs what can behave differently from one Python to the next, in the time CI has
# (.ci/run: under 10 minutes on 2 cores for ./dev test and three other Pythons):
# - the unit tier (-m "not emulator": parsing, signing, validation, the settle turn's model test, the CLI's
#   and plugin's own logic), where the standard library differs between versions;
# - the emulator tier of the consumer, the worker and the transport, whose cancellation, timeouts, task
#   groups, signal handling and subprocesses lean on asyncio, which changes from version to version.
# Left to ./dev test alone: the emulator tier of the client operations, auth, CLI and plugin (request
# building and parsing the unit tier already covers on every version), the docs site and the built package
# (which do not depend on the interpreter), the examples and the benchmarks' smoke runs.
ASYNCIO_HEAVY = ["tests/consumer", "tests/worker", "tests/transport"]
NOT_HERE = ["--ignore=tests/docs/test_docs.py", "--ignore=tests/docs/test_packaging.py"]


@nox.session(python=FOUND)
def tests(session: nox.Session) -> None:
    """pytest against Azurite, in random order, one worker per core (no lint or coverage: ./dev test does
    those once). With arguments, only pytest with them: ``nox -s tests-3.12 -- tests/worker``."""
    session.install("-c", "constraints.txt", "-e", ".[dev]")
    common = ("-q", "-p", "no:cacheprovider", "-n", "auto", "--dist", "worksteal")
    if session.posargs:
        session.run("pytest", *common, *session.posargs)
        return
    session.run("pytest", *common, "-m", "not emulator", *NOT_HERE)
    session.run("pytest", *common, "-m", "emulator", *ASYNCIO_HEAVY)
