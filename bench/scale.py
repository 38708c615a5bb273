"""Section 8, scale: many PBXes in one process, and downloads at disk speed.

The fakes run in a child process (:mod:`bench._server`, one server for every stream), so their
CPU and memory are not this process's. Every figure is this process's:

* construction: seconds per ``YeastarClient(...)`` over ``clients`` clients (a distinct
  ``https://`` PBX each, nothing opened). Target: at most 0.1 ms each.
* ``streams`` clients of ``http://`` PBXes, each with one handler and ``listen()`` running,
  started together: the longest event-loop stall while all of them log in, connect and
  subscribe (target: at most 100 ms); the RSS each connected idle stream adds (target: at most
  0.1 MB); the asyncio tasks each holds; the CPU the process uses while they idle for ``idle``
  seconds, heartbeats included (target: at most 1% of one core); after closing every client,
  the file descriptors and tasks left over (target: none).
* heartbeat bursts: ``burst_streams`` streams with ``burst_interval`` s heartbeats, started
  together, first with every link's beats at one instant (streams started together before the
  jitter), then as the SDK spreads them: the longest loop stall over two intervals of each.
* ``files.save`` of a ``download_mib`` MiB recording against raw aiohttp writing the same
  response to a file (64 KiB chunks, blocking writes on the loop thread), interleaved, best of
  ``rounds``; and the peak memory Python allocates during one save (tracemalloc). Target:
  at least 0.9x the raw speed.

Raising the descriptor limit: ``resource.setrlimit`` within the hard limit, for this process and
(inherited) the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import aiohttp

from bench._common import Row, fmt_mb, fmt_time, interleave, rss_bytes
from bench._server import API, TOKEN, ServerProcess
from yeastar_async import YeastarClient, events
from yeastar_async.events import _stream

CONSTRUCT_TARGET: Final = 0.1e-3
STALL_TARGET: Final = 0.100
RSS_TARGET: Final = 0.1 * 1024 * 1024
CPU_TARGET: Final = 1.0  # percent of one core
DOWNLOAD_TARGET: Final = 0.9
#: Descriptors per stream while it is up (its WebSocket, its REST keep-alive connection), with
#: room for the server, which has as many.
_FDS_PER_STREAM: Final = 2
_MIB: Final = 1024 * 1024


def raise_fd_limit(streams: int) -> int:
    """Raise the soft descriptor limit for ``streams`` streams, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = _FDS_PER_STREAM * streams + 256
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        return want
    return soft


def open_fds() -> int:
    """Descriptors this process has open (Linux)."""
    return len(os.listdir("/proc/self/fd"))


# -- construction --------------------------------------------------------------------------


def construction(clients: int, rounds: int) -> float:
    """Best seconds per construction of ``clients`` clients of distinct PBXes."""
    serial = iter(range(10**9))

    def sample() -> float:
        base = next(serial) * clients
        started = time.perf_counter()
        made = [
            YeastarClient(f"https://pbx{base + i}.example.com:8088", f"id{i}", f"secret-{i}")
            for i in range(clients)
        ]
        elapsed = time.perf_counter() - started
        del made
        return elapsed / clients

    return interleave([sample], rounds)[0]


# -- many streams --------------------------------------------------------------------------


class StallMonitor:
    """The longest delay of the event loop over a short sleep, while it runs."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.tick)
            self.worst = max(self.worst, loop.time() - before - self.tick)

    def __enter__(self) -> StallMonitor:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


class Fleet:
    """``count`` clients of the server, each with one handler and ``listen()`` running."""

    def __init__(self, base_url: str, count: int, **options: Any) -> None:
        self.clients = [
            YeastarClient(
                base_url, f"tenant-{i}", "bench-secret", login_guard_state=None, **options
            )
            for i in range(count)
        ]
        self.up = 0
        self._all_up = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        for client in self.clients:
            client.add_handler(events.Connected, self._connected)
            client.add_handler(30011, _ignore)

    async def _connected(self, _: events.Connected) -> None:
        self.up += 1
        if self.up == len(self.clients):
            self._all_up.set()

    async def start(self, timeout: float = 300.0) -> float:
        """Start every stream at once; seconds until all are connected and subscribed."""
        started = time.perf_counter()
        self.tasks = [asyncio.create_task(c.listen()) for c in self.clients]
        async with asyncio.timeout(timeout):
            await self._all_up.wait()
        return time.perf_counter() - started

    async def close(self) -> None:
        """Close every client and wait for their ``listen()``."""
        await asyncio.gather(*(c.aclose() for c in self.clients))
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _ignore(_: object) -> None:
    pass


def _tasks() -> int:
    return len(asyncio.all_tasks())


class GcPauses:
    """The longest garbage collection of each generation while it is entered."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            took = time.perf_counter() - self._started
            generation = info["generation"]
            self.longest[generation] = max(self.longest[generation], took)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


