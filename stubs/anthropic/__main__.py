"""``python -m stubs.anthropic --port N [--host 127.0.0.1]``: serve the demo model."""

from __future__ import annotations

import argparse
import sys

from .runtime import StubAnthropic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stubs.anthropic", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args(argv)
    stub = StubAnthropic(args.host, args.port)
    stub.start()
    # The resolved URL on stdout lets a parent that passed --port 0 find the stub.
    print(f"stubs.anthropic listening on {stub.url}", flush=True)
    try:
        stub.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
