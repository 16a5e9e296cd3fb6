"""``agcluster serve`` and ``agcluster demo``."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from control.settings import PROVIDERS, Settings, SettingsError, from_env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="agcluster", description="Self-hosted Claude Agent SDK platform")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("serve", "serve the API and dashboard"),
                            ("demo", "serve with the built-in scripted model: no Anthropic key needed")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--host")
        cmd.add_argument("--port", type=int)
        cmd.add_argument("--provider", choices=PROVIDERS)
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        sys.exit(f"agcluster: configuration error: {exc}")
    if args.command == "demo":
        settings = _start_demo_model(settings)
    serve(settings)


def _settings(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if args.host:
        env["API_HOST"] = args.host
    if args.port:
        env["API_PORT"] = str(args.port)
    if args.provider:
        env["CONTAINER_PROVIDER"] = args.provider
    return from_env(env)


def serve(settings: Settings) -> None:
    from control.server import ControlPlaneServer

    _preflight(settings)
    binds = [f"[{settings.api_host}]:{settings.api_port}" if ":" in settings.api_host
             else f"{settings.api_host}:{settings.api_port}"]
    binds += _extra_binds(settings)
    print(f"AgCluster serving on http://{settings.api_host}:{settings.api_port} "
          f"(provider={settings.container_provider}, database={settings.database_path}"
          f"{', demo model' if settings.demo else ''})", flush=True)
    if settings.auth_mode == "none":
        where = "loopback only" if settings.api_host.startswith("127.") or settings.api_host in ("localhost", "::1") \
            else "ALL INTERFACES (AGCLUSTER_ALLOW_PUBLIC_BIND=1)"
        print(f"AUTH_MODE=none: no accounts; each session is opened by its launch key. Bound to {where}.", flush=True)
    ControlPlaneServer(settings, binds).run()


def _preflight(settings: Settings) -> None:
    """Fail before binding, with a message that says what to do."""
    if settings.container_provider == "local":
        # shutil, not the provider module: nothing may import requests before gevent patches.
        if shutil.which("bwrap") is None and not settings.allow_unsandboxed:
            sys.exit("agcluster: bubblewrap (bwrap) is required to sandbox local agents.\n"
                     "  Install it:  sudo apt-get install bubblewrap   (Fedora: sudo dnf install bubblewrap)\n"
                     "  or run unsandboxed (agents can read your files): AGCLUSTER_ALLOW_UNSANDBOXED=1")


def _extra_binds(settings: Settings) -> list[str]:
    """Docker machines reach the relay through the agents network's gateway address."""
    if settings.container_provider != "docker" or settings.relay_url:
        return []
    try:
        from control.providers.docker import gateway_bind_address

        address = gateway_bind_address()
    except Exception as exc:  # noqa: BLE001 - reported, then serve without it
        print(f"agcluster: cannot prepare the Docker agents network: {exc}", file=sys.stderr)
        return []
    return [f"{address}:{settings.api_port}"] if address else []


def _start_demo_model(settings: Settings) -> Settings:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stubs.anthropic", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(proc.terminate)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                sys.exit("agcluster: the demo model failed to start")
            time.sleep(0.05)
    print(f"Demo model (stubs.anthropic) on http://127.0.0.1:{port}: launch with any api_key, "
          "then chat 'run: ls', 'write notes.md: hi', 'todo: a; b', 'think: ...'", flush=True)
    return settings.with_overrides(anthropic_base_url=f"http://127.0.0.1:{port}", demo=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
