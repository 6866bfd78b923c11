"""The documentation runs as written.

- Every ```python block in docs/ and README.md runs (a page's blocks in order, in one
  namespace). Blocks marked ```python no-run need a framework or a server and are skipped.
- Every ```console block runs: each ``$ `` line is a shell command run from the repository
  root with this Python's scripts first on PATH, and the lines after it, up to the next
  ``$ `` line, are its output (stdout and stderr together), compared exactly.
- The algorithm pictures are drawn by docs/draw_pictures.py; every image a page shows exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README = ROOT / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
CONSOLE = re.compile(r"```console\n(.*?)```", re.S)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def test_every_page_is_linked_from_the_index() -> None:
    index = (DOCS / "index.md").read_text()
    missing = [p.name for p in PAGES if p.name != "index.md" and f"({p.name})" not in index]
    assert missing == []


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in PAGES if f": {p.name}" not in nav]
    assert missing == []


@pytest.mark.parametrize("page", [*PAGES, README], ids=lambda p: p.name)
def test_examples_run(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for block in BLOCK.findall(page.read_text()):
        exec(compile(block, str(page), "exec"), namespace)


def _sessions(page: Path) -> list[tuple[str, str]]:
    """(command, expected output) for every ``$ `` line of the page's console blocks."""
    out: list[tuple[str, str]] = []
    for block in CONSOLE.findall(page.read_text()):
        for chunk in ("\n" + block).split("\n$ ")[1:]:
            command, _, expected = chunk.partition("\n")
            out.append((command, expected))
    return out


CONSOLE_PAGES = [p for p in [*PAGES, README] if _sessions(p)]


@pytest.mark.parametrize("page", CONSOLE_PAGES, ids=lambda p: p.name)
def test_console_sessions_print_what_the_page_shows(page: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for command, expected in _sessions(page):
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.stdout == expected, command


def test_the_cli_page_has_console_sessions() -> None:
    commands = [c for c, _ in _sessions(DOCS / "cli.md")]
    for name in ("route", "predict", "simulate", "reshard"):
        assert any(c.split("|")[-1].strip().startswith(f"lbkit {name}") for c in commands), name


def test_every_image_a_page_shows_exists() -> None:
    missing = [
        (page.name, src)
        for page in PAGES
        for src in IMAGE.findall(page.read_text())
        if not src.startswith("http") and not (DOCS / src).is_file()
    ]
    assert missing == []


def test_draw_pictures_draws_every_algorithm(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(DOCS / "draw_pictures.py"), str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    shipped = sorted(p.name for p in (DOCS / "img" / "algorithms").glob("*.png"))
    assert drawn == shipped
    assert len(drawn) >= 10
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
