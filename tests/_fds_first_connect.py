"""Child process of ``test_scale_fds_first_connect``: out of descriptors at its first connect.

Started with a soft ``RLIMIT_NOFILE`` its launcher lowered before ``exec``, so that this process
has not imported ``resource`` (nor websockets): as in an application that never needed them
before its first event stream. Prints one JSON line with what happened.

Usage: ``python _fds_first_connect.py BASE_URL CLIENT_ID CLIENT_SECRET``
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

#: What this process had loaded before it imported the SDK (the launcher imported nothing).
_BEFORE_SDK = sorted(m for m in ("websockets", "resource") if m in sys.modules)

from yeastar_async import YeastarClient, events  # noqa: E402 - after the look above

_STREAMS = 2
_BOUND = 20.0


class _FdRecords(logging.Handler):
    """Keeps the records about descriptor exhaustion; ``reached`` once there are ``n``."""

    def __init__(self, n: int) -> None:
        super().__init__(logging.DEBUG)
        self.n = n
        self.kept: list[tuple[str, str]] = []
        self.reached = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "out of file descriptors" in record.getMessage():
            self.kept.append((record.levelname, record.getMessage()))
            if len(self.kept) >= self.n:
                self.reached.set()


async def _ignore(_: object) -> None:
    pass


async def main(base_url: str, client_id: str, secret: str) -> dict[str, object]:
    result: dict[str, object] = {
        "preloaded": _BEFORE_SDK,
        "websockets": "websockets" in sys.modules,
    }
    root = logging.getLogger("yeastar_async")
    root.setLevel(logging.DEBUG)
    fd_records = _FdRecords(2 * _STREAMS)  # every stream failed twice at least
    root.addHandler(fd_records)
    clients = [
        YeastarClient(
            base_url,
            client_id,
            secret,
            login_guard_state=None,
            reconnect_delay_min=0.01,
            reconnect_delay_max=0.02,
            retries=0,
        )
        for _ in range(_STREAMS)
    ]
    connected = [asyncio.Event() for _ in clients]
    for client, flag in zip(clients, connected, strict=True):

        async def up(_: events.Connected, flag: asyncio.Event = flag) -> None:
            flag.set()

        client.add_handler(events.Connected, up)
        client.add_handler(30011, _ignore)
        await client.login()  # the token in hand: the first link is what finds no descriptor
    held: list[int] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        tasks = [asyncio.create_task(client.listen()) for client in clients]
        reached = asyncio.ensure_future(fd_records.reached.wait())
        await asyncio.wait({reached, *tasks}, timeout=_BOUND, return_when="FIRST_COMPLETED")
        reached.cancel()
    finally:
        for fd in held:
            os.close(fd)
    result["ended"] = [repr(t.exception()) for t in tasks if t.done()]
    try:
        async with asyncio.timeout(_BOUND):
            await asyncio.gather(*(flag.wait() for flag in connected))
        result["connected"] = True
    except TimeoutError:
        result["connected"] = False
    frames = sys.modules.get("websockets.frames")
    result["apply_mask"] = getattr(getattr(frames, "apply_mask", None), "__module__", None)
    result["records"] = fd_records.kept
    for client in clients:
        await client.aclose()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
