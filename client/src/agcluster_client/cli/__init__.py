"""``agc``: AgCluster from a terminal.

Settings come from flags or ``AGCLUSTER_URL``, ``ANTHROPIC_API_KEY`` and ``AGCLUSTER_TOKEN``.
Output is rich on a terminal, plain text when piped, and one JSON object per line with
``--json``. Exit status: 0 ok, 1 a failed turn or an API error, 2 bad usage, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rich.console import Console

from .. import AgCluster, AgClusterError
from . import commands


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="agc", description="Run Claude agents on an AgCluster server.")
    top.add_argument("--url", help="server URL (default: $AGCLUSTER_URL or http://127.0.0.1:8000)")
    top.add_argument("--api-key", help="Anthropic key (default: $ANTHROPIC_API_KEY)")
    top.add_argument("--token", help="AgCluster token, for AUTH_MODE=token servers (default: $AGCLUSTER_TOKEN)")
    top.add_argument("--json", action="store_true", help="print JSON, one object per line")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("configs", help="list agent configs")
    sub.add_parser("sessions", help="list sessions")

    launch = sub.add_parser("launch", help="launch an agent; prints its session id")
    launch.add_argument("config", metavar="CONFIG", help="a config id, or a .json file with an inline config")

    run = sub.add_parser("run", help="send one message and stream the turn (launching a session if needed)")
    target = run.add_mutually_exclusive_group(required=True)
    target.add_argument("--config", help="launch a new session from this config (id or .json file)")
    target.add_argument("--session", help="use this existing session")
    run.add_argument("message", help="what to ask the agent")

    chat = sub.add_parser("chat", help="talk to a session interactively (Ctrl-C interrupts, twice quits)")
    chat.add_argument("session", metavar="SESSION")

    files = sub.add_parser("files", help="the session's workspace files")
    files.add_argument("session", metavar="SESSION")
    action = files.add_subparsers(dest="action", metavar="ACTION")
    ls = action.add_parser("ls", help="list files")
    ls.add_argument("path", nargs="?", default="")
    get = action.add_parser("get", help="download a file")
    get.add_argument("path", metavar="PATH")
    get.add_argument("out", metavar="OUT", nargs="?", help="local file (default: its name here; - for stdout)")
    put = action.add_parser("put", help="upload a file")
    put.add_argument("file", metavar="FILE")
    put.add_argument("dest", metavar="DEST", nargs="?", default="", help="workspace directory (default: root)")
    put.add_argument("--overwrite", action="store_true", help="replace an existing file")
    zip_ = action.add_parser("zip", help="download the whole workspace as a ZIP")
    zip_.add_argument("out", metavar="OUT")

    export = sub.add_parser("export", help="print the conversation with every tool call and the costs")
    export.add_argument("session", metavar="SESSION")
    export.add_argument("--format", choices=("markdown", "json"), default="markdown")
    export.add_argument("-o", "--output", help="write to this file instead of stdout")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        with AgCluster(args.url, api_key=args.api_key, token=args.token) as ac:
            return commands.run(ac, args, Console(highlight=False, soft_wrap=True), err)
    except AgClusterError as exc:
        err.print(f"agc: {exc.message} ({exc.code})", markup=False, style="red")
        if exc.status == 401 and not (args.api_key or args.token or os.environ.get("ANTHROPIC_API_KEY")
                                      or os.environ.get("AGCLUSTER_TOKEN")):
            err.print("agc: set ANTHROPIC_API_KEY (or AGCLUSTER_TOKEN for AUTH_MODE=token), or pass --api-key",
                      markup=False)
        return 1
    except commands.UsageError as exc:
        err.print(f"agc: {exc}", markup=False, style="red")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left (e.g. `agc --json run ... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
