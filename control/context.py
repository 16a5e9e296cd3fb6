"""The objects a request needs, built once by the app factory and found in one place."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from flask import current_app, request

from control.accounts import Accounts
from control.configs import ConfigCatalog
from control.providers.base import Provider
from control.quotas import Quotas
from control.secrets import KeyVault, TokenMinter
from control.sessions import SessionService
from control.settings import Settings
from control.store import Store


@dataclass
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


def ctx() -> AgCluster:
    return current_app.extensions["agcluster"]


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() or None if header.startswith("Bearer ") else None
