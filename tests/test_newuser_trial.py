"""Found by a newcomer's trial of merged main: what an error says about the request it answers."""

from __future__ import annotations

import asyncio

import pytest

from yeastar_async import YeastarClient
from yeastar_async.errors import NotFoundError
from yeastar_async.testing import FakePBX


@pytest.mark.usefixtures("yeastar_login_guard_isolation")
async def test_a_cdr_detail_not_found_names_the_uid_asked_for() -> None:
    # `cdr.detail(uid=...)` (v2.0) answered "DATA NOT FOUND" without saying for which record,
    # while every other lookup names its id ("... for id=235").
    async with (
        FakePBX(firmware="84.23.0.123") as fake,
        YeastarClient(fake.base_url, fake.client_id, fake.client_secret) as pbx,
    ):
        with pytest.raises(NotFoundError) as got:
            async with asyncio.timeout(10):
                await pbx.cdr.detail(uid="1796647840.2")
    assert "for uid=1796647840.2" in str(got.value)
    assert got.value.request_params == "uid=1796647840.2"
