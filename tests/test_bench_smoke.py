"""Smoke test of ``bench/``: every section runs end to end with tiny counts, so the scripts
cannot rot. Nothing here asserts a timing or a target; ``python bench/run.py`` measures."""

from __future__ import annotations

import math

import pytest

from bench import decode, latency, memory, relay, rest, run, scale, stream, zeroloss
from bench._common import Row, frames, render


def _check(rows: list[Row], section: str, count: int) -> None:
    assert len(rows) == count
    for row in rows:
        assert row.section.startswith(section)
        assert math.isfinite(row.ratio)
        assert row.ratio >= 0
        assert row.sdk
        assert row.baseline
    table = render(rows)
    assert table.count("\n") == count + 1  # header, rule, one line per row


def test_decode_section() -> None:
    rows = decode.run(number=20, rounds=1)
    _check(rows, "1 decode", 9)
    assert {row.target for row in rows} == {decode.STDLIB_TARGET, None, decode.FLOOR_TARGET}


def test_decode_baselines_read_the_same_frame() -> None:
    frame = frames()[30012]
    env_type, sn, payload = decode.floor(frame)
    assert (env_type, sn) == (30012, "3631A2124XXX")
    assert payload.pin_code == " "  # the floor keeps the blank the SDK normalises
    assert decode.stdlib(frame)["msg"]["call_id"] == payload.call_id
    assert decode.untyped(frame)["type"] == 30012


async def test_stream_section() -> None:
    _check(await stream.run(count=200, rounds=1), "2 stream", 1)


async def test_rest_section() -> None:
    rows = await rest.run(calls=20, rounds=1)
    _check(rows, "3 REST", 2)
    assert all(row.op == "<=" for row in rows)


async def test_latency_section() -> None:
    rows = await latency.run(count=10, rounds=1)
    _check(rows, "4 30016", 2)
    assert rows[1].target == latency.TARGET_P99 * 1e3


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert latency.percentile(values, 0.5) == 50.0
    assert latency.percentile(values, 0.99) == 99.0
    assert latency.percentile([3.0], 0.99) == 3.0


async def test_memory_section() -> None:
    rows = await memory.run(events=400, warmup=100, import_rounds=1)
    _check(rows, "5 ", 2)


async def test_relay_section() -> None:
    if not relay.available():
        pytest.skip("no redis-server on PATH: the relay section needs one")
    rows = await relay.run(count=200, calls=10, rounds=1)
    _check(rows, "6 relay", 3)
    assert rows[1].target == relay.TARGET_P99 * 1e3
    assert rows[2].target == 1.0 + relay.FAILOVER_SLACK


def test_runner_skips_a_section_this_machine_cannot_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(run.NEEDS, "relay", (lambda: False, "no redis-server on PATH"))
    assert run.main(["--only", "relay"]) == 0
    assert "relay skipped: no redis-server on PATH" in capsys.readouterr().out


async def test_zeroloss_section() -> None:
    rows = await zeroloss.run(seconds=0.5, rounds=1)
    _check(rows, "7 zero loss", 1)


async def test_scale_section() -> None:
    rows = await scale.run(
        clients=20,
        streams=5,
        idle=0.2,
        settle=0.0,
        burst_streams=5,
        burst_interval=0.5,
        download_mib=2,
        rounds=1,
    )
    _check(rows, "8 ", 10)
    leftover = rows[6]
    assert leftover.what.startswith("left after closing")
    assert leftover.ratio == 0  # no fd, no task left behind by closed clients


def test_runner(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(run.PRESETS, "decode", ({"number": 10, "rounds": 1},) * 2)
    monkeypatch.setitem(run.PRESETS, "stream", ({"count": 100, "rounds": 1},) * 2)
    assert run.main(["--only", "decode,stream"]) == 0
    out = capsys.readouterr().out
    assert "| 1 decode" in out
    assert "| 2 stream" in out
    assert "targets met" in out


def test_runner_rejects_an_unknown_section(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run.main(["--only", "nope"])
    assert "unknown section" in capsys.readouterr().err
