"""The fake service ships with the package: aioqueue.testing exports it, and the distribution (whose
packages pyproject.toml lists by name) holds its subpackage, or aioqueue.testing would not import from
an installed wheel."""

from __future__ import annotations

import sys
from pathlib import Path

import aioqueue
import aioqueue.testing
from aioqueue._fake import FakeQueueService

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself needs tomli before 3.11
    import tomli as tomllib

ROOT = Path(aioqueue.__file__).parent.parent


def test_aioqueue_testing_exports_the_fake_service():
    assert aioqueue.testing.FakeQueueService is FakeQueueService
    assert "FakeQueueService" in aioqueue.testing.__all__


def test_every_subpackage_of_aioqueue_is_in_the_distribution():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]
    found = sorted(".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "aioqueue").rglob("__init__.py"))
    assert "aioqueue._fake" in found
    assert sorted(packages) == found
