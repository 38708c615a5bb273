"""The source distribution carries what its own test suite needs, a license and project URLs.

Read from ``pyproject.toml`` (no build backend needed); when hatchling is installed the sdist is
also built and its file list checked.
"""

from __future__ import annotations

import ast
import tarfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SDIST_INCLUDE: list[str] = PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]


def _local_imports() -> set[str]:
    """Top-level names the tests import that are folders or files of this checkout."""
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if (ROOT / n).is_dir() or (ROOT / f"{n}.py").is_file()}


def _named_paths() -> set[str]:
    """First components of the paths the tests build from the checkout's root: ``ROOT / "x"``
    (read, run or put on ``sys.path``) and ``parents[1] / "x"``."""
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)):
                continue
            left, right = node.left, node.right
            rooted = (isinstance(left, ast.Name) and left.id == "ROOT") or (
                isinstance(left, ast.Subscript) and ast.unparse(left).endswith("parents[1]")
            )
            if rooted and isinstance(right, ast.Constant) and isinstance(right.value, str):
                names.add(right.value.split("/")[0])
    return {n for n in names if (ROOT / n).exists()}


def test_the_sdist_includes_every_folder_the_tests_name() -> None:
    # tools/ and catalog/ were missing: the catalog tests failed in an unpacked sdist.
    needed = _named_paths() - {"pyproject.toml"}  # every sdist has it
    assert {"tools", "catalog", "README.md"} <= needed
    assert needed <= set(SDIST_INCLUDE), needed - set(SDIST_INCLUDE)


def test_the_sdist_includes_every_local_package_the_tests_import() -> None:
    needed = _local_imports()
    assert "bench" in needed  # tests/test_bench_smoke.py
    assert needed <= set(SDIST_INCLUDE), needed - set(SDIST_INCLUDE)
    assert "README.md" in SDIST_INCLUDE  # tests/test_readme.py runs its snippets


def test_license_file_and_project_urls() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert "LICENSE" in SDIST_INCLUDE
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 yeastar-async developers" in text
    urls = project["urls"]
    assert urls
    assert all(url.startswith("https://") for url in urls.values())


def test_a_built_sdist_has_them(tmp_path: Path) -> None:
    sdist = pytest.importorskip("hatchling.builders.sdist", reason="hatchling not installed")
    built = next(iter(sdist.SdistBuilder(str(ROOT)).build(directory=str(tmp_path))))
    with tarfile.open(built) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for required in (
        "LICENSE",
        "bench/__init__.py",
        "tests/test_bench_smoke.py",
        "README.md",
        "tools/catalog_files.py",
        "catalog/p_series_current.json",
    ):
        assert required in names
