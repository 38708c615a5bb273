"""mypy --strict on user code of the CEC client: a route id and a dnid cannot be swapped."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

USER_CODE = """
from yeastar_async.huawei_cec import CecClient, DeviceType, Dnid


async def fine(cec: CecClient) -> None:
    page = await cec.called_route.query(access_code="4001")
    async for route in cec.called_route.query():
        reveal_type(route)
        await cec.called_route.modify(
            route_id=route.id, device_type=DeviceType.SKILL_QUEUE, device_id=7
        )
        await cec.called_route.delete(dnids=[route.dnid])
    await cec.called_route.delete(dnids=Dnid(1001))
    reveal_type(page.routes)


async def swapped(cec: CecClient) -> None:
    async for route in cec.called_route.query():
        await cec.called_route.modify(
            route_id=route.dnid, device_type=DeviceType.IVR, device_id=1
        )
        await cec.called_route.delete(dnids=[route.id])
        await cec.called_route.modify(
            route_id="1125397061153369092", device_type=DeviceType.IVR, device_id=1
        )
        await cec.called_route.delete(dnids=[1001])
"""


def test_mypy_strict_keeps_ids_and_dnids_apart(tmp_path: Path) -> None:
    module = tmp_path / "cec_user_code.py"
    module.write_text(textwrap.dedent(USER_CODE), encoding="utf-8")
    cache = str(tmp_path / "mypy-cache")
    out, err, status = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", cache, str(module)]
    )
    assert status == 1, (out, err)
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if line.strip()]
    assert 'note: Revealed type is "yeastar_async.huawei_cec._models.CalledRoute"' in lines
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 4, out
    assert 'type "Dnid"; expected "CalledRouteId"' in errors[0]
    assert 'type "CalledRouteId"' in errors[1]
    assert 'type "str"; expected "CalledRouteId"' in errors[2]
    assert 'type "int"' in errors[3]
