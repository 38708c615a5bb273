"""Out of file descriptors at a process's very first connect (issue 14's known hole).

The event stream imports websockets (and the decoder's helpers) on first use, and the report
itself reads the soft limit: in a process already out of descriptors those loads fail too. In
a real child process (``_fds_first_connect.py``, its soft ``RLIMIT_NOFILE`` lowered by a
launcher before ``exec``, every descriptor then taken) the streams must report the exhaustion
once, at ERROR, with the limit and the fix, and connect once descriptors are free.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from yeastar_async.testing import FakePBX

_CHILD = Path(__file__).with_name("_fds_first_connect.py")
#: The child's soft limit: room for the interpreter and the SDK, all of it taken later.
_LIMIT = 200
_LAUNCH = (
    "import os, resource, sys; "
    "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({_LIMIT}, hard)); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


async def test_streams_out_of_fds_at_the_first_connect_report_it_once_and_recover() -> None:
    async with FakePBX() as pbx:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _LAUNCH,
            str(_CHILD),
            pbx.base_url,
            pbx.client_id,
            pbx.client_secret,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(90):
                out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["preloaded"] == [], result  # the child had loaded neither itself
    assert result["websockets"] is False, result  # nor had the SDK, before the first connect
    assert result["ended"] == [], result  # no stream died of a failed import
    errors = [msg for level, msg in result["records"] if level != "DEBUG"]
    assert len(errors) == 1, result["records"]
    assert result["records"][0][0] == "ERROR"
    assert f"soft limit {_LIMIT}" in errors[0]  # the limit read, not "unknown"
    assert "ulimit -n" in errors[0]
    assert result["connected"] is True, result
    # websockets loaded whole once descriptors were free: its C speedups, not the fallback.
    assert str(result["apply_mask"]).endswith(".speedups"), result
