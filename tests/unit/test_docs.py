"""The documentation holds together (issue 16, item 1): every relative link of the README and
docs/ leads to a file of the repository, and a `#fragment` to a heading of the page it names;
no file of the repository points to documents outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"^```.*?^```$", re.DOTALL | re.MULTILINE)


def links(page: Path) -> list[str]:
    text = CODE_BLOCK.sub("", page.read_text(encoding="utf-8"))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation but hyphens dropped, spaces to hyphens."""
    text = CODE_BLOCK.sub("", page.read_text(encoding="utf-8"))
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        inside = linked.exists() and ROOT in (linked, *linked.parents)
        heading = not fragment or linked.suffix != ".md" or fragment in anchors(linked)
        if not (inside and heading):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links that lead nowhere: {broken}"


def test_the_readme_and_the_index_link_every_page() -> None:
    index = {
        (ROOT / "docs" / t.partition("#")[0]).resolve() for t in links(ROOT / "docs" / "README.md")
    }
    readme = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    for page in PAGES[1:]:
        if page.name != "README.md":
            assert page in index, f"docs/README.md does not link {page.name}"
    assert (ROOT / "docs" / "README.md").resolve() in readme


def test_no_file_points_outside_the_repository() -> None:
    """The documents the code once cited from outside the repository are not referred to."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = re.compile(r"\.\./shared|\b(CONTRACT|DESIGN|DOMAIN)\.md\b")
    me = Path(__file__).resolve()
    for name in files:
        path = ROOT / name
        if path == me or not path.is_file() or path.suffix in {".png", ".jpg"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        assert not outside.search(text), f"{name} refers to a document outside the repository"
