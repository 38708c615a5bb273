"""The repository's catalog is the source of the generated code: regenerating changes nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> str | None:
    """Where the generator finds ruff (beside this Python first, as tools/gen_resources.py)."""
    return shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


# The generator leaves its output unformatted without ruff (the `dev` extra, not `test`): the
# README's `pip install -e ".[test]" && python -m pytest` must pass, and .ci/run still diffs.
@pytest.mark.skipif(_ruff() is None, reason="ruff not installed (pip install -e '.[dev]')")
def test_resource_modules_are_generated_from_the_repository_catalog(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_resources.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    written = sorted(p.name for p in tmp_path.glob("*.py"))
    assert "webhook.py" in written
    for name in written:
        committed = ROOT / "yeastar_async" / "resources" / name
        assert (tmp_path / name).read_text() == committed.read_text(), name


def test_the_fake_catalog_is_built_from_the_repository_catalog() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_fake_catalog.py"), "--check"],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_tools_read_nothing_outside_the_repository() -> None:
    for tool in ("gen_resources.py", "build_fake_catalog.py", "catalog_files.py"):
        text = (ROOT / "tools" / tool).read_text()
        assert '"shared"' not in text, tool
        assert "../shared" not in text, tool
        assert "ROOT.parent" not in text, tool
