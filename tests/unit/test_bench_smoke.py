"""The benchmark's pure helpers: percentiles, summaries, formatting, tables, profiles.

No process is started and nothing is timed: the benchmarks themselves are run by
``python -m bench`` (``make bench``), not by the test suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import profiler
from bench.__main__ import parse
from bench.report import render_markdown_report, render_report
from bench.sseclient import split_frame
from bench.stats import (
    Table,
    fmt,
    is_na,
    ms,
    na,
    percentile,
    ratio,
    render_markdown,
    render_table,
    summarize,
    verdict,
)


def test_percentile_interpolates_like_numpy_linear() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10], 95) == 10
    assert percentile([3, 1, 2], 0) == 1 and percentile([3, 1, 2], 100) == 3
    assert percentile(range(1, 101), 95) == pytest.approx(95.05)
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_summarize_and_ratio() -> None:
    s = summarize([0.1, 0.2, 0.3])
    assert s["n"] == 3 and s["p50"] == pytest.approx(0.2) and s["min"] == 0.1 and s["max"] == 0.3
    assert summarize([])["p50"] is None
    assert ratio(3, 2) == 1.5 and ratio(1, 0) is None and ratio(None, 2) is None and ratio(na("x"), 2) is None
    assert ms(0.25) == 250 and ms(None) is None


def test_fmt_is_compact_and_never_invents_numbers() -> None:
    assert fmt(12345) == "12,345"
    assert fmt(1234.5) == "1,234" or fmt(1234.5) == "1,235"
    assert fmt(0.01234) == "0.0123"
    assert fmt(5.5, "ms") == "5.50 ms"
    assert fmt(None) == "-"
    assert fmt(True) == "yes"
    missing = na("engine not reachable")
    assert is_na(missing) and fmt(missing) == "n/a: engine not reachable"


def test_verdict_against_targets() -> None:
    assert verdict(100, 150) == "met" and verdict(200, 150) == "missed"
    assert verdict(25_000, 20_000, at_most=False) == "met"
    assert verdict(na("no docker"), 2000) == "n/a" and verdict(None, 1) == "n/a"


def test_table_renders_text_and_markdown_and_round_trips() -> None:
    table = Table("Launch", ["local", "docker"])
    table.add("p50 (ms)", [812.0, na("docker engine not reachable")], "n=20")
    table.add("ratio", ["1.00x", None])
    with pytest.raises(ValueError):
        table.add("bad", [1])
    text = render_table(table)
    lines = text.splitlines()
    assert lines[0] == "== Launch ==" and "local" in lines[1] and "docker" in lines[1]
    assert "812" in text and "n/a: docker engine not reachable" in text and "n=20" in text
    md = render_markdown(table)
    assert "| metric | local | docker | note |" in md and "| --- |" in md
    again = Table.from_dict(json.loads(json.dumps(table.as_dict())))
    assert render_table(again) == text


def test_report_lists_targets_with_verdicts() -> None:
    table = Table("T", ["x"])
    table.add("m", [1.0])
    run = {"machine": {"nproc": 2, "cpu_model": "cpu", "memory_gib": 24, "kernel": "6", "python": "3.11"},
           "benches": {"ttfe": {"tables": [table.as_dict()], "targets": [
               {"target": "added p50", "goal": "<= 10 ms", "measured": 4.2, "unit": "ms", "verdict": "met"}]}}}
    text = render_report(run)
    assert "2 CPUs" in text and "added p50" in text and "met" in text and "4.20 ms" in text
    assert "| added p50 |" in render_markdown_report(run)


def test_sse_frame_split() -> None:
    assert split_frame(b'id: 7\nevent: text_delta\ndata: {"text":"hi"}') == ("text_delta", 7, b'{"text":"hi"}')
    assert split_frame(b": keep-alive") == ("", None, None)


def test_profile_ranks_self_time_and_skips_idle() -> None:
    raw = "\n".join([
        "run (/x/site-packages/gevent/hub.py:647);Hub.run (/x/site-packages/gevent/hub.py:647) 50",
        "handle (/x/site-packages/gunicorn/w.py:1);chat (/repo/control/blueprints/agents.py:90);"
        "frame (/repo/wire/sse.py:13) 30",
        "handle (/x/site-packages/gunicorn/w.py:1);publish (/repo/control/turns.py:99) 10",
        "garbage line without count",
    ])
    spots = profiler.hotspots(profiler.parse_collapsed(raw), "/repo")
    assert spots["samples"] == 40 and spots["idle_samples"] == 50
    assert spots["self"][0]["frame"] == "frame (wire/sse.py:13)" and spots["self"][0]["share"] == 0.75
    inclusive = {row["frame"]: row["samples"] for row in spots["project_inclusive"]}
    assert inclusive == {"chat (control/blueprints/agents.py)": 30, "frame (wire/sse.py)": 30,
                         "publish (control/turns.py)": 10}
    assert spots["project_line"][0]["frame"] == "frame (wire/sse.py:13)"


def test_cli_parses_bench_names_and_flags() -> None:
    args = parse(["relay", "ttfe", "--full", "--no-profile"])
    assert args.benches == ["relay", "ttfe"] and args.full and args.no_profile
    assert parse([]).benches == ["launch", "ttfe", "relay", "concurrency", "streams", "drills", "attacks",
                                 "upstream"]
    with pytest.raises(SystemExit):
        parse(["nonsense"])


def test_the_scorecard_names_every_row_of_the_issue_even_with_nothing_measured() -> None:
    from bench.scorecard import scorecard

    table = scorecard({})
    assert len(table.rows) == 15
    assert all(cells[0] for _, cells, _ in table.rows)  # the issue's own figure is always there
    assert {cells[4] for _, cells, _ in table.rows} <= {"n/a"}


def test_the_baseline_tree_is_asked_for_by_default_and_can_be_skipped() -> None:
    from bench import baseline

    assert parse([]).baseline == baseline.REF and parse(["--baseline", "none"]).baseline == "none"


def test_the_upstream_bench_says_na_with_the_preparation_command_when_not_prepared(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import upstream
    from bench.common import DEFAULT, Context
    from bench.stack import Lab

    directory = tmp_path / "nothing-here"
    monkeypatch.setenv("AGCLUSTER_UPSTREAM_DIR", str(directory))
    with Lab() as lab:  # nothing is started: the missing copy is noticed before Docker is asked
        outcome = upstream.run(Context(sizes=DEFAULT, full=False, lab=lab))
    assert is_na(outcome["data"])
    why = outcome["data"]["na"]
    assert "not prepared" in why and f"scripts/prepare-upstream.sh UPSTREAM_CHECKOUT {directory.resolve()}" in why
    assert {t["verdict"] for t in outcome["targets"]} == {"n/a"}
    assert "n/a: upstream not prepared" in render_table(Table.from_dict(outcome["tables"][0]))


def test_the_scorecard_takes_the_upstream_rows_from_the_upstream_bench_when_it_ran() -> None:
    from bench.scorecard import scorecard

    side = {"launch": summarize([1.1]), "first_tool": summarize([1.3]), "idle_memory": {"pss_mb": 255.0}}
    upstream_side = {"launch": summarize([3.3]), "first_tool": summarize([3.5]), "idle_memory": {"pss_mb": 274.0}}
    benches = {"upstream": {"data": {"rounds": 8, "ours": side, "upstream": upstream_side,
                                     "ratios": {"first_tool_p50": 1.3 / 3.5, "idle_pss": 255 / 274}}}}
    rows = {metric: (cells, note) for metric, cells, note in scorecard(benches).rows}
    assert len(rows) == 15
    memory, memory_note = rows["idle session memory (PSS) vs upstream, side by side (Docker)"]
    assert memory[2:] == ["0.93x", "<= 1.0x upstream", "met"] and "255" in memory_note and "274" in memory_note
    first, first_note = rows["cold launch → first tool call p50 vs upstream, side by side (Docker)"]
    assert first[2:] == ["0.37x", "<= 0.7x upstream", "met"] and "1,300 ms" in first_note
    slower = {"upstream": {"data": {**benches["upstream"]["data"], "ratios": {"first_tool_p50": 0.9,
                                                                             "idle_pss": 1.2}}}}
    assert {cells[4] for metric, cells, _ in scorecard(slower).rows if "side by side" in metric} == {"missed"}
    # The upstream bench said n/a: the rows stay as they are without it.
    fallback = {m: c for m, c, _ in scorecard({"upstream": {"data": na("upstream not prepared")}}).rows}
    assert "cold launch → first tool call p50 (local, ms)" in fallback
    assert "idle session memory (PSS, MiB) vs upstream's 178 MiB" in fallback
