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
    users = sub.add_parser("users", help="manage accounts (AUTH_MODE=token)").add_subparsers(dest="action",
                                                                                        required=True)
    add = users.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true")
    users.add_parser("list", help="list users")
    tokens = sub.add_parser("tokens", help="manage API tokens").add_subparsers(dest="action", required=True)
    tokens.add_parser("create", help="create a token for a user (shown once)").add_argument("user")
    tokens.add_parser("revoke", help="revoke a token by id or prefix").add_argument("token")
    tokens.add_parser("list", help="list tokens (never their values)")
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        sys.exit(f"agcluster: configuration error: {exc}")
    if args.command in ("users", "tokens"):
        sys.exit(_accounts_command(settings, args))
    if args.command == "demo":
        settings = _start_demo_model(settings)
    serve(settings)


def _accounts_command(settings: Settings, args: argparse.Namespace) -> int:
    from control.accounts import Accounts
    from control.store import Store
    from wire.errors import ApiError

    store = Store(settings.database_path)
    accounts = Accounts(store)
    try:
        if args.command == "users" and args.action == "add":
            user = accounts.add_user(args.name, admin=args.admin)
            store.audit("cli", "user.add", user.user_id, "ok", {"name": user.name, "role": user.role})
            print(f"created {user.role} {user.name} ({user.user_id})")
        elif args.command == "users":
            for listed in store.list_users():
                print(f"{listed['id']}  {listed['role']:<6}  {listed['name']}")
        elif args.action == "create":
            token_id, token = accounts.create_token(args.user)
            store.audit("cli", "token.create", token_id, "ok", {"user": args.user})
            print(f"token {token_id} for {args.user} (shown once, store it now):\n{token}")
        elif args.action == "revoke":
            count = accounts.revoke(args.token)
            store.audit("cli", "token.revoke", args.token, "ok" if count else "not_found", {})
            if not count:
                print(f"no active token {args.token!r}", file=sys.stderr)
                return 1
            print(f"revoked {count} token(s)")
        else:
            for entry in store.list_tokens():
                state = "revoked" if entry["revoked_at"] else "active"
                used = entry["last_used_at"]
                last = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(used)) if used else "never"
                print(f"{entry['id']}  {entry['prefix']}…  {state:<7}  user={entry['user_id']}  last used {last}")
    except ApiError as exc:
        print(f"agcluster: {exc.message}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if getattr(args, "command", "") in ("users", "tokens"):
        return from_env(env)
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
    if settings.container_provider == "fly_machines" and not settings.relay_url:
        sys.exit("agcluster: RELAY_URL is required with CONTAINER_PROVIDER=fly_machines: the address machines use "
                 "to reach this control plane over 6PN, e.g. http://<control-app>.internal:8000/relay "
                 "(see docs/FLY.md)")
    # shutil, not the provider module: nothing may import requests before gevent patches.
    if settings.container_provider == "local" and shutil.which("bwrap") is None:
        sys.exit("agcluster: bubblewrap (bwrap) is required to sandbox local agents.\n"
                 "  Install it:  sudo apt-get install bubblewrap   (Fedora: sudo dnf install bubblewrap)\n"
                 "  or use Docker: CONTAINER_PROVIDER=docker (make images first)")


def _start_demo_model(settings: Settings) -> Settings:
    from control.harness import free_port, wait_until

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stubs.anthropic", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(proc.terminate)

    def listening() -> bool:
        if proc.poll() is not None:
            sys.exit("agcluster: the demo model failed to start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_until(listening, 20, "the demo model")
    except TimeoutError as exc:
        sys.exit(f"agcluster: {exc}")
    print(f"Demo model (stubs.anthropic) on http://127.0.0.1:{port}: launch with any api_key, "
          "then chat 'run: ls', 'write notes.md: hi', 'todo: a; b', 'think: ...'", flush=True)
    return settings.with_overrides(anthropic_base_url=f"http://127.0.0.1:{port}", demo=True)


if __name__ == "__main__":
    main()