class Warnings(logging.Handler):
    """Counts the SDK's WARNING records (its INFO lines are off, see :func:`_quiet`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    def __enter__(self) -> Warnings:
        logging.getLogger("yeastar_async").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("yeastar_async").removeHandler(self)


async def many_streams(
    base_url: str, streams: int, idle: float, settle: float, gc_paused: bool = False
) -> dict[str, float]:
    """Connect ``streams`` streams at once, idle them, close them: the figures.

    ``gc_paused``: the start-up recipe of the README: the collector off while the streams
    start, then ``gc.freeze()`` (what exists by then is never scanned again) and on again.
    """
    gc.collect()
    fds_before, tasks_before, rss_before = open_fds(), _tasks(), rss_bytes()
    fleet = Fleet(base_url, streams)
    if gc_paused:
        gc.disable()
    with StallMonitor() as connect_stall, GcPauses() as pauses:
        took = await fleet.start()
    if gc_paused:
        gc.freeze()
        gc.enable()
    figures: dict[str, float] = {
        "connect": took,
        "connect_stall": connect_stall.worst,
        "full_gc": pauses.longest[2],
    }
    if not gc_paused:
        # The REST keep-alive connections of the logins close after `settle` seconds; idle
        # from then on: heartbeats only.
        await asyncio.sleep(settle)
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        with StallMonitor(tick=0.05) as idle_stall:
            await asyncio.sleep(idle)
        cpu = (time.process_time() - cpu_started) / (time.perf_counter() - wall_started)
        gc.collect()
        figures.update(
            rss=(rss_bytes() - rss_before) / streams,
            tasks=(_tasks() - tasks_before) / streams,
            cpu=cpu * 100,
            idle_stall=idle_stall.worst,
        )
    with Warnings() as warned:
        await fleet.close()
    del fleet
    if gc_paused:
        gc.unfreeze()
    gc.collect()
    for _ in range(40):  # closed transports release their sockets over the next loop turns
        if open_fds() <= fds_before and _tasks() <= tasks_before:
            break
        await asyncio.sleep(0.05)
    figures.update(
        fds_left=open_fds() - fds_before,
        tasks_left=_tasks() - tasks_before,
        close_warnings=warned.count,
    )
    return figures


async def raw_idle_cpu(base_url: str, streams: int, idle: float, interval: float) -> float:
    """Percent of a core that ``streams`` bare websockets links use sending a heartbeat every
    ``interval`` seconds (phases spread) and reading the replies: the floor of idle CPU."""
    from websockets.asyncio.client import connect

    url = base_url.replace("http://", "ws://") + f"{API}subscribe?access_token={TOKEN}"
    links = []
    for _ in range(streams):
        ws = await connect(url, compression=None, ping_interval=None)
        await ws.send('{"topic_list":[30011]}')
        await ws.recv()
        links.append(ws)

    async def beat(ws: Any, first: float) -> None:
        await asyncio.sleep(first)
        while True:
            await ws.send("heartbeat")
            await ws.recv()
            await asyncio.sleep(interval)

    tasks = [asyncio.create_task(beat(ws, interval * i / streams)) for i, ws in enumerate(links)]
    try:
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle)
        return (time.process_time() - cpu_started) / (time.perf_counter() - wall_started) * 100
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in links))


class _InStep:
    """The first heartbeat of every link at exactly one interval: no jitter."""

    # (The grid of one slot per interval then puts every beat at the same instant.)

    def uniform(self, a: float, b: float) -> float:
        return b


async def heartbeat_stall(base_url: str, streams: int, interval: float, jitter: bool) -> float:
    """Longest loop stall over two heartbeat intervals of ``streams`` streams started at once."""
    saved = _stream._JITTER, _stream._BEAT_SLOTS
    if not jitter:
        # Every link's beats at one instant: links up within one interval beat together.
        _stream._JITTER, _stream._BEAT_SLOTS = _InStep(), 1  # type: ignore[misc]
    try:
        fleet = Fleet(base_url, streams, heartbeat_interval=interval, heartbeat_timeout=interval)
        await fleet.start()
        with StallMonitor() as stall:
            await asyncio.sleep(2 * interval + 0.5)
        await fleet.close()
        return stall.worst
    finally:
        _stream._JITTER, _stream._BEAT_SLOTS = saved  # type: ignore[misc]


# -- downloads -----------------------------------------------------------------------------


async def _raw_download(session: aiohttp.ClientSession, url: str, path: Path) -> None:
    async with session.get(url) as resp:
        resp.raise_for_status()
        with open(path, "wb") as out:  # noqa: ASYNC230 - the baseline writes on the loop
            async for chunk in resp.content.iter_chunked(65536):
                out.write(chunk)


async def downloads(base_url: str, mib: int, rounds: int) -> tuple[float, float, int]:
    """Best seconds of (SDK save, raw aiohttp), and the SDK's peak allocation in bytes."""
    size = mib * _MIB
    path = f"/bench/file/{size}.wav"
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="yeastar-bench-dl-") as tmp:
        target = Path(tmp) / "recording.wav"
        async with (
            YeastarClient(base_url, "dl", "bench-secret", login_guard_state=None) as client,
            aiohttp.ClientSession() as session,
        ):
            await client.login()

            async def sdk() -> float:
                started = time.perf_counter()
                await client.files.save(path, target)
                return time.perf_counter() - started

            async def raw() -> float:
                started = time.perf_counter()
                await _raw_download(session, base_url + path, target)
                return time.perf_counter() - started

            await sdk()  # warm-up: connections open, page cache primed
            await raw()
            samples: list[Callable[[], Awaitable[float]]] = [sdk, raw]
            best = [float("inf"), float("inf")]
            for done in range(rounds):
                order = samples if done % 2 == 0 else samples[::-1]
                for fn in order:
                    i = samples.index(fn)
                    best[i] = min(best[i], await fn())
            assert target.stat().st_size == size
            tracemalloc.start()
            try:
                await client.files.save(path, target)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    del loop
    return best[0], best[1], peak


