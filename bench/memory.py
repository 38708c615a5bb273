"""Section 5, memory and start-up.

* RSS growth over N events decoded and dispatched: the server streams N real frames through
  ``client.listen()`` to a no-op handler; RSS is read (after a garbage collection) once the first
  ``warmup`` events were handled, when queues, caches and buffers have reached their working
  size, and again after the N-th. Target: at most 5 MB of growth over 1,000,000 events.
* ``import yeastar_async`` against ``import aiohttp, websockets, msgspec, anyio``, each timed
  inside a fresh interpreter, interleaved, best of each. Both run with cached bytecode (a private
  ``PYTHONPYCACHEPREFIX``, warmed first): installed packages have theirs compiled at install
  time, while a working tree under ``PYTHONDONTWRITEBYTECODE`` would recompile the SDK on every
  start and measure the compiler instead. Target: at most 1.3x.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import tempfile
from typing import Final

from bench._common import ROOT, Row, fmt_mb, fmt_time, frames, interleave, rss_bytes
from bench._server import ServerProcess
from bench.stream import sdk_run

RSS_TARGET: Final = 5 * 1024 * 1024
IMPORT_TARGET: Final = 1.3
SDK_IMPORT: Final = "import yeastar_async"
DEPS_IMPORT: Final = "import aiohttp, websockets, msgspec, anyio"


async def rss_growth(count: int, warmup: int) -> tuple[int, int]:
    """(RSS after ``warmup`` events, RSS after ``count`` events), in bytes."""
    texts = list(frames().values())
    marks: dict[int, int] = {}

    def sample(seen: int) -> None:
        if seen in (warmup, count):
            gc.collect()
            marks[seen] = rss_bytes()

    with ServerProcess() as server:
        await sdk_run(server.base_url, count, texts, on_event=sample)
    return marks[warmup], marks[count]


def _import_time(statement: str, env: dict[str, str]) -> float:
    """Seconds ``statement`` takes in a fresh interpreter (interpreter start-up excluded)."""
    code = (
        "import time\n"
        "started = time.perf_counter()\n"
        f"{statement}\n"
        "print(time.perf_counter() - started)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def import_times(rounds: int) -> tuple[float, float]:
    """Best seconds of (``import yeastar_async``, ``import aiohttp, websockets, ...``)."""
    with tempfile.TemporaryDirectory(prefix="yeastar-bench-pyc-") as cache:
        env = dict(os.environ, PYTHONPYCACHEPREFIX=cache, PYTHONPATH=str(ROOT))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for statement in (SDK_IMPORT, DEPS_IMPORT):  # warm-up: compile and cache the bytecode
            _import_time(statement, env)
        sdk, deps = interleave(
            [lambda: _import_time(SDK_IMPORT, env), lambda: _import_time(DEPS_IMPORT, env)],
            rounds,
        )
    return sdk, deps


async def run(events: int = 1_000_000, warmup: int = 100_000, import_rounds: int = 21) -> list[Row]:
    """RSS growth over ``events`` events, and the import-time comparison."""
    before, after = await rss_growth(events, min(warmup, events // 2))
    sdk, deps = import_times(import_rounds)
    return [
        Row(
            "5 memory",
            f"RSS growth over {events:,} decoded + dispatched events",
            fmt_mb(after - before),
            f"{fmt_mb(before)} at event {min(warmup, events // 2):,}",
            (after - before) / (1024 * 1024),
            unit="MB",
            target=RSS_TARGET / (1024 * 1024),
            op="<=",
        ),
        Row(
            "5 start-up",
            "import yeastar_async vs aiohttp+websockets+msgspec+anyio",
            fmt_time(sdk),
            fmt_time(deps),
            sdk / deps,
            target=IMPORT_TARGET,
            op="<=",
        ),
    ]


if __name__ == "__main__":  # python -m bench.memory
    from bench._common import render

    print(render(asyncio.run(run())))
