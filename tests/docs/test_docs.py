"""The documentation site builds with --strict (no broken link, reference or included example), its
pages render in a real headless browser with their headings and code blocks, no code block is wider
than its box on a 1280 px screen, and 404.html finds its assets under the site's own path. Also: what
`./dev docs` sets up, and the migration page's advice for the official SDK against Azurite."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.queue.aio import QueueClient as OfficialQueueClient

from aioqueue import QueueClient

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
SCREEN = {"width": 1280, "height": 800}  # a common laptop screen


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is needed to look at the docs (./dev setup installs Debian's chromium)"
    return found


def _build(site: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert build.returncode == 0, build.stderr[-3000:]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The site, built for the test (a few seconds)."""
    built = tmp_path / "site"
    _build(built)
    return built


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_docs_build_strictly_and_render_in_a_browser(site, tmp_path):
    chromium = _chromium()
    # each page: its heading, and a word only its rendered body holds (an API reference member, code)
    pages = {
        "index.html": ("aioqueue", "QueueClient"),
        "getting-started/index.html": ("Getting started", "send_message"),
        "guide/consuming/index.html": ("Consuming", "process"),
        "guide/production/index.html": ("production", "terminationGracePeriodSeconds"),
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


# Run in each page once it has loaded (web fonts settled, every <details> opened): each code block, and
# the <code> inside it that scrolls, wider than its box: by how much, and its longest line.
MEASURE_CODE = """(async () => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  await document.fonts.ready;
  const wide = [];
  let measured = 0;
  for (const box of document.querySelectorAll("pre, pre > code")) {
    if (box.clientWidth === 0) continue;
    measured += 1;
    if (box.scrollWidth > box.clientWidth) {
      const longest = box.textContent.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), "");
      wide.push(`${box.scrollWidth - box.clientWidth} px too wide: ${longest.trim().slice(0, 90)}`);
    }
  }
  return {url: location.href, width: window.innerWidth, measured, wide};
})()"""


class DevTools:
    """Just enough of Chromium's DevTools protocol: one call at a time; events kept until asked for."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.last_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        message: dict[str, Any] = {"id": self.last_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send_json(message)
        while True:
            message = await self.ws.receive_json()
            if message.get("id") == self.last_id:
                assert "error" not in message, f"{method}: {message['error']}"
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    async def event(self, method: str, session: str) -> None:
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(await self.ws.receive_json())


@contextlib.asynccontextmanager
async def _browser(profile: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with its DevTools protocol on a loopback port it picks itself."""
    proc = await asyncio.create_subprocess_exec(
        _chromium(),
        *CHROMIUM_FLAGS,
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--window-size={width},{height}".format(**SCREEN),
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"  # the port, then the browser's websocket path
        for _ in range(600):
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                break
            assert proc.returncode is None, f"Chromium exited with {proc.returncode}"
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("Chromium did not open its DevTools port within 60 s")
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_msg_size=0) as ws,
        ):
            yield DevTools(ws)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _measure_code(pages: dict[str, str], profile: Path) -> dict[str, dict[str, Any]]:
    """Each page (name: its URL) in a 1280 px wide window: MEASURE_CODE's answer, by page."""
    found = {}
    async with _browser(profile) as browser:
        target = await browser.call("Target.createTarget", url="about:blank")
        attached = await browser.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        session = attached["sessionId"]
        await browser.call("Emulation.setDeviceMetricsOverride", session, deviceScaleFactor=1, mobile=False, **SCREEN)
        await browser.call("Page.enable", session)
        for page, url in pages.items():
            browser.events.clear()
            navigated = await browser.call("Page.navigate", session, url=url)
            assert "errorText" not in navigated, navigated
            await asyncio.wait_for(browser.event("Page.loadEventFired", session), 60)
            answer = await browser.call(
                "Runtime.evaluate", session, expression=MEASURE_CODE, awaitPromise=True, returnByValue=True
            )
            value = answer["result"]["value"]
            assert value["url"] == url, value  # measured the page itself, loaded
            found[page] = value
    return found


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_no_code_block_is_wider_than_its_box_at_1280_px(site, tmp_path):
    pages = {str(page.relative_to(site)): page.as_uri() for page in sorted(site.rglob("*.html"))}
    found = await _measure_code(pages, tmp_path / "profile")
    assert {answer["width"] for answer in found.values()} == {SCREEN["width"]}
    assert found["getting-started/index.html"]["measured"] >= 10, "the code blocks were not measured"
    wide = [f"{page}: {line}" for page, answer in found.items() for line in answer["wide"]]
    assert not wide, "code wider than its box at 1280 px (scroll to read it):\n" + "\n".join(wide)


