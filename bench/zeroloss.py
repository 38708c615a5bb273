"""Section 7, zero loss across token renewals: the share of the events a PBX emits at 200/s
that reach a handler while the access token is renewed every ~1 s, with make-before-break
rotation, against the same client reconnecting at each renewal (the stream before issue 13).

Uses the FakePBX (tokens living 1.5 s; its default ``renewal``: a refresh revokes the old
token, a login does not), unlike the throughput sections: what is measured is loss, not speed.
Every event emitted counts, including those emitted while no socket is up.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from bench._common import Row
from yeastar_async import YeastarClient
from yeastar_async.events import CallStatusChanged
from yeastar_async.testing import FakePBX

RATE: Final = 200.0
TARGET: Final = 1.0
_OPTIONS: Final[dict[str, Any]] = {
    "heartbeat_interval": 0.5,
    "heartbeat_timeout": 1.0,
    "reconnect_delay_min": 0.05,
    "login_guard_state": None,
}


class _NoRotation:
    """The client's token manager without its rotation methods: the stream then reconnects
    when its token is renewed, as before issue 13."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def token(self) -> str:
        return str(await self._inner.token())

    async def expired(self, token: str) -> None:
        await self._inner.expired(token)


async def _one(seconds: float, rotate: bool) -> tuple[int, int, int]:
    """(events emitted, events delivered, token renewals) of one run."""
    async with FakePBX(access_token_ttl=1.5) as fake:
        pbx = YeastarClient(fake.base_url, fake.client_id, fake.client_secret, **_OPTIONS)
        if not rotate:
            pbx._stream._tokens = _NoRotation(pbx._tokens)
        seen: set[int] = set()
        done = asyncio.Event()

        async def on_call(event: CallStatusChanged) -> None:
            seen.add(int(event.msg.call_id))
            if len(seen) >= target:
                done.set()

        target = 1 << 62
        pbx.add_handler(CallStatusChanged, on_call)
        listener = asyncio.create_task(pbx.listen())
        try:
            await fake.wait_for_subscription([30011])
            loop = asyncio.get_running_loop()
            started, emitted, taken = loop.time(), 0, 0
            while (now := loop.time()) - started < seconds:
                while emitted < int((now - started) * RATE):
                    taken += bool(await fake.emit(30011, {"call_id": str(emitted), "members": []}))
                    emitted += 1
                await asyncio.sleep(1 / RATE)
            target = taken
            if len(seen) < target:
                async with asyncio.timeout(10):
                    await done.wait()
            renewals = fake.stats.logins_succeeded + fake.stats.refreshes - 1
            return emitted, len(seen), renewals
        finally:
            await pbx.aclose()
            await asyncio.wait({listener}, timeout=10)


async def run(seconds: float = 6.0, rounds: int = 1) -> list[Row]:
    """One row: the share delivered with rotation, against reconnect-per-renewal."""
    best_sdk = best_base = (0, 0, 0)
    for _ in range(rounds):
        best_sdk = max(
            best_sdk, await _one(seconds, rotate=True), key=lambda r: r[1] / max(r[0], 1)
        )
        best_base = max(
            best_base, await _one(seconds, rotate=False), key=lambda r: r[1] / max(r[0], 1)
        )
    (emitted, got, renewals), (b_emitted, b_got, b_renewals) = best_sdk, best_base
    return [
        Row(
            "7 zero loss",
            f"events delivered of those emitted at {RATE:.0f}/s across token renewals",
            f"{got}/{emitted}, {emitted - got} lost in {renewals} renewals",
            f"reconnect per renewal: {b_got}/{b_emitted}, {b_emitted - b_got} lost in {b_renewals}",
            got / max(emitted, 1),
            unit="of all",
            target=TARGET,
        )
    ]


if __name__ == "__main__":
    from bench._common import render

    print(render(asyncio.run(run())))
