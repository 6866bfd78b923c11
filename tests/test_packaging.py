"""``pip wheel .`` gives a wheel whose metadata shows the project URLs, classifiers, extras."""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("lbkit-*.whl")
    return built


@pytest.fixture(scope="module")
def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(z.read(name).decode())


def test_project_urls(metadata: email.message.Message) -> None:
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL", []))
    assert set(urls) >= {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
    assert all(u.startswith("https://") for u in urls.values())


def test_a_classifier_per_python_version_tox_runs(metadata: email.message.Message) -> None:
    classifiers = metadata.get_all("Classifier", [])
    envlist = (ROOT / "tox.ini").read_text().split("envlist = ", 1)[1].splitlines()[0]
    versions = [f"3.{v}" for v in re.findall(r"py3(\d+)", envlist)]
    assert versions
    listed = [c.rsplit(" :: ", 1)[1] for c in classifiers if re.search(r":: 3\.\d+$", c)]
    assert listed == versions
    assert metadata["Requires-Python"] == f">={versions[0]}"
    assert "Typing :: Typed" in classifiers


def test_extras_and_core_dependencies(metadata: email.message.Message) -> None:
    extras = set(metadata.get_all("Provides-Extra", []))
    assert extras >= {"redis", "memcached", "dns", "all", "cli", "plot", "docs", "test", "dev"}
    core = [r for r in metadata.get_all("Requires-Dist", []) if "extra ==" not in r]
    assert sorted(re.split(r"[<>=!~ ]", r, maxsplit=1)[0] for r in core) == [
        "attrs",
        "mmh3",
        "sortedcontainers",
    ]


def test_the_wheel_has_the_script_and_the_types(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "lbkit = lbkit.cli:main" in z.read(entry_points).decode()
    assert "lbkit/py.typed" in names
    assert "lbkit/_cli/predict.py" in names
