"""MkDocs hook: copy README.md's machine-written blocks into the pages that show them.

``./dev bench`` rewrites the benchmark tables between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``
markers in README.md. A page line ``<!-- readme: NAME -->`` is replaced by what stands between those
markers, so the site shows the same figures as README.md. A missing marker fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

PLACEHOLDER = re.compile(r"^<!-- readme: ([a-z0-9-]+) -->$", re.MULTILINE)


def _readme(config: Any) -> Path:
    return Path(config["config_file_path"]).resolve().parent / "README.md"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "<!-- readme: " not in markdown:
        return markdown
    readme = _readme(config).read_text(encoding="utf-8")

    def block(match: re.Match[str]) -> str:
        name = match.group(1)
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start not in readme or end not in readme:
            raise PluginError(f"{page.file.src_uri}: README.md has no {start} ... {end} block")
        return readme.split(start, 1)[1].split(end, 1)[0].strip()

    return PLACEHOLDER.sub(block, markdown)


def on_serve(server: Any, config: Any, builder: Any) -> None:
    root = _readme(config).parent
    server.watch(str(root / "README.md"))
    server.watch(str(root / "examples"))
    server.watch(str(root / "aioqueue"))
