"""``python -m bench [launch|ttfe|relay|concurrency|streams|drills|attacks|upstream ...] [--full]``

Runs the benchmarks (all of them by default) against real processes on loopback, prints a
table of figures and ratios measured side by side in this one run, and merges the results
into ``bench/results.json``. Every process started is stopped at the end.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import baseline
from bench.common import DEFAULT, FULL, Context
from bench.procs import machine_info
from bench.report import render_report
from bench.scorecard import scorecard
from bench.stack import Lab, signals_as_exit
from bench.stats import Table, na, render_table

BENCHES = ("launch", "ttfe", "relay", "concurrency", "streams", "drills", "attacks", "upstream")
RESULTS = Path(__file__).resolve().parent / "results.json"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benches", nargs="*", metavar="BENCH",
                        help=f"which to run (default: all): {', '.join(BENCHES)}")
    parser.add_argument("--full", action="store_true", help="the issue's full sizes (slow)")
    parser.add_argument("--providers", default="local,docker,fly",
                        help="comma-separated subset of local,docker,fly for the launch and concurrency columns")
    parser.add_argument("--drills", default="",
                        help="with the drills bench: comma-separated subset of "
                             "cp_kill,machine_kill,fly_storm,malformed")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy sampling of the control plane")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument("--seed", type=int, default=1234, help="seed for the drills' random choices")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, profiles)")
    parser.add_argument("--baseline", default=baseline.REF, metavar="REF",
                        help="git revision measured beside this tree for the 'before' columns (default "
                             f"{baseline.REF}, the tree issue 15's figures come from); 'none' to skip")
    args = parser.parse_args(argv)
    unknown = [b for b in args.benches if b not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    args.benches = args.benches or list(BENCHES)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = FULL if args.full else DEFAULT
    previous: dict[str, Any] = {}
    if args.out.exists():
        try:
            previous = json.loads(args.out.read_text())
        except ValueError:
            previous = {}
    run: dict[str, Any] = {"machine": machine_info(), "full": args.full,
                           "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "benches": {}}
    failed = False
    with signals_as_exit(), Lab(keep=args.keep) as lab:
        ctx = Context(sizes=sizes, full=args.full, lab=lab, profile=not args.no_profile,
                      providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
                      drills=tuple(d.strip() for d in args.drills.split(",") if d.strip()),
                      previous=previous.get("benches", {}), seed=args.seed,
                      baseline_ref=None if args.baseline == "none" else args.baseline)
        print(f"bench: {', '.join(args.benches)} ({'full' if args.full else 'default'} sizes); scratch {lab.root}",
              flush=True)
        for name in args.benches:
            started = time.monotonic()
            print(f"bench: running {name} ...", flush=True)
            try:
                module = importlib.import_module(f"bench.{name}")
                outcome = module.run(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - report and continue with the next bench
                failed = True
                traceback.print_exc()
                outcome = {"name": name, "tables": [], "data": na(f"{type(exc).__name__}: {exc}"[:300]), "targets": []}
            outcome["seconds"] = round(time.monotonic() - started, 1)
            outcome["machine"] = run["machine"]
            outcome["full"] = args.full
            outcome["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            run["benches"][name] = outcome
            print(render_report({"benches": {name: outcome}}, targets=False), flush=True)
            print(f"bench: {name} took {outcome['seconds']} s", flush=True)
    merged = {"machine": run["machine"], "updated_at": run["started_at"],
              "benches": {**previous.get("benches", {}), **run["benches"]}}
    # Issue 15's rows from everything measured so far (this run's benches win), ratios first.
    merged["scorecard"] = scorecard(merged["benches"]).as_dict()
    args.out.write_text(json.dumps(merged, indent=2, default=str) + "\n")
    print()
    print(render_table(Table.from_dict(merged["scorecard"])))
    print()
    print(render_report(run, tables=False))
    print(f"\nresults merged into {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
