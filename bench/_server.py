"""A lean PBX stand-in for the benchmarks: REST and WebSocket on 127.0.0.1, in its own process.

Why not the FakePBX: the benchmarks compare the SDK with raw clients, so the server must cost
as little as possible and must not share the client's event loop or CPU, or its own work would
dilute every ratio towards 1. This server is a bare ``asyncio.Protocol`` speaking just enough
HTTP/1.1 and RFC 6455 for the calls the benchmarks make; it runs in a child process started by
:class:`ServerProcess`.

Endpoints (under ``/openapi/v1.0/``): ``get_token``, ``refresh_token``, ``del_token``,
``system/information``, ``call/accept_inbound`` and the ``subscribe`` WebSocket (``heartbeat``
answered, ``topic_list`` acknowledged). Control endpoints under ``/bench/`` set what the next
subscription receives:

* ``POST /bench/scenario {"mode": "stream", "frames": [...], "count": N}``: after the ack, send
  N event frames (cycling through ``frames``) as fast as the socket takes them;
* ``POST /bench/scenario {"mode": "latency", "frame": "...", "count": N, "gap": s}``: send one
  30016 frame, wait for its ``call/accept_inbound``, note the time between writing the frame
  and receiving the request, pause ``gap`` seconds, repeat N times;
* ``GET /bench/latencies``: the latencies of the last latency run, in seconds.
* ``GET /bench/file/<N>.wav``: a file of N bytes (a recording's download path), written in
  1 MiB slices as fast as the socket takes them.

``POST /bench/config {"close": true}`` makes REST answers close the connection, as the PBX does.

Run: ``python bench/_server.py`` prints ``PORT <n>`` and serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any, Final

HOST: Final = "127.0.0.1"
API: Final = "/openapi/v1.0/"
TOKEN: Final = "BenchAccessToken0123456789abcdef"
_WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ACK: Final = b'{"errcode":0,"errmsg":"SUCCESS"}'
_OK: Final = b'{"errcode":0,"errmsg":"SUCCESS"}'
_TOKEN_BODY: Final = json.dumps(
    {
        "errcode": 0,
        "errmsg": "SUCCESS",
        "access_token_expire_time": 1800,
        "access_token": TOKEN,
        "refresh_token_expire_time": 86400,
        "refresh_token": "BenchRefreshToken0123456789abcde",
    },
    separators=(",", ":"),
).encode()
#: The manual's example answer of ``system/information``.
INFO_BODY: Final = json.dumps(
    {
        "errcode": 0,
        "errmsg": "SUCCESS",
        "data": {
            "device_name": "PBX",
            "model_name": "P-Series Software Edition",
            "sn": "3631A2124XXX",
            "firmware_version": "X.7.0.16",
            "system_time": "2022/05/11 11:29:37",
            "up_time": 241404,
        },
    },
    separators=(",", ":"),
).encode()
_ACCEPT_BODY: Final = b'{"errcode":0,"errmsg":"SUCCESS","call_id":"1702293000.000400"}'
_CHUNK_FRAMES: Final = 256  # frames per transport.write() while streaming
_FILE_PATH: Final = "/bench/file/"
_FILE_SLICE: Final = 1024 * 1024


def ws_frame(text: str | bytes, opcode: int = 0x1) -> bytes:
    """One unmasked, unfragmented server-to-client WebSocket frame."""
    data = text.encode() if isinstance(text, str) else text
    n = len(data)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + data


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class _State:
    """What the control endpoints configured; shared by every connection."""

    def __init__(self) -> None:
        self.scenario: dict[str, Any] | None = None
        self.close_after_response = False
        self.latencies: list[float] = []
        self.accepted: asyncio.Queue[float] = asyncio.Queue()


class _Conn(asyncio.Protocol):
    """One TCP connection: HTTP requests until it is upgraded, then WebSocket frames."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.ws = False
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.tasks: set[asyncio.Task[None]] = set()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        for task in self.tasks:
            task.cancel()
        self.can_write.set()
        self.transport = None

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None:
            done = self._ws_frame() if self.ws else self._http_request()
            if not done:
                return

    # -- HTTP -----------------------------------------------------------------------------

    def _http_request(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        headers = {}
        for text in head[1:]:
            name, _, value = text.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self.buf) < end + 4 + length:
            return False
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        method, target, _ = head[0].split(" ", 2)
        path = target.split("?", 1)[0]
        self._route(method, path, headers, body)
        return True

    def _answer(self, body: bytes, status: str = "200 OK", close: bool | None = None) -> None:
        assert self.transport is not None
        close = self.state.close_after_response if close is None else close
        self.transport.write(
            b"HTTP/1.1 "
            + status.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + (b"\r\nConnection: close" if close else b"")
            + b"\r\n\r\n"
            + body
        )
        if close:
            self.transport.close()

    def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        state = self.state
        if path.startswith(API):
            endpoint = path[len(API) :]
            if endpoint == "system/information":
                self._answer(INFO_BODY)
            elif endpoint == "call/accept_inbound":
                state.accepted.put_nowait(time.perf_counter())
                self._answer(_ACCEPT_BODY)
            elif endpoint in ("get_token", "refresh_token"):
                self._answer(_TOKEN_BODY)
            elif endpoint == "del_token":
                self._answer(_OK)
            elif endpoint == "subscribe" and headers.get("upgrade", "").lower() == "websocket":
                self._upgrade(headers)
            else:
                self._answer(b'{"errcode":10001,"errmsg":"INTERFACE NOT EXISTED"}')
        elif path == "/bench/scenario" and method == "POST":
            state.scenario = json.loads(body)
            self._answer(_OK, close=False)
        elif path == "/bench/config" and method == "POST":
            state.close_after_response = bool(json.loads(body).get("close", False))
            self._answer(_OK, close=False)
        elif path.startswith(_FILE_PATH) and method == "GET":
            self._send_file(int(path[len(_FILE_PATH) :].split(".", 1)[0]))
        elif path == "/bench/latencies":
            self._answer(json.dumps(state.latencies).encode(), close=False)
        else:
            self._answer(b"{}", "404 Not Found")

    def _upgrade(self, headers: dict[str, str]) -> None:
        assert self.transport is not None
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.ws = True

    def _send_file(self, size: int) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: audio/x-wav\r\nContent-Length: "
            + str(size).encode()
            + b"\r\n\r\n"
        )
        task = asyncio.create_task(self._file_body(size))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _file_body(self, size: int) -> None:
        blob = memoryview(_blob(size))
        for start in range(0, size, _FILE_SLICE):
            if not await self._write(blob[start : start + _FILE_SLICE]):
                return

    # -- WebSocket ------------------------------------------------------------------------

    def _ws_frame(self) -> bool:
        buf = self.buf
        if len(buf) < 2:
            return False
        opcode = buf[0] & 0x0F
        n = buf[1] & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return False
            n, pos = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                return False
            n, pos = int.from_bytes(buf[2:10], "big"), 10
        masked = bool(buf[1] & 0x80)
        need = pos + (4 if masked else 0) + n
        if len(buf) < need:
            return False
        payload = bytes(buf[pos + 4 : need]) if masked else bytes(buf[pos:need])
        if masked and payload:
            payload = _unmask(payload, bytes(buf[pos : pos + 4]))
        del buf[:need]
        self._on_ws(opcode, payload)
        return True

    def _on_ws(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if opcode == 0x8:  # close: echo it and hang up
            self.transport.write(ws_frame(payload[:2], 0x8))
            self.transport.close()
        elif opcode == 0x9:
            self.transport.write(ws_frame(payload, 0xA))
        elif opcode == 0x1:
            if payload == b"heartbeat":
                self.transport.write(ws_frame(b"heartbeat response"))
            elif payload.startswith(b'{"topic_list"'):
                self.transport.write(ws_frame(_ACK))
                scenario, self.state.scenario = self.state.scenario, None
                if scenario is not None:
                    task = asyncio.create_task(self._run(scenario))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)

    async def _run(self, scenario: dict[str, Any]) -> None:
        if scenario["mode"] == "stream":
            await self._stream(scenario["frames"], int(scenario["count"]))
        elif scenario["mode"] == "latency":
            await self._latency(scenario["frame"], int(scenario["count"]), scenario["gap"])

    async def _write(self, data: bytes | memoryview) -> bool:
        await self.can_write.wait()
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    async def _stream(self, texts: list[str], count: int) -> None:
        encoded = [ws_frame(text) for text in texts]
        # One chunk holds a whole number of frame cycles; the tail is written separately.
        cycle = b"".join(encoded)
        per_chunk = max(1, _CHUNK_FRAMES // len(encoded))
        chunk = cycle * per_chunk
        sent = 0
        while count - sent >= per_chunk * len(encoded):
            if not await self._write(chunk):
                return
            sent += per_chunk * len(encoded)
        tail = b"".join(encoded[i % len(encoded)] for i in range(count - sent))
        if tail:
            await self._write(tail)

    async def _latency(self, text: str, count: int, gap: float) -> None:
        state = self.state
        state.latencies = []
        frame = ws_frame(text)
        while not state.accepted.empty():
            state.accepted.get_nowait()
        for _ in range(count):
            sent = time.perf_counter()
            if not await self._write(frame):
                return
            received = await state.accepted.get()
            state.latencies.append(received - sent)
            if gap > 0:
                await asyncio.sleep(gap)


_blobs: dict[int, bytes] = {}


def _blob(size: int) -> bytes:
    """``size`` bytes of file content, built once per size."""
    if size not in _blobs:
        _blobs.clear()
        _blobs[size] = bytes(range(256)) * (size // 256) + bytes(size % 256)
    return _blobs[size]


async def serve(port: int = 0) -> None:
    """Serve on 127.0.0.1 until stdin reaches EOF (the parent closed it or died)."""
    loop = asyncio.get_running_loop()
    state = _State()
    server = await loop.create_server(lambda: _Conn(state), HOST, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()  # EOF: time to go
    server.close()


class ServerProcess:
    """The bench server in a child process: ``with ServerProcess() as srv: srv.port``."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> ServerProcess:
        """Start the child and wait for its port."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"bench server did not start (said {line!r})")
        self.port = int(line[1])
        return self

    def stop(self) -> None:
        """Close the child's stdin (it exits), or kill it if it does not."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def control(base_url: str, path: str, payload: Any = None) -> Any:
    """Call a ``/bench/`` control endpoint (POST with a JSON payload, else GET)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        if payload is None:
            async with session.get(base_url + path) as resp:
                return json.loads(await resp.read())
        async with session.post(base_url + path, data=json.dumps(payload)) as resp:
            return json.loads(await resp.read())


def topics_of(texts: Iterable[str]) -> list[int]:
    """The topics of some event frames, sorted."""
    return sorted({int(json.loads(text)["type"]) for text in texts})


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
