"""The application factory: builds every long-lived object once and wires the blueprints."""

from __future__ import annotations

import logging
import os
import threading

import requests
from flask import Flask

from control import errors, logs, metrics, web
from control.blueprints.account import account_bp
from control.blueprints.agents import agents_bp
from control.blueprints.configs import configs_bp
from control.blueprints.docs import docs_bp
from control.blueprints.files import files_bp
from control.blueprints.health import health_bp
from control.blueprints.live import live_bp, sock
from control.blueprints.metrics import metrics_bp
from control.blueprints.ui import ui_bp
from control.accounts import Accounts
from control.auth import require_token_for_api
from control.configs import ConfigCatalog
from control.context import AgCluster
from control.jsonio import StrictJSONProvider
from control.providers import make_provider
from control.providers.base import Provider
from control.pool import WarmPool
from control.quotas import Quotas
from control.relay import relay_bp
from control.session_store import store_bp
from control.secrets import KeyVault, TokenMinter, install_redaction, load_server_secret
from control.sessions import SessionService
from control.settings import Settings, from_env
from control.store import Store

log = logging.getLogger(__name__)
JSON_BODY_LIMIT = 2 * 1024 * 1024


def create_app(settings: Settings | None = None, provider: Provider | None = None) -> Flask:
    settings = settings or from_env()
    install_redaction()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = JSON_BODY_LIMIT
    app.json = StrictJSONProvider(app)
    logs.install(app)  # first, so refused requests still get a request id and an access line
    metrics.install(app)
    store = Store(settings.database_path)
    catalog = ConfigCatalog(store)
    provider = provider or make_provider(settings)
    vault = KeyVault()
    minter = TokenMinter(load_server_secret(settings.data_dir))
    pool = WarmPool(provider, minter, settings.warm_pool_size)
    sessions = SessionService(settings, store, provider, catalog, vault, minter, pool)
    relay_http = requests.Session()
    # Proxy and CA settings are read once here instead of per request (a hot-path cost).
    relay_http.trust_env = False
    relay_http.proxies = requests.utils.get_environ_proxies(settings.anthropic_base_url)
    relay_http.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    relay_http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
    relay_http.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=64))
    app.extensions["agcluster"] = AgCluster(settings, store, catalog, provider, vault, minter, sessions, relay_http,
                                            Accounts(store), Quotas(settings, store))

    errors.install(app)
    web.install(app, settings.cors_origins)
    app.before_request(require_token_for_api)
    for blueprint in (health_bp, configs_bp, agents_bp, live_bp, files_bp, store_bp, relay_bp, account_bp, docs_bp,
                      metrics_bp, ui_bp):
        app.register_blueprint(blueprint)
    sock.init_app(app)

    report = sessions.reconcile()
    if any(report.values()):
        log.info("reconciled sessions with %s: %s", provider.name, report)
    default = catalog.presets.get("code-assistant")
    if default is not None:
        pool.warm(default.get("image") or None, sessions.resource_limits(default))
    _start_janitor(sessions, settings.session_cleanup_interval)
    return app


def shutdown(app: Flask) -> None:
    """Flush transcripts and reap machines (the local provider's die with us anyway)."""
    ext: AgCluster = app.extensions["agcluster"]
    ext.sessions.close()
    ext.provider.close()
    ext.store.close()


def _start_janitor(sessions: SessionService, interval: int) -> None:
    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            try:
                sessions.stop_idle()
                sessions.expire()
                sessions.retry_deletions()
            except Exception:  # noqa: BLE001 - the janitor must keep running
                log.exception("idle sweep failed")

    threading.Thread(target=loop, name="session-janitor", daemon=True).start()
