"""The repository's catalog is the source of the generated code: regenerating changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