@contextlib.asynccontextmanager
async def _quiet() -> AsyncIterator[None]:
    """The SDK's per-stream INFO lines off while thousands of streams connect."""
    log = logging.getLogger("yeastar_async")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


async def run(
    clients: int = 1000,
    streams: int = 1000,
    idle: float = 25.0,
    settle: float = 16.0,
    burst_streams: int = 2000,
    burst_interval: float = 5.0,
    download_mib: int = 50,
    rounds: int = 5,
) -> list[Row]:
    """Every figure of the section (see the module docstring)."""
    limit = raise_fd_limit(max(streams, burst_streams))
    per_client = construction(clients, rounds)
    interval = _stream.StreamOptions().heartbeat_interval
    async with _quiet():
        with ServerProcess() as server:
            fleet = await many_streams(server.base_url, streams, idle, settle)
            recipe = await many_streams(server.base_url, streams, idle, settle, gc_paused=True)
            raw_cpu = await raw_idle_cpu(server.base_url, streams, idle, interval)
            in_step = await heartbeat_stall(server.base_url, burst_streams, burst_interval, False)
            jittered = await heartbeat_stall(server.base_url, burst_streams, burst_interval, True)
            sdk_dl, raw_dl, peak = await downloads(server.base_url, download_mib, rounds)
    n = f"{streams:,}"
    return [
        Row(
            "8 scale",
            f"YeastarClient() construction, {clients:,} PBXes",
            fmt_time(per_client),
            "target 0.1 ms",
            per_client * 1e3,
            unit="ms",
            target=CONSTRUCT_TARGET * 1e3,
            op="<=",
        ),
        Row(
            "8 scale",
            f"longest loop stall, {n} streams connecting at once",
            fmt_time(fleet["connect_stall"]),
            f"longest full GC {fmt_time(fleet['full_gc'])}; all up in {fleet['connect']:.1f} s",
            fleet["connect_stall"] * 1e3,
            unit="ms",
        ),
        Row(
            "8 scale",
            "the same, GC paused while they start (README recipe)",
            fmt_time(recipe["connect_stall"]),
            f"all up in {recipe['connect']:.1f} s",
            recipe["connect_stall"] * 1e3,
            unit="ms",
            target=STALL_TARGET * 1e3,
            op="<=",
        ),
        Row(
            "8 scale",
            f"RSS per connected idle stream ({n})",
            fmt_mb(fleet["rss"]),
            f"{fleet['tasks']:.0f} tasks per stream",
            fleet["rss"] / _MIB,
            unit="MB",
            target=RSS_TARGET / _MIB,
            op="<=",
        ),
        Row(
            "8 scale",
            f"idle CPU, {n} streams, {idle:g} s, heartbeats every {interval:g} s",
            f"{fleet['cpu']:.2f}% of a core",
            f"bare websockets {raw_cpu:.2f}%",
            fleet["cpu"],
            unit="%",
            target=CPU_TARGET,
            op="<=",
        ),
        Row(
            "8 scale",
            "idle CPU against bare websockets links",
            f"{fleet['cpu']:.2f}%",
            f"{raw_cpu:.2f}%",
            fleet["cpu"] / raw_cpu if raw_cpu else 0.0,
        ),
        Row(
            "8 scale",
            f"left after closing {n}: fds + tasks",
            f"{fleet['fds_left']:.0f} fds, {fleet['tasks_left']:.0f} tasks",
            f"{fleet['close_warnings']:.0f} warnings; fd limit {limit:,}",
            fleet["fds_left"] + fleet["tasks_left"],
            unit="",
            target=0,
            op="<=",
        ),
        Row(
            "8 scale",
            f"heartbeat stall, {burst_streams:,} streams started together",
            f"{fmt_time(jittered)} jittered",
            f"{fmt_time(in_step)} in step",
            jittered / in_step if in_step else 0.0,
        ),
        Row(
            "8 download",
            f"files.save {download_mib} MiB vs raw aiohttp to file",
            f"{download_mib / sdk_dl:,.0f} MiB/s",
            f"{download_mib / raw_dl:,.0f} MiB/s",
            raw_dl / sdk_dl,
            target=DOWNLOAD_TARGET,
        ),
        Row(
            "8 download",
            f"peak Python allocation during files.save {download_mib} MiB",
            fmt_mb(peak),
            f"{download_mib} MiB file",
            peak / _MIB,
            unit="MB",
        ),
    ]


if __name__ == "__main__":  # python -m bench.scale
    from bench._common import render

    print(render(asyncio.run(run())))
