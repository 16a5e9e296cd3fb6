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
    os.chmod(path, 0o600)  # one made by an older version, or restored from a backup
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

    def relay_token(self, machine_key: str) -> str:
        """A machine's credential for the relay: names the machine, not a session, so a
        pre-started machine can be handed to whichever session claims it."""
        return f"{RELAY_TOKEN_PREFIX}.{machine_key}.{self._mac('relay', machine_key)}"

    def machine_for_relay_token(self, token: str) -> str | None:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != RELAY_TOKEN_PREFIX:
            return None
        machine_key = parts[1]
        return machine_key if hmac.compare_digest(self.relay_token(machine_key), token) else None


class KeyVault:
    """Session id → the user's Anthropic key, in this process's memory only.

    Each key held is also known to the log redactor, for exactly as long as some session
    holds it (the same key may open many sessions)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()
        self._redactor = redactor or REDACTOR

    def put(self, session_id: str, key: str) -> None:
        with self._lock:
            old = self._keys.get(session_id)
            self._keys[session_id] = key
        if old != key:
            self._redactor.add(key)
            if old is not None:
                self._redactor.discard(old)

    def get(self, session_id: str) -> str | None:
        with self._lock:
            return self._keys.get(session_id)

    def forget(self, session_id: str) -> None:
        with self._lock:
            old = self._keys.pop(session_id, None)
        if old is not None:
            self._redactor.discard(old)

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)


class Redactor(logging.Filter):
    """Replaces every known secret and anything shaped like a key in log records.

    Known secrets are counted (added once per holder, discarded when the holder forgets
    them) and matched with one compiled alternation, rebuilt only when the set changes,
    so a record costs one scan however many sessions there are."""

    PATTERNS = (re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"), re.compile(r"agr\.[A-Za-z0-9_\-]+\.[0-9a-f]{64}"),
                re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{12,}"))

    def __init__(self) -> None:
        super().__init__()
        self._counts: dict[str, int] = {}
        self._known: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if not secret or len(secret) < 6:
            return
        with self._lock:
            self._counts[secret] = self._counts.get(secret, 0) + 1
            if self._counts[secret] == 1:
                self._rebuild()

    def discard(self, secret: str) -> None:
        with self._lock:
            count = self._counts.get(secret, 0)
            if count > 1:
                self._counts[secret] = count - 1
            elif count == 1:
                del self._counts[secret]
                self._rebuild()

    def known(self) -> int:
        """How many distinct secrets are known (for tests and debugging)."""
        with self._lock:
            return len(self._counts)

    def _rebuild(self) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        secrets_ = sorted(self._counts, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, secrets_))) if secrets_ else None

    def redact(self, text: str) -> str:
        known = self._known
        if known is not None:
            text = known.sub("[REDACTED]", text)
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
