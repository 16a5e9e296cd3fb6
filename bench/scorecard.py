"""Issue 15's tables, row by row: the figure the issue quotes, the baseline tree measured in
this run ("before"), this tree ("after"), the target and the verdict.

Only what the benches measured is shown; a row a bench did not run (or could not) says so.
The issue's own figures come from docs/PERFORMANCE.md of 2026-11-27 and the issue's upstream
comparison (2026-12-02); "before" is that tree on this box now, so it is the fair comparison.
The two upstream rows use ``python -m bench upstream`` (upstream measured beside this tree)
when that bench ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.stats import Table, fmt, is_na, na, ratio, verdict

Getter = Callable[[dict[str, Any]], Any]


def _dig(benches: dict[str, Any], *path: str) -> Any:
    value: Any = benches
    for key in path:
        if is_na(value):
            return value
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _ms(value: Any) -> Any:
    return value * 1000 if isinstance(value, (int, float)) else value


def _launch(benches: dict[str, Any], column: str, stat: str = "p50", before: bool = False) -> Any:
    data = _dig(benches, "launch", "data", column)
    if data is None:
        return na("launch bench not run")
    if is_na(data):
        return data
    if before:
        data = data.get("before") or na("no baseline")
        if is_na(data):
            return data
    return _ms(data["summary"][stat])


def _first_tool(benches: dict[str, Any], column: str, before: bool = False) -> Any:
    data = _dig(benches, "launch", "data", column)
    if data is None or is_na(data):
        return data or na("launch bench not run")
    if before:
        data = data.get("before") or na("no baseline")
        if is_na(data):
            return data
    return _ms(data.get("launch_to_first_tool_call", {}).get("p50"))


def _relay(benches: dict[str, Any], side: str, what: str) -> Any:
    data = _dig(benches, "relay", "data", side)
    if data is None:
        return na("relay bench not run")
    if is_na(data):
        return data
    if what == "ratio":
        r = ratio(data["median"]["platform"].get("events_per_s"), data["median"]["direct"].get("events_per_s"))
        return f"{r:.2f}x" if r else None
    return data["event_path_cpu_s_per_1000"]


def _tail(benches: dict[str, Any], which: str) -> Any:
    if which == "docker":
        data = _dig(benches, "ttfe", "data", "turn tail (docker)")
        return data if data is None or is_na(data) else data["platform"]["p50"]
    return _dig(benches, "ttfe", "data", "last content event → done", "platform", "p50")


def _density(benches: dict[str, Any]) -> tuple[Any, Any]:
    local = _dig(benches, "concurrency", "data", "local")
    if local is None or is_na(local):
        return (local or na("concurrency bench not run")), None
    top = max(local["levels"], key=int)
    level = local["levels"][top]
    text = f"{top} sessions, {level['failed']} of {level['turns']} failed, p95 {fmt(level['latency_ms']['p95'])} ms"
    pss = level["session_pss_mb"]["mean"]
    return text, pss


def scorecard(benches: dict[str, Any]) -> Table:
    table = Table("Issue 15, every row: the issue's figure, the baseline tree now (before), this tree (after)",
                  ["issue", "before", "after", "target", "verdict"])

    def row(label: str, issue: str, before: Any, after: Any, goal: str, limit: float | None,
            at_most: bool = True, note: str = "") -> None:
        number = after if isinstance(after, (int, float)) else None
        if isinstance(after, str) and after.endswith("x"):
            number = float(after[:-1])
        judged = verdict(number, limit, at_most=at_most) if limit is not None and number is not None else (
            "n/a" if after is None or is_na(after) else "see note")
        table.add(label, [issue, before, after, goal, judged], note)

    row("launch → ready p50, preset, hot pool (local; before: warm)", "684", _launch(benches, "local warm (custom "
        "config)", before=True), _launch(benches, "local hot"), "<= 100 ms", 100)
    row("launch → ready p95, preset, hot pool (local)", "853", None, _launch(benches, "local hot", "p95"),
        "<= 200 ms", 200)
    row("launch → ready p50, preset, hot pool (Docker)", "647", None, _launch(benches, "docker hot"), "<= 100 ms", 100)
    row("launch → ready p95, preset, hot pool (Docker)", "1,044", None, _launch(benches, "docker hot", "p95"),
        "<= 200 ms", 200)
    row("launch → ready p50, custom config, warm pool (local)", "684",
        _launch(benches, "local warm (custom config)", before=True), _launch(benches, "local warm (custom config)"),
        "<= 400 ms", 400)
    row("launch → ready p50, cold (local)", "2,250", _launch(benches, "local cold", before=True),
        _launch(benches, "local cold"), "<= 1,200 ms", 1200)
    row("launch → ready p50, cold (Docker)", "2,479", None, _launch(benches, "docker cold"), "<= 1,500 ms", 1500)
    row("streaming through the platform / straight from the machine (events/s)", "0.55x",
        _relay(benches, "before", "ratio"), _relay(benches, "after", "ratio"), ">= 0.90x", 0.9, at_most=False)
    row("control-plane CPU s per 1,000 events (event path)", "0.105", _relay(benches, "before", "cpu"),
        _relay(benches, "after", "cpu"), "<= 0.030 s", 0.030)
    lost = _dig(benches, "drills", "data", "cp_kill")
    lost_text = lost if lost is None or is_na(lost) else \
        f"{lost['events_lost']} of {lost['events_seen_by_clients']} lost, {lost['seq_gaps']} gaps"
    table.add("kill -9 of the control plane mid-stream", ["0 of 830 lost", None, lost_text, "0 lost",
              "n/a" if lost is None or is_na(lost) else ("met" if lost["events_lost"] == 0 and lost["seq_gaps"] == 0
                                                         else "missed")], "")
    density, pss = _density(benches)
    table.add("sessions each running a Bash turn at once (local)", ["20, 0 failed", None, density,
              "50, 0 failed, p95 reported",
              "met" if isinstance(density, str) and density.startswith("50 ") and ", 0 of" in density else
              ("n/a" if not isinstance(density, str) else "missed")], "")
    row("last event of a turn → done p50 (Docker)", "~250", None, _tail(benches, "docker"), "<= 30 ms", 30)
    row("last event of a turn → done p50 (local)", "~140", None, _tail(benches, "local"), "<= 30 ms", 30)
    # The upstream rows: the upstream bench's side-by-side ratios when it ran, else the issue's
    # figure beside ours (the ratios then live in docs/PERFORMANCE.md, Upstream).
    side_by_side = _upstream(benches)
    ratios = side_by_side["ratios"] if side_by_side else {}
    if ratios.get("idle_pss") is not None:
        assert side_by_side is not None
        memory = [m if is_na(m) else m["pss_mb"] for m in (side_by_side["ours"]["idle_memory"],
                                                           side_by_side["upstream"]["idle_memory"])]
        row("idle session memory (PSS) vs upstream, side by side (Docker)", "208 (1.17x)", None,
            f"{ratios['idle_pss']:.2f}x", "<= 1.0x upstream", UPSTREAM_IDLE_MEMORY,
            note=f"this tree {fmt(memory[0])} MiB, upstream {fmt(memory[1])} MiB (python -m bench upstream)")
    else:
        row("idle session memory (PSS, MiB) vs upstream's 178 MiB", "208 (1.17x)", None, pss, "<= 178 (1.0x)", 178,
            note="the issue's upstream figure; both measured side by side: docs/PERFORMANCE.md, Upstream")
    if ratios.get("first_tool_p50") is not None:
        assert side_by_side is not None
        first = [_ms(side_by_side[side]["first_tool"]["p50"]) for side in ("ours", "upstream")]
        row("cold launch → first tool call p50 vs upstream, side by side (Docker)", "1.09x upstream", None,
            f"{ratios['first_tool_p50']:.2f}x", "<= 0.7x upstream", UPSTREAM_FIRST_TOOL,
            note=f"this tree {fmt(first[0])} ms, upstream {fmt(first[1])} ms, {side_by_side['rounds']} rounds each "
                 "(python -m bench upstream)")
    else:
        cold_tool, cold_tool_before = _first_tool(benches, "local cold"), _first_tool(benches, "local cold",
                                                                                      before=True)
        r = ratio(cold_tool, cold_tool_before)
        table.add("cold launch → first tool call p50 (local, ms)", ["1.09x upstream", cold_tool_before, cold_tool,
                  "<= 0.7x upstream", "n/a"],
                  (f"after/before {r:.2f}x; " if r else "") + "vs upstream on Docker: docs/PERFORMANCE.md, Upstream")
    return table


UPSTREAM_FIRST_TOOL = 0.7
UPSTREAM_IDLE_MEMORY = 1.0


def _upstream(benches: dict[str, Any]) -> dict[str, Any] | None:
    """The upstream bench's measurement (bench/upstream.py) when it ran; None when it did not
    or said n/a."""
    data = _dig(benches, "upstream", "data")
    if not isinstance(data, dict) or is_na(data) or not isinstance(data.get("ratios"), dict):
        return None
    return data
