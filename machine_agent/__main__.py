"""``python -m machine_agent``: the machine agent, served by this one process.

One machine serves one session, so a thread per connection (``machine_agent.server``) is
plenty, and the SDK gets a real asyncio loop thread of its own (``runner``). The machine
token is read once and removed from the environment before anything else runs, so the CLI
and the agent's tools never inherit it.

Where to listen, one of:
  --host H --port P   TCP; the default ``::`` is IPv4 and IPv6 at once (Fly's 6PN is IPv6)
  --unix PATH         a Unix socket this process creates (a stale socket there is replaced)
  --listen-fd N       a socket the parent already bound and put in listening state, any
                      family; the parent keeps the path, so the agent cannot swap it
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from types import FrameType

from wire.protocol import MACHINE_TOKEN_ENV

# How long requests in flight may run on after SIGTERM (a turn keeps the CLI's own state).
GRACE_SECONDS = 5.0


class _Stop(Exception):
    """Raised by the signal handler in the main thread to leave the accept loop."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="machine_agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="::")
    parser.add_argument("--port", type=int, default=8080)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--unix", metavar="PATH", help="listen on a Unix socket at PATH")
    where.add_argument("--listen-fd", type=int, metavar="N", help="serve an inherited listening socket")
    parser.add_argument("--workspace", default="/workspace")
    parser.add_argument("--forward", action="append", default=[], metavar="PORT=SOCKET",
                        help="serve a loopback port that pipes to a Unix socket (machines with no network)")
    parser.add_argument("--max-upload-mb", type=int, default=int(os.environ.get("MAX_UPLOAD_MB", "50")))
    return parser.parse_args(argv)


def _listen(args: argparse.Namespace) -> socket.socket:
    from machine_agent import server

    try:
        if args.listen_fd is not None:
            return server.adopt_fd(args.listen_fd)
        if args.unix:
            return server.listen_unix(args.unix)
        return server.listen_tcp(args.host, args.port)
    except (OSError, ValueError) as exc:
        sys.exit(f"machine agent: cannot listen: {exc}")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # A second signal while shutting down takes the default action (exit at once).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    raise _Stop


def _close_proc_to_same_user() -> None:
    """Keep the CLI and the agent's tools, which run as this same user, out of this process.

    Removing the token from ``os.environ`` does not remove it from the environment block
    the kernel shows in ``/proc/<pid>/environ``, which any process of the same user may
    read (the agent's Bash tool could, and then approve its own permission requests). A
    non-dumpable process has its ``/proc`` files owned by root and cannot be traced or
    read by them; the CLI is exec'd, so it is dumpable again and unaffected.
    """
    import ctypes

    pr_set_dumpable = 4
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_dumpable, 0, 0, 0, 0) != 0:
        sys.exit(f"machine agent: prctl(PR_SET_DUMPABLE) failed: {os.strerror(ctypes.get_errno())}")


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _close_proc_to_same_user()
    token = os.environ.pop(MACHINE_TOKEN_ENV, "")
    if not token:
        sys.exit(f"{MACHINE_TOKEN_ENV} is required")
    # Listen before the imports: a client that connects early waits in the backlog instead
    # of being refused, so nobody has to poll for the port.
    sock = _listen(args)
    if args.forward:
        from machine_agent import forward

        try:
            forward.start([forward.parse(spec) for spec in args.forward])
        except (OSError, ValueError) as exc:
            sys.exit(f"machine agent: cannot forward: {exc}")
    unix_inode = os.stat(args.unix).st_ino if args.unix else None
    from machine_agent.app import create_app
    from machine_agent.server import Server, describe

    home = os.environ.get("HOME") or "/home/agent"
    app = create_app(workspace=args.workspace, token=token, home=home, max_upload_mb=args.max_upload_mb)
    server = Server(sock, app)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(f"machine agent: serving on {describe(sock)}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except _Stop:
        pass
    finally:
        server.close()
        if args.unix and unix_inode is not None:
            try:
                if os.stat(args.unix).st_ino == unix_inode:
                    os.unlink(args.unix)
            except OSError:
                pass
        server.wait_idle(GRACE_SECONDS)
        app.extensions["agent_runner"].shutdown()


if __name__ == "__main__":
    main()
