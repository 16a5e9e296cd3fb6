"""Print the project's pinned runtime dependencies from pyproject.toml, one per line.

Image builds install these in their own layer before the source is copied, so editing the
source never re-downloads the dependencies. ``--exclude NAME`` drops a dependency an image
does not need (the control plane never runs the Claude CLI, so it skips the SDK and its
bundled ~350 MB binary).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("pyproject")
    parser.add_argument("--exclude", action="append", default=[])
    args = parser.parse_args()
    with open(args.pyproject, "rb") as fh:
        deps = tomllib.load(fh)["project"].get("dependencies", [])
    excluded = {_name(x) for x in args.exclude}
    for dep in deps:
        if _name(dep) not in excluded:
            print(dep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
