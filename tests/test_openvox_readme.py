"""README's "OpenVox UC IPPBX" worked example runs against a FakeOpenVox and does what it says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests._openvox import PASSWORD
from tests.security._transport_rig import bounded
from yeastar_async.openvox import forget_login_failures
from yeastar_async.testing import FakeOpenVox

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## OpenVox UC IPPBX", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python example in the OpenVox section"
    return match.group(1)


@bounded()
async def test_the_worked_example_moves_the_route_to_queue_6400(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    forget_login_failures()
    async with FakeOpenVox(password=PASSWORD) as fake:
        fake.add_inroute("main", "extension", "1000", did="5550100")
        fake.add_inroute("night", "voicemail", "1000")
        monkeypatch.setenv("OPENVOX_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENVOX_USERNAME", fake.username)
        monkeypatch.setenv("OPENVOX_PASSWORD", PASSWORD)
        code = _example().replace("asyncio.run(main())", "")
        namespace: dict[str, Any] = {}
        exec(compile(code, str(README), "exec"), namespace)
        await namespace["main"]()
    assert capsys.readouterr().out == "extension 1000\n"
    assert fake.inroutes["main"] | {"id": ""} == {
        "id": "",
        "name": "main",
        "did": "5550100",
        "caller_id": "",
        "desttype": "queue",
        "dest": "6400",
    }
    assert fake.inroutes["night"]["desttype"] == "voicemail"
    assert fake.live_tokens == []
