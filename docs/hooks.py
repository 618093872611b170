"""MkDocs hook: pages that show a file kept outside ``docs/`` (the changelog).

A line ``<!-- include: CHANGELOG.md -->`` in a page is replaced by that file, read from
the repository root, so the file stays where its tools and readers expect it and the site shows the
same text. Relative links in it are rewritten from the file's folder to the page's.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include: (?P<path>\S+) -->$", re.MULTILINE)
LINK = re.compile(r"\]\((?!https?://|#|mailto:)(?P<target>[^)\s]+)\)")


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace every include line of ``page`` by the file it names, links rewritten."""

    def include(match: re.Match[str]) -> str:
        source = match["path"]
        text = (ROOT / source).read_text(encoding="utf-8")
        page_dir = posixpath.dirname(posixpath.join("docs", page.file.src_uri))
        source_dir = posixpath.dirname(source)

        def relink(link: re.Match[str]) -> str:
            target = posixpath.normpath(posixpath.join(source_dir, link["target"]))
            return f"]({posixpath.relpath(target, page_dir)})"

        return LINK.sub(relink, text)

    return INCLUDE.sub(include, markdown)
