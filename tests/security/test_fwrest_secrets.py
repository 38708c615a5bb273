"""Secrets the PBX hands out (webhook signing keys, extension passwords) stay out of reprs."""

from __future__ import annotations

import asyncio

from yeastar_async import YeastarClient
from yeastar_async.testing import FakePBX

SECRET = "Pugghh14VCb05rtG7WGumbD4hwJPIvzu"


async def test_webhook_secret_and_password_are_masked_in_reprs() -> None:
    entry = {"url": "http://127.0.0.1:9/", "secret": SECRET, "request_method": "POST"}
    async with (
        asyncio.timeout(10),
        FakePBX() as fake,
        YeastarClient(fake.base_url, fake.client_id, fake.client_secret) as pbx,
    ):
        await pbx.webhook.update(webhook_event_push_list=[{**entry, "event_ids": [0]}])
        answer = await pbx.webhook.query()
        password = await pbx.extension.getpassword(id=80, type="vm_pin")
        [update] = fake.requests_for("webhook/update")
    assert answer.data is not None
    assert answer.data.webhook_event_push_list[0].secret == SECRET  # the value is there
    for shown in (repr(answer), repr(update), repr(fake.store.webhooks if fake.store else "")):
        assert SECRET not in shown
    assert password.password
    assert password.password not in repr(password)
