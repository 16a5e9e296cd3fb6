"""The application factory: builds every long-lived object once and wires the blueprints.

Building has no side effects; ``AgCluster.start``/``stop`` own the background work.
"""

from __future__ import annotations

import logging
import os

import requests
from flask import Flask

from control import errors, logs, metrics, web
from control.accounts import Accounts
from control.auth import require_token_for_api
from control.blueprints.account import account_bp
from control.blueprints.agents import agents_bp
from control.blueprints.configs import configs_bp
from control.blueprints.docs import docs_bp
from control.blueprints.files import files_bp
from control.blueprints.health import health_bp
from control.blueprints.live import live_bp, sock
from control.blueprints.metrics import metrics_bp
from control.blueprints.team import team_bp
from control.blueprints.ui import ui_bp
from control.configs import ConfigCatalog
from control.context import AgCluster
from control.jsonio import StrictJSONProvider
from control.pool import WarmPool, hot_presets
from control.providers import make_provider
from control.providers.base import Provider
from control.quotas import Quotas
from control.relay import RelayLink, create_relay_app, egress
from control.secrets import KeyVault, TokenMinter, install_redaction, load_server_secret
from control.sessions import Janitor, SessionService
from control.settings import Settings, from_env
from control.store import Store

log = logging.getLogger(__name__)
JSON_BODY_LIMIT = 2 * 1024 * 1024


def create_app(settings: Settings | None = None, provider: Provider | None = None) -> Flask:
    """Build the app and every long-lived object; start nothing (that is ``AgCluster.start``)."""
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
    quotas = Quotas(settings, store)
    sessions = SessionService(settings=settings, store=store, provider=provider, catalog=catalog, vault=vault,
                              minter=minter, quotas=quotas,
                              pool=WarmPool(provider, minter, settings.warm_pool_size,
                                            hot_presets(settings.hot_pool, catalog.presets)))
    app.extensions["agcluster"] = AgCluster(
        settings=settings, store=store, catalog=catalog, provider=provider, vault=vault, minter=minter,
        sessions=sessions, relay_http=_relay_http(settings), accounts=Accounts(store), quotas=quotas,
        janitor=Janitor(sessions.lifecycle, settings.session_cleanup_interval))
    # Machines reach the relay on listeners of their own (started by AgCluster.start, or
    # per local machine), never through this app.
    ext = app.extensions["agcluster"]
    ext.relay_app = create_relay_app(ext)
    provider.attach(RelayLink(ext.relay_app, egress.local_addresses()))

    errors.install(app)
    web.install(app, settings.cors_origins, settings.allowed_hosts)
    app.before_request(require_token_for_api)
    for blueprint in (health_bp, configs_bp, agents_bp, live_bp, files_bp, account_bp, team_bp, docs_bp,
                      metrics_bp, ui_bp):
        app.register_blueprint(blueprint)
    sock.init_app(app)
    return app


def _relay_http(settings: Settings) -> requests.Session:
    """The model relay's pooled connections upstream. Proxy and CA settings are read once
    here instead of per request (a hot-path cost)."""
    http = requests.Session()
    http.trust_env = False
    http.proxies = requests.utils.get_environ_proxies(settings.anthropic_base_url)
    http.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
    http.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=64))
    return http
