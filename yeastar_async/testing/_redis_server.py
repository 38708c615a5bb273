"""A throwaway ``redis-server`` for tests and benchmarks: a free 127.0.0.1 port, a given
directory, no persistence unless asked. Private: used by the relay's tests and ``bench/``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Final

__all__ = ["BINARY", "RedisServer"]

#: The ``redis-server`` on PATH, or None.
BINARY: Final = shutil.which("redis-server")
#: How long a server may take to start.
START_TIMEOUT: Final = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` child process on 127.0.0.1 (``--save "" --appendonly no`` unless
    ``persist``). :meth:`restart` starts it again on the same port (empty, without persistence).
    """

    def __init__(self, directory: Path, *, persist: bool = False) -> None:
        self.directory = directory
        self.port = _free_port()
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, running={self.process is not None})"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING; RuntimeError with its log if not."""
        if BINARY is None:
            raise RuntimeError("no redis-server binary on PATH (apt-get install redis-server)")
        args = [
            BINARY, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--protected-mode", "no", "--loglevel", "warning",
        ]  # fmt: skip
        if not self.persist:
            args += ["--save", "", "--appendonly", "no"]
        log_path = self.directory / "redis.log"
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log_path.read_text(errors="replace")[-500:]
                raise RuntimeError(f"redis-server did not start on port {self.port}: {tail}")
            time.sleep(0.01)  # a child process starting: nothing to await
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server (SIGKILL: what a crash looks like) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(START_TIMEOUT)
        self.process = None

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