class _Urls(HTMLParser):
    """Every href and src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("href", "src") and value]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_404_points_at_the_sites_own_path(site):
    """The server shows 404.html at whatever address was missing, /en/latest/no/such/page/ say, so its
    links cannot be relative: they must start with the path the site is served under (site_url's)."""
    canonical = re.search(r'<link rel="canonical" href="([^"]+)"', (site / "index.html").read_text())
    assert canonical, (
        "mkdocs.yml sets no site_url: 404.html then points at /assets/... on the server's root, which a site "
        "served under a sub-path does not have"
    )
    base = urlsplit(canonical.group(1)).path
    assert base.startswith("/") and base.endswith("/"), base
    parser = _Urls()
    parser.feed((site / "404.html").read_text())
    local = [url for url in parser.urls if not urlsplit(url).scheme and not url.startswith("#")]
    assert any(url.endswith(".css") for url in local) and any(url.endswith(".js") for url in local), local
    wrong = []
    for url in local:
        path = urlsplit(url).path
        target = site / path[len(base) :]
        if not path.startswith(base) or not (target.is_file() or (target / "index.html").is_file()):
            wrong.append(url)
    assert not wrong, f"404.html links that miss the site under {base}: {wrong}"


def test_dev_docs_needs_only_the_docs_extra(tmp_path):
    """`./dev docs` and `./dev docs build` install the docs extra only: no dev tools, no Azurite from
    npm, no Chromium. Run here in a copy whose .venv records pip's, uv's and mkdocs' arguments instead."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dev", "pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, repo / name)
    log = tmp_path / "calls"
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for tool in ("python", "uv", "mkdocs"):
        (venv_bin / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n')
        (venv_bin / tool).chmod(0o755)
    # a PATH with the shell's own tools only: no npm, no apt-get, no chromium
    path = tmp_path / "path"
    path.mkdir()
    for tool in ("bash", "sh", "cat", "cut", "dirname", "sed", "sha256sum"):
        found = shutil.which(tool)
        assert found, tool
        (path / tool).symlink_to(found)
    env = {"PATH": str(path), "HOME": str(tmp_path)}
    for args in (["docs", "build", "--site-dir", "out"], ["docs"]):
        run = subprocess.run(
            [str(path / "bash"), str(repo / "dev"), *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert run.returncode == 0, run.stderr
    calls = log.read_text().splitlines()
    installs = [call for call in calls if " install " in call]
    assert installs == [
        "python -m pip install --quiet -c constraints.txt uv",
        "uv pip install --quiet --python .venv/bin/python --compile-bytecode -c constraints.txt -e .[docs]",
    ], calls
    assert [call for call in calls if call.startswith("mkdocs")] == [
        "mkdocs build --strict --site-dir out",
        "mkdocs serve",
    ], calls
    stamp = hashlib.sha256(b"".join((repo / n).read_bytes() for n in ("pyproject.toml", "constraints.txt")))
    assert stamp.hexdigest()[:16] in (repo / ".venv" / ".aioqueue-docs-stamp").read_text()


async def test_the_official_sdk_reaches_azurite_with_the_migration_pages_api_version(azurite, azurite_queue):
    """Azurite's, whatever the switch says: the fake takes the SDK's default version, as Azure does."""
    page = (ROOT / "docs" / "migration.md").read_text()
    shown = re.search(r'api_version="(\d{4}-\d{2}-\d{2})"', page)
    assert shown, "docs/migration.md does not show how to set the official SDK's api_version for Azurite"
    conn_str, queue = azurite.connection_string, azurite_queue.queue_name
    # what the page says first: the official SDK's default is refused
    async with OfficialQueueClient.from_connection_string(conn_str, queue) as refused:
        with pytest.raises(HttpResponseError) as error:
            await refused.send_message("sent with the SDK's default x-ms-version")
        assert getattr(error.value, "error_code", None) == "InvalidHeaderValue", error.value
    async with OfficialQueueClient.from_connection_string(conn_str, queue, api_version=shown.group(1)) as sdk:
        await sdk.send_message("from the official SDK")
        assert (await sdk.get_queue_properties()).approximate_message_count == 1
    async with QueueClient.from_connection_string(conn_str, queue) as q:
        [peeked] = await q.peek_messages()
    assert peeked.content == "from the official SDK"
