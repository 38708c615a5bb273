"""Shared pieces of the benchmarks: interleaved A/B timing, result rows, the table, the frames.

Every comparison runs its candidates *interleaved* (A, B, A, B ...) and keeps the best sample of
each, so a burst of machine noise hits both sides alike and the ratio stays meaningful.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
FIXTURES: Final = ROOT / "tests" / "fixtures" / "events"

#: Real PBX frames (byte for byte as the PBX sends them) used by the decode, stream and memory
#: sections: a call status change with an inbound trunk leg, a CDR, an incoming-call request.
FRAME_FILES: Final = {
    30011: "30011_inbound_trunk.json",
    30012: "30012_outbound_busy.json",
    30016: "30016_call_path_blank.json",
}


def frames() -> dict[int, str]:
    """Topic -> the real frame of that topic (one line of text, as received)."""
    return {
        topic: (FIXTURES / name).read_text("utf-8").strip() for topic, name in FRAME_FILES.items()
    }


def ensure_importable() -> None:
    """Make ``yeastar_async`` and ``bench`` importable from the working tree (not pip-installed)."""
    root = str(ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    ``ratio`` is oriented so that the target reads naturally: ``>=`` targets are met when
    ``ratio >= target``, ``<=`` targets when ``ratio <= target``. ``target`` None: informational.
    """

    section: str
    what: str
    sdk: str
    baseline: str
    ratio: float
    unit: str = "x"
    target: float | None = None
    op: str = ">="

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None when the row has no target)."""
        if self.target is None:
            return None
        return self.ratio >= self.target if self.op == ">=" else self.ratio <= self.target


def interleave(
    candidates: Sequence[Callable[[], float]], rounds: int, *, deadline: float | None = None
) -> list[float]:
    """Run each candidate once per round, in turn; return the best (smallest) sample of each.

    Each candidate returns one sample (e.g. seconds per operation). Every other round runs
    the candidates in reverse order (A B, B A, A B ...), so that neither side always runs
    first. ``deadline`` (a ``time.monotonic()`` value) stops early after a full round.
    """
    best = [float("inf")] * len(candidates)
    order = list(range(len(candidates)))
    for done in range(rounds):
        for i in order if done % 2 == 0 else reversed(order):
            best[i] = min(best[i], candidates[i]())
        if deadline is not None and time.monotonic() > deadline:
            break
    return best


def fmt_time(seconds: float) -> str:
    """``1.23 µs`` / ``456 µs`` / ``7.8 ms`` / ``1.20 s``."""
    if seconds < 1e-5:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_rate(per_second: float) -> str:
    """``52,300/s``."""
    return f"{per_second:,.0f}/s"


def fmt_mb(n_bytes: float) -> str:
    """``1.25 MB`` (MiB)."""
    return f"{n_bytes / (1024 * 1024):.2f} MB"


def render(rows: Sequence[Row]) -> str:
    """The results as a Markdown table (readable in a terminal and pasteable into README)."""
    head = ("section", "measurement", "SDK", "baseline", "ratio", "target", "met")
    body = []
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.unit == "x" else f"{row.ratio:.2f} {row.unit}"
        if row.target is None:
            target, met = "-", "-"
        else:
            shown = f"{row.target:g}x" if row.unit == "x" else f"{row.target:g} {row.unit}"
            target = f"{row.op} {shown}"
            met = "yes" if row.met else "**NO**"
        body.append((row.section, row.what, row.sdk, row.baseline, ratio, target, met))
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in body)])


def machine() -> str:
    """One line describing the machine and the interpreter."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for text in info:
                if text.startswith("model name"):
                    cpu = text.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPU(s), "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
