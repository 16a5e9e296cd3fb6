"""``python -m stubs.fly --port N [--backend docker|process]``: serve the Machines API stand-in."""

from __future__ import annotations

import argparse
import sys

from stubs.serving import serve_until_signalled

from .backends import BackendError
from .runtime import StubFly


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stubs.fly", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4280)
    parser.add_argument("--backend", choices=("process", "docker"), default="process")
    parser.add_argument("--token", help="the only API token accepted (default: any Bearer/FlyV1 token)")
    parser.add_argument("--app", action="append", dest="apps", help="an app that exists (repeatable; default: any)")
    parser.add_argument("--region", default="ord")
    parser.add_argument("--cold-resume", type=float, default=0.0, metavar="P",
                        help="probability that a resume cold-boots, as when Fly drops a snapshot (default 0)")
    parser.add_argument("--seed", type=int, help="seed for --cold-resume, for repeatable runs")
    args = parser.parse_args(argv)
    try:
        stub = StubFly(args.host, args.port, backend=args.backend, token=args.token, apps=args.apps,
                       region=args.region).start()
    except BackendError as exc:
        print(f"stubs.fly: {exc}", file=sys.stderr)
        return 1
    stub.cold_resume(args.cold_resume, seed=args.seed)
    serve_until_signalled(stub, "stubs.fly", f" (backend={args.backend}; machines reach the host at {stub.gateway})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
