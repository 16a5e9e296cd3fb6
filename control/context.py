"""The objects a request needs, built once by the app factory and found in one place.

Building them has no side effects: :meth:`AgCluster.start` begins the background work
(reconcile with the provider, warm the pool, the janitor) and :meth:`AgCluster.stop` ends
it. ``agcluster serve`` calls them when its worker loads the app and when it exits; a test
that builds an app in-process starts nothing unless it asks.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, current_app, request

from control.accounts import Accounts
from control.configs import ConfigCatalog
from control.providers.base import Provider
from control.quotas import Quotas
from control.secrets import KeyVault, TokenMinter
from control.sessions import Janitor, SessionService
from control.settings import Settings
from control.store import Store

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class AgCluster:
    settings: Settings
    store: Store
    catalog: ConfigCatalog
    provider: Provider
    vault: KeyVault
    minter: TokenMinter
    sessions: SessionService
    relay_http: requests.Session
    accounts: Accounts
    quotas: Quotas
    janitor: Janitor
    relay_app: Flask | None = None
    """The relay as an app of its own, served to machines on listeners of theirs."""
    _listeners: list[Any] = field(default_factory=list, init=False, repr=False)
    _state: str = field(default="built", init=False, repr=False)
    _state_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _quiesced: bool = field(default=False, init=False, repr=False)
    _quiesce_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def start(self) -> None:
        """Serve the relay to networked machines, reconcile SQLite with the provider, warm
        the pool and start the janitor (once)."""
        with self._state_lock:
            if self._state != "built":
                return
            self._state = "started"
        if self.relay_app is not None:
            from control.relay import serve_machine_network

            self._listeners = serve_machine_network(self, self.relay_app)
        report = self.sessions.lifecycle.reconcile()
        if any(report.values()):
            log.info("reconciled sessions with %s: %s", self.provider.name, report)
        self.sessions.machines.warm_up(self.catalog.presets)
        self.janitor.start()

    def quiesce(self) -> None:
        """Stop making and keeping machines of our own: the janitor ends and the pool removes
        its machines (waiting for fills in progress). Requests still being served keep the
        store and the provider. ``agcluster serve`` calls it the moment SIGTERM arrives,
        because its worker is killed a fixed time after that, however long open connections
        take to drain. A second caller waits for the first to finish."""
        with self._quiesce_lock:
            if self._quiesced:
                return
            self.janitor.stop()
            self.sessions.close()
            self._quiesced = True

    def stop(self) -> None:
        """Quiesce, release the provider and close the database. Sessions' machines are left
        to the provider (the local provider's die with the process)."""
        with self._state_lock:
            if self._state == "stopped":
                return
            self._state = "stopped"
        self.quiesce()
        for listener in self._listeners:
            listener.close()
        self.provider.close()
        self.relay_http.close()
        self.store.close()


def ctx() -> AgCluster:
    ext: AgCluster = current_app.extensions["agcluster"]
    return ext


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() or None if header.startswith("Bearer ") else None
