"""Turning results (fresh or from bench/results.json) into the printed report."""

from __future__ import annotations

from typing import Any

from bench.stats import Table, fmt, render_markdown, render_table


def machine_line(machine: dict[str, Any]) -> str:
    return (f"{machine.get('nproc')} CPUs ({machine.get('cpu_model') or 'unknown CPU'}), "
            f"{machine.get('memory_gib')} GiB RAM, Linux {machine.get('kernel')}, Python {machine.get('python')}")


def profile_lines(profile: dict[str, Any] | None, top: int = 8) -> list[str]:
    if not profile:
        return []
    if profile.get("error"):
        return [f"  profile: n/a: {profile['error']}"]
    lines = [f"  control-plane worker profile (py-spy): {profile['samples']} busy samples, "
             f"{profile.get('idle_samples', 0)} idle"]
    lines.append("  hottest lines (self time):")
    lines += [f"    {row['share'] * 100:5.1f}%  {row['frame']}" for row in profile["self"][:top]]
    lines.append("  project code, inclusive:")
    lines += [f"    {row['share'] * 100:5.1f}%  {row['frame']}" for row in profile["project_inclusive"][:top]]
    lines.append("  project line nearest the work (inclusive):")
    lines += [f"    {row['share'] * 100:5.1f}%  {row['frame']}" for row in profile["project_line"][:top]]
    return "\n".join(lines).splitlines()


def targets_table(benches: dict[str, Any]) -> Table:
    table = Table("Targets (issue 10)", ["goal", "measured", "verdict"])
    for outcome in benches.values():
        for t in outcome.get("targets", []):
            table.add(t["target"], [t["goal"], fmt(t["measured"], t.get("unit", "")), t["verdict"]])
    return table


def render_report(run: dict[str, Any], *, tables: bool = True, targets: bool = True) -> str:
    out: list[str] = []
    if "machine" in run:
        out.append(f"machine: {machine_line(run['machine'])}")
    for name, outcome in run.get("benches", {}).items():
        if not tables:
            continue
        if not outcome.get("tables"):
            out.append(f"== {name} ==\n  {fmt(outcome.get('data'))}")
            continue
        for raw in outcome["tables"]:
            out.append(render_table(Table.from_dict(raw)))
        lines = profile_lines(outcome.get("profile"))
        for key, value in outcome.items():
            if key.startswith("profile_") and isinstance(value, dict):
                lines += [f"  [{key[8:]}]", *profile_lines(value)]
        if lines:
            out.append("\n".join(lines))
    if targets:
        table = targets_table(run.get("benches", {}))
        if table.rows:
            out.append(render_table(table))
    return "\n\n".join(out) if tables else "\n".join(out)


def render_markdown_report(run: dict[str, Any]) -> str:
    """Every table of a results file as Markdown (for pasting into docs/PERFORMANCE.md)."""
    out = [render_markdown(Table.from_dict(run["scorecard"]))] if run.get("scorecard") else []
    for outcome in run.get("benches", {}).values():
        out += [render_markdown(Table.from_dict(raw)) for raw in outcome.get("tables", [])]
    table = targets_table(run.get("benches", {}))
    if table.rows:
        out.append(render_markdown(table))
    return "\n\n".join(out)


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    data = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--")
                            else "bench/results.json").read_text())
    if "--markdown" in sys.argv:
        print(render_markdown_report(data))
    else:
        if data.get("scorecard"):
            print(render_table(Table.from_dict(data["scorecard"])) + "\n")
        print(render_report(data))
