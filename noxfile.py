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
# uv (a dev extra) makes each session's environment in seconds, where pip took a minute of CPU on CI's
# two cores; without uv, virtualenv and pip as before
nox.options.default_venv_backend = "uv|virtualenv"


# What the other Pythons run. ./dev test runs everything once, on the project's interpreter, with coverage.
# Here each other version runs what can behave differently from one Python to the next, in the time CI has
# (.ci/run, ./dev test and three other Pythons, under 10 minutes on 2 cores; the whole suite took about
# 3 minutes a version, too long for three), in one pytest run (-m "not slow", about 80 s on 2 cores):
# - the unit tier (parsing, signing, validation, the settle turn's model test against asyncio.Lock, the fake
#   service, the CLI's own logic), where the standard library differs;
# - the emulator tier of the consumer and the worker, and the transport's retries and cancellation
#   (--emulator-tier-under): their timeouts, cancellation, task handling and signals lean on asyncio, which
#   changes from version to version.
# Left to ./dev test alone: the tests marked slow (soak, outage, memory through an outage, the example
# worker's idle stop, the fast paths' long property runs, ...: long runs of code the faster tests exercise
# on every version), the emulator tier of the client operations, auth, CLI and plugin (request building and
# answer parsing, which the unit tier covers on every version), the docs site and the built package, which
# do not depend on the interpreter, and the tests that start a process per case: the plugin's and
# tests/docs/test_tiers.py's (each runs pytest in a subprocess, 3-11 s apiece; what they test is pytest's and
# pytest-asyncio's behaviour, not Python's) and the worker command's usage errors (about 2 s a case, 45 s in
# all on 3.12: our own messages and exit codes). tests/docs (layout, manifests, examples, tiers) reads files
# and the site, not the interpreter. With these left out, the unit tier takes about half the time.
VERSION_SENSITIVE = [
    "tests/consumer",
    "tests/worker",
    "tests/transport/test_retries.py",
    "tests/transport/test_cancellation.py",
]
NOT_HERE = ["--ignore=tests/docs", "--ignore=tests/plugin", "--ignore=tests/cli/test_worker_usage.py"]


def _uv(session: nox.Session) -> bool:
    return session.venv_backend == "uv"


@nox.session(python=FOUND)
def tests(session: nox.Session) -> None:
    """pytest against Azurite, in random order, two workers per core (no lint or coverage: ./dev test does
    those once). With arguments, only pytest with them: ``nox -s tests-3.12 -- tests/worker``."""
    # compiled as pip compiles (uv does not by default): every worker and subprocess of the run would
    # otherwise compile aiohttp, pytest and the rest again, as would any run where PYTHONDONTWRITEBYTECODE is set
    session.install("-c", "constraints.txt", "-e", ".[dev]", *(["--compile-bytecode"] if _uv(session) else []))
    # many tests wait (visibility timeouts, held answers, back-off, a worker process starting): two workers a core
    common = (
        "-q",
        "-p",
        "no:cacheprovider",
        "--dist",
        "load",
        "--maxschedchunk",
        "1",
        "-n",
        str(2 * (os.cpu_count() or 1)),
    )
    if session.posargs:
        session.run("pytest", *common, *session.posargs)
        return
    # both tiers in one run (tests/conftest.py's --emulator-tier-under), so the emulator tier's waits overlap
    # the unit tier's work (two runs, one a tier, took 82 s on 3.12 where one takes 77 s)
    under = [f"--emulator-tier-under={path}" for path in VERSION_SENSITIVE]
    session.run("pytest", *common, "-m", "not slow", *NOT_HERE, *under)
