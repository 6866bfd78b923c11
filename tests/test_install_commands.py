"""The install commands README.md and docs/ show work from a fresh copy of the repository.

Each ```sh block that creates a virtualenv runs, as written, in a copy of the tracked files
(so the project's own .venv is untouched); the demo it ends with must print its table.
The other ```sh block, the test command, is what CI runs (tests/test_readme.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SH = re.compile(r"```sh\n(.+?)\n```", re.S)


def _install_commands() -> list[tuple[str, str]]:
    out = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for command in SH.findall(page.read_text()):
            if "python3 -m venv .venv" in command:
                out.append((page.name, command))
    return out


def _fresh_copy(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def test_the_pages_show_install_commands() -> None:
    pages = {page for page, _ in _install_commands()}
    assert pages == {"README.md", "getting-started.md"}


@pytest.mark.parametrize(("page", "command"), _install_commands(), ids=lambda v: str(v)[:30])
def test_install_command_runs_as_written(page: str, command: str, tmp_path: Path) -> None:
    _fresh_copy(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "round robin" in result.stdout
    assert "moved:" in result.stdout
