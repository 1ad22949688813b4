"""The documentation site builds with --strict (no broken link, reference or included example) and
its pages render in a real headless browser with their headings and code blocks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Chromium on a machine with no network: no background connections, no sandbox (root in CI)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is needed to look at the docs (./dev setup installs Debian's chromium)"
    return found


@pytest.mark.slow
def test_the_docs_build_strictly_and_render_in_a_browser(tmp_path):
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    chromium = _chromium()
    # each page: its heading, and a word only its rendered body holds (an API reference member, code)
    pages = {
        "index.html": ("aioqueue", "QueueClient"),
        "getting-started/index.html": ("Getting started", "send_message"),
        "guide/consuming/index.html": ("Consuming", "process"),
        "reference/clients/index.html": ("Clients", "from_connection_string"),
        "migration/index.html": ("azure-storage-queue", "ResourceExistsError"),
    }
    for page, (words, body_word) in pages.items():
        path = site / page
        assert path.is_file(), f"{page} was not built"
        profile = tmp_path / f"profile-{len(words)}-{page.count('/')}"
        dom = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", path.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        headings = re.findall(r"<h1[^>]*>(.*?)</h1>", dom, flags=re.S)
        assert headings and any(words.lower() in h.lower() for h in headings), f"{page}: h1 {headings[:2]}"
        assert "<pre" in dom or "<code" in dom, f"{page}: no code rendered"
        assert body_word in dom, f"{page}: {body_word!r} not rendered"
