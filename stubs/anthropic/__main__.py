"""``python -m stubs.anthropic --port N [--host 127.0.0.1]``: serve the demo model."""

from __future__ import annotations

import argparse
import sys

from stubs.serving import serve_until_signalled

from .runtime import StubAnthropic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stubs.anthropic", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args(argv)
    serve_until_signalled(StubAnthropic(args.host, args.port).start(), "stubs.anthropic")
    return 0


if __name__ == "__main__":
    sys.exit(main())
