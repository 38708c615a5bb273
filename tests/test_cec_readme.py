"""README's "Huawei Cloud CEC" worked example runs against a FakeCec and does what it says."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yeastar_async.testing import FakeCec

# The fixture cec_fake.
pytest_plugins = ["tests._cec"]

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def clock() -> Callable[[], float]:
    """The fake reads the real clock, as the example's client does."""
    return time.time


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Huawei Cloud CEC", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python example in the CEC section"
    return match.group(1)


async def test_the_worked_example_moves_the_route_to_queue_7(
    cec_fake: FakeCec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CEC_DOMAIN", cec_fake.base_url)
    monkeypatch.setenv("CEC_APP_KEY", cec_fake.app_key)
    monkeypatch.setenv("CEC_APP_SECRET", cec_fake.app_secret)
    route = cec_fake.add_route("4001", device_type=3, device_id=2)
    other = cec_fake.add_route("4002", device_type=3, device_id=2)
    code = _example().replace("asyncio.run(main())", "")
    namespace: dict[str, Any] = {}
    exec(compile(code, str(README), "exec"), namespace)
    await namespace["main"]()
    assert (route.devicetype, route.deviceId) == (1, 7)
    assert (other.devicetype, other.deviceId) == (3, 2)
