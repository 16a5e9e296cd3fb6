"""``python -m bench attacks``: the isolation attacks of tests/security/, run for real,
counted as tried / held per provider.

Each test there is one attack a prompt or a saved config can make (a setuid binary, a read
of /etc/shadow, the server secret under a system path, a connection to the control plane,
a relay path outside the allow-list, a copied relay token, another user's config, a memory
or process bomb...), asserting the safe outcome. "Held" means the attack failed as it must;
anything else is listed by name. Docker and Fly-stand-in attacks need a Docker engine.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Context, result, target
from bench.stack import ROOT
from bench.stats import Table

SUITES = {"local": ["test_local_identity.py", "test_local_data_dir.py", "test_local_network.py",
                    "test_local_limits.py", "test_configs.py", "test_small_holes.py", "test_relay_door.py",
                    "test_normal_user.py", "test_hot_pool.py"],
          "docker": ["test_docker_isolation.py"], "fly": ["test_fly_isolation.py"]}


def run(ctx: Context) -> dict[str, Any]:
    table = Table("isolation attacks (tests/security/, real sandboxes, containers and relays)",
                  ["tried", "held", "broke through", "skipped"])
    data: dict[str, Any] = {}
    total_tried = total_held = 0
    for provider, files in SUITES.items():
        if provider != "local" and provider not in ctx.providers:
            continue
        report = ctx.lab.root / f"attacks-{provider}.xml"
        paths = [str(ROOT / "tests" / "security" / name) for name in files]
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                        *paths], cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
        outcomes = _outcomes(report)
        counts = Counter(outcomes.values())
        tried = len(outcomes) - counts["skipped"]
        held = counts["passed"]
        broke = sorted(name for name, outcome in outcomes.items() if outcome in ("failed", "error"))
        table.add(provider, [tried, held, len(broke), counts["skipped"]], "; ".join(broke)[:200])
        data[provider] = {"tried": tried, "held": held, "broke_through": broke, "skipped": counts["skipped"]}
        total_tried += tried
        total_held += held
    table.add("all", [total_tried, total_held, total_tried - total_held, ""], "")
    verdict = "met" if total_tried and total_held == total_tried else "missed"
    return result("attacks", [table], data, [target("attacks held", "all of them", f"{total_held}/{total_tried}",
                                                   verdict)])


def _outcomes(report: Path) -> dict[str, str]:
    if not report.exists():
        return {}
    found: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        kinds = {child.tag for child in case}
        found[name] = ("failed" if "failure" in kinds else "error" if "error" in kinds
                       else "skipped" if "skipped" in kinds else "passed")
    return found
