"""aioqueue.testing and its pytest plugin. ``run_pytest``: a user's project run by a pytest of its own."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

from aioqueue import AioQueueError
from aioqueue.testing import find_azurite

ROOT = Path(__file__).resolve().parents[2]


def run_pytest(
    tmp_path: Path,
    files: dict[str, str],
    *args: str,
    block: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """pytest in a fresh process on ``files`` (a project of the test's making), with aioqueue's plugin.
    ``block``: a module made unimportable, as if it were not installed; ``env``: more environment."""
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    # an import statement of it fails (pytest's own import hooks would find it for a meta path blocker)
    blocker = (
        "import builtins\n"
        "_import = builtins.__import__\n"
        "def _blocked(name, *args, **kwargs):\n"
        f"    if name == {block!r} or name.startswith({block + '.'!r}):\n"
        "        raise ImportError(name)\n"
        "    return _import(name, *args, **kwargs)\n"
        "builtins.__import__ = _blocked\n"
        if block
        else ""
    )
    code = (
        blocker
        + f"import sys, pytest\nsys.exit(pytest.main({['-p', 'no:cacheprovider', '-p', 'no:randomly', *args]!r}))\n"
    )
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    with contextlib.suppress(AioQueueError):  # the unit tier runs the plugin without Azurite
        environ["AIOQUEUE_AZURITE"] = find_azurite()
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300
    )


def azurite_tripwire(folder: Path) -> tuple[Path, Path]:
    """A stand-in for azurite-queue that leaves a file behind when started (and fails): the script, and
    the file that shows Azurite was started. For ``env={"AIOQUEUE_AZURITE": str(script)}``."""
    started = folder / "azurite-was-started"
    script = folder / "azurite-queue"
    script.write_text(f"#!/bin/sh\ntouch {started}\necho 'not Azurite'\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, started
