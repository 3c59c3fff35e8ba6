"""The docs site builds with --strict, a broken link fails that build, and the README's links
(outside the site, so not checked by MkDocs) point at files and headings that exist."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort

from tests.tooling.node import ROOT

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def _build(root: Path) -> None:
    config = load_config(str(root / "mkdocs.yml"), strict=True, site_dir=str(root / "site"))
    build(config)


def _site_copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    return tmp_path


def test_site_builds_strictly(tmp_path: Path) -> None:
    _build(_site_copy(tmp_path))
    assert (tmp_path / "site" / "quickstart" / "index.html").exists()


@pytest.mark.parametrize(
    "link",
    [
        pytest.param("[gone](no-such-page.md)", id="missing-page"),
        pytest.param("[gone](caching.md#no-such-heading)", id="missing-anchor"),
        pytest.param("[gone](../README.md)", id="outside-the-site"),
    ],
)
def test_a_broken_link_fails_the_build(tmp_path: Path, link: str) -> None:
    root = _site_copy(tmp_path)
    page = root / "docs" / "cli.md"
    page.write_text(page.read_text() + f"\nSee {link}.\n")
    with pytest.raises(Abort):
        _build(root)


def test_every_page_is_in_the_nav() -> None:
    config = load_config(str(ROOT / "mkdocs.yml"))
    listed: set[str] = set()
    pending: list[object] = list(config["nav"])
    while pending:
        entry = pending.pop()
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                pending.extend(value)
            else:
                listed.add(str(value))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == listed


def _headings(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.DOTALL | re.MULTILINE)
    return {slugify(title.strip(), "-") for title in _HEADING.findall(text)}


def test_readme_links_resolve() -> None:
    targets = _LINK.findall((ROOT / "README.md").read_text())
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local, "no relative link found in the README"
    for target in local:
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else ROOT / "README.md"
        assert file.exists(), f"README links to {target}: no such file"
        if anchor:
            assert anchor in _headings(file), f"README links to {target}: no such heading"
