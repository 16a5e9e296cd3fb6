"""The tree before an issue's work, run beside the current one in the same bench run.

Figures from another day on this shared, noisy box differ by up to 2x (docs/PERFORMANCE.md,
Caveats), so a "before" column is measured now, interleaved with "after": the older tree is
exported from git into the scratch directory and served by a control plane of its own.

Its interpreter is a venv whose site-packages are hard links to this checkout's (same
dependencies, no copy, no download) minus the editable install that points at this tree,
plus one path entry for the exported source. Local machines see that venv and that source
through their sandbox exactly as they see this checkout's, and the bytecode is compiled
ahead as an install would. Docker columns have no "before": the older agent image is not
built (building it would replace the current tag).
"""

from __future__ import annotations

import compileall
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from bench.stack import ROOT, Lab

REF = "43a9722"
"""The tree issue 15's figures were measured on (docs/PERFORMANCE.md of 2026-11-27)."""


@dataclass(frozen=True)
class Baseline:
    ref: str
    commit: str
    source: Path
    python: str


def prepare(lab: Lab, ref: str) -> Baseline | str:
    """The exported tree and its interpreter, or why there is none."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                                capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"git cannot find {ref!r} in {ROOT}"
    root = lab.dir(f"baseline-{ref}")
    source, venv = root / "src", root / "venv"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, timeout=120)
    if archive.returncode != 0:
        return f"git archive {ref} failed"
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True, timeout=120)
    for package in ("control", "machine_agent", "wire", "stubs"):
        if (source / package).is_dir():
            compileall.compile_dir(str(source / package), quiet=2)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = venv / ours.relative_to(sys.prefix)
    linked = subprocess.run(["cp", "-al", f"{ours}/.", f"{theirs}/"], capture_output=True, text=True, timeout=300)
    if linked.returncode != 0:  # another filesystem: a copy would be GBs, so say so instead
        return f"cannot hard-link the venv into the scratch directory: {linked.stderr.strip()[:120]}"
    for editable in theirs.glob("__editable__*agcluster-*"):
        editable.unlink()
    for finder in theirs.glob("__editable___agcluster_*_finder.py"):
        finder.unlink()
    (theirs / "agcluster-baseline.pth").write_text(f"{source}\n")
    return Baseline(ref, commit[:12], source, str(venv / "bin" / "python"))
