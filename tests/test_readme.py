"""README.md as an executable spec: every ```python block runs, as written, against a FakePBX.

The snippets read the PBX from the environment (``YeastarClient.from_env()``), as the command
line does: each runs as its own ``python`` process on 127.0.0.1 with ``YEASTAR_BASE_URL``,
``YEASTAR_CLIENT_ID`` and ``YEASTAR_CLIENT_SECRET`` naming a fresh FakePBX, in an empty working
directory, and must exit 0 with no traceback. An HTML comment on the line before a block says how
it runs when the default does not fit:

- ``<!-- snippet: events ... -->``: a test places an inbound call while it runs (:data:`DRIVERS`);
- ``<!-- snippet: pytest ... -->``: a test file, run by pytest with ``asyncio_mode = "auto"`` as
  the README says;
- ``<!-- snippet: not run (REASON) -->``: deliberately not runnable (a protocol sketch); the
  reason is required and reported as the skip reason.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from yeastar_async.testing import FakePBX

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: A fenced python block, with the HTML comment on the line before it if there is one.
_BLOCK = re.compile(
    r"(?:^<!--\s*snippet:\s*(?P<mark>.*?)\s*-->\n)?^```python\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
_NOT_RUN = re.compile(r"not run\s*\((?P<reason>.+)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Snippet:
    """One python block of the README."""

    line: int
    mark: str
    code: str

    @property
    def kind(self) -> str:
        """``run`` (the default), ``not run``, or the marker's first word (a driver)."""
        if not self.mark:
            return "run"
        if self.mark.startswith("not run"):
            return "not run"
        return self.mark.split()[0]

    @property
    def id(self) -> str:
        return f"line{self.line}-{self.kind.replace(' ', '-')}"


def snippets(text: str) -> list[Snippet]:
    """Every ```python block of ``text``, in order."""
    return [
        Snippet(text.count("\n", 0, m.start("code")), m.group("mark") or "", m.group("code"))
        for m in _BLOCK.finditer(text)
    ]


SNIPPETS = snippets(README.read_text(encoding="utf-8"))


async def _place_an_inbound_call(fake: FakePBX, proc: asyncio.subprocess.Process) -> None:
    # The Events snippet accepts 30016 calls and ends after the first CDR.
    await fake.wait_for_subscription([30016, 30012], timeout=30)
    call = fake.simulate_inbound_call(caller="5551234")
    assert await call.outcome(timeout=15) == "accepted"


Driver = Callable[[FakePBX, asyncio.subprocess.Process], Awaitable[None]]

#: Marker -> what the test does while the snippet runs.
DRIVERS: dict[str, Driver] = {"events": _place_an_inbound_call}


def test_every_python_block_is_found_and_marked_plainly() -> None:
    text = README.read_text(encoding="utf-8")
    fences = [line for line in text.splitlines() if line.strip().startswith("```python")]
    assert len(SNIPPETS) == len(fences)  # none missed (e.g. an indented fence)
    assert len(SNIPPETS) >= 4
    for snippet in SNIPPETS:
        if snippet.kind == "not run":
            assert _NOT_RUN.match(snippet.mark), f"line {snippet.line}: say why it is not run"
        else:
            assert snippet.kind in {"run", "pytest", *DRIVERS}, f"line {snippet.line}"
    assert any(s.kind == "events" for s in SNIPPETS)  # the Events snippet is exercised


async def _python(*argv: str, cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.id)
async def test_readme_snippet_runs_as_written(snippet: Snippet, tmp_path: Path) -> None:
    if snippet.kind == "not run":
        match = _NOT_RUN.match(snippet.mark)
        pytest.skip(f"README line {snippet.line}: {match['reason'] if match else snippet.mark}")
    script = tmp_path / ("test_snippet.py" if snippet.kind == "pytest" else "snippet.py")
    script.write_text(snippet.code, encoding="utf-8")
    async with FakePBX(ring_time=0.05, talk_time=0.05) as fake:
        env = {
            **os.environ,
            "YEASTAR_BASE_URL": fake.base_url,
            "YEASTAR_CLIENT_ID": fake.client_id,
            "YEASTAR_CLIENT_SECRET": fake.client_secret,
            "PYTHONPATH": str(ROOT),  # this checkout's yeastar_async, however pytest was run
        }
        env.pop("YEASTAR_PIN", None)
        env.pop("YEASTAR_CA_FILE", None)
        if snippet.kind == "pytest":
            argv = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto"]
            proc = await _python(*argv, script.name, cwd=tmp_path, env=env)
        else:
            proc = await _python(script.name, cwd=tmp_path, env=env)
        try:
            driver = DRIVERS.get(snippet.kind)
            if driver is not None:
                await driver(fake, proc)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    report = f"README line {snippet.line}:\n{out.decode()}\n{err.decode()}"
    assert proc.returncode == 0, report
    assert b"Traceback" not in err, report
    if snippet.kind == "pytest":
        assert b" passed" in out, report
