"""Run every benchmark section and print one table of ratios with target met / missed.

    python bench/run.py                 # the full run (about a minute)
    python bench/run.py --quick         # smaller counts, for a quick look
    python bench/run.py --only decode,rest

Everything is measured in this one process, in the same run (servers are child processes on
127.0.0.1); each comparison interleaves its candidates and keeps the best sample of each. The
exit status is 0 whatever the results: the bench reports, it does not gate.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # `python bench/run.py`: import `bench` and `yeastar_async` from the working tree.
    _root = str(Path(__file__).resolve().parent.parent)
    sys.path[0] = _root

from bench import decode, latency, memory, relay, rest, scale, stream, zeroloss
from bench._common import Row, machine, render

#: Section name -> (full-run arguments, quick-run arguments) of its ``run()``.
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "decode": ({"number": 20_000, "rounds": 15}, {"number": 5_000, "rounds": 5}),
    "stream": ({"count": 20_000, "rounds": 21}, {"count": 20_000, "rounds": 5}),
    "rest": ({"calls": 100, "rounds": 100}, {"calls": 100, "rounds": 20}),
    "latency": ({"count": 1000, "rounds": 2}, {"count": 300, "rounds": 1}),
    "memory": (
        {"events": 1_000_000, "warmup": 100_000, "import_rounds": 21},
        {"events": 200_000, "warmup": 50_000, "import_rounds": 5},
    ),
    "relay": (
        {"count": 20_000, "calls": 1000, "rounds": 3},
        {"count": 5_000, "calls": 300, "rounds": 1},
    ),
    "zeroloss": ({"seconds": 6.0, "rounds": 1}, {"seconds": 3.0, "rounds": 1}),
    "scale": (
        {
            "clients": 1000,
            "streams": 1000,
            "idle": 25.0,
            "settle": 16.0,
            "burst_streams": 2000,
            "burst_interval": 5.0,
            "download_mib": 50,
            "rounds": 9,
        },
        {
            "clients": 1000,
            "streams": 1000,
            "idle": 10.0,
            "settle": 0.0,
            "burst_streams": 2000,
            "burst_interval": 3.0,
            "download_mib": 50,
            "rounds": 5,
        },
    ),
}

SECTIONS: dict[str, Callable[..., Any]] = {
    "decode": decode.run,
    "stream": stream.run,
    "rest": rest.run,
    "latency": latency.run,
    "memory": memory.run,
    "relay": relay.run,
    "zeroloss": zeroloss.run,
    "scale": scale.run,
}

#: Sections that need something this machine may not have: name -> (check, what is missing).
NEEDS: dict[str, tuple[Callable[[], bool], str]] = {
    "relay": (relay.available, "no redis-server on PATH"),
}


def run_section(name: str, **kwargs: Any) -> list[Row]:
    """Run one section (sync or async ``run``) with ``kwargs``; return its rows."""
    result = SECTIONS[name](**kwargs)
    if asyncio.iscoroutine(result):
        rows: list[Row] = asyncio.run(result)
        return rows
    return list(result)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {list(SECTIONS)}"
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")

    print(f"yeastar_async bench, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(machine())
    rows: list[Row] = []
    for name in names:
        check, missing = NEEDS.get(name, (lambda: True, ""))
        if not check():
            print(f"... {name} skipped: {missing}", flush=True)
            continue
        started = time.monotonic()
        print(f"... {name}", end="", flush=True)
        rows += run_section(name, **PRESETS[name][1 if args.quick else 0])
        print(f" ({time.monotonic() - started:.0f} s)", flush=True)
    print()
    print(render(rows))
    graded = [row for row in rows if row.met is not None]
    met = sum(1 for row in graded if row.met)
    print(f"\n{met} of {len(graded)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
