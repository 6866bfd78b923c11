"""Every ```python block in docs/ runs (a page's blocks in order, in one namespace).

Blocks marked ```python no-run need a framework or a server and are skipped here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README = DOCS.parent / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def test_every_page_is_linked_from_the_index() -> None:
    index = (DOCS / "index.md").read_text()
    missing = [p.name for p in PAGES if p.name != "index.md" and f"({p.name})" not in index]
    assert missing == []


@pytest.mark.parametrize("page", [*PAGES, README], ids=lambda p: p.name)
def test_examples_run(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for block in BLOCK.findall(page.read_text()):
        exec(compile(block, str(page), "exec"), namespace)
