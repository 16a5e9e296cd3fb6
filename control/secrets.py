"""Key hashing, per-session tokens, the in-memory key vault and the one redaction filter.

Machine and relay tokens are derived (HMAC of a server secret kept in a 0600 file beside
the database), so SQLite holds no token and a restarted control plane can still talk to
the machines it started. The user's Anthropic key lives only in :class:`KeyVault`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from pathlib import Path

RELAY_TOKEN_PREFIX = "agr"


def load_server_secret(data_dir: Path) -> bytes:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "server.secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def hash_key(key: str, salt: str | None = None) -> tuple[str, str]:
    """Salted HMAC-SHA256: API keys are long random strings, so a slow KDF buys nothing."""
    salt = salt or secrets.token_hex(16)
    return salt, hmac.new(bytes.fromhex(salt), key.encode(), hashlib.sha256).hexdigest()


def key_matches(key: str, salt: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key, salt)[1], expected_hash)


class TokenMinter:
    def __init__(self, server_secret: bytes) -> None:
        self._secret = server_secret

    def _mac(self, purpose: str, session_id: str) -> str:
        return hmac.new(self._secret, f"{purpose}:{session_id}".encode(), hashlib.sha256).hexdigest()

    def machine_token(self, session_id: str) -> str:
        return self._mac("machine", session_id)

    def relay_token(self, session_id: str) -> str:
        return f"{RELAY_TOKEN_PREFIX}.{session_id}.{self._mac('relay', session_id)}"

    def session_for_relay_token(self, token: str) -> str | None:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != RELAY_TOKEN_PREFIX:
            return None
        session_id = parts[1]
        return session_id if hmac.compare_digest(self.relay_token(session_id), token) else None


class KeyVault:
    """Session id → the user's Anthropic key, in this process's memory only."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, session_id: str, key: str) -> None:
        with self._lock:
            self._keys[session_id] = key
        REDACTOR.add(key)

    def get(self, session_id: str) -> str | None:
        with self._lock:
            return self._keys.get(session_id)

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._keys.pop(session_id, None)


class Redactor(logging.Filter):
    """Replaces every known secret and anything shaped like a key in log records."""

    PATTERNS = [re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"), re.compile(r"agr\.[A-Za-z0-9_\-]+\.[0-9a-f]{64}"),
                re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{12,}")]

    def __init__(self) -> None:
        super().__init__()
        self._known: set[str] = set()

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 6:
            self._known.add(secret)

    def redact(self, text: str) -> str:
        for secret in list(self._known):
            if secret in text:
                text = text.replace(secret, "[REDACTED]")
        for pattern in self.PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            redacted += "\n" + self.redact(formatted)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = redacted, None
        return True


REDACTOR = Redactor()


def install_redaction() -> None:
    """Attach the filter to every handler of the root logger (and future ones via root)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if REDACTOR not in handler.filters:
            handler.addFilter(REDACTOR)
