"""Identifiers in Fly's shapes: 14-hex machine ids, ULID instance/event ids, lease nonces."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def machine_id() -> str:
    return secrets.token_hex(7)


def ulid(now_ms: int | None = None) -> str:
    """48-bit millisecond timestamp + 80 random bits, Crockford base32 (26 chars)."""
    value = ((int(time.time() * 1000) if now_ms is None else now_ms) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def nonce() -> str:
    return secrets.token_hex(16)


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_ms() -> int:
    return int(time.time() * 1000)


def volume_suffix() -> str:
    """Fly volume ids are ``vol_`` + 16 lowercase letters and digits."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))
