"""Red team: a PBX that echoes the old token when the stream retires it after a rotation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests._secrets import SecretWatch
from yeastar_async import YeastarClient
from yeastar_async.events import CallStatusChanged
from yeastar_async.testing import FakePBX
from yeastar_async.testing._log import RequestRecord

FAST: dict[str, Any] = {
    "heartbeat_interval": 0.2,
    "heartbeat_timeout": 0.5,
    "reconnect_delay_min": 0.02,
    "login_guard_state": None,
}


async def test_a_refused_revocation_that_echoes_the_token_is_logged_masked(
    caplog: pytest.LogCaptureFixture, secrets_never_logged: SecretWatch
) -> None:
    async with FakePBX(access_token_ttl=1.0, renewal="kept") as fake:
        warned = asyncio.Event()

        class Spot(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "could not revoke" in record.getMessage():
                    warned.set()

        spot = Spot()
        logging.getLogger("yeastar_async.auth").addHandler(spot)

        def echo(record: RequestRecord) -> dict[str, Any]:
            return {"errcode": -1, "errmsg": f"FAILURE for access_token {record.access_token}"}

        fake.set_response("del_token", echo)
        pbx = YeastarClient(fake.base_url, fake.client_id, fake.client_secret, **FAST)

        async def ignore(event: CallStatusChanged) -> None:
            return None

        pbx.add_handler(CallStatusChanged, ignore)
        listener = asyncio.create_task(pbx.listen())
        try:
            with caplog.at_level(logging.DEBUG):
                async with asyncio.timeout(10):
                    await warned.wait()
        finally:
            logging.getLogger("yeastar_async.auth").removeHandler(spot)
            fake.set_response("del_token", None)
            await pbx.aclose()
            await asyncio.wait({listener}, timeout=10)
        [warning] = [r for r in caplog.records if "could not revoke" in r.getMessage()][:1]
        assert "FAILURE" in warning.getMessage()
        assert pbx.event_stats.rotations >= 1
    # secrets_never_logged checks that neither token appears in any record.
