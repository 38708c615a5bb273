"""webhook/query and webhook/update against the FakePBX's settings store."""

from __future__ import annotations

import asyncio

import pytest

from yeastar_async import YeastarClient
from yeastar_async.errors import YeastarError
from yeastar_async.testing import FakePBX

ENTRY = {
    "url": "http://127.0.0.1:9/hook",
    "secret": "s" * 32,
    "request_method": "POST",
    "event_ids": [30011, 30012],
}


async def test_update_then_query_round_trip() -> None:
    async with asyncio.timeout(10):
        async with (
            FakePBX() as fake,
            YeastarClient(fake.base_url, fake.client_id, fake.client_secret) as pbx,
        ):
            before = await pbx.webhook.query()
            assert before.data is not None
            assert before.data.enb_webhook_event_push == 0
            assert 30012 in before.data.webhook_event_ids
            await pbx.webhook.update(
                webhook_event_push_list=[ENTRY],
                webhook_event_push_timeout=4,
                webhook_event_push_retry_count=2,
            )
            after = await pbx.webhook.query()
            assert after.data is not None
            assert after.data.enb_webhook_event_push == 1
            assert [e.url for e in after.data.webhook_event_push_list] == [ENTRY["url"]]
            settings = fake.store.webhooks if fake.store else None
            assert settings is not None
            assert (settings.timeout, settings.retry_count) == (4, 2)
            assert settings.entries[0].wants(30012)
            assert not settings.entries[0].wants(30008)
            assert "s" * 32 not in repr(settings)


@pytest.mark.parametrize(
    "options",
    [
        {"webhook_event_push_timeout": 11},
        {"webhook_event_push_retry_count": 0},
        {"webhook_event_push_list": [ENTRY] * 6},
        {"webhook_event_push_list": [{**ENTRY, "request_method": "PUT"}]},
    ],
)
async def test_out_of_range_values_change_nothing(options: dict[str, object]) -> None:
    async with asyncio.timeout(10):
        async with (
            FakePBX() as fake,
            YeastarClient(fake.base_url, fake.client_id, fake.client_secret) as pbx,
        ):
            with pytest.raises(YeastarError) as caught:
                await pbx.webhook.update(**options)  # type: ignore[arg-type]
            assert caught.value.errcode == 40002
            assert fake.store is not None
            assert fake.store.webhooks.entries == []
            assert fake.store.webhooks.timeout == 5
